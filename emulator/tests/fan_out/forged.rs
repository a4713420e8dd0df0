//! Forged worker events: a coordinator's fragment edited to read outside its stage, bytes
//! that are no plan, and inner nodes that would start more workers than a query may. Each is
//! refused (`InvalidEvent`) before any credential is asked for and before any invocation;
//! the unaltered fragment, captured from a real coordinator, runs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use xstage_tests::{query_cli, seed, tpch};

use super::{SERVER, TABLE, call, call_err, event, fanned, xstage_query};

/// A server that takes every Lambda invocation it gets and answers with a function error:
/// it shows what a coordinator sends its workers.
struct Capture {
    url: String,
    payloads: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Each invocation's request line (`POST /2015-03-31/functions/…/invocations?…`).
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let payloads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, kept_lines) = (Arc::clone(&payloads), Arc::clone(&lines));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let kept = Arc::clone(&kept);
                let kept_lines = Arc::clone(&kept_lines);
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    let (head_end, length) = loop {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let line = String::from_utf8_lossy(&buf[..head_end]);
                    let line = line.lines().next().unwrap_or_default().to_string();
                    kept_lines.lock().unwrap().push(line);
                    kept.lock().unwrap().push(buf[head_end..].to_vec());
                    let body = r#"{"errorType":"InvalidEvent","errorMessage":"captured"}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nX-Amz-Function-Error: Unhandled\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Self {
            url,
            payloads,
            lines,
        }
    }
}

/// A worker event as a real coordinator makes it.
fn captured_worker_event() -> Value {
    let capture = Capture::start();
    let env = capturing_env(&capture);
    let run = query_cli::run(&xstage_query(), &env, &event(&tpch::q6(TABLE), fanned()));
    run.assert_error("InvalidEvent", &["captured"]);
    let payloads = capture.payloads.lock().unwrap();
    let first = payloads.first().expect("the coordinator invoked a worker");
    serde_json::from_slice(first).expect("a worker event is JSON")
}

fn with_plan(mut event: Value, edit: impl Fn(&mut Vec<u8>)) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut plan = b64
        .decode(event["fragment"]["plan"].as_str().unwrap())
        .unwrap();
    edit(&mut plan);
    event["fragment"]["plan"] = json!(b64.encode(plan));
    event
}

fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(
        from.len(),
        to.len(),
        "a same-length edit keeps the encoding valid"
    );
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    n
}

#[test]
fn a_forged_fragment_is_refused_before_any_request() {
    let server = &*SERVER;
    let real = captured_worker_event();
    assert!(real.get("fragment").is_some(), "{real}");
    for hidden in [
        "secret_access_key",
        "SecretAccessKey",
        "session_token",
        "SessionToken",
    ] {
        assert!(
            !real.to_string().contains(hidden),
            "a worker event carries {hidden}"
        );
    }
    // The real fragment runs: it is a worker's own.
    let ok = call(&server.url, &real);
    assert_eq!(ok["stats"]["path"], json!("worker"), "{}", ok["stats"]);
    assert!(ok["partial"].as_str().is_some_and(|p| !p.is_empty()));

    let refused = |event: Value, needle: &str| {
        let (kind, message) = call_err(&server.url, &event);
        assert_eq!(kind, "InvalidEvent", "{message}");
        assert!(message.contains(needle), "{needle:?} not in {message}");
    };
    // Files outside the stage's prefix (same-length edit of the keys).
    let outside = with_plan(real.clone(), |plan| {
        assert!(replace(plan, b"optional/prefix/", b"optional/secret/") > 0);
    });
    refused(outside, "outside the stage");
    // Another bucket.
    let other_bucket = with_plan(real.clone(), |plan| {
        assert!(replace(plan, b"test-bucket-123", b"other-bucket-99") > 0);
    });
    refused(other_bucket, "outside the stage");
    // The same fragment against a narrower stage of the same bucket.
    let mut narrower = real.clone();
    narrower["stage"]["url"] = json!(format!("s3://{}/{}other/", seed::BUCKET, seed::PREFIX));
    refused(narrower, "outside the stage");
    // Bytes that are no plan.
    let mut garbage = real.clone();
    garbage["fragment"]["plan"] =
        json!(base64::engine::general_purpose::STANDARD.encode(b"\x0a\xff\xff\xff garbage"));
    refused(garbage, "could not be decoded");
    // A role outside the allowed principals is refused as for any event.
    let mut role = real;
    role["connection"]["role_arn"] = json!("arn:aws:iam::111111111111:role/someone-else");
    let (kind, _) = call_err(&server.url, &role);
    assert_eq!(kind, "RoleNotAllowed");
}

/// The native function's environment, its workers invoked at `capture`.
fn capturing_env(capture: &Capture) -> Vec<(&'static str, String)> {
    let mut env = seed::platform_env();
    env.push(("XSTAGE_FAN_OUT_FUNCTION", "StageQuery".into()));
    env.push(("AWS_ENDPOINT_URL_LAMBDA", capture.url.clone()));
    env
}

#[test]
fn a_forged_inner_node_starts_no_worker() {
    let real = captured_worker_event();
    let leaf = real["fragment"].clone();
    let inner = |children: Vec<Value>, fan_out: Value| {
        let mut e = real.clone();
        e["options"] = json!({ "fan_out": fan_out });
        e["fragment"] = json!({ "children": children });
        e
    };
    let capture = Capture::start();
    let env = capturing_env(&capture);
    let run = |event: &Value| query_cli::run(&xstage_query(), &env, event);
    // 5,000 children, as small as a forger makes them: counted before any is decoded.
    let tiny = json!({ "plan": "AQ==" });
    run(&inner(vec![tiny; 5_000], json!({"max_workers": 4096})))
        .assert_error("InvalidEvent", &["5000 fragments", "at most 4096 workers"]);
    // Real leaves, one more than the event's own max_workers (default 64).
    run(&inner(vec![leaf.clone(); 65], json!({})))
        .assert_error("InvalidEvent", &["65 worker fragments", "max_workers (64)"]);
    // An inner node under an inner node.
    let nested = json!({ "children": [leaf.clone(), leaf.clone()] });
    run(&inner(vec![nested, leaf.clone()], json!({})))
        .assert_error("InvalidEvent", &["not inner nodes"]);
    assert!(
        capture.payloads.lock().unwrap().is_empty(),
        "a refused inner node invoked a worker"
    );
    // Within its bounds the same inner node does invoke its two workers (whose captured
    // answers are errors): the capture would have seen any invocation above.
    run(&inner(vec![leaf.clone(), leaf], json!({}))).assert_error("InvalidEvent", &["captured"]);
    assert_eq!(capture.payloads.lock().unwrap().len(), 2);
}

/// "Workers read the object versions the coordinator planned with": a worker told of
/// another ETag than the object has (as if the file changed after the coordinator listed it)
/// fails `ObjectChanged` naming the file, and reads nothing from the other version.
#[test]
fn a_worker_reads_only_the_versions_its_coordinator_planned_with() {
    let server = &*SERVER;
    let real = captured_worker_event();
    let versions = real["fragment"]["versions"]
        .as_object()
        .expect("a worker event names its files' versions")
        .clone();
    assert!(!versions.is_empty(), "{}", real["fragment"]);
    let (key, e_tag) = versions.iter().next().unwrap();
    assert!(e_tag.as_str().is_some_and(|t| t.len() > 8), "{e_tag}");
    let mut changed = real.clone();
    changed["fragment"]["versions"][key] = json!("\"00000000000000000000000000000000\"");
    let (kind, message) = call_err(&server.url, &changed);
    assert_eq!(kind, "ObjectChanged", "{message}");
    assert!(message.contains(key.as_str()), "{key} not in {message}");
    assert!(message.contains("run the query again"), "{message}");
}

/// "Workers run the same function version as the coordinator": the Invoke calls carry the
/// coordinator's own version (`AWS_LAMBDA_FUNCTION_VERSION`) as their `Qualifier`.
#[test]
fn workers_are_invoked_with_the_coordinators_version() {
    let capture = Capture::start();
    let mut env = capturing_env(&capture);
    env.push(("AWS_LAMBDA_FUNCTION_VERSION", "7".into()));
    let run = query_cli::run(&xstage_query(), &env, &event(&tpch::q6(TABLE), fanned()));
    // The capture answers every worker with an error, which fails the query.
    run.assert_error("InvalidEvent", &["captured"]);
    let lines = capture.lines.lock().unwrap();
    assert!(!lines.is_empty(), "no worker was invoked");
    for line in lines.iter() {
        assert!(line.contains("/invocations?Qualifier=7 "), "{line}");
    }
}
