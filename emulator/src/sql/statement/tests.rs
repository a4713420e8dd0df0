use super::*;

#[test]
fn the_seed_statements_parse() {
    let s = parse(
        "CREATE CONNECTION databend_test STORAGE_TYPE='s3' \
         ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123'",
    )
    .unwrap();
    let Statement::CreateConnection {
        name,
        mode,
        options,
    } = s
    else {
        panic!("{s:?}")
    };
    assert_eq!((name.as_str(), mode), ("databend_test", CreateMode::Create));
    assert_eq!(
        options["ROLE_ARN"],
        "arn:aws:iam::987654321987:role/databend-test"
    );
    assert_eq!(options["EXTERNAL_ID"], "my-external-id-123");
    assert_eq!(
        parse("CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/' CONNECTION=(CONNECTION_NAME='databend_test')")
            .unwrap(),
        Statement::CreateStage {
            name: "databend_test".into(),
            mode: CreateMode::Create,
            url: "s3://test-bucket-123/optional/prefix/".into(),
            connection: StageConnection::Named("databend_test".into()),
            file_format: None,
            comment: None,
        }
    );
    assert_eq!(
        parse("SELECT * FROM @databend_test/test.parquet LIMIT 1").unwrap(),
        Statement::Query("SELECT * FROM @databend_test/test.parquet LIMIT 1".into())
    );
}

/// Databend's `FILE_FORMAT = (...)`: bare, quoted and numeric values, `\t` in a string,
/// and the function's own checks at parse time.
#[test]
fn stage_file_formats() {
    let s = parse(
        "CREATE STAGE s URL='s3://b/p/' CONNECTION=(CONNECTION_NAME='c') \
         FILE_FORMAT = (TYPE = TSV, field_delimiter = '\\t' SKIP_HEADER = 1 NULL_DISPLAY = '\\\\N' COMPRESSION = 'gzip')",
    )
    .unwrap();
    let Statement::CreateStage {
        file_format: Some(f),
        ..
    } = s
    else {
        panic!("{s:?}")
    };
    assert_eq!(f["TYPE"], "TSV");
    assert_eq!(f["FIELD_DELIMITER"], "\t");
    assert_eq!(f["SKIP_HEADER"], "1");
    assert_eq!(f["NULL_DISPLAY"], "\\N");
    let (_, why) = error(
        "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=ORC)",
    );
    assert!(
        why.contains("xstage reads CSV, TSV, NDJSON and PARQUET"),
        "{why}"
    );
    let (_, why) = error(
        "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=CSV SKIP_HEADER=3)",
    );
    assert!(why.contains("SKIP_HEADER"), "{why}");
    let (_, why) = error(
        "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=CSV",
    );
    assert!(why.contains("found the end"), "{why}");
}

#[test]
fn modes_names_and_other_statements() {
    let s = parse("create or replace stage \"My\" url = 's3://b/p/' connection = (role_arn = 'x') file_format = (type = parquet)").unwrap();
    let Statement::CreateStage {
        name,
        mode,
        connection,
        ..
    } = s
    else {
        panic!()
    };
    assert_eq!((name.as_str(), mode), ("My", CreateMode::OrReplace));
    assert!(matches!(connection, StageConnection::Inline(o) if o["ROLE_ARN"] == "x"));
    let s = parse("CREATE CONNECTION IF NOT EXISTS C STORAGE_TYPE = 'S3', ROLE_ARN = 'r'").unwrap();
    assert!(
        matches!(s, Statement::CreateConnection { ref name, mode: CreateMode::IfNotExists, .. } if name == "c")
    );
    assert_eq!(parse("show stages").unwrap(), Statement::ShowStages);
    assert_eq!(
        parse("DESCRIBE STAGE s").unwrap(),
        Statement::DescStage("s".into())
    );
    assert_eq!(
        parse("DROP CONNECTION IF EXISTS c").unwrap(),
        Statement::DropConnection {
            name: "c".into(),
            if_exists: true
        }
    );
    assert!(matches!(parse("LIST @s").unwrap(), Statement::Query(_)));
    assert_eq!(
        parse("-- a comment\n/* another */ SHOW STAGES").unwrap(),
        Statement::ShowStages
    );
}

fn error(text: &str) -> (String, String) {
    let e = parse(text).unwrap_err();
    (text[e.offset.min(text.len())..].to_string(), e.message)
}

#[test]
fn errors_say_where_and_why() {
    let (at, why) = error("CREATE CONNECTION c STORAGE_TYPE='s3' ROLE_ARN 'x'");
    assert_eq!(at, "'x'");
    assert!(why.contains("expected '=' after ROLE_ARN"), "{why}");
    let (at, why) = error("CREATE CONNECTION c STORAGE_TYPE='s3' ACCESS_KEY_ID='a' ROLE_ARN='r'");
    assert!(
        at.starts_with("ACCESS_KEY_ID") && why.contains("never keys"),
        "{why}"
    );
    let (_, why) = error("CREATE CONNECTION c STORAGE_TYPE='gcs' ROLE_ARN='r'");
    assert!(why.contains("'gcs' is not supported"), "{why}");
    let (_, why) = error("CREATE CONNECTION c ROLE_ARN='r'");
    assert!(why.contains("STORAGE_TYPE"), "{why}");
    let (at, why) =
        error("CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') COLOR='red'");
    assert!(
        at.starts_with("COLOR") && why.contains("unknown stage option"),
        "{why}"
    );
    let (_, why) = error("CREATE STAGE s URL='s3://b/'");
    assert!(why.contains("needs CONNECTION"), "{why}");
    let (_, why) = error("CREATE STAGE s URL='s3://b/");
    assert!(why.contains("no closing quote"), "{why}");
    let (_, why) = error("INSERT INTO t VALUES (1)");
    assert!(why.contains("INSERT is not supported"), "{why}");
    let (at, _) = error("SHOW STAGES extra");
    assert_eq!(at, "extra");
    let (_, why) =
        error("CREATE OR REPLACE CONNECTION IF NOT EXISTS c STORAGE_TYPE='s3' ROLE_ARN='r'");
    assert!(why.contains("cannot be used together"), "{why}");
}

#[test]
fn explain_and_the_scan_limit_setting_parse() {
    assert_eq!(
        parse("EXPLAIN SELECT count(*) FROM @s/").unwrap(),
        Statement::Explain("SELECT count(*) FROM @s/".into())
    );
    assert_eq!(
        parse("explain\n  SELECT 1 FROM @s/x.parquet").unwrap(),
        Statement::Explain("SELECT 1 FROM @s/x.parquet".into())
    );
    let e = parse("EXPLAIN DROP STAGE s").unwrap_err();
    assert!(e.message.contains("EXPLAIN takes a query"), "{}", e.message);
    assert_eq!(
        parse("SET max_bytes_scanned = 1_000_000").unwrap(),
        Statement::SetMaxBytesScanned(Some(1_000_000))
    );
    assert_eq!(
        parse("unset MAX_BYTES_SCANNED").unwrap(),
        Statement::SetMaxBytesScanned(None)
    );
    for bad in [
        "SET max_threads = 4",
        "SET max_bytes_scanned = lots",
        "SET max_bytes_scanned",
    ] {
        let e = parse(bad).unwrap_err();
        assert!(
            e.message.contains("max_bytes_scanned"),
            "{bad}: {}",
            e.message
        );
    }
}
