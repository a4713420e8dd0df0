//! The read benchmark: xstage (native, under the WASI host, through the emulator) beside
//! DuckDB, pyarrow and polars, on the same Parquet files (and one CSV file) in LocalStack, all
//! traffic through one counting proxy.
//!
//! Per query and path it prints requests (STS / HEAD / GET / LIST), response bytes, their
//! ratio to the query's physical minimum (`xstage_tests::minimum`; the files and queries are
//! `xstage_tests::bench_queries`) and the median wall time, and checks that every path got the same answer. Every run of every path assumes the role
//! with the ExternalId: the peers before each run, xstage whenever its warm environment holds
//! no credentials. Bytes and requests are stable; wall time on these machines is not, so
//! compare paths within one run. Results also go to `$XSTAGE_BENCH_OUT/results.json` for
//! `tests/peers/chart.py`.
//!
//! Usage: `scripts/bench` (release build, Python peers in their own venv). Environment:
//! `XSTAGE_BENCH_RUNS` (5), `XSTAGE_BENCH_PATHS` (all: native,wasi,emulator,duckdb,pyarrow,
//! polars), `XSTAGE_BENCH_QUERIES` (all: limit1,range,count,group,small,parts,csv_count,
//! csv_group),
//! `XSTAGE_BENCH_S3_LATENCY_MS` (0: every S3 request held this long in the proxy).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use xstage_host::Function;
use xstage_tests::bench_queries::{
    CSV_ROWS, PART_ROWS, PARTS, Query, RANGE, SMALL_ROWS, WIDE_ROWS, dataset,
};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Service, Traffic};
use xstage_tests::invoke::{agent, invoke, serve};
use xstage_tests::peers::Peers;
use xstage_tests::{localstack, run, seed, wasm};

const FUNCTION: &str = "xstage-bench";
const MEMORY_MB: u32 = 1024;

/// One path's runs of one query.
#[derive(Default)]
struct Measured {
    /// Traffic of every run.
    traffic: Vec<Traffic>,
    ms: Vec<f64>,
    /// The answer: row count, and the values of small answers.
    rows: Option<u64>,
    values: Option<Value>,
    error: Option<String>,
    /// Peak guest memory (the WASI path).
    peak_memory: Option<u64>,
}

impl Measured {
    fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn sts(&self) -> u64 {
        self.traffic.iter().map(|t| t.sts).sum()
    }

    /// The last run: a warm one for xstage.
    fn last(&self) -> Traffic {
        self.traffic.last().copied().unwrap_or_default()
    }

    fn answer(&mut self, rows: u64, values: Option<Value>) {
        self.rows = Some(rows);
        self.values = values;
    }
}

/// The answer in xstage's response: its row count, and its rows when there are few.
fn xstage_answer(response: &Value) -> (u64, Option<Value>) {
    let rows = response["rows"].as_array().map_or(0, Vec::len) as u64;
    let values = (rows <= 64).then(|| response["rows"].clone());
    (rows, values)
}

fn fail(m: &mut Measured, what: impl std::fmt::Display) {
    m.error.get_or_insert_with(|| what.to_string());
}

async fn native(proxy: &FaultProxy, q: &Query, runs: usize) -> Measured {
    let mut m = Measured::default();
    for _ in 0..runs {
        proxy.take_traffic();
        let start = Instant::now();
        let reply = run::native(q.event(proxy.url())).await;
        m.ms.push(start.elapsed().as_secs_f64() * 1000.0);
        m.traffic.push(proxy.take_traffic());
        match reply {
            Ok(v) => {
                let (rows, values) = xstage_answer(&v);
                m.answer(rows, values);
            }
            Err((kind, message)) => fail(&mut m, format!("{kind}: {message}")),
        }
    }
    m
}

/// Each query in a new environment, so its peak memory is its own.
async fn wasi(proxy: &FaultProxy, q: &Query, runs: usize) -> Measured {
    let mut m = Measured::default();
    let mut config = wasm::stage_query_config();
    config.memory_size_mb = MEMORY_MB;
    let function: Function = match wasm::host()
        .load(&wasm::stage_query_component(), config)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            fail(&mut m, format!("loading the component: {e:#}"));
            return m;
        }
    };
    for _ in 0..runs {
        proxy.take_traffic();
        let start = Instant::now();
        let (reply, stats) = run::wasi(&function, &q.event(proxy.url())).await;
        m.ms.push(start.elapsed().as_secs_f64() * 1000.0);
        m.traffic.push(proxy.take_traffic());
        m.peak_memory = Some(stats.peak_memory_bytes);
        match reply {
            Ok(v) => {
                let (rows, values) = xstage_answer(&v);
                m.answer(rows, values);
            }
            Err((kind, message)) => fail(&mut m, format!("{kind}: {message}")),
        }
    }
    m
}

fn emulator(server: &str, proxy: &FaultProxy, q: &Query, runs: usize) -> Measured {
    let mut m = Measured::default();
    let agent = agent(Duration::from_secs(300));
    let payload = serde_json::to_vec(&q.event(proxy.url())).unwrap();
    for _ in 0..runs {
        proxy.take_traffic();
        let start = Instant::now();
        let invoked = invoke(&agent, server, FUNCTION, &payload);
        m.ms.push(start.elapsed().as_secs_f64() * 1000.0);
        m.traffic.push(proxy.take_traffic());
        match invoked {
            Ok(i) if i.succeeded() => {
                let (rows, values) = xstage_answer(&i.json());
                m.answer(rows, values);
            }
            Ok(i) => fail(&mut m, format!("{}: {}", i.status, i.body)),
            Err(e) => fail(&mut m, format!("{e:#}")),
        }
    }
    m
}

/// One peer's runs of a query through the Python worker.
fn peer_run(peers: &mut Peers, tool: &str, proxy: &FaultProxy, q: &Query, runs: usize) -> Measured {
    let mut m = Measured::default();
    let request = json!({
        "tool": tool,
        "query": q.id,
        "endpoint": proxy.url(),
        "region": seed::REGION,
        "bucket": seed::BUCKET,
        "prefix": seed::PREFIX,
        "role_arn": seed::role_arn(),
        "external_id": seed::EXTERNAL_ID,
        "lo": RANGE.0,
        "hi": RANGE.1,
    });
    for _ in 0..runs {
        proxy.take_traffic();
        let answer = peers.call(&request);
        m.traffic.push(proxy.take_traffic());
        match answer {
            Ok(a) if a.get("error").is_none() => {
                m.ms.push(a["ms"].as_f64().unwrap_or(f64::NAN));
                let values = a.get("values").filter(|v| !v.is_null()).cloned();
                m.answer(a["rows"].as_u64().unwrap_or(0), values);
            }
            Ok(a) => fail(&mut m, a["error"].as_str().unwrap_or("?")),
            Err(e) => fail(&mut m, format!("{e:#}")),
        }
    }
    m
}

fn template(dir: &Path) -> Result<PathBuf> {
    let text = format!(
        r#"AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Bench:
    Type: AWS::Serverless::Function
    Metadata:
      XstageComponent: {component}
    Properties:
      FunctionName: {FUNCTION}
      MemorySize: {MEMORY_MB}
      Timeout: 300
      Environment:
        Variables:
          XSTAGE_ALLOWED_ROLE_ARNS: {allowed}
"#,
        component = wasm::stage_query_component().display(),
        allowed = seed::allowed_roles(),
    );
    let path = dir.join("template.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The paths' answers agree with the first path's, and with what the data holds.
fn check(q: &Query, results: &mut [(String, Measured)]) {
    let expected_rows = match q.id {
        "limit1" => Some(1),
        "range" => Some((RANGE.1 - RANGE.0 + 1) as u64),
        "small" => Some(SMALL_ROWS as u64),
        _ => None,
    };
    let expected_count = match q.id {
        "count" => Some(WIDE_ROWS as u64),
        "parts" => Some((PARTS * PART_ROWS) as u64),
        "csv_count" => Some(CSV_ROWS as u64),
        _ => None,
    };
    let reference = results
        .iter()
        .find(|(_, m)| m.error.is_none())
        .and_then(|(_, m)| m.values.clone());
    for (_, m) in results.iter_mut() {
        if m.error.is_some() {
            continue;
        }
        if let Some(rows) = expected_rows.filter(|&r| Some(r) != m.rows) {
            m.error = Some(format!("{:?} rows, expected {rows}", m.rows));
        } else if let Some(count) =
            expected_count.filter(|&c| m.values.as_ref().and_then(|v| v[0][0].as_u64()) != Some(c))
        {
            m.error = Some(format!("answered {:?}, expected {count}", m.values));
        } else if q.id.ends_with("group") && m.values != reference {
            m.error = Some(format!("answered {:?}, others {reference:?}", m.values));
        }
    }
}

/// Per query, in this one run: xstage's median time against the fastest peer's, and the WASI
/// host's and the emulator's against native.
fn print_ratios(queries: &[Query], report: &[Value]) {
    let median = |query: &str, path: &str| {
        report
            .iter()
            .find(|r| r["query"] == query && r["path"] == path && r["error"].is_null())
            .and_then(|r| r["median_ms"].as_f64())
    };
    println!(
        "\n| query | xstage native ms | fastest peer | its ms | native / peer | wasi / native | emulator / native |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    };
    for q in queries {
        let native = median(q.id, "native");
        let peer = ["duckdb", "pyarrow", "polars"]
            .into_iter()
            .filter_map(|p| Some((p, median(q.id, p)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            q.label,
            native.map_or("–".into(), |n| format!("{n:.0}")),
            peer.map_or("–", |p| p.0),
            peer.map_or("–".into(), |p| format!("{:.0}", p.1)),
            ratio(native, peer.map(|p| p.1)),
            ratio(median(q.id, "wasi"), native),
            ratio(median(q.id, "emulator"), native),
        );
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn main() -> Result<()> {
    seed::platform_identity();
    let runs: usize = std::env::var("XSTAGE_BENCH_RUNS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("XSTAGE_BENCH_RUNS")?
        .unwrap_or(5);
    let list = |var: &str, all: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| all.to_string())
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let paths = list(
        "XSTAGE_BENCH_PATHS",
        "native,wasi,emulator,duckdb,pyarrow,polars",
    );
    let only = list(
        "XSTAGE_BENCH_QUERIES",
        "limit1,range,count,group,small,parts,csv_count,csv_group",
    );
    let out =
        PathBuf::from(std::env::var("XSTAGE_BENCH_OUT").unwrap_or_else(|_| "bench-out".into()));
    std::fs::create_dir_all(&out)?;

    let runtime = xstage_tests::runtime();
    eprintln!("==> starting LocalStack ...");
    let endpoint = localstack::localstack().endpoint().to_string();
    eprintln!("==> writing the dataset ...");
    let t = Instant::now();
    let mut data = dataset()?;
    data.queries.retain(|q| only.iter().any(|o| o == q.id));
    eprintln!("    {:.1}s", t.elapsed().as_secs_f64());
    runtime.block_on(async {
        let admin = seed::seed(&endpoint, Bytes::from_static(b"PAR1")).await?;
        for (key, body) in &data.files {
            eprintln!("    uploading {key} ({})", mb(body.len() as u64));
            admin
                .put(
                    seed::BUCKET,
                    &format!("{}{key}", seed::PREFIX),
                    body.clone(),
                )
                .await?;
        }
        anyhow::Ok(())
    })?;
    let proxy = FaultProxy::start(&endpoint)?;
    // S3's first-byte latency, which LocalStack on loopback lacks: every S3 request held this
    // long in the proxy, concurrently.
    let latency: u64 = match std::env::var("XSTAGE_BENCH_S3_LATENCY_MS") {
        Ok(v) => v
            .parse()
            .context("XSTAGE_BENCH_S3_LATENCY_MS: milliseconds")?,
        Err(_) => 0,
    };
    if latency > 0 {
        eprintln!("==> holding every S3 request {latency} ms");
        proxy.inject(Service::S3, Fault::Stall(Duration::from_millis(latency)));
    }

    let server = if paths.iter().any(|p| p == "emulator") {
        let xstage = std::env::current_exe()?.with_file_name("xstage");
        eprintln!("==> starting {} serve ...", xstage.display());
        Some(serve(
            xstage.to_str().context("path")?,
            "xstage-serve-bench",
            &template(&out)?,
            proxy.url(),
        )?)
    } else {
        None
    };
    let python = std::env::var("XSTAGE_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut peers = if paths
        .iter()
        .any(|p| ["duckdb", "pyarrow", "polars"].contains(&p.as_str()))
    {
        Some(Peers::start(Path::new(&python), proxy.url())?)
    } else {
        None
    };
    let versions = match peers.as_mut() {
        Some(p) => p.call(&json!({"tool": "versions"}))?["versions"].clone(),
        None => Value::Null,
    };

    let mut report = Vec::new();
    println!(
        "| query | path | STS ({runs} runs) | HEAD | GET | LIST | bytes | × minimum | median ms | answer |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for q in &data.queries {
        let mut results: Vec<(String, Measured)> = Vec::new();
        for path in &paths {
            eprintln!("==> {} · {path}", q.id);
            let m = match path.as_str() {
                "native" => runtime.block_on(native(&proxy, q, runs)),
                "wasi" => runtime.block_on(wasi(&proxy, q, runs)),
                "emulator" => emulator(&server.as_ref().unwrap().1, &proxy, q, runs),
                tool => match peers.as_mut() {
                    Some(p) => peer_run(p, tool, &proxy, q, runs),
                    None => bail!("unknown path {tool}"),
                },
            };
            results.push((path.clone(), m));
        }
        check(q, &mut results);
        for (path, m) in &results {
            let t = m.last();
            println!(
                "| {} | {path} | {} | {} | {} | {} | {} | {:.2}× | {:.0} | {} |",
                q.label,
                m.sts(),
                t.head,
                t.get,
                t.list,
                t.bytes,
                t.bytes as f64 / q.minimum as f64,
                m.median_ms(),
                m.error.as_deref().map_or("ok".to_string(), |e| {
                    format!("**failed**: {}", e.chars().take(160).collect::<String>())
                })
            );
            report.push(json!({
                "query": q.id, "label": q.label, "path": path, "minimum": q.minimum,
                "sts": m.sts(), "head": t.head, "get": t.get, "list": t.list, "bytes": t.bytes,
                "first_run_bytes": m.traffic.first().map(|t| t.bytes),
                "median_ms": m.median_ms(), "ms": m.ms, "error": m.error,
                "peak_memory": m.peak_memory,
            }));
        }
        println!(
            "| {} | **physical minimum** | | | | | {} | 1.00× | | |",
            q.label, q.minimum
        );
    }
    print_ratios(&data.queries, &report);
    for (path, m) in report.iter().map(|r| (r["path"].clone(), r)) {
        if let (Some(peak), "group") =
            (m["peak_memory"].as_u64(), m["query"].as_str().unwrap_or(""))
        {
            println!("\npeak guest memory, GROUP BY, {path}: {}", mb(peak));
        }
    }
    let results = json!({
        "runs": runs,
        "versions": {
            "xstage": env!("CARGO_PKG_VERSION"),
            "peers": versions,
        },
        "results": report,
    });
    let file = out.join("results.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("==> wrote {}", file.display());
    drop(server);
    // The figures are written either way; a wrong or failed answer still fails the run.
    let failed: Vec<String> = report
        .iter()
        .filter(|r| !r["error"].is_null())
        .map(|r| {
            format!(
                "{} · {}",
                r["query"].as_str().unwrap_or("?"),
                r["path"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} answers failed or were wrong: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
