//! The wasmtime host's sandbox and lifecycle, proven from inside a purpose-built guest
//! (`tests/guests/sandbox`): egress allowlist and connection reuse against a local HTTP
//! server, the timeout, the memory limit, crashes, the environment, the filesystem, the log,
//! warm and new execution environments, idle expiry, and the compile cache.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use xstage_host::cache::CacheOutcome;
use xstage_host::{
    Allowlist, EgressPolicy, Function, FunctionConfig, FunctionCredentials, Host, HostConfig,
    Invocation, InvokeError,
};
use xstage_tests::wasm;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(xstage_tests::runtime);

/// Fails the test instead of hanging it.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.block_on(async {
        tokio::time::timeout(Duration::from_secs(300), f)
            .await
            .expect("the test did not finish in 5 minutes")
    })
}

static HOST: LazyLock<Host> = LazyLock::new(wasm::host);

fn config(name: &str) -> FunctionConfig {
    let mut config = FunctionConfig::new(name);
    config.memory_size_mb = 128;
    config.timeout = Duration::from_secs(20);
    config
}

async fn load(config: FunctionConfig) -> Function {
    HOST.load(&wasm::sandbox_component(), config)
        .await
        .expect("load the sandbox guest")
}

async fn invoke(f: &Function, event: Value) -> Invocation {
    f.invoke(&serde_json::to_vec(&event).unwrap())
        .await
        .expect("invocation starts")
}

fn response(i: &Invocation) -> Value {
    assert!(
        !i.is_error(),
        "{:?}\n{}",
        i.outcome,
        String::from_utf8_lossy(&i.logs)
    );
    serde_json::from_slice(&i.body()).expect("json response")
}

/// An HTTP/1.1 server on 127.0.0.1 that answers `ok` (after `delay`), keeps connections
/// alive, and counts connections and requests.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

fn server(delay: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    let mut seen_request = false;
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        seen_request = true;
                        if line.ends_with("\r\n\r\n") || line == "\r\n" {
                            break;
                        }
                        if line.ends_with("\r\n") {
                            line.clear();
                        }
                    }
                    if !seen_request {
                        return;
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let reply =
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
                    if stream.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Server {
        port,
        connections,
        requests,
    }
}

#[test]
fn egress_reaches_only_allowed_origins_over_reused_connections() {
    block_on(async {
        let s = server(Duration::ZERO);
        let mut c = config("egress");
        c.egress = EgressPolicy::fixed(Allowlist::from_urls([format!(
            "http://127.0.0.1:{}",
            s.port
        )]));
        let f = load(c).await;
        let allowed = format!("http://127.0.0.1:{}/data", s.port);

        let first = invoke(&f, json!({"fetch": allowed})).await;
        assert_eq!(response(&first), json!({"status": 200, "body": "ok"}));
        assert_eq!(first.stats.http_requests, 1);

        // Same server, other spellings or ports: not the allowed origin.
        for denied in [
            format!("http://localhost:{}/", s.port),
            format!("https://127.0.0.1:{}/", s.port),
            format!("http://127.0.0.1:{}/", s.port + 1),
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ] {
            let i = invoke(&f, json!({"fetch": denied})).await;
            let v = response(&i);
            assert!(
                v["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("HttpRequestDenied"),
                "{denied}: {v}"
            );
            assert_eq!(i.stats.denied_requests.len(), 1, "{denied}");
            assert_eq!(i.stats.http_requests, 0);
        }

        // The environment still works, and the second allowed request reuses the connection.
        let again = invoke(&f, json!({"fetch": allowed})).await;
        assert_eq!(response(&again)["status"], 200);
        assert_eq!(
            s.requests.load(Ordering::SeqCst),
            2,
            "denied requests never left the host"
        );
        assert_eq!(
            s.connections.load(Ordering::SeqCst),
            1,
            "keep-alive: one connection"
        );
    })
}

#[test]
fn an_endless_loop_is_stopped_at_the_timeout() {
    block_on(async {
        let mut c = config("spin");
        c.timeout = Duration::from_secs(1);
        let f = load(c).await;
        let warm = invoke(&f, json!({"hello": 1})).await;
        let spun = invoke(&f, json!({"spin": true})).await;
        assert_eq!(spun.error_type(), Some("Timeout"), "{:?}", spun.outcome);
        assert!(
            spun.body()
                .starts_with(br#"{"errorMessage":"Task timed out after 1.00 seconds""#)
                || String::from_utf8_lossy(&spun.body())
                    .contains("Task timed out after 1.00 seconds")
        );
        assert_eq!(spun.stats.environment, warm.stats.environment);
        assert!(
            spun.stats.duration >= Duration::from_secs(1),
            "{:?}",
            spun.stats.duration
        );

        let next = invoke(&f, json!({"hello": 2})).await;
        assert_eq!(response(&next), json!({"hello": 2}));
        assert_ne!(
            next.stats.environment, spun.stats.environment,
            "the interrupted instance is gone"
        );
        assert!(
            next.stats.init_duration.is_some(),
            "a new environment was created"
        );
        assert_eq!(f.environments(), (1, 1));
    })
}

#[test]
fn allocating_past_memory_size_is_an_error_result() {
    block_on(async {
        let mut c = config("memory");
        c.memory_size_mb = 64;
        let f = load(c).await;
        let big = invoke(&f, json!({"allocate_mb": 256})).await;
        assert_eq!(big.error_type(), Some("OutOfMemory"), "{:?}", big.outcome);
        assert!(String::from_utf8_lossy(&big.body()).contains("MemorySize of 64 MB"));
        let small = invoke(&f, json!({"allocate_mb": 8})).await;
        assert_eq!(response(&small), json!({"allocated_mb": 8}));
        assert!(small.stats.peak_memory_bytes >= 8 << 20);
        assert!(small.stats.peak_memory_bytes <= 64 << 20);
    })
}

#[test]
fn a_panic_is_a_crash_with_its_message_and_the_next_call_works() {
    block_on(async {
        let f = load(config("panic")).await;
        let crashed = invoke(&f, json!({"panic": "the guest broke"})).await;
        assert_eq!(crashed.error_type(), Some("Crashed"));
        assert!(String::from_utf8_lossy(&crashed.body()).contains("the guest broke"));
        assert!(String::from_utf8_lossy(&crashed.logs).contains("panicked at"));
        assert_eq!(
            response(&invoke(&f, json!({"ok": true})).await),
            json!({"ok": true})
        );
    })
}

/// A streamed invocation (`handle-stream`): the chunks arrive in order as the guest writes
/// them, the guest waits while the reader is behind (the channel holds one chunk), and a
/// reader that goes away stops the guest's next write, which the guest sees as an error. The
/// environment serves the next invocation.
#[test]
fn streamed_chunks_arrive_in_order_and_a_vanished_reader_stops_the_guest() {
    block_on(async {
        let f = load(config("stream")).await;
        let event = serde_json::to_vec(&json!({"chunks": 40, "chunk_bytes": 1000})).unwrap();
        let (sender, mut chunks) = tokio::sync::mpsc::channel(1);
        let call = f.invoke_streaming_as(&event, "in-order".into(), sender);
        let read = async {
            let mut got = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                // A slow reader: the guest must wait for it, not drop chunks.
                tokio::time::sleep(Duration::from_millis(2)).await;
                got.push(chunk);
            }
            got
        };
        let (invocation, got) = tokio::join!(call, read);
        let invocation = invocation.expect("the invocation starts");
        assert!(!invocation.is_error(), "{:?}", invocation.outcome);
        assert_eq!(got.len(), 40);
        for (i, chunk) in got.iter().enumerate() {
            assert_eq!(chunk, &vec![b'a' + (i % 26) as u8; 1000], "chunk {i}");
        }

        let (sender, mut chunks) = tokio::sync::mpsc::channel(1);
        let event = serde_json::to_vec(&json!({"chunks": 1000, "chunk_bytes": 10})).unwrap();
        let call = f.invoke_streaming_as(&event, "vanishing".into(), sender);
        let read = async move {
            let first = chunks.recv().await;
            drop(chunks);
            first
        };
        let (invocation, first) = tokio::join!(call, read);
        assert_eq!(first, Some(vec![b'a'; 10]));
        let invocation = invocation.expect("the invocation starts");
        assert_eq!(
            invocation.error_type(),
            Some("StreamClosed"),
            "{:?}",
            invocation.outcome
        );
        assert!(
            String::from_utf8_lossy(&invocation.body()).contains("stopped reading"),
            "{:?}",
            invocation.outcome
        );
        assert_eq!(
            response(&invoke(&f, json!({"after": "a stream"})).await),
            json!({"after": "a stream"})
        );
    })
}

/// The components run without their main module's `name` section
/// (`scripts/lib/wasm_strip.py`); the host names a trap's frames from the named copy kept
/// beside the component, and numbers them without it.
#[test]
fn a_stripped_guests_trap_is_named_from_the_copy_beside_it() {
    let component = wasm::sandbox_component();
    let named = xstage_host::names::named_copy(&component);
    // The standard library's panic machinery: named in the copy, nowhere in the component.
    let mangled = b"9panicking";
    let has = |bytes: &[u8]| bytes.windows(mangled.len()).any(|w| w == mangled);
    assert!(
        !has(&std::fs::read(&component).unwrap()),
        "{} still has its names; build it with {}",
        component.display(),
        wasm::BUILD_COMMAND
    );
    assert!(has(&std::fs::read(&named).unwrap()), "{}", named.display());

    // The same component without its copy, in a directory of its own.
    let alone = tempfile::tempdir().unwrap();
    let bare = alone.path().join("xstage_sandbox_guest.wasm");
    std::fs::copy(&component, &bare).unwrap();

    let (with_copy, without) = block_on(async {
        let f = load(config("names")).await;
        let g = HOST.load(&bare, config("no-names")).await.unwrap();
        let event = json!({"panic": "name me"});
        (invoke(&f, event.clone()).await, invoke(&g, event).await)
    });
    for i in [&with_copy, &without] {
        assert_eq!(i.error_type(), Some("Crashed"));
    }
    let logs = String::from_utf8_lossy(&with_copy.logs);
    assert!(
        logs.contains("<unknown>!std::panicking::") && !logs.contains("<wasm function "),
        "{logs}"
    );
    let logs = String::from_utf8_lossy(&without.logs);
    assert!(
        logs.contains("<unknown>!<wasm function ") && !logs.contains("<unknown>!std::panicking::"),
        "{logs}"
    );
}

#[test]
fn the_guest_sees_lambdas_environment_and_nothing_of_the_host() {
    block_on(async {
        let mut c = config("env");
        c.region = "eu-west-3".into();
        c.environment.insert("STAGE_SETTING".into(), "on".into());
        c.credentials = Some(FunctionCredentials {
            access_key_id: "AKIDFUNCTION".into(),
            secret_access_key: "function-secret".into(),
            session_token: Some("function-token".into()),
        });
        let f = load(c).await;
        let i = invoke(&f, json!({"environment": true})).await;
        let vars = response(&i);
        let names: Vec<&str> = vars
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_DEFAULT_REGION",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_INITIALIZATION_TYPE",
                "AWS_REGION",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "STAGE_SETTING",
            ]
        );
        assert_eq!(vars["AWS_REGION"], "eu-west-3");
        assert_eq!(vars["AWS_SESSION_TOKEN"], "function-token");
        assert!(
            std::env::var_os("PATH").is_some(),
            "the host has a PATH the guest must not see"
        );

        let mut reserved = config("reserved");
        reserved
            .environment
            .insert("AWS_SECRET_ACCESS_KEY".into(), "x".into());
        let err = HOST
            .load(&wasm::sandbox_component(), reserved)
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    })
}

#[test]
fn no_directory_is_preopened() {
    block_on(async {
        let f = load(config("fs")).await;
        for path in ["/", ".", "/etc", "/tmp"] {
            let v = response(&invoke(&f, json!({"read_dir": path})).await);
            assert!(v["error"].is_string(), "{path}: {v}");
        }
    })
}

#[test]
fn stdout_and_stderr_become_the_invocation_log() {
    block_on(async {
        let f = load(config("log")).await;
        let i = invoke(&f, json!({"print": "hello log"})).await;
        let log = String::from_utf8_lossy(&i.logs);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(
            lines[0],
            format!("START RequestId: {} Version: $LATEST", i.request_id)
        );
        assert!(
            lines.contains(&"stdout: hello log") && lines.contains(&"stderr: hello log"),
            "{log}"
        );
        assert!(
            lines.contains(&format!("END RequestId: {}", i.request_id).as_str()),
            "{log}"
        );
        let report = lines.last().unwrap();
        assert!(
            report.starts_with(&format!("REPORT RequestId: {}\tDuration: ", i.request_id)),
            "{report}"
        );
        assert!(
            report.contains("Memory Size: 128 MB") && report.contains("Init Duration: "),
            "{report}"
        );

        // The next invocation's log holds only its own output.
        let next = invoke(&f, json!({"print": "second"})).await;
        let log = String::from_utf8_lossy(&next.logs);
        assert!(
            !log.contains("hello log") && log.contains("stdout: second"),
            "{log}"
        );
        assert!(
            !log.contains("Init Duration"),
            "a warm invocation has no init: {log}"
        );
    })
}

#[test]
fn warm_environments_are_reused_and_new_ones_made_when_busy() {
    block_on(async {
        let s = server(Duration::from_millis(700));
        let mut c = config("pool");
        c.egress = EgressPolicy::fixed(Allowlist::from_urls([format!(
            "http://127.0.0.1:{}",
            s.port
        )]));
        c.reserved_concurrency = Some(2);
        let f = load(c).await;
        let a = invoke(&f, json!({"n": 1})).await;
        let b = invoke(&f, json!({"n": 2})).await;
        assert_eq!(a.stats.environment, b.stats.environment);
        assert_eq!(
            (
                a.stats.environment_invocations,
                b.stats.environment_invocations
            ),
            (1, 2)
        );

        let slow = json!({"fetch": format!("http://127.0.0.1:{}/", s.port)});
        let event = serde_json::to_vec(&slow).unwrap();
        let (x, y, z) = tokio::join!(f.invoke(&event), f.invoke(&event), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            f.invoke(&event).await
        });
        let (x, y) = (x.expect("first"), y.expect("second"));
        assert_eq!(response(&x)["status"], 200);
        assert_eq!(response(&y)["status"], 200);
        assert_ne!(
            x.stats.environment, y.stats.environment,
            "busy: a second environment"
        );
        assert!(
            matches!(z, Err(InvokeError::TooManyRequests { limit: 2, .. })),
            "a third concurrent invocation is over the reserved concurrency: {z:?}"
        );
        assert_eq!(f.environments(), (2, 2));
    })
}

#[test]
fn idle_environments_are_dropped_after_the_idle_timeout() {
    block_on(async {
        let mut c = config("idle");
        c.idle_timeout = Duration::from_millis(200);
        let f = load(c).await;
        let first = invoke(&f, json!({})).await;
        assert_eq!(f.environments(), (1, 1));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(f.environments(), (0, 0), "reaped while idle");
        let next = invoke(&f, json!({})).await;
        assert!(next.stats.init_duration.is_some());
        assert_ne!(next.stats.environment, first.stats.environment);
    })
}

#[test]
fn a_corrupt_or_stale_cache_entry_is_recompiled() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let host = || cached_host(dir.path());
        let component = wasm::sandbox_component();
        let first = host().compile(&component).await.unwrap();
        assert_eq!(first.outcome, CacheOutcome::Compiled);
        let artifact = first.artifact.clone().expect("cached");
        assert_eq!(
            host().compile(&component).await.unwrap().outcome,
            CacheOutcome::Hit
        );

        // Flip bytes in the middle of the compiled code.
        let mut bytes = std::fs::read(&artifact).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 64] {
            *b ^= 0xff;
        }
        std::fs::write(&artifact, &bytes).unwrap();
        let h = host();
        match h.compile(&component).await.unwrap().outcome {
            CacheOutcome::Recompiled { reason } => assert!(reason.contains("digest"), "{reason}"),
            other => panic!("a corrupt entry was trusted: {other:?}"),
        }
        let f = h.load(&component, config("cache")).await.unwrap();
        assert_eq!(
            response(&invoke(&f, json!({"after": "repair"})).await),
            json!({"after": "repair"})
        );
        assert_eq!(
            host().compile(&component).await.unwrap().outcome,
            CacheOutcome::Hit
        );

        // A truncated artifact with a matching digest is still refused by wasmtime.
        std::fs::write(&artifact, &bytes[..1024]).unwrap();
        std::fs::write(
            artifact.with_extension("cwasm.blake3"),
            blake3_hex(&bytes[..1024]),
        )
        .unwrap();
        assert!(matches!(
            host().compile(&component).await.unwrap().outcome,
            CacheOutcome::Recompiled { .. }
        ));
    })
}

/// A host whose compile cache is `dir`.
fn cached_host(dir: &std::path::Path) -> Host {
    Host::new(HostConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..HostConfig::default()
    })
    .unwrap()
}

fn blake3_hex(bytes: &[u8]) -> String {
    xstage_host::cache::digest(bytes)
}

#[test]
fn a_changed_component_is_compiled_again() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let host = cached_host(&dir.path().join("cache"));
        let original = wasm::sandbox_component();
        let copy = dir.path().join("guest.wasm");
        std::fs::copy(&original, &copy).unwrap();
        let first = host.compile(&copy).await.unwrap();
        assert_eq!(
            host.compile(&copy).await.unwrap().outcome,
            CacheOutcome::Hit
        );

        // Append a custom section: a different, still valid component.
        let mut bytes = std::fs::read(&copy).unwrap();
        bytes.extend_from_slice(&[0x00, 0x06, 0x04, b'n', b'o', b't', b'e', 0x01]);
        std::fs::write(&copy, &bytes).unwrap();
        let changed = host.compile(&copy).await.unwrap();
        assert_eq!(
            changed.outcome,
            CacheOutcome::Compiled,
            "a new key, not a hit"
        );
        assert_ne!(changed.artifact, first.artifact);
        let f = host.load(&copy, config("changed")).await.unwrap();
        assert_eq!(
            response(&invoke(&f, json!({"v": 2})).await),
            json!({"v": 2})
        );
    })
}

/// The component's hash is remembered per file identity: a hit does not read the `.wasm`,
/// and any write to the file (even of the same bytes) makes the host hash it again.
#[test]
fn an_unchanged_component_is_hashed_once() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let host = cached_host(&cache);
        let copy = dir.path().join("guest.wasm");
        std::fs::copy(wasm::sandbox_component(), &copy).unwrap();
        let first = host.compile(&copy).await.unwrap();
        assert_eq!(first.outcome, CacheOutcome::Compiled);
        let records: Vec<_> = std::fs::read_dir(cache.join("wasm"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(records.len(), 1, "one remembered hash: {records:?}");
        let bytes = std::fs::read(&copy).unwrap();
        assert_eq!(
            std::fs::read_to_string(&records[0]).unwrap(),
            blake3_hex(&bytes),
            "the record holds the component's hash"
        );
        let hit = host.compile(&copy).await.unwrap();
        assert_eq!(hit.outcome, CacheOutcome::Hit);
        assert_eq!(hit.artifact, first.artifact);

        // The record is what a hit goes by: pointed at another component's hash, the host
        // loads that component's entry without reading this file.
        let other = dir.path().join("other.wasm");
        let mut other_bytes = bytes.clone();
        other_bytes.extend_from_slice(&[0x00, 0x06, 0x04, b'n', b'o', b't', b'e', 0x01]);
        std::fs::write(&other, &other_bytes).unwrap();
        let other_entry = host.compile(&other).await.unwrap().artifact;
        assert_ne!(other_entry, first.artifact);
        std::fs::write(&records[0], blake3_hex(&other_bytes)).unwrap();
        let believed = host.compile(&copy).await.unwrap();
        assert_eq!(believed.outcome, CacheOutcome::Hit);
        assert_eq!(believed.artifact, other_entry);

        // A record naming no entry is caught when the file is read to compile it: the host
        // keys it by the bytes it read and finds the original entry.
        std::fs::write(&records[0], blake3_hex(b"no such component")).unwrap();
        let corrected = host.compile(&copy).await.unwrap();
        assert_eq!(corrected.outcome, CacheOutcome::Hit);
        assert_eq!(corrected.artifact, first.artifact);
        std::fs::write(&records[0], blake3_hex(&other_bytes)).unwrap();

        // A write of the same bytes moves the file's identity: the stale record no longer
        // applies, the file is hashed again, and the original entry is a hit.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&copy, &bytes).unwrap();
        let rehashed = host.compile(&copy).await.unwrap();
        assert_eq!(rehashed.outcome, CacheOutcome::Hit);
        assert_eq!(rehashed.artifact, first.artifact);
    })
}

/// An artifact whose identity moved is checked in full once, and trusted by identity after.
#[test]
fn a_moved_artifact_is_checked_in_full_once() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let host = || cached_host(dir.path());
        let component = wasm::sandbox_component();
        let artifact = host().compile(&component).await.unwrap().artifact.unwrap();
        let record_path = artifact.with_extension("cwasm.blake3");
        let record = std::fs::read_to_string(&record_path).unwrap();
        let (digest, identity) = record.trim().split_once('\n').expect("digest and identity");
        assert_eq!(digest, blake3_hex(&std::fs::read(&artifact).unwrap()));

        // Copied back in place (as a restore from a cache would): a new identity.
        let bytes = std::fs::read(&artifact).unwrap();
        std::fs::remove_file(&artifact).unwrap();
        std::fs::write(&artifact, &bytes).unwrap();
        let loaded = host().compile(&component).await.unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Hit);
        let record = std::fs::read_to_string(&record_path).unwrap();
        let (again, moved) = record.trim().split_once('\n').unwrap();
        assert_eq!(again, digest);
        assert_ne!(moved, identity, "the record follows the checked file");
        assert_eq!(
            host().compile(&component).await.unwrap().outcome,
            CacheOutcome::Hit
        );
    })
}
