//! Runs the native function, the `xstage-query` command, as a child process with exactly the
//! environment a test gives it (nothing inherited but `PATH`), the way Lambda starts a
//! function with its configuration. Each run is a fresh process: a fresh credential cache.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct QueryRun {
    /// 0 success, 1 function error, 2 misuse.
    pub code: Option<i32>,
    /// The response, or `{"errorType", "errorMessage"}`.
    pub body: Value,
    pub stderr: String,
}

impl QueryRun {
    /// `errorType`, or `""` on success.
    pub fn error_type(&self) -> &str {
        self.body["errorType"].as_str().unwrap_or_default()
    }

    pub fn error_message(&self) -> &str {
        self.body["errorMessage"].as_str().unwrap_or_default()
    }

    /// Asserts a function error (exit 1) of `error_type` whose message has every needle.
    #[track_caller]
    pub fn assert_error(&self, error_type: &str, needles: &[&str]) {
        assert_eq!(self.code, Some(1), "{self:?}");
        assert_eq!(self.error_type(), error_type, "{}", self.body);
        for needle in needles {
            assert!(
                self.error_message().contains(needle),
                "{needle:?} not in: {}",
                self.error_message()
            );
        }
    }
}

/// Runs `program` (the `xstage-query` executable) on `event` with `env`.
pub fn run(program: &Path, env: &[(&str, String)], event: &Value) -> QueryRun {
    let mut command = Command::new(program);
    command
        .arg("-")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // No profile files, no instance metadata: only what the test gives.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start xstage-query");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(event.to_string().as_bytes())
        .expect("write the event");
    let out = child.wait_with_output().expect("xstage-query output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let body = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "xstage-query printed no JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    QueryRun {
        code: out.status.code(),
        body,
        stderr,
    }
}
