//! The benchmarks' peers (DuckDB, pyarrow, polars): `tests/peers/peers.py` as a child
//! process taking one JSON request per line and answering one JSON line, shared by
//! `bench` and `bench-fanout`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::seed;

/// The running Python worker; killed when dropped.
pub struct Peers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peers {
    /// Starts the worker with `python`; pyarrow's AWS SDK for C++ finds STS at
    /// `sts_endpoint` (the others are given the endpoint in each request).
    pub fn start(python: &Path, sts_endpoint: &str) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/peers.py");
        let mut child = Command::new(python)
            .arg(&script)
            .env("AWS_ENDPOINT_URL_STS", sts_endpoint)
            .env("AWS_REGION", seed::REGION)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// One request, its answer.
    pub fn call(&mut self, request: &Value) -> Result<Value> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the Python worker exited");
        }
        Ok(serde_json::from_str(&line)?)
    }
}

/// The request that has DuckDB run `sql` with the seed's role, S3 at `endpoint`.
pub fn duckdb_sql(sql: &str, endpoint: &str) -> Value {
    serde_json::json!({
        "tool": "duckdb", "query": "sql", "sql": sql, "endpoint": endpoint,
        "region": seed::REGION, "bucket": seed::BUCKET, "prefix": seed::PREFIX,
        "role_arn": seed::role_arn(), "external_id": seed::EXTERNAL_ID,
    })
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
