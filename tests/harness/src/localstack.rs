//! A LocalStack endpoint (S3, STS, IAM) for integration tests: [`localstack()`] provides one per
//! test process, started on first use and stopped when the process exits.
//!
//! Provisioning, first match wins:
//! 1. `XSTAGE_TEST_ENDPOINT` set: that endpoint is used as is (kind `"env"`, nothing started or
//!    checked).
//! 2. A Docker engine answers and holds the image `XSTAGE_LOCALSTACK_IMAGE` (default
//!    [`DEFAULT_IMAGE`], the same LocalStack as the process below, built locally): it runs
//!    with testcontainers on the host's network, bound to a free port of 127.0.0.1 (kind
//!    `"container"`, see [`crate::process::container`]).
//! 3. Otherwise (and the test process says why in one line) LocalStack runs in host mode as a
//!    child process (kind `"process"`):
//!    `$XSTAGE_LOCALSTACK_PYTHON -m localstack.runtime.main` (default python:
//!    `${XSTAGE_CACHE:-$HOME/.cache/xstage}/venv/localstack/bin/python`, installed by
//!    `scripts/env.sh`'s `setup`), listening on a free port of 127.0.0.1 (see
//!    [`host_mode_env`] for the settings that keep it local and quick).
//!
//! It is ready when `GET /_localstack/health` reports `s3`, `sts` and `iam` as `available` or
//! `running` (180 s at most; the error quotes the end of the log). Services load lazily on their
//! first request. Measured on a 2-core machine: host-mode startup takes about 2 s (3–4 s on a first
//! run or a busy machine), and the first call to each service a few seconds more; `EAGER_SERVICE_LOADING=1` made startup take ~14 s, slower
//! overall, so it is not used.
//!
//! # Scratch files
//!
//! Each host-mode instance gets its own `FILESYSTEM_ROOT` under
//! `temp_dir()/xstage-localstack/<pid>-<port>/` (removed when it stops), so instances never share
//! LocalStack's state, cache or temp directories, and `OVERRIDE_IN_DOCKER=0` keeps that true when
//! the tests themselves run inside a container (LocalStack would otherwise use `/var/lib/localstack`
//! and `/tmp/localstack`).
//!
//! The one exception is S3 object data: LocalStack 2026.3 hard-codes
//! `DEFAULT_S3_TMP_DIR = "/tmp/localstack-s3-storage"` in `localstack/services/s3/provider.py`;
//! no setting or `TMPDIR` changes it. Every instance on the machine creates
//! `/tmp/localstack-s3-storage/<bucket>/` there and keeps objects as unnamed temporary files inside
//! (in memory up to 512 KiB), so concurrent instances only collide when they use the same bucket
//! name and one deletes that bucket: its `rmtree` takes the directory from under the other, whose
//! later large writes (or own DeleteBucket) then fail. Tests should use bucket names unique per
//! run. The empty bucket directories stay behind after the instances are gone.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::container::ContainerSpec;
use crate::process::{
    Emulator, Provision, ServerCommand, ServerProcess, cache_dir, env_var, free_port,
    http_get_json, shared, wait_ready,
};

/// Default container image when Docker is used: LocalStack 2026.3.0 in host mode, built on
/// this machine (`scripts/env.sh`'s `container_images`: a Debian rootfs from debootstrap with
/// `localstack-core` in a venv, `docker import`ed), since no registry is reachable.
pub const DEFAULT_IMAGE: &str = "xstage/localstack:2026.3.0";

/// The AWS services LocalStack is asked to provide.
pub const SERVICES: &str = "s3,sts,iam";

/// How long LocalStack may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

static LOCALSTACK: OnceLock<Result<Emulator, String>> = OnceLock::new();

/// The LocalStack of this test process, started on first call (blocking; fine inside
/// `#[tokio::test]`). Panics with the reason if it cannot be provided.
#[track_caller]
pub fn localstack() -> &'static Emulator {
    shared(&LOCALSTACK, "LocalStack", start)
}

fn start() -> Result<Emulator> {
    let image = env_var("XSTAGE_LOCALSTACK_IMAGE").unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    // The container runs the same host-mode LocalStack as a process would, on the host's
    // network, bound to its loopback: nothing is published, nothing addresses the bridge.
    let port = free_port()?;
    Provision {
        name: "LocalStack",
        endpoint_var: "XSTAGE_TEST_ENDPOINT",
        container: ContainerSpec {
            name: "localstack",
            image: &image,
            port,
            env: host_mode_env(port, "/var/lib/xstage-localstack"),
            host_network: true,
        },
        ready_timeout: READY_TIMEOUT,
        probe: check_health,
    }
    .run(spawn)
}

/// Why this process's LocalStack cannot run in a container (see the module docs), or `None`
/// when it can: a Docker engine answers and holds the image.
pub fn container_unavailable() -> Option<String> {
    let image = env_var("XSTAGE_LOCALSTACK_IMAGE").unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    crate::process::container::unavailable(&image)
}

/// A LocalStack of the caller's own, in host mode, ready when returned: for tests that kill
/// it (drop or [`ServerProcess::stop`]) and start another. It keeps no state across restarts.
pub fn spawn_private() -> Result<(ServerProcess, String)> {
    let (server, endpoint) = spawn()?;
    let log = server.log_file().to_path_buf();
    wait_ready(
        "a private LocalStack",
        READY_TIMEOUT,
        Some(&server),
        Some(&log),
        || check_health(&endpoint),
    )?;
    Ok((server, endpoint))
}

/// LocalStack in host mode, as a child process.
fn spawn() -> Result<(ServerProcess, String)> {
    let python = env_var("XSTAGE_LOCALSTACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv/localstack/bin/python"));
    if !python.exists() {
        bail!(
            "no Docker engine, and LocalStack's Python {} does not exist: run \
             `source scripts/env.sh && setup`, or set XSTAGE_LOCALSTACK_PYTHON, \
             XSTAGE_TEST_ENDPOINT or DOCKER_HOST",
            python.display()
        );
    }
    let port = free_port()?;
    let root = std::env::temp_dir()
        .join("xstage-localstack")
        .join(format!("{}-{port}", std::process::id()));
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;

    let mut command = ServerCommand::new("localstack", &python)
        .args(["-m", "localstack.runtime.main"])
        .remove_on_exit(&root);
    for (key, value) in host_mode_env(port, &root.to_string_lossy()) {
        command = command.env(key, value);
    }
    Ok((
        ServerProcess::spawn(&command)?,
        format!("http://127.0.0.1:{port}"),
    ))
}

/// Environment for a host-mode LocalStack on `127.0.0.1:port` keeping its files in `root`.
pub fn host_mode_env(port: u16, root: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SERVICES", SERVICES.to_owned()),
        // The gateway: hypercorn, bound to loopback only.
        ("GATEWAY_SERVER", "hypercorn".to_owned()),
        ("GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        // URLs LocalStack puts in responses point back at this gateway.
        ("LOCALSTACK_HOST", format!("127.0.0.1:{port}")),
        // Host-mode directories under our own root, even when the tests run in a container.
        ("OVERRIDE_IN_DOCKER", "0".to_owned()),
        ("FILESYSTEM_ROOT", root.to_owned()),
        // Nothing reaches the internet: no DNS server (it would bind port 53 and probe
        // localstack.cloud), no analytics events, no TLS test-certificate download.
        ("DNS_ADDRESS", "0".to_owned()),
        ("DISABLE_EVENTS", "1".to_owned()),
        ("SKIP_SSL_CERT_DOWNLOAD", "1".to_owned()),
        // Log lines reach the log file at once, so failures can quote them.
        ("PYTHONUNBUFFERED", "1".to_owned()),
    ]
}

/// `Ok` when `/_localstack/health` lists every service of [`SERVICES`] as available or running.
pub fn check_health(endpoint: &str) -> Result<()> {
    let health = http_get_json(&format!("{endpoint}/_localstack/health"))?;
    let not_ready: Vec<String> = SERVICES
        .split(',')
        .filter_map(|service| {
            let state = health["services"][service].as_str().unwrap_or("missing");
            (!matches!(state, "available" | "running")).then(|| format!("{service}: {state}"))
        })
        .collect();
    if not_ready.is_empty() {
        Ok(())
    } else {
        bail!("services not ready: {}", not_ready.join(", "))
    }
}
