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
                fixtures::write_parquet(&[fixtures::people_batch(rows)], Compression::SNAPPY, 50_000)
            };
            let admin = seed::seed(&endpoint, parquet(&small)).await.expect("seed");
            for (name, rows) in [("small", small.clone()), ("mid", fixtures::people(MID)), ("big", fixtures::people(BIG))] {
                admin
                    .put(seed::BUCKET, &format!("{}unload-src/{name}.parquet", seed::PREFIX), parquet(&rows))
                    .await
                    .expect("upload a source");
            }
            World { endpoint, admin, small }
        })
        .await
}

async fn function() -> &'static Function {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    run::stage_query(&FUNCTION, |c| {
        c.environment.insert("XSTAGE_ALLOW_WRITES".into(), "true".into());
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
    assert_eq!(strip(&replies[0]), strip(&replies[1]), "native and WASI differ for {sql}");
    replies
}

/// A query's rows through the native function.
async fn read(sql: &str, file_format: Option<Value>) -> Value {
    let w = world().await;
    let mut e = event(w, sql);
    if let Some(f) = file_format {
        e["stage"]["file_format"] = f;
    }
    run::native(e).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// Stage-relative key → (size, ETag) under `dir` (stage-relative), from the customer's client.
async fn listed(dir: &str) -> BTreeMap<String, (u64, String)> {
    let w = world().await;
    let prefix = format!("{}{dir}", seed::PREFIX);
    let out = w.admin.s3.list_objects_v2().bucket(seed::BUCKET).prefix(&prefix).send().await.expect("list");
    out.contents()
        .iter()
        .map(|o| {
            let key = o.key().unwrap_or_default().strip_prefix(seed::PREFIX).unwrap().to_string();
            (key, (o.size().unwrap_or(0) as u64, o.e_tag().unwrap_or_default().trim_matches('"').to_string()))
        })
        .collect()
}

async fn object(key: &str) -> Vec<u8> {
    let w = world().await;
    let out = w.admin.s3.get_object().bucket(seed::BUCKET).key(format!("{}{key}", seed::PREFIX)).send().await.expect("get");
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

async fn no_upload_in_progress() {
    let w = world().await;
    let out = w.admin.s3.list_multipart_uploads().bucket(seed::BUCKET).send().await.expect("list uploads");
    let open: Vec<_> = out.uploads().iter().filter_map(|u| u.key()).collect();
    assert!(open.is_empty(), "incomplete multipart uploads left: {open:?}");
}

/// The answer's rows, the manifest and S3's listing agree: returns the data files listed.
async fn check_commit(answer: &Value, dir: &str) -> BTreeMap<String, (u64, String)> {
    let query_id = answer["stats"]["query_id"].as_str().expect("a query id");
    let all = listed(dir).await;
    let manifest_key = format!("{dir}_xstage_manifest_{query_id}.json");
    assert!(all.contains_key(&manifest_key), "no manifest in {all:?}");
    let data: BTreeMap<_, _> = all.into_iter().filter(|(k, _)| *k != manifest_key).collect();
    let manifest: Value = serde_json::from_slice(&object(&manifest_key).await).expect("manifest JSON");
    let files: BTreeMap<String, (u64, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), (f["size"].as_u64().unwrap(), f["etag"].as_str().unwrap().to_string())))
        .collect();
    assert_eq!(files, data, "the manifest must list exactly what exists");
    let output: u64 = data.values().map(|(size, _)| size).sum();
    let row = &answer["rows"][0];
    assert_eq!(row[2].as_u64(), Some(output), "output_bytes is what S3 holds: {answer}");
    assert_eq!(manifest["rows_unloaded"], row[0]);
    assert_eq!(answer["stats"]["files_written"].as_u64(), Some(data.len() as u64 + 1));
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
        .map(|p| json!([p.id, if p.id % 7 == 0 { Value::Null } else { json!(p.name) }, p.age, p.score, p.active]))
        .collect()
}

#[test]
fn round_trip_in_every_format_and_compression() {
    block_on(async {
        let w = world().await;
        let cases: [(&str, &str, Option<Value>); 10] = [
            ("parquet", "TYPE = PARQUET", None),
            ("parquet-snappy", "TYPE = PARQUET COMPRESSION = SNAPPY", None),
            ("csv", "TYPE = CSV OUTPUT_HEADER = TRUE", Some(json!({"type": "csv", "skip_header": 1}))),
            ("csv-gzip", "TYPE = CSV COMPRESSION = GZIP OUTPUT_HEADER = TRUE", Some(json!({"type": "csv", "skip_header": 1}))),
            ("csv-bz2", "TYPE = CSV COMPRESSION = BZ2 OUTPUT_HEADER = TRUE FIELD_DELIMITER = '|'", Some(json!({"type": "csv", "skip_header": 1, "field_delimiter": "|"}))),
            ("tsv-zstd", "TYPE = TSV COMPRESSION = ZSTD OUTPUT_HEADER = TRUE", Some(json!({"type": "tsv", "skip_header": 1}))),
            ("ndjson", "TYPE = NDJSON", None),
            ("ndjson-gzip", "TYPE = NDJSON COMPRESSION = GZIP", None),
            ("ndjson-xz", "TYPE = NDJSON COMPRESSION = XZ", None),
            ("csv-plain", "TYPE = CSV", Some(json!({"type": "csv"}))),
        ];
        for (case, format, read_format) in cases {
            let dir = format!("unload/rt/{case}/{{side}}/");
            let sql = format!("COPY INTO @databend_test/{dir} FROM ({SOURCE}) FILE_FORMAT = ({format})");
            let replies = both(&sql).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let answer = reply.unwrap_or_else(|e| panic!("{case} {side}: {e:?}"));
                assert_eq!(answer["rows"][0][0], json!(SMALL), "{case}: {answer}");
                let dir = dir.replace("{side}", side);
                let data = check_commit(&answer, &dir).await;
                assert_eq!(data.len(), 1, "{case}: one file under 64 MB: {data:?}");
                // The answer's schema is Databend's.
                let names: Vec<&str> = answer["schema"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
                assert_eq!(names, ["rows_unloaded", "input_bytes", "output_bytes"]);
                let columns = if case == "csv-plain" { "column_1, column_2, column_3, column_4, column_5" } else { "id, name, age, score, active" };
                let order = if case == "csv-plain" { "column_1" } else { "id" };
                let back = read(&format!("SELECT {columns} FROM @databend_test/{dir} ORDER BY {order}"), read_format.clone()).await;
                assert_eq!(back["rows"].as_array().unwrap(), &expected_small(w), "{case} {side} read back");
                if case.starts_with("parquet") {
                    let source = read(&format!("{SOURCE} ORDER BY id"), None).await;
                    assert_eq!(back["schema"], source["schema"], "{case}: Parquet keeps the types");
                }
                let ext = data.keys().next().unwrap().rsplit_once("0000_00000000.").unwrap().1.to_string();
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
        let names: Vec<&str> = listed["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap()).collect();
        assert!(names.iter().any(|n| n.contains("_xstage_manifest_")), "{names:?}");
        no_upload_in_progress().await;
    })
}

#[test]
fn max_file_size_rolls_over_and_single_writes_one_file() {
    block_on(async {
        let source = "SELECT * FROM @databend_test/unload-src/mid.parquet";
        let max = 65_536u64;
        let csv = Some(json!({"type": "csv", "skip_header": 1}));
        for (case, format, bound, read_format) in [
            ("csv", "TYPE = CSV OUTPUT_HEADER = TRUE", max, csv),
            ("ndjson-gzip", "TYPE = NDJSON COMPRESSION = GZIP", max, None),
            ("parquet", "TYPE = PARQUET", max, None),
        ] {
            let dir = format!("unload/roll/{case}/{{side}}/");
            let replies = both(&format!("COPY INTO @databend_test/{dir} FROM ({source}) FILE_FORMAT = ({format}) MAX_FILE_SIZE = {max} DETAILED_OUTPUT = TRUE")).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let answer = reply.unwrap_or_else(|e| panic!("{case} {side}: {e:?}"));
                let dir = dir.replace("{side}", side);
                let data: BTreeMap<_, _> = listed(&dir).await.into_iter().filter(|(k, _)| !k.contains("_xstage_manifest_")).collect();
                assert!(data.len() >= 3, "{case}: {} files", data.len());
                for (name, (size, _)) in &data {
                    assert!(*size <= bound, "{case}: {name} is {size} bytes, over {bound}");
                }
                let sizes: Vec<u64> = data.values().map(|(size, _)| *size).collect();
                eprintln!("{case} {side}: {} files of MAX_FILE_SIZE {max}: {sizes:?}", data.len());
                // DETAILED_OUTPUT: one row per file, as S3 lists them.
                let rows = answer["rows"].as_array().unwrap();
                let detailed: BTreeMap<String, u64> = rows.iter().map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap())).collect();
                let sizes: BTreeMap<String, u64> = data.iter().map(|(k, (s, _))| (k.clone(), *s)).collect();
                assert_eq!(detailed, sizes);
                let total: u64 = rows.iter().map(|r| r[2].as_u64().unwrap()).sum();
                assert_eq!(total, MID as u64);
                let seqs: Vec<String> = data.keys().map(|k| k.rsplit('_').next().unwrap().split('.').next().unwrap().to_string()).collect();
                let want: Vec<String> = (0..data.len()).map(|i| format!("{i:08}")).collect();
                assert_eq!(seqs, want, "sequence numbers from 0, none missing");
                let back = read(&format!("SELECT count(*), sum(id) FROM @databend_test/{dir}"), read_format.clone()).await;
                let ids: i64 = (0..MID as i64).map(|i| 1000 + i).sum();
                assert_eq!(back["rows"][0], json!([MID, ids]), "{case}");
            }
        }
        let replies = both(&format!("COPY INTO @databend_test/unload/single/{{side}}/ FROM ({source}) FILE_FORMAT = (TYPE = CSV) MAX_FILE_SIZE = {max} SINGLE = TRUE")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            let data = check_commit(&answer, &format!("unload/single/{side}/")).await;
            assert_eq!(data.len(), 1, "SINGLE writes one file: {data:?}");
        }
        no_upload_in_progress().await;
    })
}

#[test]
fn multipart_files_and_failures_mid_file_leave_nothing_behind() {
    block_on(async {
        let big = "@databend_test/unload-src/big.parquet";
        let replies = both(&format!("COPY INTO @databend_test/unload/big/{{side}}/ FROM (SELECT * FROM {big}) FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            let data = check_commit(&answer, &format!("unload/big/{side}/")).await;
            let (size, etag) = data.values().next().unwrap();
            assert!(*size > 8 * 1024 * 1024, "{size}");
            assert!(etag.ends_with("-2"), "a two-part upload: {etag}");
            // At least CreateMultipartUpload, two UploadParts, Complete and the manifest's Put.
            assert!(answer["stats"]["put_requests"].as_u64().unwrap() >= 5, "{}", answer["stats"]);
            let back = read(&format!("SELECT count(*) FROM @databend_test/unload/big/{side}/"), Some(json!({"type": "csv"}))).await;
            assert_eq!(back["rows"][0][0], json!(BIG));
        }
        // A value that cannot be cast fails the source past the first 8 MiB part, and past
        // the first files: every file and the upload in progress go.
        let fail = format!(
            "SELECT id, CAST(CASE WHEN id > {} THEN 'x' ELSE '1' END AS INT) AS v, name FROM {big}",
            1000 + BIG as i64 - 20_000
        );
        for (case, options) in [("single", "SINGLE = TRUE"), ("rolled", "MAX_FILE_SIZE = 1048576")] {
            let replies = both(&format!("COPY INTO @databend_test/unload/fail/{case}/{{side}}/ FROM ({fail}) FILE_FORMAT = (TYPE = CSV) {options}")).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let (kind, message) = reply.expect_err("the cast fails");
                assert_eq!(kind, "InvalidQuery", "{message}");
                assert!(message.contains("'x'") || message.contains("Cannot cast"), "{message}");
                let left = listed(&format!("unload/fail/{case}/{side}/")).await;
                assert!(left.is_empty(), "a failed COPY leaves no files: {left:?}");
            }
        }
        no_upload_in_progress().await;
    })
}

#[test]
fn partition_by_writes_each_value_and_null_under_its_directory() {
    block_on(async {
        let w = world().await;
        let expr = "CASE WHEN id % 5 = 0 THEN NULL ELSE 'g' || CAST(id % 3 AS VARCHAR) END";
        let replies = both(&format!(
            "COPY INTO @databend_test/unload/part/{{side}}/ FROM (SELECT * FROM @databend_test/unload-src/small.parquet) PARTITION BY ({expr}) FILE_FORMAT = (TYPE = NDJSON)"
        ))
        .await;
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        for p in &w.small {
            let dir = if p.id % 5 == 0 { "_NULL_".to_string() } else { format!("g{}", p.id % 3) };
            *want.entry(dir).or_default() += 1;
        }
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            assert_eq!(answer["rows"][0][0], json!(SMALL));
            let dir = format!("unload/part/{side}/");
            let data = listed(&dir).await;
            let mut got: BTreeMap<String, usize> = BTreeMap::new();
            for key in data.keys().filter(|k| !k.contains("_xstage_manifest_")) {
                let sub = key.strip_prefix(&dir).unwrap().split('/').next().unwrap().to_string();
                let back = read(&format!("SELECT count(*) FROM @databend_test/{key}"), None).await;
                *got.entry(sub).or_default() += back["rows"][0][0].as_u64().unwrap() as usize;
            }
            assert_eq!(got, want, "{side}");
            // The partition value is not a column of what was written.
            let back = read(&format!("SELECT * FROM @databend_test/{dir}g1/ LIMIT 1"), None).await;
            assert_eq!(back["schema"].as_array().unwrap().len(), 5, "{}", back["schema"]);
        }
        for (hostile, needle) in [("'../escape'", "`.` and `..`"), ("'/abs'", "absolute"), ("'a' || chr(1)", "control character"), ("''", "empty")] {
            let replies = both(&format!(
                "COPY INTO @databend_test/unload/hostile/{{side}}/ FROM (SELECT * FROM @databend_test/unload-src/small.parquet) PARTITION BY ({hostile})"
            ))
            .await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let (kind, message) = reply.expect_err(hostile);
                assert_eq!(kind, "InvalidQuery", "{message}");
                assert!(message.contains("PARTITION BY value") && message.contains(needle), "{hostile}: {message}");
                assert!(listed(&format!("unload/hostile/{side}/")).await.is_empty());
            }
        }
        let escaped = listed("unload/escape").await;
        assert!(escaped.is_empty(), "{escaped:?}");
        no_upload_in_progress().await;
    })
}

#[test]
fn raw_paths_are_created_once_and_replaced_only_with_overwrite() {
    block_on(async {
        let select = |n: usize| format!("SELECT * FROM @databend_test/unload-src/small.parquet ORDER BY id LIMIT {n}");
        let raw = "USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE";
        let copy = |n: usize, extra: &str| {
            format!("COPY INTO @databend_test/unload/raw/{{side}}/result.csv FROM ({}) FILE_FORMAT = (TYPE = CSV) {raw} {extra}", select(n))
        };
        for reply in both(&copy(10, "")).await {
            reply.unwrap();
        }
        for side in SIDES {
            let key = format!("unload/raw/{side}/result.csv");
            let before = listed(&key).await;
            assert_eq!(before.len(), 1, "{before:?}");
            assert_eq!(String::from_utf8(object(&key).await).unwrap().lines().count(), 10);
        }
        let replies = both(&copy(20, "")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let (kind, message) = reply.expect_err("the file exists");
            assert_eq!(kind, "AlreadyExists", "{message}");
            assert!(message.contains(&format!("unload/raw/{side}/result.csv")), "{message}");
            let text = String::from_utf8(object(&format!("unload/raw/{side}/result.csv")).await).unwrap();
            assert_eq!(text.lines().count(), 10, "the file is untouched");
        }
        for reply in both(&copy(20, "OVERWRITE = TRUE")).await {
            reply.unwrap();
        }
        for side in SIDES {
            let text = String::from_utf8(object(&format!("unload/raw/{side}/result.csv")).await).unwrap();
            assert_eq!(text.lines().count(), 20, "OVERWRITE replaced the one raw path");
        }
        no_upload_in_progress().await;
    })
}

#[test]
fn a_retry_answers_once_and_a_rival_name_stops_the_writer() {
    block_on(async {
        let w = world().await;
        for side in SIDES {
            let copy = format!(
                "COPY INTO @databend_test/unload/retry/{side}/ FROM (SELECT * FROM @databend_test/unload-src/mid.parquet) FILE_FORMAT = (TYPE = CSV) MAX_FILE_SIZE = 65536"
            );
            let mut e = event(w, &copy);
            e["options"]["query_id"] = json!(format!("retry-{side}"));
            let first = on(side, e.clone()).await.expect("first");
            let files = check_commit(&first, &format!("unload/retry/{side}/")).await;
            let again = on(side, e).await.expect("a retry of a committed statement answers");
            assert_eq!(again["rows"], first["rows"], "the same answer");
            assert_eq!(listed(&format!("unload/retry/{side}/")).await.len(), files.len() + 1, "nothing new");

            // Another writer already holds the name of this statement's second file.
            let rival = format!("unload/rival/{side}/data_rival-{side}_0000_00000001.csv");
            w.admin.put(seed::BUCKET, &format!("{}{rival}", seed::PREFIX), bytes::Bytes::from_static(b"rival\n")).await.unwrap();
            let copy = copy.replace("unload/retry/", "unload/rival/");
            let mut e = event(w, &copy);
            e["options"]["query_id"] = json!(format!("rival-{side}"));
            let (kind, message) = on(side, e).await.expect_err("the name is taken");
            assert_eq!(kind, "AlreadyExists", "{message}");
            assert!(message.contains(&rival), "{message}");
            let left: Vec<String> = listed(&format!("unload/rival/{side}/")).await.into_keys().collect();
            assert_eq!(left, vec![rival.clone()], "only the rival's file remains");
            assert_eq!(object(&rival).await, b"rival\n", "and it is untouched");
        }
        no_upload_in_progress().await;
    })
}

/// moto records the session policy the COPY's AssumeRole carried: the statement's own names.
#[test]
fn the_write_session_policy_names_only_the_statement_files() {
    block_on(async {
        let endpoint = moto::moto().endpoint().to_string();
        let people = fixtures::people(5);
        let body = fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 5);
        seed::seed(&endpoint, body).await.expect("seed moto");
        let mut e = seed::seed_event(&endpoint, "COPY INTO @databend_test/out/ FROM @databend_test/test.parquet FILE_FORMAT = (TYPE = CSV)");
        e["connection"]["external_id"] = json!("moto-write-1");
        let answer = run::native(e).await.expect("COPY through moto");
        assert_eq!(answer["rows"][0][0], json!(5));
        let query_id = answer["stats"]["query_id"].as_str().unwrap().to_string();
        let calls = moto::assume_role_calls(&endpoint).expect("moto data");
        let call = calls.iter().find(|c| c.external_id.as_deref() == Some("moto-write-1")).expect("the COPY's AssumeRole");
        let sent: Value = serde_json::from_str(call.policy.as_deref().unwrap()).unwrap();
        let create = sent["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "CreateThisStatementsFiles").expect("a create statement");
        assert_eq!(
            create["Resource"],
            json!([
                format!("arn:aws:s3:::{}/{}out/data_{query_id}_*", seed::BUCKET, seed::PREFIX),
                format!("arn:aws:s3:::{}/{}out/_xstage_manifest_{query_id}.json", seed::BUCKET, seed::PREFIX),
            ])
        );
        let deny = sent["Statement"].as_array().unwrap().iter().find(|s| s["Effect"] == "Deny").expect("the If-None-Match deny");
        assert_eq!(deny["Condition"]["Null"]["s3:if-none-match"], json!("true"));
    })
}

/// "A 1 GB output in a 512 MB function must succeed": one CSV file of more than a GiB
/// (SINGLE, a multipart upload of 8 MiB parts), written by the WASI component with 512 MB,
/// whose memory the host enforces.
#[test]
fn a_gigabyte_unloads_in_a_512_mb_function() {
    block_on(async {
        let w = world().await;
        let function = run::load_stage_query(|c| {
            c.memory_size_mb = 512;
            c.timeout = Duration::from_secs(300);
            c.environment.insert("XSTAGE_ALLOW_WRITES".into(), "true".into());
        })
        .await;
        let copies = 100;
        let values: Vec<String> = (0..copies).map(|i| format!("({i})")).collect();
        let sql = format!(
            "COPY INTO @databend_test/unload/gigabyte/ FROM (SELECT b.* FROM @databend_test/unload-src/big.parquet b \
             CROSS JOIN (VALUES {}) AS v(k)) FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE",
            values.join(", ")
        );
        let (reply, stats) = run::wasi(&function, &event(w, &sql)).await;
        let answer = reply.unwrap_or_else(|e| panic!("{e:?}"));
        let rows = (BIG * copies) as u64;
        assert_eq!(answer["rows"][0][0].as_u64(), Some(rows));
        let data = check_commit(&answer, "unload/gigabyte/").await;
        let (size, etag) = data.values().next().unwrap();
        assert!(*size > 1 << 30, "{size} bytes");
        let parts: u64 = etag.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(parts, size.div_ceil(8 << 20), "8 MiB parts: {etag}");
        assert!(stats.peak_memory_bytes <= 512 << 20, "{}", stats.peak_memory_bytes);
        eprintln!(
            "{size} bytes, {rows} rows, {parts} parts in {:?}; guest peak {} MB of 512",
            stats.duration,
            stats.peak_memory_bytes >> 20
        );
        no_upload_in_progress().await;
    })
}
