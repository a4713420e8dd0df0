//! Failing dependencies: S3 and STS behind a fault-injecting proxy in front of LocalStack
//! (`xstage_tests::fault_proxy`), and a LocalStack killed in the middle of a query. Every
//! fault ends the invocation with a typed error, natively and under the WASI host (every AWS
//! refusal, the core's `Timeout`, `ResourcesExhausted`, `InvalidConfiguration` and the host's
//! `OutOfMemory` on the stage query component too); the
//! host's execution environment keeps serving; and the next invocation succeeds once the
//! fault is gone. (`functions/stage-query/tests/diagnostics.rs` covers throttling, expired
//! tokens and wrong regions through the native binary; `emulator/tests/load.rs` the
//! emulator under faults and load.)

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parquet::basic::Compression;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use xstage_host::Function;
use xstage_tests::fault_proxy::{Fault, FaultProxy, Service};
use xstage_tests::fixtures::{self, Person};
use xstage_tests::run::{self, Reply};
use xstage_tests::{localstack, seed};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(xstage_tests::runtime);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    run::block_on(&RUNTIME, Duration::from_secs(600), f)
}

/// Enough rows that the data pages are bodies worth cutting.
const ROWS: usize = 20_000;
const QUERY: &str = "SELECT sum(id) AS s FROM @databend_test/test.parquet";
/// The WASI function's timeout: short, so a stall ends quickly.
const WASI_TIMEOUT: Duration = Duration::from_secs(8);

async fn people() -> &'static Vec<Person> {
    static PEOPLE: OnceCell<Vec<Person>> = OnceCell::const_new();
    PEOPLE
        .get_or_init(|| async {
            let endpoint = localstack::localstack().endpoint().to_string();
            let people = fixtures::people(ROWS);
            seed::seed(&endpoint, parquet_of(&people))
                .await
                .expect("seed");
            people
        })
        .await
}

fn parquet_of(people: &[Person]) -> bytes::Bytes {
    fixtures::write_parquet(
        &[fixtures::people_batch(people)],
        Compression::SNAPPY,
        5_000,
    )
}

fn expected(people: &[Person]) -> Value {
    json!([[people.iter().map(|p| p.id).sum::<i64>()]])
}

async fn function() -> &'static Function {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    run::stage_query(&FUNCTION, |config| config.timeout = WASI_TIMEOUT).await
}

async fn native(endpoint: &str) -> Reply {
    run::native(seed::seed_event(endpoint, QUERY)).await
}

async fn wasi(endpoint: &str) -> Reply {
    run::wasi(function().await, &seed::seed_event(endpoint, QUERY))
        .await
        .0
}

#[track_caller]
fn assert_kind(how: &str, reply: &Reply, kind: &str, says: &str) {
    match reply {
        Err((k, message)) => {
            assert_eq!(k, kind, "{how}: {message}");
            assert!(
                message.contains(says),
                "{how} should say {says:?}: {message}"
            );
        }
        Ok(v) => panic!("{how} should fail with {kind}, got {v}"),
    }
}

#[track_caller]
fn assert_rows(how: &str, reply: Reply, rows: &Value) {
    match reply {
        Ok(v) => assert_eq!(&v["rows"], rows, "{how}"),
        Err(e) => panic!("{how} should succeed: {e:?}"),
    }
}

/// Runs `fault` on S3 (or STS) natively and under WASI, expecting `kind`; then clears it
/// and expects both to answer.
async fn fault_then_recover(service: Service, fault: Fault, kind: &str, says: &str) -> usize {
    let people = people().await;
    let proxy = FaultProxy::start(localstack::localstack().endpoint()).expect("proxy");
    proxy.inject(service, fault.clone());
    let (n, w) = (native(proxy.url()).await, wasi(proxy.url()).await);
    eprintln!("{fault:?}\n  native: {n:?}\n  WASI:   {w:?}");
    assert_kind("native", &n, kind, says);
    assert_kind("WASI", &w, kind, says);
    let faulted = proxy.faulted();
    proxy.clear();
    assert_rows(
        "native, after",
        native(proxy.url()).await,
        &expected(people),
    );
    assert_rows("WASI, after", wasi(proxy.url()).await, &expected(people));
    faulted
}

#[test]
fn s3_500s_are_retried_then_service_unavailable() {
    block_on(async {
        let faulted = fault_then_recover(
            Service::S3,
            Fault::s3_internal_error(),
            "ServiceUnavailable",
            "InternalError",
        )
        .await;
        // The SDK's standard retry policy: three attempts per run, two runs.
        assert_eq!(faulted, 6);
    });
}

#[test]
fn s3_slowdown_is_retried_then_throttled() {
    block_on(async {
        let faulted = fault_then_recover(
            Service::S3,
            Fault::s3_error(503, "SlowDown", "Please reduce your request rate.", &[]),
            "Throttled",
            "retry with backoff",
        )
        .await;
        assert!(faulted >= 6, "{faulted}");
    });
}

/// README: `Internal` is an answer from S3 (or Lambda) that xstage has no mapping for.
#[test]
fn an_s3_error_code_without_a_mapping_is_internal() {
    block_on(async {
        fault_then_recover(
            Service::S3,
            Fault::s3_error(400, "BrandNewError", "Something new happened.", &[]),
            "Internal",
            "unexpected S3 error",
        )
        .await;
    });
}

#[test]
fn sts_throttling_is_typed_and_retryable() {
    block_on(async {
        fault_then_recover(
            Service::Sts,
            Fault::sts_error(400, "Throttling", "Rate exceeded"),
            "Throttled",
            "retry with backoff",
        )
        .await;
    });
}

#[test]
fn a_connection_reset_mid_body_is_endpoint_unreachable() {
    block_on(async {
        fault_then_recover(
            Service::S3,
            Fault::ResetMidBody { after_bytes: 100 },
            "EndpointUnreachable",
            "the response body was cut off",
        )
        .await;
    });
}

#[test]
fn a_stalled_s3_ends_at_the_function_timeout_and_the_host_serves_on() {
    block_on(async {
        let people = people().await;
        let proxy = FaultProxy::start(localstack::localstack().endpoint()).expect("proxy");
        proxy.inject(Service::S3, Fault::Stall(Duration::from_secs(120)));
        let started = Instant::now();
        let stalled = wasi(proxy.url()).await;
        let took = started.elapsed();
        assert_kind("WASI", &stalled, "Timeout", "");
        assert!(
            took >= WASI_TIMEOUT && took < WASI_TIMEOUT + Duration::from_secs(5),
            "the timeout fired after {took:?}"
        );
        proxy.clear();
        assert_rows("WASI, after", wasi(proxy.url()).await, &expected(people));
    });
}

#[test]
fn localstack_killed_mid_query_is_a_typed_error_and_a_restart_recovers() {
    block_on(async {
        let people = fixtures::people(200_000);
        let body = parquet_of(&people);
        let (server, endpoint) = localstack::spawn_private().expect("a private LocalStack");
        seed::seed(&endpoint, body.clone()).await.expect("seed");
        let proxy = FaultProxy::start(&endpoint).expect("proxy");
        // Slow every S3 read a little, so the kill lands inside the query.
        proxy.inject(Service::S3, Fault::Stall(Duration::from_millis(300)));
        let kill = async {
            while proxy.requests(Service::S3) < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::task::spawn_blocking(move || server.stop())
                .await
                .expect("stop LocalStack");
        };
        let (killed, ()) = tokio::join!(native(proxy.url()), kill);
        match &killed {
            Err((kind, message)) => assert!(
                ["EndpointUnreachable", "ServiceUnavailable"].contains(&kind.as_str()),
                "{kind}: {message}"
            ),
            Ok(v) => panic!("the query should fail once LocalStack is gone, got {v}"),
        }
        // A new LocalStack (empty: host mode keeps no state), the same proxy.
        let (_server, endpoint) = localstack::spawn_private().expect("LocalStack again");
        seed::seed(&endpoint, body).await.expect("seed again");
        proxy.set_upstream(&endpoint);
        proxy.clear();
        assert_rows(
            "native, after",
            native(proxy.url()).await,
            &expected(&people),
        );
        assert_rows("WASI, after", wasi(proxy.url()).await, &expected(&people));
    });
}

/// Every refusal AWS can answer a query with, natively and under WASI: the kind, and the part
/// of the message that names the cause and the fix. The proxy answers with AWS's own error
/// responses (fakecloud provokes the STS ones for real, natively, in
/// `functions/stage-query/tests/security.rs`).
#[test]
fn every_aws_refusal_is_typed_the_same_natively_and_under_wasi() {
    block_on(async {
        let refusals = [
            (
                Service::Sts,
                Fault::sts_error(
                    403,
                    "AccessDenied",
                    "User: arn:aws:iam::123456789012:user/platform is not authorized to perform: sts:AssumeRole",
                ),
                "AssumeRoleDenied",
                "ExternalId",
            ),
            (
                Service::Sts,
                Fault::sts_error(
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                ),
                "InvalidClientTokenId",
                "role ARN's account",
            ),
            (
                Service::Sts,
                Fault::sts_error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided.",
                ),
                "SignatureDoesNotMatch",
                "secret",
            ),
            (
                Service::S3,
                Fault::s3_error(403, "AccessDenied", "Access Denied", &[]),
                "S3AccessDenied",
                "s3:GetObject",
            ),
            (
                Service::S3,
                Fault::s3_error(400, "ExpiredToken", "The provided token has expired.", &[]),
                "ExpiredToken",
                "re-assumes the role",
            ),
            (
                Service::S3,
                Fault::s3_bucket_in("eu-west-1"),
                "WrongRegion",
                "REGION='eu-west-1'",
            ),
        ];
        for (service, fault, kind, says) in refusals {
            let faulted = fault_then_recover(service, fault, kind, says).await;
            assert!(
                faulted >= 2,
                "{kind}: the fault answered {faulted} requests"
            );
        }
    });
}

/// A function without an identity of its own (no `AWS_ACCESS_KEY_ID` in its environment),
/// and one whose access settings are not valid, under the WASI host: `InvalidConfiguration`,
/// naming what to set. (Natively: `xstage_sql_local_works_from_any_directory`, and
/// `access::tests`.)
#[test]
fn a_misconfigured_function_is_invalid_configuration_under_wasi() {
    block_on(async {
        people().await;
        let endpoint = localstack::localstack().endpoint().to_string();
        let event = seed::seed_event(&endpoint, QUERY);
        let anonymous = run::load_stage_query(|config| {
            config.credentials = None;
        })
        .await;
        let reply = run::wasi(&anonymous, &event).await.0;
        assert_kind(
            "WASI, no identity",
            &reply,
            "InvalidConfiguration",
            "AWS_ACCESS_KEY_ID",
        );

        let misconfigured = run::load_stage_query(|config| {
            config
                .environment
                .insert("XSTAGE_REQUIRE_EXTERNAL_ID".into(), "sometimes".into());
        })
        .await;
        let reply = run::wasi(&misconfigured, &event).await.0;
        assert_kind(
            "WASI, a bad setting",
            &reply,
            "InvalidConfiguration",
            "XSTAGE_REQUIRE_EXTERNAL_ID",
        );
    });
}

/// A stalled S3 past the read timeout (`XSTAGE_AWS_READ_TIMEOUT_SECONDS`, short here) is the
/// core's `Timeout` under WASI too, well before the function's own timeout, and the
/// environment serves on. (Natively: `functions/stage-query/tests/diagnostics.rs`.)
#[test]
fn a_stalled_s3_past_the_read_timeout_is_the_cores_timeout_under_wasi() {
    block_on(async {
        let people = people().await;
        let function = run::load_stage_query(|config| {
            config
                .environment
                .insert("XSTAGE_AWS_READ_TIMEOUT_SECONDS".into(), "1".into());
        })
        .await;
        let proxy = FaultProxy::start(localstack::localstack().endpoint()).expect("proxy");
        proxy.inject(Service::S3, Fault::Stall(Duration::from_secs(60)));
        let event = seed::seed_event(proxy.url(), QUERY);
        let started = Instant::now();
        let stalled = run::wasi(&function, &event).await.0;
        let took = started.elapsed();
        // The core's message names the object; the host's would be "Task timed out after".
        assert_kind(
            "WASI",
            &stalled,
            "Timeout",
            "s3://test-bucket-123/optional/prefix/test.parquet",
        );
        assert!(took < Duration::from_secs(30), "{took:?}");
        proxy.clear();
        assert_rows(
            "WASI, after",
            run::wasi(&function, &event).await.0,
            &expected(people),
        );
    });
}

/// A GROUP BY of a million groups, each holding a 300-byte string, against a 256 MB function
/// (a 153 MB query pool): `ResourcesExhausted` under WASI, whose guest has no disk to spill to,
/// naming the fixes; the environment then serves on. (Natively: `diagnostics.rs`.)
#[test]
fn a_group_by_past_the_memory_limit_is_resources_exhausted_under_wasi() {
    block_on(async {
        let people = people().await;
        let function = run::load_stage_query(|config| {
            config.memory_size_mb = 256;
        })
        .await;
        let endpoint = localstack::localstack().endpoint().to_string();
        let event = seed::seed_event(&endpoint, &xstage_tests::fixtures::million_groups_sql());
        let (reply, stats) = run::wasi(&function, &event).await;
        assert_kind(
            "WASI",
            &reply,
            "ResourcesExhausted",
            "raise the function's memory",
        );
        assert!(stats.peak_memory_bytes < 256 << 20);
        let event = seed::seed_event(&endpoint, QUERY);
        assert_rows(
            "WASI, after",
            run::wasi(&function, &event).await.0,
            &expected(people),
        );
    });
}

/// The host's `OutOfMemory` on the stage query component itself: one value larger than the
/// function's `MemorySize` (a 300 MB string in a 128 MB function) ends the invocation with
/// the host's error naming the limit, and the next invocation, in a new environment, answers.
#[test]
fn a_value_past_memory_size_is_the_hosts_out_of_memory() {
    block_on(async {
        let people = people().await;
        let function = run::load_stage_query(|config| {
            config.memory_size_mb = 128;
        })
        .await;
        let endpoint = localstack::localstack().endpoint().to_string();
        let event = seed::seed_event(
            &endpoint,
            "SELECT length(repeat('x', 300000000)) AS n FROM @databend_test/test.parquet LIMIT 1",
        );
        let payload = serde_json::to_vec(&event).unwrap();
        let big = function
            .invoke(&payload)
            .await
            .expect("the invocation starts");
        assert_eq!(big.error_type(), Some("OutOfMemory"), "{:?}", big.outcome);
        let body = String::from_utf8_lossy(&big.body()).into_owned();
        assert!(body.contains("MemorySize of 128 MB"), "{body}");
        let event = seed::seed_event(&endpoint, QUERY);
        assert_rows(
            "WASI, after",
            run::wasi(&function, &event).await.0,
            &expected(people),
        );
    });
}
