//! `xstage serve` for tests: started on a free port with a template ([`serve`]), and called
//! through a minimal Lambda Invoke API client (`POST /2015-03-31/functions/{name}/invocations`):
//! blocking, one agent per caller, no proxy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;

use crate::process::{ServerCommand, ServerProcess, free_port, http_get, wait_ready};
use crate::seed;

/// Starts `xstage serve` (the binary at `xstage`) on a free loopback port with `template`,
/// the AWS endpoint `endpoint`, and waits until it answers (compiling the components on a
/// cold cache takes minutes). Returns the process and its base URL.
pub fn serve(
    xstage: &str,
    name: &str,
    template: &Path,
    endpoint: &str,
) -> Result<(ServerProcess, String)> {
    let port = free_port()?;
    let command = ServerCommand::new(name, xstage)
        .args(["serve", "--port", &port.to_string(), "--template"])
        .args([template])
        .env("AWS_REGION", seed::REGION)
        .env("AWS_ENDPOINT_URL", endpoint);
    let process = ServerProcess::spawn(&command)?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(
        "xstage serve",
        Duration::from_secs(600),
        Some(&process),
        Some(process.log_file()),
        || http_get(&format!("{url}/")).map(|_| ()),
    )?;
    Ok((process, url))
}

/// One invocation's answer as the Invoke API gave it.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub status: u16,
    /// `X-Amz-Function-Error`, set when the function failed.
    pub function_error: Option<String>,
    /// `x-amzn-ErrorType`, set when the Invoke API itself refused (e.g. 429's
    /// `TooManyRequestsException`).
    pub error_type: Option<String>,
    pub body: String,
    pub elapsed: Duration,
    /// The log's tail (`X-Amz-Log-Result`, decoded): the guest's last lines and the host's
    /// `REPORT` line.
    pub log_tail: String,
}

impl Invoked {
    /// The invocation's peak memory, from its `REPORT` line's `Max Memory Used: N MB`.
    pub fn max_memory_mb(&self) -> Option<u64> {
        let after = self.log_tail.rsplit("Max Memory Used: ").next()?;
        after.split_whitespace().next()?.parse().ok()
    }

    /// A 200 without a function error.
    pub fn succeeded(&self) -> bool {
        self.status == 200 && self.function_error.is_none()
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// Writes `dir/template.yaml`: the stage query component as `StageQuery`, allowed the seed's
/// roles, fanning out to itself (`XSTAGE_FAN_OUT_FUNCTION`), with `timeout_s` and, if given, a
/// `ReservedConcurrentExecutions`.
pub fn fan_out_template(dir: &Path, timeout_s: u32, reserved: Option<u32>) -> Result<PathBuf> {
    let reserved = reserved
        .map(|n| format!("      ReservedConcurrentExecutions: {n}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  StageQuery:
    Type: AWS::Serverless::Function
    Metadata:
      XstageComponent: {query}
    Properties:
      Handler: bootstrap
      Runtime: provided.al2023
      MemorySize: 1024
      Timeout: {timeout_s}
{reserved}      Environment:
        Variables:
          XSTAGE_ALLOWED_ROLE_ARNS: {allowed}
          XSTAGE_FAN_OUT_FUNCTION: StageQuery
"#,
        query = crate::components::stage_query_component().display(),
        allowed = seed::allowed_roles(),
    );
    let path = dir.join("template.yaml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// [`fan_out_template`] whose function also allows `COPY INTO` (`XSTAGE_ALLOW_WRITES`).
pub fn fan_out_write_template(
    dir: &Path,
    timeout_s: u32,
    reserved: Option<u32>,
) -> Result<PathBuf> {
    let path = fan_out_template(dir, timeout_s, reserved)?;
    let text = std::fs::read_to_string(&path)?.replace(
        "XSTAGE_FAN_OUT_FUNCTION: StageQuery",
        "XSTAGE_FAN_OUT_FUNCTION: StageQuery\n          XSTAGE_ALLOW_WRITES: 'true'",
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// An agent for `invoke`: no proxy, statuses as values, `timeout` per request.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Invokes `function` at the emulator `url` with `payload` (RequestResponse).
pub fn invoke(agent: &ureq::Agent, url: &str, function: &str, payload: &[u8]) -> Result<Invoked> {
    let target = format!("{url}/2015-03-31/functions/{function}/invocations");
    let started = Instant::now();
    let mut response = agent
        .post(&target)
        .header("X-Amz-Log-Type", "Tail")
        .send(payload)
        .with_context(|| format!("POST {target}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let function_error = header("x-amz-function-error");
    let error_type = header("x-amzn-errortype");
    let log_tail = header("x-amz-log-result")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let body = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .with_context(|| format!("reading the answer of {target}"))?;
    Ok(Invoked {
        status,
        function_error,
        error_type,
        body,
        elapsed: started.elapsed(),
        log_tail,
    })
}

/// A streamed invocation's answer: the `PayloadChunk` payloads joined, how many there were,
/// and the `InvokeComplete` event's JSON (`{}` when it carried no error).
#[derive(Debug, Clone)]
pub struct Streamed {
    pub body: Vec<u8>,
    pub chunks: usize,
    pub complete: Option<serde_json::Value>,
}

/// POSTs `payload` to `url` (a `.../response-streaming-invocations` path) and decodes
/// Lambda's event stream with aws-smithy-eventstream.
pub fn invoke_streaming(agent: &ureq::Agent, url: &str, payload: &[u8]) -> Result<Streamed> {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    let mut response = agent
        .post(url)
        .send(payload)
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let raw = response
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {url}"))?;
    anyhow::ensure!(
        status == 200,
        "{url}: HTTP {status}: {}",
        String::from_utf8_lossy(&raw)
    );
    let mut buffer = bytes::Bytes::from(raw);
    let mut decoder = MessageFrameDecoder::new();
    let mut streamed = Streamed {
        body: Vec::new(),
        chunks: 0,
        complete: None,
    };
    while let DecodedFrame::Complete(message) = decoder.decode_frame(&mut buffer)? {
        let event_type = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type")
            .and_then(|h| h.value().as_string().ok().map(|s| s.as_str().to_string()))
            .unwrap_or_default();
        match event_type.as_str() {
            "PayloadChunk" => {
                streamed.chunks += 1;
                streamed.body.extend_from_slice(message.payload());
            }
            "InvokeComplete" => {
                streamed.complete =
                    Some(serde_json::from_slice(message.payload()).unwrap_or_default())
            }
            other => anyhow::bail!("unexpected event {other:?} from {url}"),
        }
    }
    Ok(streamed)
}

/// The resident memory of every process in process group `pgid`, in bytes (Linux).
pub fn group_rss(pgid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .sum()
}
