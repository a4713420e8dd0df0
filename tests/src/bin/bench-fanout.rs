//! The fan-out benchmark: TPC-H Q1 and Q6 over `lineitem` (at least 1 GB of Parquet) in
//! LocalStack, through `xstage serve` with N = 1, 2, 4, 8 and 16 workers, and through DuckDB
//! alone, all traffic through one proxy that models Lambda's network: S3's first-byte latency
//! on every request, and a bandwidth cap per execution environment (per assumed-role
//! credentials: each environment assumes the role itself).
//!
//! Per query and N it prints the median wall time, the S3 bytes and GETs, the aggregate rate,
//! the time against N = 1 and the bytes against N = 1; then DuckDB's; then the targets. The
//! results go to `$XSTAGE_BENCH_OUT/fanout.json`, and `tests/peers/chart_fanout.py` draws
//! time against N.
//!
//! Usage: `scripts/bench-fanout` (release build). Environment: `XSTAGE_FANOUT_SCALE` (TPC-H
//! scale factor, 6), `XSTAGE_FANOUT_PARTS` (files, 32), `XSTAGE_FANOUT_MBPS` (MB/s per
//! environment, 8), `XSTAGE_FANOUT_LATENCY_MS` (20), `XSTAGE_FANOUT_RUNS` (2, after one
//! warm-up run), `XSTAGE_FANOUT_WORKERS` (1,2,4,8,16), `XSTAGE_FANOUT_DUCKDB` (1: run DuckDB).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{Value, json};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Service};
use xstage_tests::invoke::{agent, fan_out_template, invoke, serve};
use xstage_tests::peers::{self, Peers};
use xstage_tests::{localstack, seed, tpch};

const FUNCTION: &str = "StageQuery";
const TABLE: &str = "@databend_test/lineitem/";

fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().ok().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// One configuration's runs.
#[derive(Default)]
struct Measured {
    ms: Vec<f64>,
    bytes: u64,
    gets: u64,
    workers: u64,
    sts: u64,
    rows: Option<Value>,
    error: Option<String>,
}

impl Measured {
    fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

fn xstage(server: &str, proxy: &FaultProxy, sql: &str, n: u64, runs: usize) -> Measured {
    let mut m = Measured::default();
    let agent = agent(Duration::from_secs(1800));
    let mut event = seed::seed_event(proxy.url(), sql);
    event["options"] = json!({"fan_out": {"max_workers": n, "bytes_per_worker": 65536}});
    let payload = serde_json::to_vec(&event).expect("event");
    // The first run starts the environments (and their AssumeRole); it is not timed.
    for run in 0..=runs {
        proxy.take_traffic();
        let started = Instant::now();
        let answer = invoke(&agent, server, FUNCTION, &payload);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let traffic = proxy.take_traffic();
        match answer {
            Ok(a) if a.succeeded() => {
                let body = a.json();
                if run > 0 {
                    m.ms.push(ms);
                    m.bytes = traffic.bytes;
                    m.gets = traffic.get;
                    m.workers = body["stats"]["workers"].as_u64().unwrap_or(1);
                }
                m.sts += body["stats"]["sts_calls"].as_u64().unwrap_or(0);
                m.rows = Some(body["rows"].clone());
            }
            Ok(a) => {
                m.error = Some(format!(
                    "{}: {}",
                    a.status,
                    a.body.chars().take(300).collect::<String>()
                ));
                break;
            }
            Err(e) => {
                m.error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    m
}

/// DuckDB's runs of `sql` through `tests/peers/peers.py`.
fn duckdb_runs(peers: &mut Peers, proxy: &FaultProxy, sql: &str, runs: usize) -> Measured {
    let mut m = Measured::default();
    let request = peers::duckdb_sql(sql, proxy.url());
    for _ in 0..runs {
        proxy.take_traffic();
        let answer = peers.call(&request);
        let traffic = proxy.take_traffic();
        match answer {
            Ok(a) if a.get("error").is_none() => {
                m.ms.push(a["ms"].as_f64().unwrap_or(f64::NAN));
                m.bytes = traffic.bytes;
                m.gets = traffic.get;
                m.workers = 1;
                m.rows = a.get("values").cloned();
            }
            Ok(a) => {
                m.error = Some(a["error"].to_string());
                break;
            }
            Err(e) => {
                m.error = Some(format!("{e:#}"));
                break;
            }
        }
    }
    m
}

fn main() -> Result<()> {
    seed::platform_identity();
    let scale: f64 = var("XSTAGE_FANOUT_SCALE", 6.0)?;
    let parts: i32 = var("XSTAGE_FANOUT_PARTS", 32)?;
    let mbps: f64 = var("XSTAGE_FANOUT_MBPS", 8.0)?;
    let latency: u64 = var("XSTAGE_FANOUT_LATENCY_MS", 20)?;
    let runs: usize = var("XSTAGE_FANOUT_RUNS", 2)?;
    let duckdb: u8 = var("XSTAGE_FANOUT_DUCKDB", 1)?;
    let workers: Vec<u64> = std::env::var("XSTAGE_FANOUT_WORKERS")
        .unwrap_or_else(|_| "1,2,4,8,16".into())
        .split(',')
        .map(|n| n.trim().parse().context("XSTAGE_FANOUT_WORKERS"))
        .collect::<Result<_>>()?;
    let out =
        PathBuf::from(std::env::var("XSTAGE_BENCH_OUT").unwrap_or_else(|_| "bench-out".into()));
    std::fs::create_dir_all(&out)?;

    eprintln!("==> lineitem at scale {scale} in {parts} files ...");
    let t = Instant::now();
    let files = tpch::cached_lineitem(scale, parts, 122_880)?;
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    eprintln!(
        "    {:.2} GB in {:.1}s",
        total as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );
    eprintln!("==> starting LocalStack and uploading ...");
    let endpoint = localstack::localstack().endpoint().to_string();
    let runtime = xstage_tests::runtime();
    runtime.block_on(async {
        let admin = seed::seed(&endpoint, Bytes::from_static(b"PAR1")).await?;
        for (name, body) in &files {
            let key = format!("{}lineitem/{name}", seed::PREFIX);
            admin.put(seed::BUCKET, &key, body.clone()).await?;
        }
        anyhow::Ok(())
    })?;
    drop(files);

    let proxy = FaultProxy::start(&endpoint)?;
    proxy.inject(Service::S3, Fault::Stall(Duration::from_millis(latency)));
    proxy.limit_bandwidth((mbps * 1e6) as u64);
    eprintln!("==> S3 through the proxy: {latency} ms first byte, {mbps} MB/s per environment");
    let xstage_bin = std::env::current_exe()?.with_file_name("xstage");
    let (server, url) = serve(
        xstage_bin.to_str().context("path")?,
        "xstage-serve-fanout",
        &fan_out_template(&out, 900, None)?,
        proxy.url(),
    )?;

    let queries = [("Q1", tpch::q1(TABLE)), ("Q6", tpch::q6(TABLE))];
    let mut report = Vec::new();
    println!(
        "| query | path | N | median s | S3 bytes | GETs | aggregate MB/s | time / N=1 | bytes / N=1 |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (id, sql) in &queries {
        let mut base: Option<(f64, u64)> = None;
        let mut first_rows: Option<Value> = None;
        for &n in &workers {
            eprintln!("==> {id} · xstage · N = {n}");
            let m = xstage(&url, &proxy, sql, n, runs);
            if let Some(e) = &m.error {
                println!("| {id} | xstage | {n} | failed: {e} | | | | | |");
                report.push(json!({"query": id, "path": "xstage", "n": n, "error": e}));
                continue;
            }
            let s = m.median_ms() / 1000.0;
            let (t1, b1) = *base.get_or_insert((s, m.bytes));
            let same = match &first_rows {
                None => {
                    first_rows = m.rows.clone();
                    true
                }
                Some(r) => Some(r) == m.rows.as_ref(),
            };
            println!(
                "| {id} | xstage | {n} ({} workers) | {s:.2} | {} | {} | {:.1} | {:.2} | {:.3}{} |",
                m.workers,
                m.bytes,
                m.gets,
                m.bytes as f64 / 1e6 / s,
                s / t1,
                m.bytes as f64 / b1 as f64,
                if same { "" } else { " **answer differs**" }
            );
            report.push(json!({
                "query": id, "path": "xstage", "n": n, "workers": m.workers, "median_s": s,
                "runs_ms": m.ms, "bytes": m.bytes, "gets": m.gets, "sts_calls": m.sts,
                "same_answer": same,
            }));
        }
        if duckdb == 1 {
            eprintln!("==> {id} · DuckDB");
            let python = std::env::var("XSTAGE_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
            let mut peers = Peers::start(Path::new(&python), proxy.url())?;
            let m = duckdb_runs(&mut peers, &proxy, &sql.replace(TABLE, "{lineitem}"), runs);
            match &m.error {
                Some(e) => println!("| {id} | DuckDB | 1 | failed: {e} | | | | | |"),
                None => {
                    let s = m.median_ms() / 1000.0;
                    println!(
                        "| {id} | DuckDB | 1 | {s:.2} | {} | {} | {:.1} | | |",
                        m.bytes,
                        m.gets,
                        m.bytes as f64 / 1e6 / s
                    );
                    report.push(json!({
                        "query": id, "path": "duckdb", "n": 1, "median_s": s, "runs_ms": m.ms,
                        "bytes": m.bytes, "gets": m.gets,
                    }));
                }
            }
        }
    }
    targets(&report);
    let results = json!({
        "scale": scale, "parts": parts, "parquet_bytes": total, "mbps_per_environment": mbps,
        "latency_ms": latency, "runs": runs, "results": report,
    });
    let file = out.join("fanout.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("==> wrote {}", file.display());
    drop(server);
    Ok(())
}

/// The targets, from this run's figures.
fn targets(report: &[Value]) {
    let find = |q: &str, path: &str, n: u64| {
        report.iter().find(|r| {
            r["query"] == q && r["path"] == path && r["n"] == n && r.get("error").is_none()
        })
    };
    println!();
    for q in ["Q1", "Q6"] {
        let (Some(one), Some(eight)) = (find(q, "xstage", 1), find(q, "xstage", 8)) else {
            continue;
        };
        let t = |r: &Value| r["median_s"].as_f64().unwrap_or(f64::NAN);
        let b = |r: &Value| r["bytes"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{q}: N=8 takes {:.2} of N=1's time (target ≤ 0.20)",
            t(eight) / t(one)
        );
        let worst = report
            .iter()
            .filter(|r| r["query"] == q && r["path"] == "xstage" && r.get("error").is_none())
            .map(|r| b(r) / b(one))
            .fold(0.0f64, f64::max);
        println!("{q}: bytes at every N within {worst:.3}× of N=1 (target ≤ 1.10)");
        if let Some(duck) = find(q, "duckdb", 1) {
            println!(
                "{q}: xstage at N=8 is {:.1}× faster than DuckDB (target ≥ 3)",
                t(duck) / t(eight)
            );
        }
    }
}
