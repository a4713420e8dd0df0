//! README's claims about `xstage serve` and `xstage sql`, each end to end: a test here fails
//! when the sentence it names stops being true.

use super::*;

/// "`xstage sql` … LIST and INFER_SCHEMA": both, through the emulator, with the seed's
/// connection and stage.
#[test]
fn xstage_sql_runs_list_and_infer_schema() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    let run = |statement: &str| {
        let statements: Vec<&str> = SEED_SQL
            .split_inclusive(';')
            .map(str::trim)
            .filter(|s| s.starts_with("CREATE"))
            .chain([statement])
            .collect();
        std::fs::remove_file(&catalog).ok();
        let mut args = sql_args(server, &catalog);
        for s in &statements {
            args.extend(["-e", s]);
        }
        let out = xstage(&args, &[("AWS_ENDPOINT_URL", &WORLD.endpoint)]);
        assert!(out.status.success(), "{statement}: {}", stderr(&out));
        let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON rows on stdout");
        rows
    };
    let listed = run("LIST @databend_test PATTERN => 'test[.]parquet$';");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "test.parquet", "{listed}");
    assert!(listed[0]["size"].as_u64().unwrap() > 0, "{listed}");

    let schema = run("SELECT * FROM INFER_SCHEMA(location => '@databend_test/test.parquet');");
    let columns: Vec<(&str, &str)> = schema
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "BIGINT"),
            ("name", "VARCHAR"),
            ("age", "INT"),
            ("score", "DOUBLE"),
            ("active", "BOOLEAN")
        ]
    );
}

/// "`Event` → 202 (run in the background; retried while throttled)": an `Event` invocation
/// sent while a function's reserved concurrency is taken runs after the calls holding it.
#[test]
fn an_event_invocation_waits_out_the_throttle() {
    const SCRIPT: &str = r#"
import json, sys, threading, time
import boto3
from botocore.config import Config
url = sys.argv[1]
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
def hold():
    client.invoke(FunctionName="Limited", Payload=json.dumps({"sleep_ms": 2500}))
holders = [threading.Thread(target=hold) for _ in range(2)]
[t.start() for t in holders]
time.sleep(0.8)
throttled = None
try:
    client.invoke(FunctionName="Limited", Payload=json.dumps({"echo": "sync"}))
except client.exceptions.TooManyRequestsException:
    throttled = "TooManyRequestsException"
event = client.invoke(FunctionName="Limited", InvocationType="Event",
                      Payload=json.dumps({"echo": "queued"}))
[t.join() for t in holders]
print(json.dumps({"throttled": throttled, "status": event["StatusCode"],
                  "id": event["ResponseMetadata"]["RequestId"]}))
"#;
    // A server of its own: the 429 test shares `Limited` on the common one.
    let server = start("xstage-serve-event");
    let out = clients::python_script(SCRIPT, &[&server.url]).unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["throttled"], "TooManyRequestsException",
        "both slots were taken: {r}"
    );
    assert_eq!(r["status"], 202, "{r}");
    let id = r["id"].as_str().unwrap();
    // Its log is printed when it ends: after the two calls that held the slots.
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read_to_string(server.process.log_file()).unwrap_or_default();
        if log.contains(&format!("END RequestId: {id}")) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    server.process.stop();
    let event_start = log
        .find(&format!("START RequestId: {id}"))
        .unwrap_or_else(|| panic!("the Event invocation never ran:\n{log}"));
    let holders_done = log.match_indices("END RequestId:").count();
    assert!(holders_done >= 3, "{log}");
    let before: Vec<&str> = log[..event_start]
        .match_indices("END RequestId:")
        .map(|(_, m)| m)
        .collect();
    assert!(
        before.len() >= 2,
        "the Event ran before the calls holding the slots ended:\n{log}"
    );
}

/// "`xstage sql`: `COPY INTO` then `LIST` then `SELECT` over what it wrote, as a user would
/// type them", with the repository's own template and its `AllowWrites` parameter; then a
/// `COPY INTO` another stage of the connection, read back from there.
#[test]
fn xstage_sql_copies_into_the_stage_then_lists_and_reads_it() {
    let _ = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("unload.sql");
    let creates: Vec<&str> = SEED_SQL
        .split_inclusive(';')
        .map(str::trim)
        .filter(|s| s.starts_with("CREATE"))
        .collect();
    std::fs::write(
        &script,
        format!(
            "{}\nCOPY INTO @databend_test/sql-copy/ FROM @databend_test/test.parquet;\n\
             LIST @databend_test/sql-copy/;\nSELECT count(*) AS n, sum(id) AS ids FROM @databend_test/sql-copy/;\n\
             CREATE STAGE curated URL='s3://{}/sql-curated/' CONNECTION=(CONNECTION_NAME='databend_test');\n\
             COPY INTO @curated/p/ FROM @databend_test/sql-copy/;\n\
             SELECT count(*) AS n2, sum(id) AS ids2 FROM @curated/p/;\n",
            creates.join("\n"),
            seed::BUCKET
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.json");
    let component = format!("StageQuery={}", wasm::stage_query_component().display());
    let allowed = format!("AllowedRoleArns={}", seed::allowed_roles());
    let args = |allow: &str| {
        vec![
            "sql".to_string(),
            "--local".into(),
            "--template".into(),
            repo().join("template.yaml").display().to_string(),
            "--component".into(),
            component.clone(),
            "--parameter-overrides".into(),
            allowed.clone(),
            "--parameter-overrides".into(),
            format!("AllowWrites={allow}"),
            "--catalog".into(),
            catalog.display().to_string(),
            "--format".into(),
            "csv".into(),
            script.display().to_string(),
        ]
    };
    let env = [
        ("AWS_ENDPOINT_URL", WORLD.endpoint.as_str()),
        ("AWS_REGION", seed::REGION),
    ];
    let refused = xstage(
        &args("false").iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    );
    fails_with(&refused, 1, "WritesNotAllowed");
    std::fs::remove_file(&catalog).ok();
    let out = xstage(
        &args("true").iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        stdout.contains(&format!(
            "rows_unloaded,input_bytes,output_bytes\r\n{ROWS},"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("\r\nsql-copy/data_"), "{stdout}");
    assert!(
        stdout.contains("\r\nsql-copy/_xstage_manifest_"),
        "{stdout}"
    );
    let ids: i64 = WORLD.people.iter().map(|p| p.id).sum();
    assert!(
        stdout.contains(&format!("n,ids\r\n{ROWS},{ids}\r\n")),
        "{stdout}"
    );
    // Into another stage of the connection, and read back from there.
    assert!(
        stdout.contains(&format!("n2,ids2\r\n{ROWS},{ids}\r\n")),
        "{stdout}"
    );
}

/// "`EXPLAIN <query>` answers with the dry run's figures; `SET max_bytes_scanned` bounds every
/// later query of the session": both through `xstage sql`, with the seed's stage.
#[test]
fn xstage_sql_explains_a_query_and_bounds_the_next() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    let run = |statements: &[&str]| {
        std::fs::remove_file(&catalog).ok();
        let mut args = sql_args(server, &catalog);
        let creates = SEED_SQL
            .split_inclusive(';')
            .map(str::trim)
            .filter(|s| s.starts_with("CREATE"));
        for s in creates.chain(statements.iter().copied()) {
            args.extend(["-e", s]);
        }
        xstage(&args, &[("AWS_ENDPOINT_URL", &WORLD.endpoint)])
    };
    // (A bare count(*) is answered from the footers: its dry run reads 0 bytes.)
    let query = "SELECT sum(age) AS n FROM @databend_test/test.parquet;";
    let out = run(&[&format!("EXPLAIN {query}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON rows on stdout");
    let figures = &rows[0];
    assert_eq!(figures["files"], json!(1), "{rows}");
    assert_eq!(figures["path"], json!("single"), "{rows}");
    let planned = figures["bytes_scanned"].as_u64().expect("bytes_scanned");
    assert!(planned > 0, "{rows}");

    let at_most = |n: u64| format!("SET max_bytes_scanned = {n};");
    let out = run(&[&at_most(planned), query]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[&at_most(planned - 1), query]);
    fails_with(&out, 1, "ScanLimitExceeded");
    assert!(
        stderr(&out).contains(&format!("would read {planned} bytes")),
        "{}",
        stderr(&out)
    );
}
