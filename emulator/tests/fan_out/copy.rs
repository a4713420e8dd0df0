//! `COPY INTO` spread over workers: each worker writes its own share's files, the
//! coordinator commits the manifest. What was written must read back as what one
//! invocation writes; a killed writer and a speculative duplicate must leave exactly one
//! copy of every file, no multipart upload open, and a manifest that lists exactly what
//! exists. Every expectation comes from LocalStack's listing or the source query.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Only, Service};
use xstage_tests::invoke::{fan_out_write_template, serve};
use xstage_tests::query_cli;
use xstage_tests::seed::{self, Admin};

use super::{Server, TABLE, WORLD, XSTAGE, call, event, event_at, fanned, single, xstage_query};

/// `xstage serve` with writes allowed and `timeout_s`.
fn writer(timeout_s: u32) -> Server {
    let world = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = fan_out_write_template(dir.path(), timeout_s, None).expect("the template");
    let (process, url) =
        serve(XSTAGE, "xstage-fan-out-copy", &template, &world.endpoint).expect("start serve");
    Server {
        url,
        _process: process,
        _dir: dir,
    }
}

fn admin() -> Admin {
    xstage_tests::runtime().block_on(Admin::new(
        &WORLD.endpoint,
        seed::CUSTOMER_ACCOUNT,
        seed::REGION,
    ))
}

/// The keys of the multipart uploads open under `dir`.
fn open_uploads(dir: &str) -> Vec<String> {
    let prefix = format!("{}{dir}", seed::PREFIX);
    xstage_tests::runtime()
        .block_on(admin().open_uploads(seed::BUCKET, &prefix))
        .expect("list uploads")
}

/// The statement's manifest, checked against the listing: it lists exactly the data files
/// under `dir`, with their sizes and ETags. Returns its files (name → row count).
fn committed(dir: &str, answer: &Value) -> BTreeMap<String, u64> {
    let query_id = answer["stats"]["query_id"].as_str().expect("a query id");
    let (manifest, _) = xstage_tests::runtime()
        .block_on(admin().committed(dir, query_id))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        open_uploads(dir).is_empty(),
        "uploads left: {:?}",
        open_uploads(dir)
    );
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["row_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The `<part>` of a file name `data_<query id>_<part>_<seq>.<ext>`.
fn part_of(name: &str) -> String {
    let file = name.rsplit('/').next().unwrap();
    let fields: Vec<&str> = file.split('_').collect();
    fields[fields.len() - 2].to_string()
}

/// Integer fingerprints of a set of lineitem rows: a row counted twice or lost changes them.
const FINGERPRINT: &str = "count(*) AS n, sum(l_orderkey) AS keys, sum(l_linenumber) AS lines, \
                           count(DISTINCT l_comment) AS comments";

fn fingerprint(server: &Server, from: &str, file_format: Option<Value>) -> Value {
    let mut e = event(&format!("SELECT {FINGERPRINT} FROM {from}"), single());
    if let Some(f) = file_format {
        e["stage"]["file_format"] = f;
    }
    call(&server.url, &e)["rows"].clone()
}

/// Fanned out into another stage of the connection: the workers read the event's stage and
/// write the target's, whose manifest lists exactly what they wrote.
#[test]
fn a_fanned_out_copy_writes_another_stage() {
    let server = writer(120);
    let source = format!("SELECT l_orderkey, l_linenumber, l_comment FROM {TABLE}");
    let expected = fingerprint(&server, &format!("({source})"), None);
    // `curated` lies under the seed stage, so the seed stage reads back what it holds.
    let mut e = event(
        &format!("COPY INTO @curated/many/ FROM ({source})"),
        fanned(),
    );
    e["stages"] = json!([{
        "name": "curated",
        "url": format!("s3://{}/{}copy-curated/", seed::BUCKET, seed::PREFIX),
        "connection_name": seed::CONNECTION,
    }]);
    let many = call(&server.url, &e);
    assert_eq!(many["stats"]["path"], json!("fan_out"), "{many}");
    assert!(many["stats"]["workers"].as_u64().unwrap() >= 2, "{many}");
    // The manifest, in the target, lists exactly what is there (names relative to it).
    let dir = "copy-curated/many/";
    let query_id = many["stats"]["query_id"].as_str().unwrap();
    let manifest_key = format!("{dir}_xstage_manifest_{query_id}.json");
    let admin = admin();
    let (mut listed, manifest) = xstage_tests::runtime().block_on(async {
        let listed = admin.list_stage(dir).await.expect("list");
        let manifest = admin.get_stage(&manifest_key).await.expect("the manifest");
        (listed, manifest)
    });
    assert!(listed.remove(&manifest_key).is_some());
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let named: BTreeMap<String, u64> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = format!("copy-curated/{}", f["name"].as_str().unwrap());
            (name, f["size"].as_u64().unwrap())
        })
        .collect();
    let sizes: BTreeMap<String, u64> = listed.into_iter().map(|(k, (s, _))| (k, s)).collect();
    assert_eq!(named, sizes);
    assert!(open_uploads(dir).is_empty(), "{:?}", open_uploads(dir));
    let parts: std::collections::BTreeSet<String> = named.keys().map(|n| part_of(n)).collect();
    assert!(parts.len() >= 2, "each worker its part: {named:?}");
    assert_eq!(
        fingerprint(&server, "@databend_test/copy-curated/many/", None),
        expected
    );
}

/// A CSV stage converted to Parquet by workers, each writing whole files of the source:
/// the rows it holds, counted once.
#[test]
fn a_fanned_out_copy_converts_a_csv_stage() {
    let server = writer(120);
    let source = format!("SELECT l_orderkey, l_linenumber, l_comment FROM {TABLE}");
    let expected = fingerprint(&server, &format!("({source})"), None);
    // The CSV stage, written by one invocation: several gzip files with a header.
    let made = call(
        &server.url,
        &event(
            &format!(
                "COPY INTO @databend_test/copy/csv-src/ FROM ({source}) FILE_FORMAT = (TYPE = CSV \
                 COMPRESSION = GZIP OUTPUT_HEADER = TRUE) MAX_FILE_SIZE = 1000000"
            ),
            single(),
        ),
    );
    let sources = committed("copy/csv-src/", &made);
    assert!(sources.len() >= 3, "{sources:?}");
    let mut e = event(
        "COPY INTO @databend_test/copy/csv-many/ FROM @databend_test/copy/csv-src/ \
         FILE_FORMAT = (TYPE = PARQUET)",
        fanned(),
    );
    e["stage"]["file_format"] = json!({"type": "csv", "skip_header": 1});
    let many = call(&server.url, &e);
    assert_eq!(many["stats"]["path"], json!("fan_out"), "{many}");
    assert!(many["stats"]["workers"].as_u64().unwrap() >= 2, "{many}");
    assert_eq!(many["rows"][0][0], expected[0][0], "{many}");
    let files = committed("copy/csv-many/", &many);
    let parts: std::collections::BTreeSet<String> = files.keys().map(|n| part_of(n)).collect();
    assert!(parts.len() >= 2, "each worker its part: {files:?}");
    assert!(files.keys().all(|n| n.ends_with(".parquet")), "{files:?}");
    assert_eq!(
        fingerprint(&server, "@databend_test/copy/csv-many/", None),
        expected
    );
}

#[test]
fn a_fanned_out_copy_writes_the_rows_one_invocation_writes() {
    let server = writer(120);
    let source = format!(
        "SELECT l_orderkey, l_linenumber, l_quantity, l_shipdate, l_comment FROM {TABLE} \
         WHERE l_discount >= 0.05"
    );
    let expected = fingerprint(&server, &format!("({source})"), None);
    let csv = json!({"type": "csv", "skip_header": 1});
    let cases = [
        ("parquet", "FILE_FORMAT = (TYPE = PARQUET)", None),
        (
            "csv-partitioned",
            "PARTITION BY ('line=' || CAST(l_linenumber AS VARCHAR)) \
             FILE_FORMAT = (TYPE = CSV COMPRESSION = GZIP OUTPUT_HEADER = TRUE)",
            Some(csv),
        ),
    ];
    for (case, options, read_format) in cases {
        let copy = |dir: &str| format!("COPY INTO @databend_test/{dir} FROM ({source}) {options}");
        let one_dir = format!("copy/{case}/one/");
        let many_dir = format!("copy/{case}/many/");
        let one = call(&server.url, &event(&copy(&one_dir), single()));
        let many = call(&server.url, &event(&copy(&many_dir), fanned()));
        let stats = &many["stats"];
        assert_eq!(stats["path"], json!("fan_out"), "{case}: {stats}");
        assert!(stats["workers"].as_u64().unwrap() >= 2, "{case}: {stats}");
        assert_ne!(one["stats"]["path"], json!("fan_out"), "{case}");
        // Databend's answer: the same rows unloaded; the bytes differ with the files.
        assert_eq!(many["rows"][0][0], one["rows"][0][0], "{case}: {many}");
        assert_eq!(many["rows"][0][0], expected[0][0], "{case}");

        let one_files = committed(&one_dir, &one);
        let many_files = committed(&many_dir, &many);
        let parts = |files: &BTreeMap<String, u64>| {
            files
                .keys()
                .map(|n| part_of(n))
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(parts(&one_files).len(), 1, "{case}: {one_files:?}");
        assert!(
            parts(&many_files).len() >= 2,
            "{case}: each worker its part: {many_files:?}"
        );
        let rows = |files: &BTreeMap<String, u64>| files.values().sum::<u64>();
        assert_eq!(rows(&many_files), rows(&one_files), "{case}");
        if case.contains("partitioned") {
            // The same partition directories.
            let dirs = |files: &BTreeMap<String, u64>, root: &str| {
                files
                    .keys()
                    .map(|n| {
                        n.strip_prefix(root)
                            .unwrap()
                            .split('/')
                            .next()
                            .unwrap()
                            .to_string()
                    })
                    .collect::<std::collections::BTreeSet<_>>()
            };
            assert_eq!(
                dirs(&many_files, &many_dir),
                dirs(&one_files, &one_dir),
                "{case}"
            );
        }
        // What was written reads back as the source, rows counted once.
        let back = |dir: &str| {
            fingerprint(
                &server,
                &format!("@databend_test/{dir}"),
                read_format.clone(),
            )
        };
        if !case.contains("partitioned") {
            assert_eq!(back(&many_dir), expected, "{case}");
        } else {
            // The partition column is not in the files: count and keys only.
            let back = back(&many_dir);
            assert_eq!(back[0][0], expected[0][0], "{case}");
        }
        assert_eq!(back(&many_dir), back(&one_dir), "{case}");
    }
}

/// lineitem as CSV from four workers: about 10 MB each, so each file is a multipart upload
/// (8 MiB parts).
fn four_writers(dir: &str) -> String {
    format!(
        "COPY INTO @databend_test/{dir} FROM (SELECT * FROM {TABLE}) \
         FILE_FORMAT = (TYPE = CSV OUTPUT_HEADER = TRUE)"
    )
}

/// How the stage reads what [`four_writers`] wrote.
static CSV: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"type": "csv", "skip_header": 1}));

#[test]
fn natively_a_writer_killed_mid_upload_is_run_again_and_leaves_nothing_behind() {
    // Workers die at 15 s; the native coordinator outlives them.
    let server = writer(15);
    let proxy = FaultProxy::start(&WORLD.endpoint).expect("proxy");
    let mut env = seed::platform_env();
    env.push(("XSTAGE_FAN_OUT_FUNCTION", "StageQuery".into()));
    env.push(("AWS_ENDPOINT_URL_LAMBDA", server.url.clone()));
    env.push(("XSTAGE_ALLOW_WRITES", "true".into()));
    let dir = "copy/killed/";
    // One writer's second part is held past its function's timeout: it dies with its
    // upload open and its file not created.
    let stall = Duration::from_secs(40);
    proxy.inject_only(
        Service::S3,
        Fault::Stall(stall),
        Only::path(dir).method("PUT").query("partNumber=2").times(1),
    );
    let started = Instant::now();
    let options = json!({"max_workers": 4, "bytes_per_worker": 65536, "speculate_after": 0});
    let run = query_cli::run(
        &xstage_query(),
        &env,
        &event_at(proxy.url(), &four_writers(dir), options),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(proxy.faulted(), 1);
    let stats = &run.body["stats"];
    assert!(
        stats["tasks_retried"].as_u64().unwrap_or(0) >= 1,
        "{}",
        run.body
    );
    assert_eq!(stats["workers"], json!(4), "{stats}");
    // The held part reaches S3 after the coordinator aborted its upload: wait it out.
    std::thread::sleep(stall.saturating_sub(started.elapsed()) + Duration::from_secs(3));
    let files = committed(dir, &run.body);
    assert_eq!(
        files.values().sum::<u64>(),
        run.body["rows"][0][0].as_u64().unwrap()
    );
    // What was written reads back as the source, rows counted once.
    let fingerprint = |from: &str, file_format: Option<Value>| {
        let mut e = event(&format!("SELECT {FINGERPRINT} FROM {from}"), single());
        if let Some(f) = file_format {
            e["stage"]["file_format"] = f;
        }
        let run = query_cli::run(&xstage_query(), &env, &e);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.body["rows"].clone()
    };
    assert_eq!(
        fingerprint(&format!("@databend_test/{dir}"), Some(CSV.clone())),
        fingerprint(TABLE, None)
    );
}

#[test]
fn a_speculative_writer_adopts_the_files_its_duplicate_wrote() {
    let server = writer(120);
    let proxy = FaultProxy::start(&WORLD.endpoint).expect("proxy");
    let dir = "copy/speculated/";
    // One writer's second part is held; the duplicate started meanwhile writes the share.
    // Released, the first finds every name taken by the same bytes and adopts them.
    let stall = Duration::from_secs(20);
    proxy.inject_only(
        Service::S3,
        Fault::Stall(stall),
        Only::path(dir).method("PUT").query("partNumber=2").times(1),
    );
    let started = Instant::now();
    let options = json!({"max_workers": 4, "bytes_per_worker": 65536, "speculate_after": 2.0});
    let answer = call(
        &server.url,
        &event_at(proxy.url(), &four_writers(dir), options),
    );
    let stats = &answer["stats"];
    assert!(stats["tasks_speculated"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        started.elapsed() < stall,
        "the duplicate answered first: {stats}"
    );
    // The held writer goes on after the answer: let it finish.
    std::thread::sleep(stall.saturating_sub(started.elapsed()) + Duration::from_secs(10));
    let files = committed(dir, &answer);
    assert_eq!(
        files.values().sum::<u64>(),
        answer["rows"][0][0].as_u64().unwrap()
    );
    assert_eq!(
        fingerprint(&server, &format!("@databend_test/{dir}"), Some(CSV.clone())),
        fingerprint(&server, TABLE, None)
    );
}
