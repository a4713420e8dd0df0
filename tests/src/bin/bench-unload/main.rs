//! The write benchmark: `COPY INTO @stage` (xstage, natively) beside DuckDB's
//! `COPY (SELECT …) TO 's3://…'` on the same source in LocalStack, all traffic through one
//! counting proxy, in one invocation; then fanned out ([`fanout`]).
//!
//! Per format it prints the bytes each wrote (what S3 holds), the write requests (PutObject,
//! the multipart calls: the proxy's S3 requests other than GET and HEAD) and the median wall
//! time, and the ratio of xstage's bytes to DuckDB's; each run's whole traffic goes to stderr. Bytes and requests are stable; wall time is a release
//! build's only (`scripts/bench-unload`), and compares within one run.
//!
//! Environment: `XSTAGE_BENCH_RUNS` (3), `XSTAGE_BENCH_UNLOAD_ROWS` (1,000,000 people),
//! `XSTAGE_PEERS_PYTHON` (the peers venv's python), `XSTAGE_BENCH_OUT` (where the fan-out
//! part's template goes), `XSTAGE_BENCH_UNLOAD_FANOUT` (1: run the fan-out part), and
//! [`fanout`]'s.

mod fanout;

/// The runtime every AWS client of the benchmark lives on.
pub(crate) static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
    std::sync::LazyLock::new(xstage_tests::runtime);

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use parquet::basic::Compression;
use serde_json::Value;
use xstage_tests::fault_proxy::FaultProxy;
use xstage_tests::peers::{self, Peers};
use xstage_tests::{fixtures, localstack, run, seed};

const SOURCE: &str = "bench-unload/people.parquet";

/// A format as each tool spells it: xstage's FILE_FORMAT, DuckDB's COPY options, and the
/// extension DuckDB's one file gets.
const CASES: [(&str, &str, &str, &str); 3] = [
    (
        "parquet zstd",
        "TYPE = PARQUET COMPRESSION = ZSTD",
        "FORMAT PARQUET, COMPRESSION ZSTD",
        "parquet",
    ),
    (
        "csv",
        "TYPE = CSV OUTPUT_HEADER = TRUE",
        "FORMAT CSV, HEADER true",
        "csv",
    ),
    (
        "csv gzip",
        "TYPE = CSV COMPRESSION = GZIP OUTPUT_HEADER = TRUE",
        "FORMAT CSV, HEADER true, COMPRESSION gzip",
        "csv.gz",
    ),
];

#[derive(Default)]
pub(crate) struct Measured {
    bytes: u64,
    requests: u64,
    ms: Vec<f64>,
    /// The most resident memory one run added ([`xstage_tests::rss`]).
    pub(crate) peak_mb: Option<f64>,
}

impl Measured {
    fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub(crate) fn peak(&mut self, mb: Option<f64>) {
        self.peak_mb = match (self.peak_mb, mb) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

pub(crate) fn env_number(name: &str, default: usize) -> Result<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse())
        .transpose()
        .with_context(|| name.to_string())
        .map(|v| v.unwrap_or(default))
}

fn main() -> Result<()> {
    seed::platform_identity();
    seed::allow_writes();
    let runs = env_number("XSTAGE_BENCH_RUNS", 3)?;
    let rows = env_number("XSTAGE_BENCH_UNLOAD_ROWS", 1_000_000)?;
    let python = std::env::var("XSTAGE_PEERS_PYTHON").context("XSTAGE_PEERS_PYTHON")?;
    let runtime = &*RUNTIME;
    eprintln!("==> starting LocalStack ...");
    let endpoint = localstack::localstack().endpoint().to_string();
    let source = fixtures::write_parquet(
        &[fixtures::people_batch(&fixtures::people(rows))],
        Compression::SNAPPY,
        100_000,
    );
    eprintln!("==> {rows} people, {} bytes of Parquet", source.len());
    let admin = runtime.block_on(async {
        let admin = seed::seed(&endpoint, Bytes::from_static(b"PAR1")).await?;
        admin
            .put(seed::BUCKET, &format!("{}{SOURCE}", seed::PREFIX), source)
            .await?;
        anyhow::Ok(admin)
    })?;
    let proxy = FaultProxy::start(&endpoint)?;
    let mut peers = Peers::start(Path::new(&python), proxy.url())?;
    let written = |dir: &str| written(&admin, dir);

    println!("| format | path | bytes written | write requests | median ms | peak MB added |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    for (case, xstage_format, duck_format, ext) in CASES {
        let slug = case.replace(' ', "-");
        let mut xstage = Measured::default();
        let mut duck = Measured::default();
        for i in 0..runs {
            let dir = format!("bench-unload/out/xstage/{slug}/{i}/");
            let sql = format!(
                "COPY INTO @databend_test/{dir} FROM (SELECT * FROM @databend_test/{SOURCE}) \
                 FILE_FORMAT = ({xstage_format})"
            );
            let event = seed::seed_event(proxy.url(), &sql);
            proxy.take_traffic();
            let mark = xstage_tests::rss::mark();
            let t = Instant::now();
            let answer = match runtime.block_on(run::native(event)) {
                Ok(a) => a,
                Err(e) => bail!("xstage {case}: {e:?}"),
            };
            xstage.ms.push(t.elapsed().as_secs_f64() * 1000.0);
            xstage.peak(mark.and_then(|m| m.peak_added_mb()));
            let traffic = proxy.take_traffic();
            eprintln!("    xstage {case}, run {i}: {traffic:?}");
            // The manifest is xstage's own addition: its one PutObject is not counted.
            xstage.requests = traffic.other - 1;
            xstage.bytes = written(&dir)?;
            if answer["rows"][0][2].as_u64() != Some(xstage.bytes) {
                bail!("xstage {case}: the answer's output_bytes is not what S3 holds: {answer}");
            }

            let dir = format!("bench-unload/out/duckdb/{slug}/{i}/");
            let sql = format!(
                "COPY (SELECT * FROM read_parquet('s3://{b}/{p}{SOURCE}')) TO 's3://{b}/{p}{dir}out.{ext}' ({duck_format})",
                b = seed::BUCKET,
                p = seed::PREFIX
            );
            let request = peers::duckdb_sql(&sql, proxy.url());
            proxy.take_traffic();
            let answer: Value = peers.call(&request)?;
            if let Some(e) = answer.get("error") {
                bail!("DuckDB {case}: {e}");
            }
            duck.ms.push(answer["ms"].as_f64().unwrap_or(f64::NAN));
            duck.peak(answer["peak_added_mb"].as_f64());
            let traffic = proxy.take_traffic();
            eprintln!("    DuckDB {case}, run {i}: {traffic:?}");
            duck.requests = traffic.other;
            duck.bytes = written(&dir)?;
        }
        for (path, m) in [("xstage", &xstage), ("DuckDB", &duck)] {
            println!(
                "| {case} | {path} | {} | {} | {:.0} | {} |",
                m.bytes,
                m.requests,
                m.median_ms(),
                m.peak_mb.map_or("".into(), |p| format!("{p:.0}"))
            );
        }
        ratios.push((case, xstage.bytes as f64 / duck.bytes as f64));
    }
    println!();
    for (case, ratio) in ratios {
        println!("{case}: xstage writes {ratio:.3}x DuckDB's bytes (target: at most 1.05x)");
    }
    drop(peers);
    if env_number("XSTAGE_BENCH_UNLOAD_FANOUT", 1)? == 1 {
        let out = std::path::PathBuf::from(
            std::env::var("XSTAGE_BENCH_OUT").unwrap_or_else(|_| "bench-out".into()),
        );
        std::fs::create_dir_all(&out)?;
        fanout::run(&endpoint, &admin, &python, runs.min(2), &out)?;
    }
    Ok(())
}

/// The bytes of the data files under `dir` (stage-relative), manifests left out.
pub(crate) fn written(admin: &seed::Admin, dir: &str) -> Result<u64> {
    let all = RUNTIME.block_on(admin.list(seed::BUCKET, &format!("{}{dir}", seed::PREFIX)))?;
    Ok(all
        .iter()
        .filter(|(key, _)| !key.contains("_xstage_manifest_"))
        .map(|(_, (size, _))| size)
        .sum())
}
