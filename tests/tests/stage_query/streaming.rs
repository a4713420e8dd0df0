//! Streamed answers (`handle_streaming` natively, `handle-stream` under the WASI host): the
//! same bytes on both paths in every format, no row limit unless one is given, and an error
//! that ends a stream after its first rows.

use xstage_tests::run::{Streamed, native_streamed, wasi_streamed};

use super::*;

/// The event streamed both ways; the answers must be the same bytes, apart from the
/// `stats` of a JSON or NDJSON answer's end (timing, and each side's S3 reads). An Arrow
/// answer's batches must be equal; its bytes are compared too.
async fn streamed(event: Value) -> Streamed {
    let native = native_streamed(event.clone()).await;
    let (wasm, stats) = wasi_streamed(function().await, &event).await;
    assert!(
        stats.denied_requests.is_empty(),
        "{:?}",
        stats.denied_requests
    );
    assert_eq!(native.1, wasm.1, "the errors differ for {event}");
    if event["options"]["format"] == "arrow" {
        assert_eq!(
            arrow_batches(&native.0),
            arrow_batches(&wasm.0),
            "native and WASI Arrow streams differ for {event}"
        );
        assert!(native.0 == wasm.0, "the same batches in other bytes");
        return native;
    }
    let cut = |body: &[u8]| match body.windows(8).rposition(|w| w == b"\"stats\":") {
        Some(at) => body[..at].to_vec(),
        None => body.to_vec(),
    };
    assert!(
        cut(&native.0) == cut(&wasm.0),
        "native and WASI streams differ for {event}: {} and {} bytes",
        native.0.len(),
        wasm.0.len()
    );
    native
}

/// An Arrow IPC stream's batches.
fn arrow_batches(body: &[u8]) -> Vec<arrow::record_batch::RecordBatch> {
    if body.is_empty() {
        return Vec::new();
    }
    arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body.to_vec()), None)
        .expect("an Arrow IPC stream")
        .map(|b| b.expect("a batch"))
        .collect()
}

fn event(sql: &str, options: Value) -> Value {
    let w = WORLD.get().expect("the world is set up");
    let mut event = seed::seed_event(&w.endpoint, sql);
    event["options"] = options;
    event
}

/// 20,000 rows, twice the buffered default: all of them, in each format.
#[test]
fn every_row_streams_the_same_natively_and_under_wasi() {
    block_on(async {
        world().await;
        let sql = "SELECT * FROM @databend_test/whole/people.parquet";
        let (body, error) = streamed(event(sql, json!({"format": "ndjson"}))).await;
        assert_eq!(error, None);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), WHOLE_ROWS + 2);
        assert_eq!(lines[WHOLE_ROWS + 1]["row_count"], WHOLE_ROWS);
        assert_eq!(lines[WHOLE_ROWS + 1]["truncated"], false);
        let want = fixtures::people(WHOLE_ROWS);
        assert_eq!(lines[1], want[0].json());
        assert_eq!(lines[WHOLE_ROWS], want[WHOLE_ROWS - 1].json());

        let (body, error) = streamed(event(sql, json!({"format": "arrow"}))).await;
        assert_eq!(error, None);
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, WHOLE_ROWS);

        let (body, error) =
            streamed(event(sql, json!({"format": "json", "max_rows": 15_000}))).await;
        assert_eq!(error, None);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["row_count"], 15_000);
        assert_eq!(answer["truncated"], true);
        assert_eq!(answer["rows"].as_array().unwrap().len(), 15_000);
    })
}

/// An error met after rows were sent ends the stream with it; the bytes before it are
/// never a whole answer (no closing line).
#[test]
fn an_error_after_the_first_rows_ends_the_stream() {
    block_on(async {
        world().await;
        // The division fails at id 19000, the 18,001st row: batches of rows go out first.
        let sql = "SELECT id, 1 / (id - 19000) AS x FROM @databend_test/whole/people.parquet";
        let (body, error) = streamed(event(sql, json!({"format": "ndjson"}))).await;
        let (kind, message) = error.expect("the query fails");
        assert_eq!(kind, "InvalidQuery", "{message}");
        assert!(
            message.to_lowercase().contains("divide by zero"),
            "{message}"
        );
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with("{\"schema\""),
            "{}",
            &text[..text.len().min(200)]
        );
        assert!(
            !text.contains("row_count"),
            "no closing line after an error"
        );
        let sent = text.lines().count() - 1;
        assert!(
            sent > 1_000 && sent < 18_000,
            "{sent} rows before the error"
        );
    })
}

/// A UNION ALL of two scans (two partitions, merged without spawning: engine/serial.rs),
/// buffered and streamed, natively and under WASI.
#[test]
fn a_union_of_two_scans_runs_on_every_path() {
    block_on(async {
        world().await;
        let sql = "SELECT id FROM @databend_test/test.parquet UNION ALL SELECT id FROM @databend_test/test.parquet";
        let v = query(sql).await;
        assert_eq!(v["row_count"], SEED_ROWS * 2);
        let (body, error) = streamed(event(sql, json!({"format": "ndjson"}))).await;
        assert_eq!(error, None);
        let lines = String::from_utf8(body).unwrap().lines().count();
        assert_eq!(lines, SEED_ROWS * 2 + 2);
    })
}

/// `people.parquet` × `copies`, as one answer: every person once per `n` in 1..=copies.
fn copies_sql(copies: usize) -> String {
    let values: Vec<String> = (1..=copies).map(|n| format!("({n})")).collect();
    format!(
        "SELECT p.*, t.n FROM @databend_test/whole/people.parquet AS p CROSS JOIN (VALUES {}) AS t(n)",
        values.join(", ")
    )
}

/// A 50 MB answer, in each text format, is the same bytes natively and under WASI, and
/// whole: every row, the closing counts, nothing truncated.
#[test]
fn a_fifty_megabyte_answer_is_the_same_bytes_on_both_paths() {
    block_on(async {
        world().await;
        // About 40 bytes a row as JSON: 1,280,000 rows.
        let copies = 64;
        let rows = WHOLE_ROWS * copies;
        for format in ["json", "ndjson"] {
            let (body, error) =
                streamed(event(&copies_sql(copies), json!({"format": format}))).await;
            assert_eq!(error, None, "{format}");
            assert!(body.len() > 50_000_000, "{format}: {} bytes", body.len());
            let text = String::from_utf8(body).unwrap();
            let (count, truncated) = if format == "json" {
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(answer["rows"].as_array().unwrap().len(), rows);
                (answer["row_count"].clone(), answer["truncated"].clone())
            } else {
                let lines: Vec<&str> = text.lines().collect();
                assert_eq!(lines.len(), rows + 2, "{format}");
                let last: Value = serde_json::from_str(lines[rows + 1]).unwrap();
                (last["row_count"].clone(), last["truncated"].clone())
            };
            assert_eq!(count, rows, "{format}");
            assert_eq!(truncated, false, "{format}");
        }
    })
}

/// Past 200 MiB a stream ends with `ResultTooLarge`, on both paths, after as many bytes,
/// and never more than the bound.
#[test]
fn past_two_hundred_megabytes_the_stream_ends_with_a_typed_error() {
    block_on(async {
        world().await;
        // About 45 bytes a row as Arrow: 6,400,000 rows would take some 290 MB.
        let event = event(&copies_sql(320), json!({"format": "arrow"}));
        let native = native_streamed(event.clone()).await;
        let (wasm, _) = wasi_streamed(function().await, &event).await;
        let bound = xstage_core::result::stream::MAX_STREAM_BYTES as usize;
        for (path, (body, error)) in [("native", &native), ("WASI", &wasm)] {
            let (kind, message) = error.clone().expect("the answer passes the bound");
            assert_eq!(kind, "ResultTooLarge", "{path}: {message}");
            assert!(
                message.contains("200 MB") && message.contains("add a LIMIT"),
                "{message}"
            );
            assert!(
                body.len() <= bound && body.len() > bound - 1_000_000,
                "{path}: {} bytes",
                body.len()
            );
        }
        assert_eq!(native.0.len(), wasm.0.len(), "as many bytes on both paths");
        assert_eq!(native.1, wasm.1);
    })
}
