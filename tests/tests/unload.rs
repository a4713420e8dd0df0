//! `COPY INTO @stage` end to end against LocalStack: natively (`xstage_core::handle`) and as
//! the WASI component under the host, each side writing under its own directory, then read
//! back through the function and listed with the customer's own S3 client.
//!
//! Every expectation is computed from the generated rows or from what S3 lists, never from
//! the code under test: the rows read back must be the source query's, the answer's byte
//! counts must be what S3 holds, the manifest must list exactly what exists, and no
//! multipart upload may be left in progress after any test.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use parquet::basic::Compression;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use xstage_host::Function;
use xstage_tests::fixtures::{self, Person};
use xstage_tests::run::{self, Reply};
use xstage_tests::seed::{self, Admin};
use xstage_tests::{localstack, moto};

#[path = "unload/exactly_once.rs"]
mod exactly_once;
#[path = "unload/faults.rs"]
mod faults;
#[path = "unload/layout.rs"]
mod layout;
#[path = "unload/stages.rs"]
mod stages;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(xstage_tests::runtime);

/// This binary's function allows writes, natively (the process environment) and in WASI.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    seed::platform_identity();
    seed::allow_writes();
    run::block_on(&RUNTIME, Duration::from_secs(600), f)
}

const SMALL: usize = 1_000;
const MID: usize = 20_000;
/// Enough rows for a CSV file past the first 8 MiB part: a multipart upload.
const BIG: usize = 300_000;
const SIDES: [&str; 2] = ["native", "wasi"];

struct World {
    endpoint: String,
    admin: Admin,
    small: Vec<Person>,
}

static WORLD: OnceCell<World> = OnceCell::const_new();

async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let endpoint = localstack::localstack().endpoint().to_string();
            let small = fixtures::people(SMALL);
            let parquet = |rows: &[Person]| {
                fixtures::write_parquet(
                    &[fixtures::people_batch(rows)],
                    Compression::SNAPPY,
                    50_000,
                )
            };
            let admin = seed::seed(&endpoint, parquet(&small)).await.expect("seed");
            for (name, rows) in [
                ("small", small.clone()),
                ("mid", fixtures::people(MID)),
                ("big", fixtures::people(BIG)),
            ] {
                admin
                    .put(
                        seed::BUCKET,
                        &format!("{}unload-src/{name}.parquet", seed::PREFIX),
                        parquet(&rows),
                    )
                    .await
                    .expect("upload a source");
            }
            World {
                endpoint,
                admin,
                small,
            }
        })
        .await
}

async fn function() -> &'static Function {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    run::stage_query(&FUNCTION, |c| {
        c.environment
            .insert("XSTAGE_ALLOW_WRITES".into(), "true".into());
    })
    .await
}

fn event(w: &World, sql: &str) -> Value {
    let mut e = seed::seed_event(&w.endpoint, sql);
    e["options"] = json!({"max_rows": 1_000_000});
    e
}

async fn on(side: &str, event: Value) -> Reply {
    match side {
        "native" => run::native(event).await,
        _ => run::wasi(function().await, &event).await.0,
    }
}

/// `sql` (with `{side}` replaced) on both sides; their answers must agree but for the query
/// id and counters, and both are returned.
async fn both(sql: &str) -> Vec<Reply> {
    let w = world().await;
    let mut replies = Vec::new();
    for side in SIDES {
        replies.push(on(side, event(w, &sql.replace("{side}", side))).await);
    }
    // What may differ: the side's directory and the query id in file names.
    let strip = |r: &Reply| match r {
        Ok(v) => {
            let mut rows = v["rows"].to_string().replace("wasi", "native");
            if let Some(id) = v["stats"]["query_id"].as_str() {
                rows = rows.replace(id, "QUERY-ID");
            }
            Ok(json!({"schema": v["schema"], "rows": rows}))
        }
        Err((kind, message)) => Err((kind.clone(), message.replace("wasi", "native"))),
    };
    assert_eq!(
        strip(&replies[0]),
        strip(&replies[1]),
        "native and WASI differ for {sql}"
    );
    replies
}

/// A query's rows through the native function.
async fn read(sql: &str, file_format: Option<Value>) -> Value {
    let w = world().await;
    let mut e = event(w, sql);
    if let Some(f) = file_format {
        e["stage"]["file_format"] = f;
    }
    run::native(e)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// Stage-relative key → (size, ETag) under `dir` (stage-relative), from the customer's client.
async fn listed(dir: &str) -> BTreeMap<String, (u64, String)> {
    world().await.admin.list_stage(dir).await.expect("list")
}

async fn object(key: &str) -> Vec<u8> {
    world()
        .await
        .admin
        .get_stage(key)
        .await
        .expect("get")
        .to_vec()
}

/// No multipart upload is in progress under `dir` (stage-relative): each test checks its
/// own directories, as the others may be uploading beside it.
async fn no_upload_in_progress(dir: &str) {
    let w = world().await;
    let prefix = format!("{}{dir}", seed::PREFIX);
    let open = w
        .admin
        .open_uploads(seed::BUCKET, &prefix)
        .await
        .expect("uploads");
    assert!(
        open.is_empty(),
        "incomplete multipart uploads left: {open:?}"
    );
}

/// The answer's rows, the manifest and S3's listing agree: returns the data files listed.
async fn check_commit(answer: &Value, dir: &str) -> BTreeMap<String, (u64, String)> {
    let query_id = answer["stats"]["query_id"].as_str().expect("a query id");
    let (manifest, data) = world()
        .await
        .admin
        .committed(dir, query_id)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let output: u64 = data.values().map(|(size, _)| size).sum();
    let row = &answer["rows"][0];
    assert_eq!(
        row[2].as_u64(),
        Some(output),
        "output_bytes is what S3 holds: {answer}"
    );
    assert_eq!(manifest["rows_unloaded"], row[0]);
    assert_eq!(
        answer["stats"]["files_written"].as_u64(),
        Some(data.len() as u64 + 1)
    );
    for name in data.keys() {
        assert!(name.contains(&format!("data_{query_id}_0000_")), "{name}");
    }
    data
}

const SOURCE: &str = "SELECT id, CASE WHEN id % 7 = 0 THEN NULL ELSE name END AS name, age, score, active \
                      FROM @databend_test/unload-src/small.parquet";

fn expected_small(w: &World) -> Vec<Value> {
    w.small
        .iter()
        .map(|p| {
            json!([
                p.id,
                if p.id % 7 == 0 {
                    Value::Null
                } else {
                    json!(p.name)
                },
                p.age,
                p.score,
                p.active
            ])
        })
        .collect()
}

#[test]
fn round_trip_in_every_format_and_compression() {
    block_on(async {
        let w = world().await;
        let cases: [(&str, &str, Option<Value>); 10] = [
            ("parquet", "TYPE = PARQUET", None),
            (
                "parquet-snappy",
                "TYPE = PARQUET COMPRESSION = SNAPPY",
                None,
            ),
            (
                "csv",
                "TYPE = CSV OUTPUT_HEADER = TRUE",
                Some(json!({"type": "csv", "skip_header": 1})),
            ),
            (
                "csv-gzip",
                "TYPE = CSV COMPRESSION = GZIP OUTPUT_HEADER = TRUE",
                Some(json!({"type": "csv", "skip_header": 1})),
            ),
            (
                "csv-bz2",
                "TYPE = CSV COMPRESSION = BZ2 OUTPUT_HEADER = TRUE FIELD_DELIMITER = '|'",
                Some(json!({"type": "csv", "skip_header": 1, "field_delimiter": "|"})),
            ),
            (
                "tsv-zstd",
                "TYPE = TSV COMPRESSION = ZSTD OUTPUT_HEADER = TRUE",
                Some(json!({"type": "tsv", "skip_header": 1})),
            ),
            ("ndjson", "TYPE = NDJSON", None),
            ("ndjson-gzip", "TYPE = NDJSON COMPRESSION = GZIP", None),
            ("ndjson-xz", "TYPE = NDJSON COMPRESSION = XZ", None),
            ("csv-plain", "TYPE = CSV", Some(json!({"type": "csv"}))),
        ];
        for (case, format, read_format) in cases {
            let dir = format!("unload/rt/{case}/{{side}}/");
            let sql =
                format!("COPY INTO @databend_test/{dir} FROM ({SOURCE}) FILE_FORMAT = ({format})");
            let replies = both(&sql).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let answer = reply.unwrap_or_else(|e| panic!("{case} {side}: {e:?}"));
                assert_eq!(answer["rows"][0][0], json!(SMALL), "{case}: {answer}");
                let dir = dir.replace("{side}", side);
                let data = check_commit(&answer, &dir).await;
                assert_eq!(data.len(), 1, "{case}: one file under 64 MB: {data:?}");
                // The answer's schema is Databend's.
                let names: Vec<&str> = answer["schema"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["rows_unloaded", "input_bytes", "output_bytes"]);
                let columns = if case == "csv-plain" {
                    "column_1, column_2, column_3, column_4, column_5"
                } else {
                    "id, name, age, score, active"
                };
                let order = if case == "csv-plain" {
                    "column_1"
                } else {
                    "id"
                };
                let back = read(
                    &format!("SELECT {columns} FROM @databend_test/{dir} ORDER BY {order}"),
                    read_format.clone(),
                )
                .await;
                assert_eq!(
                    back["rows"].as_array().unwrap(),
                    &expected_small(w),
                    "{case} {side} read back"
                );
                if case.starts_with("parquet") {
                    let source = read(&format!("{SOURCE} ORDER BY id"), None).await;
                    assert_eq!(
                        back["schema"], source["schema"],
                        "{case}: Parquet keeps the types"
                    );
                }
                let ext = data
                    .keys()
                    .next()
                    .unwrap()
                    .rsplit_once("0000_00000000.")
                    .unwrap()
                    .1
                    .to_string();
                let want = match case {
                    "parquet" | "parquet-snappy" => "parquet",
                    "csv" | "csv-plain" => "csv",
                    "csv-gzip" => "csv.gz",
                    "csv-bz2" => "csv.bz2",
                    "tsv-zstd" => "tsv.zst",
                    "ndjson" => "ndjson",
                    "ndjson-gzip" => "ndjson.gz",
                    _ => "ndjson.xz",
                };
                assert_eq!(ext, want);
            }
        }
        // LIST shows the manifests a query skips.
        let listed = read("LIST @databend_test/unload/rt/csv/native/", None).await;
        let names: Vec<&str> = listed["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap())
            .collect();
        assert!(
            names.iter().any(|n| n.contains("_xstage_manifest_")),
            "{names:?}"
        );
        no_upload_in_progress("unload/rt/").await;
    })
}
