//! The failures no emulator produces on demand, provoked against LocalStack through a proxy
//! that answers with AWS's own error responses (`xstage_tests::fault_proxy`): throttling of
//! STS and S3, an expired token, a bucket in another region; and a bucket that does not
//! exist, from LocalStack itself. Each gets its own errorType and advice, and once the fault
//! is gone the next invocation succeeds.

use std::path::Path;
use std::sync::LazyLock;

use serde_json::{Value, json};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Service};
use xstage_tests::query_cli::{self, QueryRun};
use xstage_tests::{localstack, seed};

const ROWS: usize = 4;
const QUERY: &str = "SELECT count(*) FROM @databend_test/test.parquet";

/// LocalStack with the seed's data.
static ENDPOINT: LazyLock<String> = LazyLock::new(|| {
    let endpoint = localstack::localstack().endpoint().to_string();
    seed::seed_people(&endpoint, ROWS);
    endpoint
});

fn run_event(event: &Value) -> QueryRun {
    query_cli::run(
        Path::new(env!("CARGO_BIN_EXE_xstage-query")),
        &seed::platform_env(),
        event,
    )
}

fn run(endpoint: &str) -> QueryRun {
    run_event(&seed::seed_event(endpoint, QUERY))
}

#[track_caller]
fn assert_ok(run: &QueryRun) {
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.body["rows"], json!([[ROWS]]), "{}", run.body);
}

#[test]
fn throttling_is_retried_then_typed_and_retryable() {
    let proxy = FaultProxy::start(&ENDPOINT).unwrap();
    proxy.inject(
        Service::Sts,
        Fault::sts_error(400, "Throttling", "Rate exceeded"),
    );
    let throttled = run(proxy.url());
    throttled.assert_error("Throttled", &["retry with backoff"]);
    // The SDK's standard policy: three attempts, then the error.
    assert_eq!(proxy.requests(Service::Sts), 3);
    assert_eq!(proxy.requests(Service::S3), 0);

    proxy.clear();
    proxy.inject(
        Service::S3,
        Fault::s3_error(503, "SlowDown", "Please reduce your request rate.", &[]),
    );
    let slow = run(proxy.url());
    slow.assert_error(
        "Throttled",
        &["s3://test-bucket-123/optional/prefix/test.parquet"],
    );
    assert!(proxy.requests(Service::S3) >= 3, "SlowDown is retried");

    proxy.clear();
    assert_ok(&run(proxy.url()));
}

#[test]
fn an_expired_token_on_s3_says_so() {
    let proxy = FaultProxy::start(&ENDPOINT).unwrap();
    proxy.inject(
        Service::S3,
        Fault::s3_error(400, "ExpiredToken", "The provided token has expired.", &[]),
    );
    let expired = run(proxy.url());
    expired.assert_error(
        "ExpiredToken",
        &["token has expired", "re-assumes the role"],
    );
    assert_eq!(
        proxy.requests(Service::S3),
        1,
        "an expired token is not retried"
    );
    proxy.clear();
    assert_ok(&run(proxy.url()));
}

#[test]
fn a_bucket_in_another_region_names_its_region() {
    let proxy = FaultProxy::start(&ENDPOINT).unwrap();
    proxy.inject(Service::S3, Fault::s3_bucket_in("eu-west-1"));
    let moved = run(proxy.url());
    moved.assert_error("WrongRegion", &["test-bucket-123", "REGION='eu-west-1'"]);
    proxy.clear();
    assert_ok(&run(proxy.url()));
}

#[test]
fn a_missing_bucket_is_no_such_bucket() {
    let mut event: Value = seed::seed_event(&ENDPOINT, QUERY);
    event["stage"]["url"] = json!("s3://xstage-no-such-bucket/optional/prefix/");
    let missing = run_event(&event);
    missing.assert_error("NoSuchBucket", &["xstage-no-such-bucket", "stage URL"]);
}

/// A stalled S3 past the read timeout (`XSTAGE_AWS_READ_TIMEOUT_SECONDS`, short here) is the
/// core's `Timeout`, after the SDK's retries, naming the object; once S3 answers again, so
/// does the function. (Under WASI: `tests/tests/faults.rs`.)
#[test]
fn a_stalled_s3_past_the_read_timeout_is_timeout() {
    let proxy = FaultProxy::start(&ENDPOINT).unwrap();
    proxy.inject(
        Service::S3,
        Fault::Stall(std::time::Duration::from_secs(60)),
    );
    let mut env = seed::platform_env();
    env.push(("XSTAGE_AWS_READ_TIMEOUT_SECONDS", "1".to_string()));
    let event = seed::seed_event(proxy.url(), QUERY);
    let started = std::time::Instant::now();
    let stalled = query_cli::run(Path::new(env!("CARGO_BIN_EXE_xstage-query")), &env, &event);
    let took = started.elapsed();
    stalled.assert_error(
        "Timeout",
        &[
            "s3://test-bucket-123/optional/prefix/test.parquet",
            "timed out",
        ],
    );
    assert!(
        took < std::time::Duration::from_secs(30),
        "the read timeout ended it, not the stall: {took:?}"
    );
    proxy.clear();
    let after = query_cli::run(Path::new(env!("CARGO_BIN_EXE_xstage-query")), &env, &event);
    assert_ok(&after);
}

/// The query that is `ResourcesExhausted` under WASI (`tests/tests/faults.rs`), natively with
/// the same 256 MB: DataFusion spills to the temporary directory (on Lambda, /tmp), and
/// answers.
#[test]
fn a_group_by_past_the_memory_limit_spills_natively() {
    let mut env = seed::platform_env();
    env.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()));
    let mut event = seed::seed_event(&ENDPOINT, &xstage_tests::fixtures::million_groups_sql());
    event["options"] = json!({"max_rows": 3});
    let out = query_cli::run(Path::new(env!("CARGO_BIN_EXE_xstage-query")), &env, &event);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.body["row_count"], 3, "{}", out.body);
    assert_eq!(out.body["truncated"], true, "{}", out.body);
}
