//! Benchmark of the wasmtime host: compile, cache load, instantiation, warm-invocation
//! overhead, the wasm/native time ratio on a full-scan query over Parquet in LocalStack, and
//! streamed answers (`host-bench stream` runs only these): time to the first chunk, total
//! time and the guest's peak memory in each format, at 100,000 rows and at 100 MB.
//!
//! Prints figures measured in one run; asserts nothing about time (these machines are
//! noisy, so compare the ratios, not the absolute times). Build in release mode for
//! meaningful figures: `scripts/bench-host`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::json;
use xstage_host::cache::CacheOutcome;
use xstage_host::{Host, HostConfig};
use xstage_tests::bench_data;
use xstage_tests::{localstack, seed, wasm};

const SCAN_ROWS: usize = 500_000;
const SCAN_KEY: &str = "bench/scan.parquet";
const RUNS: usize = 5;
const INSTANTIATIONS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn scan_file() -> Result<Bytes> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(100_000))
        .build();
    Ok(bench_data::write(SCAN_ROWS, 7, props)?)
}

fn main() -> Result<()> {
    seed::platform_identity();
    xstage_tests::runtime().block_on(run())
}

async fn run() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("stream") {
        let host = Host::new(HostConfig::default())?;
        let function = host
            .load(&wasm::stage_query_component(), wasm::stage_query_config())
            .await?;
        let (endpoint, _) = upload_scan_file().await?;
        return streams(&function, &endpoint).await;
    }
    let component = wasm::stage_query_component();
    let size = std::fs::metadata(&component)?.len();
    println!(
        "component: {} ({:.1} MB)",
        component.display(),
        size as f64 / 1e6
    );

    // Compile into an empty cache, then load from it.
    let dir = tempfile_dir()?;
    let host_with_cache = || {
        Host::new(HostConfig {
            cache_dir: Some(dir.clone()),
            ..HostConfig::default()
        })
    };
    let compiled = host_with_cache()?.compile(&component).await?;
    anyhow::ensure!(
        compiled.outcome == CacheOutcome::Compiled,
        "{:?}",
        compiled.outcome
    );
    let compile = compiled.compile_time.context("compile time")?;
    let (mut loads, mut keys, mut verifies, mut maps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let loaded = host_with_cache()?.compile(&component).await?;
        anyhow::ensure!(loaded.outcome == CacheOutcome::Hit, "{:?}", loaded.outcome);
        loads.push(loaded.load_time);
        keys.push(loaded.key_time);
        verifies.push(loaded.verify_time);
        maps.push(loaded.deserialize_time);
    }
    println!("compile (Cranelift): {}", ms(compile));
    println!(
        "cache hit, median of {RUNS}: {} = component hash {} + entry check and sealed copy {} + deserialize {}",
        ms(median(loads)),
        ms(median(keys)),
        ms(median(verifies)),
        ms(median(maps))
    );

    // Instantiation: a cold start per invocation of an event the handler rejects at once.
    let host = Host::new(HostConfig {
        cache_dir: Some(dir.clone()),
        ..HostConfig::default()
    })?;
    let function = host.load(&component, wasm::stage_query_config()).await?;
    let invalid = br#"{"query": "SELECT 1"}"#;
    let mut inits = Vec::new();
    for _ in 0..INSTANTIATIONS {
        function.drop_idle();
        let i = function.invoke(invalid).await?;
        inits.push(i.stats.init_duration.context("cold start")?);
    }
    inits.sort();
    println!(
        "instantiate (store + InstancePre, pooling), {INSTANTIATIONS} cold starts: p50 {} p99 {}",
        ms(percentile(&inits, 0.5)),
        ms(percentile(&inits, 0.99))
    );

    // Warm-invocation overhead: the same rejected event, warm, against a native call.
    let mut wasm_calls = Vec::new();
    let mut native_calls = Vec::new();
    for _ in 0..INSTANTIATIONS {
        let t = Instant::now();
        let i = function.invoke(invalid).await?;
        wasm_calls.push(t.elapsed());
        anyhow::ensure!(i.error_type() == Some("InvalidEvent"), "{:?}", i.outcome);
        let t = Instant::now();
        let _ = xstage_core::handle_bytes(invalid).await;
        native_calls.push(t.elapsed());
    }
    let (w, n) = (median(wasm_calls), median(native_calls));
    println!(
        "warm invocation of a rejected event: wasm {} native {} (overhead {})",
        ms(w),
        ms(n),
        ms(w.saturating_sub(n))
    );

    // Full scan: every column of every row decoded, natively and in the guest.
    let (endpoint, file_len) = upload_scan_file().await?;
    let columns: Vec<String> = bench_data::schema()
        .fields()
        .iter()
        .map(|f| format!("sum(length(CAST({} AS VARCHAR)))", f.name()))
        .collect();
    let sql = format!(
        "SELECT count(*), {} FROM @databend_test/{SCAN_KEY}",
        columns.join(", ")
    );
    let label = format!(
        "full scan of {SCAN_ROWS} rows x {} columns ({:.1} MB)",
        columns.len(),
        file_len as f64 / 1e6
    );
    let answer = side_by_side(&function, &endpoint, &label, &sql, RUNS).await?;
    println!("answer: {answer}");
    // An aggregation: a filter, a computed key, a two-column GROUP BY and five aggregates:
    // DataFusion's hashing, group values and accumulators per row.
    let sql = format!(
        "SELECT category, code % 100 AS bucket, count(*), sum(amount), avg(quantity), min(lat), max(name) \
         FROM @databend_test/{SCAN_KEY} WHERE flag GROUP BY category, bucket ORDER BY category, bucket"
    );
    let label = format!("GROUP BY of {SCAN_ROWS} rows");
    side_by_side(&function, &endpoint, &label, &sql, RUNS).await?;
    // A query's fixed cost, warm: parse, plan, the footer and one page.
    let sql = format!("SELECT * FROM @databend_test/{SCAN_KEY} LIMIT 1");
    side_by_side(
        &function,
        &endpoint,
        "warm LIMIT 1 on the scan file",
        &sql,
        30,
    )
    .await?;
    let streamed = streams(&function, &endpoint).await;
    let _ = std::fs::remove_dir_all(&dir);
    streamed
}

/// `sql` natively and in the guest, alternating, `runs` times each; prints `label` with the
/// medians and their ratio, and returns the answer (the same on both sides and in every run,
/// or an error).
async fn side_by_side(
    function: &xstage_host::Function,
    endpoint: &str,
    label: &str,
    sql: &str,
    runs: usize,
) -> Result<serde_json::Value> {
    let event = seed::seed_event(endpoint, sql);
    let event_bytes = serde_json::to_vec(&event)?;
    let (mut native, mut guest, mut answers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let r = xstage_core::handle(event.clone())
            .await
            .map_err(|e| anyhow::anyhow!("native: {e}"))?;
        native.push(t.elapsed());
        answers.push(serde_json::to_value(&r.rows)?);
        let t = Instant::now();
        let i = function.invoke(&event_bytes).await?;
        guest.push(t.elapsed());
        anyhow::ensure!(
            !i.is_error(),
            "wasm: {}",
            String::from_utf8_lossy(&i.body())
        );
        let v: serde_json::Value = serde_json::from_slice(&i.body())?;
        answers.push(v["rows"].clone());
    }
    anyhow::ensure!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "answers differ: {sql}"
    );
    let (n, w) = (median(native), median(guest));
    println!(
        "{label}, median of {runs}: native {} wasm {} ratio {:.2}",
        ms(n),
        ms(w),
        w.as_secs_f64() / n.as_secs_f64()
    );
    Ok(answers.swap_remove(0))
}

/// LocalStack with the seed and the scan file; its endpoint and the file's length.
async fn upload_scan_file() -> Result<(String, usize)> {
    eprintln!("==> starting LocalStack and uploading a {SCAN_ROWS}-row file ...");
    let endpoint = localstack::localstack().endpoint().to_string();
    let file = scan_file()?;
    let len = file.len();
    let admin = seed::seed(&endpoint, Bytes::from_static(b"PAR1")).await?;
    admin
        .put(seed::BUCKET, &format!("{}{SCAN_KEY}", seed::PREFIX), file)
        .await?;
    Ok((endpoint, len))
}

/// `SELECT *` streamed in each format, natively and through the host: a fifth of the file,
/// then as many rows as make a 100 MB answer in that format (the file read up to three times,
/// `UNION ALL`): time to the first chunk, total time, bytes, and the guest's peak linear
/// memory (which must not grow with the answer).
async fn streams(function: &xstage_host::Function, endpoint: &str) -> Result<()> {
    for format in ["json", "ndjson", "arrow"] {
        let small = SCAN_ROWS / 5;
        let bytes = stream_once(function, endpoint, format, small).await?;
        let rows = (100e6 * small as f64 / bytes as f64).ceil() as usize;
        stream_once(function, endpoint, format, rows.min(3 * SCAN_ROWS)).await?;
    }
    // The same input read once, twice and three times (UNION ALL) into one NDJSON answer:
    // the guest's peak memory must not follow the answer's size. Three copies pass the
    // 200 MB bound and end with ResultTooLarge.
    for copies in [1, 2, 3] {
        let one = format!("SELECT * FROM @databend_test/{SCAN_KEY}");
        let sql = vec![one; copies].join(" UNION ALL ");
        let mut event = seed::seed_event(endpoint, &sql);
        event["options"] = json!({ "format": "ndjson" });
        let (sender, chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let payload = serde_json::to_vec(&event)?;
        let started = Instant::now();
        let call = function.invoke_streaming_as(&payload, "bound".into(), sender);
        let (invocation, (_, bytes)) = tokio::join!(call, read_chunks(chunks, started));
        let invocation = invocation?;
        println!(
            "stream the file x{copies} as ndjson: {:.1} MB in {}, ended with {}; guest peak memory {:.0} MB",
            bytes as f64 / 1e6,
            ms(started.elapsed()),
            invocation.error_type().unwrap_or("success"),
            invocation.stats.peak_memory_bytes as f64 / 1e6,
        );
    }
    Ok(())
}

/// The first `rows` rows of the file, up to three times over, streamed as `format` natively
/// and through the host; prints the figures and returns the answer's bytes.
async fn stream_once(
    function: &xstage_host::Function,
    endpoint: &str,
    format: &str,
    rows: usize,
) -> Result<usize> {
    let one = format!("SELECT * FROM @databend_test/{SCAN_KEY}");
    let sql = format!(
        "SELECT * FROM ({}) LIMIT {rows}",
        vec![one; 3].join(" UNION ALL ")
    );
    let mut event = seed::seed_event(endpoint, &sql);
    event["options"] = json!({ "format": format });
    let (native, native_first, native_total) = native_stream(event.clone()).await?;
    let (sender, chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let payload = serde_json::to_vec(&event)?;
    let started = Instant::now();
    let call = function.invoke_streaming_as(&payload, "bench".into(), sender);
    let (invocation, (first, bytes)) = tokio::join!(call, read_chunks(chunks, started));
    let total = started.elapsed();
    let invocation = invocation?;
    anyhow::ensure!(!invocation.is_error(), "wasm: {:?}", invocation.outcome);
    // The same rows; a JSON or NDJSON answer's closing `stats` (timing) may differ a little.
    anyhow::ensure!(
        bytes.abs_diff(native) <= native / 100,
        "{format}: wasm {bytes} bytes, native {native}"
    );
    println!(
        "stream {rows} rows as {format:6}: {:.1} MB; first chunk native {} wasm {}; total native {} wasm {}; guest peak memory {:.0} MB",
        bytes as f64 / 1e6,
        ms(native_first),
        ms(first.unwrap_or_default()),
        ms(native_total),
        ms(total),
        invocation.stats.peak_memory_bytes as f64 / 1e6,
    );
    Ok(bytes)
}

/// Reads a stream's chunks to its end: when the first came (after `started`), and the bytes.
async fn read_chunks<T: AsRef<[u8]>>(
    mut chunks: tokio::sync::mpsc::Receiver<T>,
    started: Instant,
) -> (Option<Duration>, usize) {
    let (mut first, mut bytes) = (None, 0usize);
    while let Some(chunk) = chunks.recv().await {
        first.get_or_insert_with(|| started.elapsed());
        bytes += chunk.as_ref().len();
    }
    (first, bytes)
}

/// `event` through `handle_streaming`: bytes, time to the first chunk, total time.
async fn native_stream(event: serde_json::Value) -> Result<(usize, Duration, Duration)> {
    let (sender, chunks) = tokio::sync::mpsc::channel::<Bytes>(8);
    let sink = move |chunk: Bytes| {
        let sender = sender.clone();
        async move {
            sender
                .send(chunk)
                .await
                .map_err(|_| xstage_core::FunctionError::internal("the reader went away"))
        }
    };
    let started = Instant::now();
    let (done, (first, bytes)) = tokio::join!(
        xstage_core::handle_streaming(event, sink),
        read_chunks(chunks, started)
    );
    done.map_err(|e| anyhow::anyhow!("native: {e}"))?;
    Ok((bytes, first.unwrap_or_default(), started.elapsed()))
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("xstage-host-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
