//! End-to-end tests of the stage query function against real emulator processes:
//! LocalStack for S3/STS/IAM, moto for the record of what AssumeRole was sent.
//!
//! Every query runs twice: natively, and as the WASI component on the wasmtime host
//! (`xstage-host`), and the two results must be identical (see [`run`]).
//!
//! Every fixture is generated here and every expected value is computed from the generated
//! rows, not by the engine under test.

use std::sync::LazyLock;

use bytes::Bytes;
use parquet::basic::Compression;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use xstage_host::Function;
use xstage_tests::fixtures::{self, Person, Sale};
use xstage_tests::run::{self, Reply};
use xstage_tests::seed::{self, Admin};
use xstage_tests::{localstack, moto, wasm};

#[path = "stage_query/claims.rs"]
mod claims;
#[path = "stage_query/requests.rs"]
mod requests;
#[path = "stage_query/streaming.rs"]
mod streaming;
#[path = "stage_query/text_formats.rs"]
mod text_formats;

/// One runtime for the whole binary: SDK clients and their connection pools outlive a test.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(xstage_tests::runtime);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    seed::platform_identity();
    RUNTIME.block_on(f)
}

const SEED_ROWS: usize = 50;
const SALES_PARTS: usize = 4;
const SALES_ROWS: usize = 250;
/// People in `whole/people.parquet`: a file many times the metadata size hint.
const WHOLE_ROWS: usize = 20_000;

/// What was uploaded to LocalStack, for the expectations.
struct World {
    endpoint: String,
    people: Vec<Person>,
    sales: Vec<Vec<Sale>>,
    /// The sales parts' footers (their Thrift, length and magic) together.
    sales_footers: u64,
    types_expected: Vec<Value>,
    test_parquet: Bytes,
    admin: Admin,
    /// The size of `whole/people.parquet`, [`WHOLE_ROWS`] people in row groups of 2,000.
    whole_len: u64,
}

static WORLD: OnceCell<World> = OnceCell::const_new();

async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let endpoint = localstack::localstack().endpoint().to_string();
            let people = fixtures::people(SEED_ROWS);
            let test_parquet = fixtures::write_parquet(
                &[fixtures::people_batch(&people)],
                Compression::SNAPPY,
                20,
            );
            let admin = seed::seed(&endpoint, test_parquet.clone())
                .await
                .expect("seed");
            let put = |key: String, body: Bytes| {
                let admin: Admin = admin.clone();
                async move {
                    admin
                        .put(seed::BUCKET, &format!("{}{key}", seed::PREFIX), body)
                        .await
                        .expect("upload")
                }
            };
            let sales = fixtures::sales(SALES_PARTS, SALES_ROWS);
            let mut sales_footers = 0;
            for (i, part) in sales.iter().enumerate() {
                let body = fixtures::write_parquet(
                    &[fixtures::sales_batch(part)],
                    Compression::ZSTD(Default::default()),
                    100,
                );
                let trailer = &body[body.len() - 8..body.len() - 4];
                sales_footers += u64::from(u32::from_le_bytes(trailer.try_into().unwrap())) + 8;
                put(format!("sales/2024/part-{i}.parquet"), body).await;
            }
            put("sales/2024/_SUCCESS".into(), Bytes::from_static(b"")).await;
            put(
                "sales/readme.txt".into(),
                Bytes::from_static(b"not parquet"),
            )
            .await;
            for (name, codec) in fixtures::codecs() {
                let body = fixtures::write_parquet(&[fixtures::people_batch(&people)], codec, 16);
                put(format!("codecs/{name}.parquet"), body).await;
            }
            let (types, types_expected) = fixtures::types_batch();
            put(
                "types.parquet".into(),
                fixtures::write_parquet(&[types], Compression::SNAPPY, 10),
            )
            .await;
            put(
                "bad/not-parquet.parquet".into(),
                Bytes::from_static(b"hello, this is CSV,1,2,3\n"),
            )
            .await;
            let whole = fixtures::write_parquet(
                &[fixtures::people_batch(&fixtures::people(WHOLE_ROWS))],
                Compression::UNCOMPRESSED,
                2_000,
            );
            let whole_len = whole.len() as u64;
            put("whole/people.parquet".into(), whole).await;
            let half = test_parquet.slice(0..test_parquet.len() / 2);
            put("bad/truncated.parquet".into(), half).await;
            // Outside the stage prefix: must never be readable through the stage.
            admin
                .put(seed::BUCKET, "secret/outside.parquet", test_parquet.clone())
                .await
                .expect("upload outside");
            World {
                endpoint,
                people,
                sales,
                sales_footers,
                types_expected,
                test_parquet,
                whole_len,
                admin,
            }
        })
        .await
}

/// Runs the event natively (the core as a library) and as the WASI component on the wasmtime
/// host, asserts both give the same result, and returns the native one. Only the timing, the
/// STS call count (each side has its own credential cache) and the S3 requests and bytes
/// may differ here: the tests of this binary run at once, so what each side's environment
/// has learned of a file's metadata lengths depends on which ran first. The parity suite
/// (`emulator/tests/serve/parity.rs`) runs its cases in order on four paths from the same
/// state and compares the S3 requests and bytes too.
async fn run(event: Value) -> Reply {
    let native = run_native(event.clone()).await;
    let wasm = run_wasm(&event).await;
    assert_eq!(
        comparable(&native),
        comparable(&wasm),
        "native and WASI results differ for {event}"
    );
    native
}

async fn run_native(event: Value) -> Reply {
    run::native(event).await
}

/// The stage query component, loaded once on a host configured like this process.
async fn function() -> &'static Function {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    run::stage_query(&FUNCTION, |_| {}).await
}

async fn run_wasm(event: &Value) -> Reply {
    run::wasi(function().await, event).await.0
}

fn comparable(outcome: &Reply) -> Reply {
    let mut outcome = outcome.clone();
    if let Ok(Value::Object(response)) = &mut outcome
        && let Some(Value::Object(stats)) = response.get_mut("stats")
    {
        stats.remove("elapsed_ms");
        stats.remove("sts_calls");
        stats.remove("s3_requests");
        stats.remove("bytes_read");
    }
    outcome
}

async fn query(sql: &str) -> Value {
    let w = world().await;
    run(seed::seed_event(&w.endpoint, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn query_err(sql: &str) -> (String, String) {
    let w = world().await;
    match run(seed::seed_event(&w.endpoint, sql)).await {
        Ok(v) => panic!("{sql} should fail, got {v}"),
        Err(e) => e,
    }
}

fn rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("rows")
}

// ---------------------------------------------------------------------------------------
// (a) The seed flow, verbatim.

#[test]
fn seed_flow_returns_the_first_row() {
    block_on(async {
        let w = world().await;
        let v = query("SELECT * FROM @databend_test/test.parquet LIMIT 1").await;
        assert_eq!(v["row_count"], 1);
        assert_eq!(rows(&v), &vec![w.people[0].json()]);
        assert_eq!(v["truncated"], false);
        let names: Vec<&str> = v["schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "name", "age", "score", "active"]);
        assert_eq!(v["schema"][0]["type"], "BIGINT");
        assert_eq!(v["stats"]["files"], 1);
        // The first read (the file's end) and the pages before it, if it did not hold them;
        // no byte is read twice.
        assert!(
            (1..=2).contains(&v["stats"]["s3_requests"].as_u64().unwrap()),
            "{}",
            v["stats"]
        );
        let bytes = v["stats"]["bytes_read"].as_u64().unwrap();
        assert!(
            bytes > 0 && bytes <= w.test_parquet.len() as u64,
            "{}",
            v["stats"]
        );
    })
}

#[test]
fn credentials_are_cached_per_role_and_external_id() {
    block_on(async {
        let w = world().await;
        let first = query("SELECT count(*) FROM @databend_test/test.parquet").await;
        let second = query("SELECT count(*) FROM @databend_test/test.parquet").await;
        assert_eq!(rows(&first), &vec![json!([SEED_ROWS])]);
        assert_eq!(
            second["stats"]["sts_calls"], 0,
            "a warm process reuses credentials"
        );
        // Another ExternalId is another cache key: STS is called again.
        let mut event = seed::seed_event(
            &w.endpoint,
            "SELECT 1 AS one FROM @databend_test/test.parquet LIMIT 1",
        );
        event["connection"]["external_id"] = json!("another-external-id");
        let other = run(event).await.expect("other external id");
        assert_eq!(other["stats"]["sts_calls"], 1);
    })
}

/// moto with the seed's bucket, role and a `test.parquet` of `n` people.
/// moto, seeded once for the whole binary: tests that share it must not re-upload the
/// object another test is reading.
static MOTO: OnceCell<(String, Vec<Person>)> = OnceCell::const_new();

async fn seeded_moto() -> &'static (String, Vec<Person>) {
    MOTO.get_or_init(|| async {
        let endpoint = moto::moto().endpoint().to_string();
        let people = fixtures::people(5);
        let body =
            fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 5);
        seed::seed(&endpoint, body).await.expect("seed moto");
        (endpoint, people)
    })
    .await
}

#[test]
fn moto_records_the_external_id_and_session_name_sent() {
    block_on(async {
        let (endpoint, people) = seeded_moto().await;
        let mut event = seed::seed_event(
            endpoint,
            "SELECT * FROM @databend_test/test.parquet LIMIT 1",
        );
        event["connection"]["external_id"] = json!("moto-external-id-1");
        event["connection"]["role_session_name"] = json!("xstage-moto-check");
        let v = run_native(event).await.expect("query through moto");
        assert_eq!(rows(&v), &vec![people[0].json()]);
        let calls = moto::assume_role_calls(endpoint).expect("moto data");
        let ours: Vec<_> = calls
            .iter()
            .filter(|c| c.role_session_name == "xstage-moto-check")
            .collect();
        assert_eq!(ours.len(), 1, "{calls:?}");
        assert_eq!(ours[0].external_id.as_deref(), Some("moto-external-id-1"));
        assert_eq!(ours[0].role_arn, seed::role_arn());

        // The default session name is the stable audit identifier, and every session carries
        // the stage's read-only session policy.
        let mut event =
            seed::seed_event(endpoint, "SELECT count(*) FROM @databend_test/test.parquet");
        event["connection"]["external_id"] = json!("moto-external-id-2");
        run_native(event).await.expect("default session name");
        let calls = moto::assume_role_calls(endpoint).expect("moto data");
        let default: Vec<_> = calls
            .iter()
            .filter(|c| c.external_id.as_deref() == Some("moto-external-id-2"))
            .collect();
        assert_eq!(default.len(), 1, "{calls:?}");
        assert_eq!(
            default[0].role_session_name,
            format!("xstage.{}.{}", seed::CONNECTION, seed::STAGE)
        );
        let stage = xstage_core::stage::StageUrl::new(seed::BUCKET, seed::PREFIX).unwrap();
        let sent: Value =
            serde_json::from_str(default[0].policy.as_deref().expect("a session policy")).unwrap();
        assert_eq!(
            sent,
            xstage_core::access::documents::permission_policy("aws", &stage, false)
        );
    })
}

#[test]
fn the_wasi_guest_sends_the_external_id_through_the_host() {
    block_on(async {
        let (endpoint, people) = seeded_moto().await;
        let mut event = seed::seed_event(
            endpoint,
            "SELECT * FROM @databend_test/test.parquet LIMIT 1",
        );
        event["connection"]["external_id"] = json!("moto-external-id-wasm");
        event["connection"]["role_session_name"] = json!("xstage-moto-wasm");
        let v = run_wasm(&event).await.expect("query through moto, in WASI");
        assert_eq!(rows(&v), &vec![people[0].json()]);
        let calls = moto::assume_role_calls(endpoint).expect("moto data");
        let ours: Vec<_> = calls
            .iter()
            .filter(|c| c.role_session_name == "xstage-moto-wasm")
            .collect();
        assert_eq!(ours.len(), 1, "{calls:?}");
        assert_eq!(
            ours[0].external_id.as_deref(),
            Some("moto-external-id-wasm")
        );
    })
}

#[test]
fn a_warm_wasi_environment_reuses_its_credentials() {
    block_on(async {
        let w = world().await;
        let mut config = wasm::stage_query_config();
        config.reserved_concurrency = Some(1);
        let f = wasm::host()
            .load(&wasm::stage_query_component(), config)
            .await
            .expect("load");
        let event = serde_json::to_vec(&seed::seed_event(
            &w.endpoint,
            "SELECT count(*) FROM @databend_test/test.parquet",
        ))
        .unwrap();
        let first = f.invoke(&event).await.expect("first");
        let second = f.invoke(&event).await.expect("second");
        let body = |i: &xstage_host::Invocation| -> Value {
            serde_json::from_slice(&i.body()).expect("json")
        };
        let (a, b) = (body(&first), body(&second));
        assert_eq!(a["rows"], json!([[SEED_ROWS]]), "{a}");
        assert_eq!(b["rows"], a["rows"]);
        assert_eq!(
            (
                a["stats"]["sts_calls"].as_u64(),
                b["stats"]["sts_calls"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(first.stats.environment, second.stats.environment);
        assert!(first.stats.init_duration.is_some() && second.stats.init_duration.is_none());
        // What the host sent is what the guest counted: S3 requests, plus STS once.
        let s3 = |v: &Value| v["stats"]["s3_requests"].as_u64().unwrap();
        assert_eq!(first.stats.http_requests, s3(&a) + 1);
        assert_eq!(second.stats.http_requests, s3(&b));
        assert!(first.stats.denied_requests.is_empty() && second.stats.denied_requests.is_empty());
    })
}

// ---------------------------------------------------------------------------------------
// (b) RisingWave's spelling.

#[test]
fn risingwave_style_event() {
    block_on(async {
        let w = world().await;
        let event = json!({
            "connection": {
                "s3.assume_role": seed::role_arn(),
                "external_id": seed::EXTERNAL_ID,
                "s3.region_name": seed::REGION,
                "s3.endpoint_url": w.endpoint,
                "s3.bucket_name": seed::BUCKET,
                "s3.path": seed::PREFIX
            },
            "query": "SELECT id, name FROM @s3/test.parquet WHERE id >= 1003 ORDER BY id LIMIT 2"
        });
        let v = run(event).await.expect("risingwave event");
        let expected: Vec<Value> = w
            .people
            .iter()
            .filter(|p| p.id >= 1003)
            .take(2)
            .map(|p| json!([p.id, p.name]))
            .collect();
        assert_eq!(rows(&v), &expected);
    })
}

// ---------------------------------------------------------------------------------------
// (c) Richer queries.

#[test]
fn list_shows_the_stage() {
    block_on(async {
        let w = world().await;
        let v = query("LIST @databend_test/sales/ PATTERN => '.*[.]parquet'").await;
        let names: Vec<&str> = rows(&v).iter().map(|r| r[0].as_str().unwrap()).collect();
        let expected: Vec<String> = (0..SALES_PARTS)
            .map(|i| format!("sales/2024/part-{i}.parquet"))
            .collect();
        assert_eq!(names, expected);
        let cols: Vec<&str> = v["schema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, ["name", "size", "md5", "last_modified", "creator"]);
        assert!(
            rows(&v)
                .iter()
                .all(|r| r[1].as_u64().unwrap() > 0 && r[2].is_string())
        );
        let all = query("LIST @databend_test").await;
        let names: Vec<&str> = rows(&all).iter().map(|r| r[0].as_str().unwrap()).collect();
        assert!(
            names.contains(&"test.parquet") && names.contains(&"sales/readme.txt"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.contains("outside")),
            "LIST must stay inside the stage"
        );
        let test = rows(&all).iter().find(|r| r[0] == "test.parquet").unwrap();
        assert_eq!(test[1], w.test_parquet.len() as u64);
    })
}

/// LIST's `md5` is the MD5 of the bytes for a single-part object, and NULL for a multipart
/// one, whose ETag is no MD5 (README).
#[test]
fn list_md5_is_the_bytes_md5_or_null() {
    block_on(async {
        let w = world().await;
        let single = Bytes::from(vec![7u8; 1000]);
        let big = Bytes::from(vec![1u8; 5 << 20]);
        let key = |name: &str| format!("{}md5/{name}", seed::PREFIX);
        w.admin
            .put(seed::BUCKET, &key("single.bin"), single.clone())
            .await
            .unwrap();
        w.admin
            .put_multipart(
                seed::BUCKET,
                &key("multi.bin"),
                vec![big, Bytes::from_static(b"end")],
            )
            .await
            .unwrap();
        let v = query("LIST @databend_test/md5/").await;
        let md5 = |name: &str| {
            rows(&v)
                .iter()
                .find(|r| r[0] == name)
                .unwrap_or_else(|| panic!("{name} in {v}"))[2]
                .clone()
        };
        use md5::Digest as _;
        let want: String = md5::Md5::digest(&single)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(md5("md5/single.bin"), json!(want));
        assert_eq!(md5("md5/multi.bin"), Value::Null);
    })
}

#[test]
fn infer_schema_describes_columns() {
    block_on(async {
        let v =
            query("SELECT * FROM INFER_SCHEMA(location => '@databend_test/test.parquet')").await;
        assert_eq!(
            rows(&v),
            &vec![
                json!(["id", "BIGINT", false, "test.parquet", 0]),
                json!(["name", "VARCHAR", false, "test.parquet", 1]),
                json!(["age", "INT", false, "test.parquet", 2]),
                json!(["score", "DOUBLE", false, "test.parquet", 3]),
                json!(["active", "BOOLEAN", false, "test.parquet", 4]),
            ]
        );
    })
}

#[test]
fn glob_over_part_files_with_group_by() {
    block_on(async {
        let w = world().await;
        let all: Vec<Sale> = w.sales.iter().flatten().cloned().collect();
        let sql = "SELECT region, sum(quantity) AS qty, count(*) AS n \
                   FROM @databend_test/sales/*/part-*.parquet WHERE price_cents >= 300 \
                   GROUP BY region ORDER BY region";
        let v = query(sql).await;
        assert_eq!(rows(&v), &fixtures::sales_by_region(&all, 300));
        assert_eq!(v["stats"]["files"], SALES_PARTS);
        // A directory ending in `/` plus PATTERN, and `**`, select the same files.
        let by_dir = query(
            "SELECT region, sum(quantity) AS qty, count(*) AS n FROM @databend_test/sales/ (PATTERN => '.*part-[0-9]+[.]parquet') \
             WHERE price_cents >= 300 GROUP BY region ORDER BY region",
        )
        .await;
        assert_eq!(rows(&by_dir), rows(&v));
        let by_star = query("SELECT count(*) FROM '@databend_test/sales/**/*.parquet'").await;
        assert_eq!(rows(&by_star), &vec![json!([SALES_PARTS * SALES_ROWS])]);
    })
}

#[test]
fn files_option_and_filename_column() {
    block_on(async {
        let w = world().await;
        let v = query(
            "SELECT METADATA$FILENAME AS f, count(*) AS n FROM @databend_test/sales/2024/ \
             (FILES => ('part-1.parquet', 'part-3.parquet')) GROUP BY f ORDER BY f",
        )
        .await;
        assert_eq!(
            rows(&v),
            &vec![
                json!(["sales/2024/part-1.parquet", w.sales[1].len()]),
                json!(["sales/2024/part-3.parquet", w.sales[3].len()]),
            ]
        );
    })
}

#[test]
fn offset_and_max_rows_truncate() {
    block_on(async {
        let w = world().await;
        let v =
            query("SELECT id FROM @databend_test/test.parquet ORDER BY id DESC LIMIT 3 OFFSET 2")
                .await;
        let expected: Vec<Value> = w
            .people
            .iter()
            .rev()
            .skip(2)
            .take(3)
            .map(|p| json!([p.id]))
            .collect();
        assert_eq!(rows(&v), &expected);
        let mut event = seed::seed_event(
            &w.endpoint,
            "SELECT id FROM @databend_test/test.parquet ORDER BY id",
        );
        event["options"] = json!({"max_rows": 7});
        let v = run(event).await.expect("max_rows");
        assert_eq!(v["row_count"], 7);
        assert_eq!(v["truncated"], true);
        assert_eq!(rows(&v)[6], json!([w.people[6].id]));
    })
}

#[test]
fn types_are_encoded_losslessly() {
    block_on(async {
        let w = world().await;
        let v = query("SELECT * FROM @databend_test/types.parquet").await;
        assert_eq!(rows(&v), &w.types_expected);
        let types = run::column_types(&v);
        assert_eq!(types[1], "DECIMAL(12, 4)");
        assert_eq!(types[2], "TIMESTAMP(6) WITH TIME ZONE");
    })
}

// ---------------------------------------------------------------------------------------
// (d) Every codec.

#[test]
fn every_codec_reads_the_same_rows() {
    block_on(async {
        let w = world().await;
        let sum: i64 = w.people.iter().map(|p| p.id).sum();
        let names: Vec<String> = w
            .people
            .iter()
            .filter(|p| p.active)
            .map(|p| p.name.clone())
            .collect();
        for (codec, _) in fixtures::codecs() {
            let v = query(&format!(
                "SELECT count(*), sum(id), max(score) FROM @databend_test/codecs/{codec}.parquet"
            ))
            .await;
            let max = w.people.iter().map(|p| p.score).fold(f64::MIN, f64::max);
            assert_eq!(rows(&v), &vec![json!([SEED_ROWS, sum, max])], "{codec}");
            let v = query(&format!(
                "SELECT name FROM @databend_test/codecs/{codec}.parquet WHERE active ORDER BY id"
            ))
            .await;
            let got: Vec<&str> = rows(&v).iter().map(|r| r[0].as_str().unwrap()).collect();
            assert_eq!(got, names, "{codec}");
        }
    })
}

// ---------------------------------------------------------------------------------------
// (e) Bad input: the right errorType, never a panic.

#[test]
fn missing_and_corrupt_objects() {
    block_on(async {
        let cases = [
            ("SELECT * FROM @databend_test/missing.parquet", "NotFound"),
            ("SELECT * FROM @databend_test/nope/*.parquet", "NotFound"),
            (
                "SELECT * FROM @databend_test/bad/not-parquet.parquet",
                "InvalidParquet",
            ),
            (
                "SELECT * FROM @databend_test/bad/truncated.parquet",
                "InvalidParquet",
            ),
            (
                "SELECT * FROM @databend_test/sales/readme.txt",
                "InvalidParquet",
            ),
        ];
        for (sql, kind) in cases {
            let (got, message) = query_err(sql).await;
            assert_eq!(got, kind, "{sql}: {message}");
            assert!(
                message.contains("s3://test-bucket-123/optional/prefix/")
                    || message.contains("@databend_test"),
                "{message}"
            );
        }
    })
}

#[test]
fn paths_cannot_escape_the_stage() {
    block_on(async {
        for sql in [
            "SELECT * FROM @databend_test/../secret/outside.parquet",
            "SELECT * FROM @databend_test/a/../../secret/outside.parquet",
            "SELECT * FROM '@databend_test/%2e%2e/secret/outside.parquet'",
            "SELECT * FROM '@databend_test//secret/outside.parquet'",
            "SELECT * FROM @databend_test/ (FILES => ('../secret/outside.parquet'))",
            "SELECT * FROM INFER_SCHEMA(location => '@databend_test/../secret/outside.parquet')",
            "LIST @databend_test/..",
        ] {
            let (kind, message) = query_err(sql).await;
            assert_eq!(kind, "InvalidQuery", "{sql}: {message}");
        }
    })
}

#[test]
fn query_errors_are_typed() {
    block_on(async {
        for (sql, kind) in [
            ("SELEC * FROM @databend_test/test.parquet", "InvalidQuery"),
            (
                "SELECT nope FROM @databend_test/test.parquet",
                "InvalidQuery",
            ),
            ("SELECT * FROM @other_stage/test.parquet", "InvalidQuery"),
            (
                "SELECT 'unterminated FROM @databend_test/test.parquet",
                "InvalidQuery",
            ),
            ("DROP TABLE x", "InvalidQuery"),
            ("CREATE TABLE t AS SELECT 1", "InvalidQuery"),
            // README: only queries run; DML and SET are refused too.
            ("INSERT INTO t VALUES (1)", "InvalidQuery"),
            ("SET datafusion.execution.batch_size = 1", "InvalidQuery"),
            (
                "SELECT * FROM @databend_test/test.parquet (FILE_FORMAT => 'orc')",
                "InvalidQuery",
            ),
            // Parquet read as the CSV the query says it is.
            (
                "SELECT * FROM @databend_test/test.parquet (FILE_FORMAT => 'csv')",
                "InvalidFormat",
            ),
        ] {
            let (got, message) = query_err(sql).await;
            assert_eq!(got, kind, "{sql}: {message}");
        }
    })
}

#[test]
fn missing_bucket_is_no_such_bucket() {
    block_on(async {
        let w = world().await;
        let mut event = seed::seed_event(&w.endpoint, "SELECT * FROM @databend_test/test.parquet");
        event["stage"]["url"] = json!("s3://no-such-bucket-xstage/x/");
        let (kind, message) = run(event).await.expect_err("no bucket");
        assert_eq!(kind, "NoSuchBucket", "{message}");
        assert!(message.contains("no-such-bucket-xstage"));
    })
}

#[test]
fn roles_outside_the_allowed_principals_are_refused_natively_and_in_wasi() {
    block_on(async {
        // A closed port: asking STS would be EndpointUnreachable instead.
        let mut event = seed::seed_event("http://127.0.0.1:9", "SELECT 1");
        event["connection"]["role_arn"] = json!("arn:aws:iam::111122223333:role/databend-test");
        let (kind, message) = run(event.clone()).await.expect_err("another account");
        assert_eq!(kind, "RoleNotAllowed", "{message}");
        assert!(message.contains(&seed::allowed_roles()), "{message}");
        event["connection"]["role_arn"] = json!(seed::role_arn());
        event["connection"]
            .as_object_mut()
            .unwrap()
            .remove("external_id");
        let (kind, _) = run(event).await.expect_err("no ExternalId");
        assert_eq!(kind, "ExternalIdRequired");
    })
}

#[test]
fn invalid_events_fail_before_any_network_call() {
    block_on(async {
        // A closed port: any network call would fail with EndpointUnreachable instead.
        let closed = "http://127.0.0.1:9";
        let base = || seed::seed_event(closed, "SELECT * FROM @databend_test/test.parquet");
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "bad arn",
                Box::new(|e| e["connection"]["role_arn"] = json!("arn:aws:iam::12:role/x")),
                "InvalidEvent",
            ),
            (
                "user arn",
                Box::new(|e| {
                    e["connection"]["role_arn"] = json!("arn:aws:iam::123456789012:user/x")
                }),
                "InvalidEvent",
            ),
            (
                "short external id",
                Box::new(|e| e["connection"]["external_id"] = json!("x")),
                "InvalidEvent",
            ),
            (
                "bad external id",
                Box::new(|e| e["connection"]["external_id"] = json!("has space")),
                "InvalidEvent",
            ),
            (
                "session name",
                Box::new(|e| e["connection"]["role_session_name"] = json!("a:b")),
                "InvalidEvent",
            ),
            (
                "short duration",
                Box::new(|e| e["connection"]["duration_seconds"] = json!(899)),
                "InvalidEvent",
            ),
            (
                "long duration",
                Box::new(|e| e["connection"]["duration_seconds"] = json!(43_201)),
                "InvalidEvent",
            ),
            (
                "bucket",
                Box::new(|e| e["stage"]["url"] = json!("s3://Bad_Bucket/x")),
                "InvalidEvent",
            ),
            (
                "scheme",
                Box::new(|e| e["stage"]["url"] = json!("gs://bucket/x")),
                "InvalidEvent",
            ),
            (
                "connection name",
                Box::new(|e| e["stage"]["connection_name"] = json!("other")),
                "InvalidEvent",
            ),
            (
                "unknown key",
                Box::new(|e| e["connection"]["aws_secret_access_key"] = json!("x")),
                "InvalidEvent",
            ),
            (
                "no query",
                Box::new(|e| {
                    e.as_object_mut().unwrap().remove("query");
                }),
                "InvalidEvent",
            ),
            (
                "escape",
                Box::new(|e| e["query"] = json!("SELECT * FROM @databend_test/../x.parquet")),
                "InvalidQuery",
            ),
            (
                "bad sql",
                Box::new(|e| e["query"] = json!("SELECT * FROM @databend_test/x (FILES => ")),
                "InvalidQuery",
            ),
        ];
        for (name, mutate, kind) in cases {
            let mut event = base();
            mutate(&mut event);
            let (got, message) = run(event).await.expect_err(name);
            assert_eq!(got, kind, "{name}: {message}");
        }
        let (got, _) = match xstage_core::handle_bytes(b"{not json").await {
            Ok(_) => panic!("not json"),
            Err(e) => (e.kind().as_str().to_string(), ()),
        };
        assert_eq!(got, "InvalidEvent");
    })
}
