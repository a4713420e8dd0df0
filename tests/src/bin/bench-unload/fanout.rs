//! The write benchmark's fan-out part: TPC-H `lineitem` (Parquet in LocalStack) unloaded as
//! zstd Parquet by `xstage serve` with N = 1, 2, 4, 8 writers (the coordinator and every
//! worker WASI invocations of the stage query component), by one native invocation (the
//! handler Lambda's bootstrap runs), and by DuckDB alone, all through
//! one proxy that models Lambda's network as `bench-fanout` does: S3's first-byte latency on
//! every request, and a bandwidth cap per execution environment (per assumed-role
//! credentials), here in each direction.
//!
//! Environment: `XSTAGE_BENCH_UNLOAD_SCALE` (1), `XSTAGE_BENCH_UNLOAD_PARTS` (8),
//! `XSTAGE_BENCH_UNLOAD_WORKERS` (1,2,4,8), `XSTAGE_FANOUT_MBPS` (8),
//! `XSTAGE_FANOUT_LATENCY_MS` (20), `XSTAGE_BENCH_RUNS` (after one warm-up run).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Service};
use xstage_tests::invoke::{agent, fan_out_write_template, invoke, serve};
use xstage_tests::peers::{self, Peers};
use xstage_tests::seed::{self, Admin};
use xstage_tests::tpch;

use super::{Measured, RUNTIME, env_number, written};

/// One configuration's figures.
struct Row {
    path: String,
    n: u64,
    workers: u64,
    /// Its peak memory is the coordinator's `REPORT` for `xstage serve`, the resident memory
    /// a run added for the others.
    m: Measured,
}

pub fn run(endpoint: &str, admin: &Admin, python: &str, runs: usize, out: &Path) -> Result<()> {
    let scale: f64 = std::env::var("XSTAGE_BENCH_UNLOAD_SCALE")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("XSTAGE_BENCH_UNLOAD_SCALE")?
        .unwrap_or(1.0);
    let parts = env_number("XSTAGE_BENCH_UNLOAD_PARTS", 8)? as i32;
    let mbps = env_number("XSTAGE_FANOUT_MBPS", 8)? as u64;
    let latency = env_number("XSTAGE_FANOUT_LATENCY_MS", 20)? as u64;
    let workers: Vec<u64> = std::env::var("XSTAGE_BENCH_UNLOAD_WORKERS")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .map(|n| n.trim().parse().context("XSTAGE_BENCH_UNLOAD_WORKERS"))
        .collect::<Result<_>>()?;
    let runtime = &*RUNTIME;
    eprintln!("==> lineitem at scale {scale} in {parts} files ...");
    let files = tpch::cached_lineitem(scale, parts, 122_880)?;
    let source: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    runtime.block_on(async {
        for (name, body) in &files {
            let key = format!("{}lineitem/{name}", seed::PREFIX);
            admin.put(seed::BUCKET, &key, body.clone()).await?;
        }
        anyhow::Ok(())
    })?;
    drop(files);
    let proxy = FaultProxy::start(endpoint)?;
    proxy.inject(Service::S3, Fault::Stall(Duration::from_millis(latency)));
    proxy.limit_bandwidth(mbps * 1_000_000);
    eprintln!(
        "==> S3 through the proxy: {latency} ms first byte, {mbps} MB/s each way per environment"
    );
    let xstage_bin = std::env::current_exe()?.with_file_name("xstage");
    let (server, url) = serve(
        xstage_bin.to_str().context("path")?,
        "xstage-serve-unload",
        &fan_out_write_template(out, 900, None)?,
        proxy.url(),
    )?;
    let agent = agent(Duration::from_secs(1800));
    let mut rows = Vec::new();
    for &n in &workers {
        eprintln!("==> xstage · N = {n}");
        let mut m = Measured::default();
        let mut count = 0;
        for run in 0..=runs {
            let dir = format!("bench-unload/fan/{n}/{run}/");
            let sql = format!(
                "COPY INTO @databend_test/{dir} FROM (SELECT * FROM @databend_test/lineitem/) \
                 FILE_FORMAT = (TYPE = PARQUET)"
            );
            let mut event = seed::seed_event(proxy.url(), &sql);
            event["options"] = json!({"fan_out": {"max_workers": n, "bytes_per_worker": 65536}});
            proxy.take_traffic();
            let t = Instant::now();
            let answer = invoke(&agent, &url, "StageQuery", event.to_string().as_bytes())?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let traffic = proxy.take_traffic();
            if !answer.succeeded() {
                bail!("xstage N={n}: {} {}", answer.status, answer.body);
            }
            // The first run starts the environments; it is not counted.
            if run == 0 {
                continue;
            }
            let body: Value = answer.json();
            m.ms.push(ms);
            m.requests = traffic.other - 1;
            m.bytes = written(admin, &dir)?;
            count = body["stats"]["workers"].as_u64().unwrap_or(1);
            m.peak(answer.max_memory_mb().map(|mb| mb as f64));
        }
        rows.push(Row {
            path: "xstage".into(),
            n,
            workers: count,
            m,
        });
    }
    // One invocation as Lambda runs it: the native handler (the bootstrap's), in this
    // process, through the same proxy (its credentials get their own link).
    eprintln!("==> xstage natively, one invocation");
    let mut native = Measured::default();
    for run in 0..=runs {
        let dir = format!("bench-unload/fan/native/{run}/");
        let sql = format!(
            "COPY INTO @databend_test/{dir} FROM (SELECT * FROM @databend_test/lineitem/) \
             FILE_FORMAT = (TYPE = PARQUET)"
        );
        let event = seed::seed_event(proxy.url(), &sql);
        proxy.take_traffic();
        let mark = xstage_tests::rss::mark();
        let t = Instant::now();
        if let Err(e) = runtime.block_on(xstage_tests::run::native(event)) {
            bail!("xstage natively: {e:?}");
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let traffic = proxy.take_traffic();
        if run == 0 {
            continue;
        }
        native.ms.push(ms);
        native.peak(mark.and_then(|m| m.peak_added_mb()));
        native.requests = traffic.other - 1;
        native.bytes = written(admin, &dir)?;
    }
    rows.push(Row {
        path: "xstage native".into(),
        n: 1,
        workers: 1,
        m: native,
    });
    eprintln!("==> DuckDB");
    let mut peers = Peers::start(Path::new(python), proxy.url())?;
    let mut duck = Measured::default();
    for run in 0..=runs {
        let dir = format!("bench-unload/fan/duckdb/{run}/");
        let sql = format!(
            "COPY (SELECT * FROM read_parquet('s3://{b}/{p}lineitem/*.parquet')) TO \
             's3://{b}/{p}{dir}out.parquet' (FORMAT PARQUET, COMPRESSION ZSTD)",
            b = seed::BUCKET,
            p = seed::PREFIX
        );
        let request = peers::duckdb_sql(&sql, proxy.url());
        proxy.take_traffic();
        let answer: Value = peers.call(&request)?;
        let traffic = proxy.take_traffic();
        if let Some(e) = answer.get("error") {
            bail!("DuckDB: {e}");
        }
        if run == 0 {
            continue;
        }
        duck.ms.push(answer["ms"].as_f64().unwrap_or(f64::NAN));
        duck.peak(answer["peak_added_mb"].as_f64());
        duck.requests = traffic.other;
        duck.bytes = written(admin, &dir)?;
    }
    rows.push(Row {
        path: "DuckDB".into(),
        n: 1,
        workers: 1,
        m: duck,
    });
    drop(server);
    report(&rows, source, scale);
    Ok(())
}

fn report(rows: &[Row], source: u64, scale: f64) {
    println!();
    println!("lineitem at scale {scale}: {source} bytes of Parquet, unloaded as zstd Parquet");
    println!();
    println!(
        "| path | N | writers | median s | bytes written | write requests | peak MB | time / N=1 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let one = rows
        .iter()
        .find(|r| r.path == "xstage" && r.n == 1)
        .map(|r| r.m.median_ms());
    for r in rows {
        let s = r.m.median_ms() / 1000.0;
        println!(
            "| {} | {} | {} | {s:.2} | {} | {} | {} | {} |",
            r.path,
            r.n,
            r.workers,
            r.m.bytes,
            r.m.requests,
            r.m.peak_mb.map_or("".into(), |p| format!("{p:.0}")),
            one.map_or("".into(), |t| format!("{:.2}", r.m.median_ms() / t)),
        );
    }
    let find = |path: &str, n: u64| rows.iter().find(|r| r.path == path && r.n == n);
    println!();
    if let (Some(one), Some(duck)) = (find("xstage", 1), find("DuckDB", 1)) {
        println!(
            "N=1 takes {:.2} of DuckDB's time (target ≤ 1.00); writes {:.3}x its bytes (target ≤ 1.05)",
            one.m.median_ms() / duck.m.median_ms(),
            one.m.bytes as f64 / duck.m.bytes as f64
        );
    }
    if let (Some(native), Some(duck)) = (find("xstage native", 1), find("DuckDB", 1)) {
        println!(
            "natively, one invocation takes {:.2} of DuckDB's time",
            native.m.median_ms() / duck.m.median_ms()
        );
    }
    if let (Some(one), Some(eight)) = (find("xstage", 1), find("xstage", 8)) {
        println!(
            "N=8 takes {:.2} of N=1's time (target ≤ 0.25)",
            eight.m.median_ms() / one.m.median_ms()
        );
    }
}
