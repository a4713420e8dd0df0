//! What the emulator adds to an invocation: HTTP, finding the function, acquiring an
//! execution environment, reading and writing JSON. The sandbox component echoes a small
//! event, so the guest's own time is tiny; the figures are the Invoke API's latency at 1 and
//! 16 concurrent clients, next to the guest's own time (`InvocationStats::duration`) and a
//! direct `Function::invoke` in the same run.
//!
//! Prints figures; asserts nothing about time. `scripts/bench-emulator` runs it in release.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use xstage_emulator::api::Api;
use xstage_emulator::functions::{Deployed, Functions};
use xstage_emulator::serve;
use xstage_emulator::template::FunctionSpec;
use xstage_host::{FunctionConfig, Host, HostConfig};
use xstage_tests::wasm;

const REQUESTS: usize = 4000;
const EVENT: &[u8] = br#"{"echo": {"a": 1, "b": "two"}}"#;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

struct Figures {
    latency: Vec<Duration>,
    guest: Vec<Duration>,
}

impl Figures {
    fn print(&mut self, label: &str) {
        self.latency.sort();
        self.guest.sort();
        let (p50, p99) = (pct(&self.latency, 0.5), pct(&self.latency, 0.99));
        let (g50, g99) = (pct(&self.guest, 0.5), pct(&self.guest, 0.99));
        println!(
            "{label:<34} p50 {:>10}  p99 {:>10}  | guest p50 {:>9} p99 {:>9} | over guest p50 {:>9}",
            us(p50),
            us(p99),
            us(g50),
            us(g99),
            us(p50.saturating_sub(g50)),
        );
    }
}

async fn direct(function: &xstage_host::Function, clients: usize) -> Figures {
    let per = REQUESTS / clients;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let f = function.clone();
            tokio::spawn(async move {
                let mut latency = Vec::with_capacity(per);
                let mut guest = Vec::with_capacity(per);
                for _ in 0..per {
                    let start = Instant::now();
                    let i = f.invoke(EVENT).await.expect("invoke");
                    latency.push(start.elapsed());
                    guest.push(i.stats.duration);
                    assert!(!i.is_error());
                }
                (latency, guest)
            })
        })
        .collect();
    collect(tasks).await
}

async fn http(url: &str, function: &xstage_host::Function, clients: usize) -> Figures {
    let per = REQUESTS / clients;
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build_http::<Full<Bytes>>();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let client = client.clone();
            let url = url.to_string();
            let f = function.clone();
            tokio::spawn(async move {
                let mut latency = Vec::with_capacity(per);
                for _ in 0..per {
                    let request = hyper::Request::post(&url)
                        .body(Full::new(Bytes::from_static(EVENT)))
                        .unwrap();
                    let start = Instant::now();
                    let response = client.request(request).await.expect("request");
                    assert_eq!(response.status(), 200);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    latency.push(start.elapsed());
                    assert!(!body.is_empty());
                }
                // The guest's own time of these invocations is not visible over HTTP; the
                // same function's direct invocations, interleaved, stand for it.
                let mut guest = Vec::new();
                for _ in 0..per.min(200) {
                    guest.push(f.invoke(EVENT).await.expect("invoke").stats.duration);
                }
                (latency, guest)
            })
        })
        .collect();
    collect(tasks).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, Vec<Duration>)>>) -> Figures {
    let mut figures = Figures {
        latency: Vec::new(),
        guest: Vec::new(),
    };
    for t in tasks {
        let (l, g) = t.await.expect("task");
        figures.latency.extend(l);
        figures.guest.extend(g);
    }
    figures
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let host = Host::new(HostConfig::default()).expect("host");
        let mut config = FunctionConfig::new("sandbox");
        config.memory_size_mb = 128;
        let function = host
            .load(&wasm::sandbox_component(), config)
            .await
            .expect("load the sandbox component");
        let spec = FunctionSpec {
            logical_id: "Sandbox".into(),
            function_name: None,
            memory_size_mb: 128,
            timeout: Duration::from_secs(30),
            variables: Default::default(),
            reserved_concurrency: None,
            component: None,
        };
        let mut functions = Functions::default();
        functions.push(Deployed {
            arn: "arn:aws:lambda:us-east-1:123456789012:function:Sandbox".into(),
            spec,
            function: function.clone(),
        });
        let api = Api::quiet(functions, "us-east-1");
        let listener = serve::bind("127.0.0.1", 0).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve::run(Arc::clone(&api), listener, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}/2015-03-31/functions/Sandbox/invocations");

        println!("emulator overhead: {REQUESTS} invocations of the sandbox echo per row");
        for clients in [1, 16] {
            // Warm the environments first.
            let _ = direct(&function, clients).await;
            direct(&function, clients)
                .await
                .print(&format!("Function::invoke, {clients:>2} client(s)"));
            http(&url, &function, clients)
                .await
                .print(&format!("Invoke API (HTTP), {clients:>2} client(s)"));
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}
