use super::query::response;
use super::*;
use crate::sql::statement::parse;

fn session(dir: &std::path::Path) -> Session {
    let mut s = Session::new(Store::new(dir.join("catalog.json")), || {
        Box::pin(async { Err(SqlError::Unreachable("no function in unit tests".into())) })
    });
    s.default_endpoint = Some("http://127.0.0.1:4566".into());
    s
}

fn run(s: &mut Session, sql: &str) -> Result<Output, SqlError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(s.execute(parse(sql).unwrap()))
}

const CONNECTION: &str = "CREATE CONNECTION databend_test STORAGE_TYPE='s3' \
    ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123'";
const STAGE: &str = "CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/' \
    CONNECTION=(CONNECTION_NAME='databend_test')";

#[test]
fn the_seed_statements_become_the_seed_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    assert_eq!(
        run(&mut s, CONNECTION).unwrap().status,
        "connection databend_test created"
    );
    assert_eq!(
        run(&mut s, STAGE).unwrap().status,
        "stage databend_test created"
    );
    let event = s
        .event("SELECT * FROM @databend_test/test.parquet LIMIT 1")
        .unwrap();
    assert_eq!(
        event,
        json!({
            "connection": {
                "name": "databend_test", "storage_type": "s3",
                "role_arn": "arn:aws:iam::987654321987:role/databend-test",
                "external_id": "my-external-id-123",
                "endpoint_url": "http://127.0.0.1:4566"
            },
            "stage": {
                "name": "databend_test",
                "url": "s3://test-bucket-123/optional/prefix/",
                "connection_name": "databend_test"
            },
            "query": "SELECT * FROM @databend_test/test.parquet LIMIT 1"
        })
    );
    Event::from_json(event).expect("the function accepts it");
}

/// A stage's FILE_FORMAT goes to the function as `stage.file_format`, which it accepts,
/// and DESC STAGE shows it with every option.
#[test]
fn a_stage_file_format_reaches_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    let csv = STAGE.replace("databend_test URL", "csv_stage URL")
        + " FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '|' SKIP_HEADER = 1)";
    run(&mut s, &csv).unwrap();
    let event = s.event("SELECT * FROM @csv_stage/a.csv").unwrap();
    assert_eq!(
        event["stage"]["file_format"],
        json!({"TYPE": "CSV", "FIELD_DELIMITER": "|", "SKIP_HEADER": "1"})
    );
    let parsed = Event::from_json(event).expect("the function accepts it");
    let format = parsed.stage.file_format.expect("a format");
    assert_eq!((format.field_delimiter, format.skip_header), (b'|', true));
    let desc = run(&mut s, "DESC STAGE csv_stage").unwrap();
    let shown = format!("{:?}", desc.table.expect("a table").rows);
    assert!(
        shown.contains(
            "TYPE = CSV FIELD_DELIMITER = '|' RECORD_DELIMITER = '\\\\n' SKIP_HEADER = 1"
        ),
        "{shown}"
    );
}

/// README: a syntax error is reported before the function is reached or loaded.
#[test]
fn a_syntax_error_is_reported_before_the_function_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    run(&mut s, STAGE).unwrap();
    let e = run(
        &mut s,
        "SELECT * FROM @databend_test/x.parquet WHERE LIMIT 1",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("InvalidQuery: syntax error: "), "{e}");
    assert!(e.contains("Line: 1, Column: 52"), "{e}");
    assert!(!e.contains("no function in unit tests"), "{e}");
    let e = run(&mut s, "SELECT * FROM @databend_test/../x.parquet")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("InvalidQuery: "), "{e}");
    // The function was never reached: a valid query still meets the unit tests' stub.
    let e = run(&mut s, "SELECT 1 FROM @databend_test/x.parquet")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no function in unit tests"), "{e}");
}

#[test]
fn a_function_that_cannot_be_reached_says_why_at_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    run(&mut s, STAGE).unwrap();
    let query = "SELECT count(*) FROM @databend_test/test.parquet";
    let first = run(&mut s, query).unwrap_err().to_string();
    assert!(first.contains("no function in unit tests"), "{first}");
    let second = run(&mut s, query).unwrap_err().to_string();
    assert!(second.contains("no function in unit tests"), "{second}");
    assert!(second.contains("first query"), "{second}");
}

#[test]
fn create_modes_drop_and_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    let err = run(&mut s, CONNECTION).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    let replaced = CONNECTION
        .replace("CREATE", "CREATE OR REPLACE")
        .replace("123'", "456'");
    assert_eq!(
        run(&mut s, &replaced).unwrap().status,
        "connection databend_test replaced"
    );
    let again = CONNECTION.replace(
        "CONNECTION databend_test",
        "CONNECTION IF NOT EXISTS databend_test",
    );
    assert!(run(&mut s, &again).unwrap().status.contains("unchanged"));
    assert_eq!(
        s.store().read().unwrap().connections["databend_test"]
            .external_id
            .as_deref(),
        Some("my-external-id-456")
    );
    run(&mut s, STAGE).unwrap();
    let err = run(&mut s, "DROP CONNECTION databend_test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("used by stage(s) databend_test"), "{err}");
    let shown = run(&mut s, "SHOW STAGES").unwrap().table.unwrap();
    assert_eq!(
        shown.rows[0][1],
        json!("s3://test-bucket-123/optional/prefix/")
    );
    let desc = run(&mut s, "DESC STAGE databend_test")
        .unwrap()
        .table
        .unwrap();
    assert_eq!(desc.rows[0][4], json!("my-external-id-456"));
    run(&mut s, "DROP STAGE databend_test").unwrap();
    run(&mut s, "DROP CONNECTION databend_test").unwrap();
    assert!(
        run(&mut s, "DROP STAGE IF EXISTS databend_test")
            .unwrap()
            .status
            .contains("nothing")
    );
    let err = run(&mut s, "DROP STAGE databend_test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(s.store().read().unwrap(), Catalog::default());
}

#[test]
fn bad_values_are_refused_at_create_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let err = run(
        &mut s,
        &CONNECTION.replace("arn:aws:iam::987654321987:role/", "arn:aws:s3:::"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not an IAM role ARN"), "{err}");
    let err = run(&mut s, STAGE).unwrap_err().to_string();
    assert!(
        err.contains("connection databend_test, which does not exist"),
        "{err}"
    );
    run(&mut s, CONNECTION).unwrap();
    let err = run(&mut s, &STAGE.replace("optional/prefix/", "../escape/"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".."), "{err}");
    assert!(s.store().read().unwrap().stages.is_empty());
}

#[test]
fn queries_must_name_one_known_stage() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    run(&mut s, STAGE).unwrap();
    let err = s.event("SELECT 1").unwrap_err().to_string();
    assert!(err.contains("reads no stage"), "{err}");
    let err = s
        .event("SELECT * FROM @nope/x.parquet")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stage nope does not exist") && err.contains("databend_test"),
        "{err}"
    );
    let err = s
        .event("SELECT * FROM @databend_test/a.parquet, @other/b.parquet")
        .unwrap_err()
        .to_string();
    assert!(err.contains("one query reads one stage"), "{err}");
    let list = s.event("LIST @databend_test").unwrap();
    assert_eq!(list["stage"]["name"], json!("databend_test"));
}

#[test]
fn responses_become_rows_and_a_status() {
    let body = br#"{"schema":[{"name":"n","type":"BIGINT","nullable":false}],"rows":[[3]],
        "row_count":1,"truncated":false,
        "stats":{"files":1,"s3_requests":2,"bytes_read":2048,"sts_calls":1,"elapsed_ms":12}}"#;
    let out = response(body).unwrap();
    assert_eq!(out.table.unwrap().rows, vec![vec![json!(3)]]);
    assert_eq!(
        out.status,
        "1 row read in 0.012 sec. Processed 1 file, 2.00 KiB in 2 S3 requests"
    );
}

/// A COPY INTO from one stage into another of the same connection: the stage it reads is
/// the event's `stage`, the target goes under `stages`; through another connection, refused.
#[test]
fn a_copy_into_another_stage_carries_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    run(&mut s, CONNECTION).unwrap();
    run(
        &mut s,
        &(STAGE.replace("databend_test URL", "raw URL") + " FILE_FORMAT = (TYPE = CSV)"),
    )
    .unwrap();
    run(
        &mut s,
        &STAGE.replace(
            "databend_test URL='s3://test-bucket-123/optional/prefix/'",
            "cur URL='s3://other-bucket/cur/'",
        ),
    )
    .unwrap();
    let event = s
        .event("COPY INTO @cur/out/ FROM @raw/in/ FILE_FORMAT = (TYPE = PARQUET)")
        .unwrap();
    assert_eq!(event["stage"]["name"], json!("raw"));
    assert_eq!(event["stage"]["file_format"]["TYPE"], json!("CSV"));
    assert_eq!(
        event["stages"],
        json!([{"name": "cur", "url": "s3://other-bucket/cur/", "connection_name": "databend_test"}])
    );
    let parsed = Event::from_json(event).expect("the function accepts it");
    assert_eq!(parsed.stages[0].url.bucket(), "other-bucket");

    run(
        &mut s,
        "CREATE CONNECTION other STORAGE_TYPE='s3' ROLE_ARN='arn:aws:iam::987654321987:role/other'",
    )
    .unwrap();
    run(
        &mut s,
        "CREATE STAGE elsewhere URL='s3://bucket-3/' CONNECTION=(CONNECTION_NAME='other')",
    )
    .unwrap();
    let err = s
        .event("COPY INTO @elsewhere FROM @raw/in/")
        .unwrap_err()
        .to_string();
    assert!(err.contains("a statement uses one connection"), "{err}");
}
