//! A moto server for integration tests — mainly to check what the code under test sends to STS:
//! [`moto()`] provides one per test process (started on first use, stopped when the process
//! exits) and [`assume_role_calls`] lists the `sts:AssumeRole` calls it has seen.
//!
//! Provisioning, first match wins:
//! 1. `XSTAGE_MOTO_ENDPOINT` set: used as is (kind `"env"`).
//! 2. A Docker engine answers: image `XSTAGE_MOTO_IMAGE` (default `motoserver/moto:5.2.5`) with
//!    testcontainers (kind `"container"`).
//! 3. Otherwise `moto_server -H 127.0.0.1 -p <free port>` as a child process (kind `"process"`),
//!    the executable from `XSTAGE_MOTO_SERVER`, default
//!    `${XSTAGE_CACHE:-$HOME/.cache/xstage}/venv/moto/bin/moto_server` (`scripts/env.sh setup`).
//!
//! It is ready when `GET /moto-api/` answers 200 (about 1.5 s for the child process).
//!
//! # Where the ExternalId comes from
//!
//! moto 5.2.5 serves `GET /moto-api/data.json`: every tracked model instance of the server,
//! grouped by service and model class, with each instance's JSON-serialisable public attributes.
//! STS's `AssumedRole` model keeps the request's `ExternalId` as `external_id` (`null` when the
//! request had none), so one AssumeRole with `ExternalId=ext-1` shows up as
//!
//! ```json
//! {"sts": {"AssumedRole": [{"role_arn": "arn:aws:iam::123456789012:role/r",
//!   "session_name": "s", "external_id": "ext-1", "account_id": "123456789012",
//!   "region_name": "us-east-1", "arn": "…:assumed-role/r/s", "access_key_id": "ASIA…", …}]}}
//! ```
//!
//! (checked against a real moto 5.2.5 server). Caveats: the list is server-wide and in call
//! order, so concurrent tests must pick out their own calls (say, by a unique session name);
//! `AssumeRoleWithWebIdentity` and `AssumeRoleWithSAML` create the same model, with
//! `external_id` null; moto does not check the ExternalId against the role's trust policy; and
//! `POST /moto-api/reset` empties the list. Before the first STS call `data.json` has no `sts`
//! entry at all, which reads as no calls.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::process::container::ContainerSpec;
use crate::process::{
    Emulator, Provision, ServerCommand, ServerProcess, cache_dir, env_var, free_port, http_get,
    shared,
};

/// Default container image when Docker is used.
pub const DEFAULT_IMAGE: &str = "motoserver/moto:5.2.5";

/// How long moto may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

static MOTO: OnceLock<Result<Emulator, String>> = OnceLock::new();

/// The moto server of this test process, started on first call (blocking; fine inside
/// `#[tokio::test]`). Panics with the reason if it cannot be provided.
#[track_caller]
pub fn moto() -> &'static Emulator {
    shared(&MOTO, "moto", start)
}

/// One `sts:AssumeRole` (or web-identity/SAML assume) request as moto recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssumeRoleCall {
    /// `RoleArn` of the request.
    pub role_arn: String,
    /// `RoleSessionName` of the request.
    #[serde(rename = "session_name")]
    pub role_session_name: String,
    /// `ExternalId` of the request, `None` when it had none.
    pub external_id: Option<String>,
    /// The inline session `Policy` of the request, `None` when it had none.
    #[serde(default)]
    pub policy: Option<String>,
}

/// The assume-role calls the moto server at `endpoint` has recorded, oldest first, read from
/// `GET {endpoint}/moto-api/data.json` (see the module docs).
pub fn assume_role_calls(endpoint: &str) -> Result<Vec<AssumeRoleCall>> {
    #[derive(Deserialize)]
    struct ModelData {
        #[serde(default)]
        sts: StsModels,
    }
    #[derive(Deserialize, Default)]
    struct StsModels {
        #[serde(rename = "AssumedRole", default)]
        assumed_role: Vec<AssumeRoleCall>,
    }

    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    let (status, body) = http_get(&url)?;
    if status != 200 {
        bail!("GET {url}: HTTP {status}");
    }
    let data: ModelData = serde_json::from_str(&body)
        .with_context(|| format!("GET {url}: unexpected shape of sts.AssumedRole"))?;
    Ok(data.sts.assumed_role)
}

fn start() -> Result<Emulator> {
    let image = env_var("XSTAGE_MOTO_IMAGE").unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    Provision {
        name: "moto",
        endpoint_var: "XSTAGE_MOTO_ENDPOINT",
        container: ContainerSpec {
            name: "moto",
            image: &image,
            port: 5000,
            env: Vec::new(),
            host_network: false,
        },
        ready_timeout: READY_TIMEOUT,
        probe: check_ready,
    }
    .run(spawn)
}

/// `moto_server` on a free loopback port, as a child process.
fn spawn() -> Result<(ServerProcess, String)> {
    let program = env_var("XSTAGE_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv/moto/bin/moto_server"));
    if !program.exists() {
        bail!(
            "no Docker engine, and moto_server {} does not exist: run \
             `source scripts/env.sh && setup`, or set XSTAGE_MOTO_SERVER, XSTAGE_MOTO_ENDPOINT \
             or DOCKER_HOST",
            program.display()
        );
    }
    let port = free_port()?;
    let command = ServerCommand::new("moto", &program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("PYTHONUNBUFFERED", "1");
    Ok((
        ServerProcess::spawn(&command)?,
        format!("http://127.0.0.1:{port}"),
    ))
}

/// `Ok` when `GET /moto-api/` answers 200.
pub fn check_ready(endpoint: &str) -> Result<()> {
    let (status, _) = http_get(&format!("{endpoint}/moto-api/"))?;
    if status == 200 {
        Ok(())
    } else {
        bail!("GET /moto-api/: HTTP {status}")
    }
}
