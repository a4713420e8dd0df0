//! The `xstage-query` command against a real LocalStack: exit codes and output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use xstage_tests::{localstack, seed};

fn run_cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xstage-query"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", seed::PLATFORM_ACCOUNT)
        .env("AWS_SECRET_ACCESS_KEY", "platform-secret-key")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(seed::ALLOWED_ROLES_VAR, seed::allowed_roles())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xstage-query");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write event");
    child.wait_with_output().expect("xstage-query output")
}

#[test]
fn runs_an_event_file_and_reports_errors() {
    let endpoint = localstack::localstack().endpoint().to_string();
    let people = seed::seed_people(&endpoint, 3);

    let event = seed::seed_event(
        &endpoint,
        "SELECT id, name FROM @databend_test/test.parquet ORDER BY id DESC LIMIT 1",
    );
    let dir = std::env::temp_dir().join(format!("xstage-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).expect("event file");
    let out = run_cli(&[file.to_str().expect("utf-8 path")], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).expect("response JSON");
    assert_eq!(
        response["rows"],
        serde_json::json!([[people[2].id, people[2].name]])
    );

    // A function error: the Lambda-shaped body on stdout, exit status 1.
    let out = run_cli(&["-"], br#"{"connection": {}, "query": "SELECT 1", "stage": {"name": "s", "url": "s3://bucket-1/"}}"#);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).expect("error JSON");
    assert_eq!(error["errorType"], "InvalidEvent");
    assert!(
        error["errorMessage"].as_str().unwrap().contains("role_arn"),
        "{error}"
    );

    // Misuse of the command itself: exit status 2.
    assert_eq!(run_cli(&[], b"").status.code(), Some(2));
    assert_eq!(
        run_cli(&["/no/such/event.json"], b"").status.code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
