//! The native binary as a Lambda `bootstrap`, under cargo-lambda's Lambda Runtime API
//! emulator (`cargo lambda watch`, PyPI `cargo-lambda`), a real one written by no one here.
//!
//! `cargo lambda watch --only-lambda-apis` serves the Runtime API and the Invoke API without
//! building anything; the test starts the bootstrap this workspace built against it, with the
//! environment Lambda gives (`AWS_LAMBDA_RUNTIME_API`, the function's name, memory and
//! version, its credentials and configuration), and sends the seed event with
//! `cargo lambda invoke`. The answer must match the `xstage-query` command's on the same
//! event, and a function error must come back as Lambda's `{errorType, errorMessage}`.
//!
//! It also prints the bootstrap's Init: from `exec` to its first request for an event.
//! `XSTAGE_BOOTSTRAP=target/lambda/xstage-query/bootstrap` runs it on cargo-lambda's release
//! build instead of this build's binary.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use xstage_tests::lambda_watch::LambdaWatch;
use xstage_tests::process::log_tail;
use xstage_tests::{clients, localstack, query_cli, seed};

const ROWS: usize = 5;
/// The bootstrap under test: this build's `xstage-query`, or `XSTAGE_BOOTSTRAP` (for
/// instance cargo-lambda's release build, `target/lambda/xstage-query/bootstrap`).
fn bootstrap_path() -> String {
    std::env::var("XSTAGE_BOOTSTRAP")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_xstage-query").to_string())
}

fn invoke(port: u16, event: &Value, dir: &Path) -> Output {
    let file = dir.join("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    Command::new(clients::cargo_lambda())
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .args(["--output-format", "json", "--data-file"])
        .arg(&file)
        .output()
        .expect("cargo lambda invoke")
}

#[test]
fn the_bootstrap_answers_cargo_lambda_like_the_command() {
    let endpoint = localstack::localstack().endpoint().to_string();
    let people = seed::seed_people(&endpoint, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let watch = LambdaWatch::start(Path::new(&bootstrap_path())).unwrap();
    let (port, started, function) = (watch.port, watch.started, &watch.function);

    // An event that fails validation needs no network: its round trip bounds the Init.
    let invalid = invoke(port, &json!({"query": "SELECT 1"}), dir.path());
    let first = started.elapsed();
    assert!(
        !invalid.status.success(),
        "a function error must fail the invoke\n--- bootstrap log ---\n{}",
        log_tail(function.log_file(), 30)
    );
    let said = String::from_utf8_lossy(&invalid.stderr);
    assert!(said.contains("InvalidEvent"), "{said}");
    assert!(said.contains("`connection`"), "{said}");
    eprintln!(
        "bootstrap Init + first invocation ({}, validation error): {first:?}",
        bootstrap_path()
    );

    // The seed event: the same answer as the command gives.
    let event = seed::seed_event(
        &endpoint,
        "SELECT id, name FROM @databend_test/test.parquet ORDER BY id",
    );
    let out = invoke(port, &event, dir.path());
    assert!(
        out.status.success(),
        "{}\n--- bootstrap log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_tail(function.log_file(), 30)
    );
    let lambda: Value = serde_json::from_slice(&out.stdout).expect("the response JSON");
    let native = query_cli::run(
        Path::new(env!("CARGO_BIN_EXE_xstage-query")),
        &seed::platform_env(),
        &event,
    );
    assert_eq!(native.code, Some(0), "{native:?}");
    for field in ["schema", "rows", "row_count", "truncated"] {
        assert_eq!(lambda[field], native.body[field], "{field}: {lambda}");
    }
    let expected: Vec<Value> = people.iter().map(|p| json!([p.id, p.name])).collect();
    assert_eq!(lambda["rows"], json!(expected));

    // A streamed answer (cargo-lambda's InvokeWithResponseStream route): NDJSON rows as the
    // bootstrap writes them, and an error after the schema line as the stream's error.
    let agent = xstage_tests::invoke::agent(Duration::from_secs(120));
    let url =
        format!("http://127.0.0.1:{port}/2015-03-31/functions/_/response-streaming-invocations");
    let mut streamed_event = event.clone();
    streamed_event["options"] = json!({"format": "ndjson"});
    let streamed =
        xstage_tests::invoke::invoke_streaming(&agent, &url, streamed_event.to_string().as_bytes())
            .unwrap_or_else(|e| {
                panic!(
                    "{e:#}\n--- bootstrap log ---\n{}",
                    log_tail(function.log_file(), 30)
                )
            });
    let text = String::from_utf8(streamed.body.clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {text:?}")))
        .collect();
    assert_eq!(lines.len(), ROWS + 2, "{text}");
    assert_eq!(
        &lines[1..=ROWS],
        lambda["rows"].as_array().unwrap().as_slice()
    );
    assert_eq!(lines[ROWS + 1]["row_count"], ROWS);
    let mut failing = event.clone();
    failing["query"] = json!("SELECT 1 / (id - id) AS x FROM @databend_test/test.parquet");
    failing["options"] = json!({"format": "ndjson"});
    let failed =
        xstage_tests::invoke::invoke_streaming(&agent, &url, failing.to_string().as_bytes())
            .unwrap();
    // lambda_runtime 1.5 writes a mid-stream error into the body as text (its
    // "trailer": `Runtime.StreamError` and the base64 of the error) rather than as HTTP
    // trailers, so cargo-lambda's InvokeComplete carries no ErrorCode. The answer is still
    // not whole (no closing line), and the core's error type and message are in it.
    let body = String::from_utf8_lossy(&failed.body).into_owned();
    assert!(!body.contains("row_count"), "{body}");
    let marker = "Lambda-Runtime-Function-Error-Body: ";
    let encoded = body
        .split(marker)
        .nth(1)
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("no error in the stream: {body} {:?}", failed.complete));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert!(
        decoded.starts_with("InvalidQuery: ") && decoded.contains("Divide by zero"),
        "{decoded}"
    );

    // Lambda's JSON log format, from `tracing`.
    let log = std::fs::read_to_string(function.log_file()).unwrap();
    let json_lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        json_lines.iter().any(|l| l["level"].is_string()),
        "no JSON log lines:\n{log}"
    );
    assert!(
        !log.contains("platform-secret-key"),
        "a secret reached the log"
    );
    watch.stop();
}
