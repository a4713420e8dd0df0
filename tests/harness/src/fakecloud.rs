//! fakecloud, the emulator that enforces IAM: trust policies with their `sts:ExternalId`
//! conditions, identity and session policies on S3, and SigV4 signatures. LocalStack and moto
//! accept any AssumeRole; fakecloud is how the tests prove a denial is a denial.
//!
//! fakecloud (crates.io, AGPL) is only ever run as an external server process, never linked.
//! [`fakecloud()`] provides one per test process, first match wins:
//! 1. `XSTAGE_FAKECLOUD_ENDPOINT` set: used as is (it must run with `--iam strict
//!    --verify-sigv4`);
//! 2. otherwise `fakecloud --addr 127.0.0.1:<free port> --iam strict --verify-sigv4` as a
//!    child process, the executable from `XSTAGE_FAKECLOUD`, default
//!    `${XSTAGE_CACHE:-$HOME/.cache/xstage}/tools/fakecloud-0.51.0/bin/fakecloud`, which
//!    `scripts/env.sh setup` installs (`cargo install --debug`, about 20 minutes, once per
//!    machine).
//!
//! It is ready when `GET /_fakecloud/health` answers 200. Setup calls use its reserved root
//! identity `test`/`test`, which bypasses enforcement; everything under test uses an IAM
//! user's access key.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{
    Emulator, Guard, ServerCommand, ServerProcess, cache_dir, env_var, free_port, http_get, shared,
    wait_ready,
};

/// The fakecloud release the tests are written against.
pub const VERSION: &str = "0.51.0";
/// fakecloud's single account.
pub const ACCOUNT: &str = "123456789012";
/// The reserved root identity (access key and secret), for setup only.
pub const ROOT_KEY: &str = "test";

const READY_TIMEOUT: Duration = Duration::from_secs(60);

static FAKECLOUD: OnceLock<Result<Emulator, String>> = OnceLock::new();

/// The fakecloud server of this test process, started on first call.
#[track_caller]
pub fn fakecloud() -> &'static Emulator {
    shared(&FAKECLOUD, "fakecloud", start)
}

/// Where `scripts/env.sh` installs the executable.
pub fn default_program() -> PathBuf {
    cache_dir()
        .join("tools")
        .join(format!("fakecloud-{VERSION}"))
        .join("bin")
        .join("fakecloud")
}

fn start() -> Result<Emulator> {
    let begin = Instant::now();
    if let Some(endpoint) = env_var("XSTAGE_FAKECLOUD_ENDPOINT") {
        return Ok(Emulator::new(
            "fakecloud",
            endpoint,
            "env",
            None,
            begin.elapsed(),
            Guard::None,
        ));
    }
    let program = env_var("XSTAGE_FAKECLOUD")
        .map(PathBuf::from)
        .unwrap_or_else(default_program);
    if !program.exists() {
        bail!(
            "fakecloud {} does not exist: run `source scripts/env.sh && setup` (it installs fakecloud \
             {VERSION} once), or set XSTAGE_FAKECLOUD or XSTAGE_FAKECLOUD_ENDPOINT",
            program.display()
        );
    }
    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let command = ServerCommand::new("fakecloud", &program)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--iam",
            "strict",
            "--verify-sigv4",
            "--account-id",
            ACCOUNT,
            "--log-level",
            "warn",
        ])
        // Its optional side listeners (SMTP, DNS, link-local IMDS) stay off.
        .env("FAKECLOUD_DNS", "false");
    let server = ServerProcess::spawn(&command)?;
    let log_file = server.log_file().to_owned();
    wait_ready(
        "fakecloud process",
        READY_TIMEOUT,
        Some(&server),
        Some(&log_file),
        || check_ready(&endpoint),
    )?;
    Ok(Emulator::new(
        "fakecloud",
        endpoint,
        "process",
        Some(log_file),
        begin.elapsed(),
        Guard::Process(server),
    ))
}

/// `Ok` when `GET /_fakecloud/health` answers 200.
pub fn check_ready(endpoint: &str) -> Result<()> {
    let (status, _) = http_get(&format!("{endpoint}/_fakecloud/health"))?;
    if status == 200 {
        Ok(())
    } else {
        bail!("GET /_fakecloud/health: HTTP {status}")
    }
}

/// An access key, long-term or temporary. `Debug` shows the key id only.
#[derive(Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub fn root() -> Self {
        Self {
            access_key_id: ROOT_KEY.into(),
            secret_access_key: ROOT_KEY.into(),
            session_token: None,
        }
    }

    /// The variables a function gets for these keys.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        env
    }

    async fn config(&self, endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(aws_credential_types::Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                self.session_token.clone(),
                None,
                "xstage-tests",
            ))
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .load()
            .await
    }

    /// An S3 client (path-style) acting with these keys.
    pub async fn s3(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let config = self.config(endpoint).await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        )
    }

    pub async fn iam(&self, endpoint: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config(endpoint).await)
    }

    pub async fn sts(&self, endpoint: &str) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.config(endpoint).await)
    }
}

/// The error code of a failed SDK call (`AccessDenied`, ...), or its description.
pub fn code<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    err.as_service_error()
        .and_then(|e| e.code().map(str::to_string))
        .unwrap_or_else(|| format!("{err:?}"))
}

/// Creates an IAM user with one inline policy and an access key, as root.
pub async fn create_user(
    endpoint: &str,
    name: &str,
    policy: &serde_json::Value,
) -> Result<(String, Keys)> {
    let iam = Keys::root().iam(endpoint).await;
    let user = iam
        .create_user()
        .user_name(name)
        .send()
        .await
        .with_context(|| format!("creating user {name}"))?;
    let arn = user
        .user()
        .map(|u| u.arn().to_string())
        .context("no user ARN")?;
    iam.put_user_policy()
        .user_name(name)
        .policy_name(format!("{name}-policy"))
        .policy_document(policy.to_string())
        .send()
        .await
        .with_context(|| format!("putting the policy of {name}"))?;
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .with_context(|| format!("creating an access key for {name}"))?;
    let key = key.access_key().context("no access key")?;
    Ok((
        arn,
        Keys {
            access_key_id: key.access_key_id().to_string(),
            secret_access_key: key.secret_access_key().to_string(),
            session_token: None,
        },
    ))
}

/// Creates a role with a trust policy and one inline permission policy, as root; its ARN.
pub async fn create_role(
    endpoint: &str,
    name: &str,
    trust: &serde_json::Value,
    permissions: &serde_json::Value,
) -> Result<String> {
    let iam = Keys::root().iam(endpoint).await;
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .with_context(|| format!("creating role {name}"))?;
    iam.put_role_policy()
        .role_name(name)
        .policy_name(format!("{name}-permissions"))
        .policy_document(permissions.to_string())
        .send()
        .await
        .with_context(|| format!("putting the permission policy of {name}"))?;
    role.role()
        .map(|r| r.arn().to_string())
        .context("no role ARN")
}

/// `sts:AssumeRole` as `caller`; the temporary keys, or the error code.
pub async fn assume_role(
    endpoint: &str,
    caller: &Keys,
    role_arn: &str,
    external_id: &str,
    session_policy: Option<&str>,
) -> std::result::Result<Keys, String> {
    let out = caller
        .sts(endpoint)
        .await
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("xstage-tests")
        .external_id(external_id)
        .set_policy(session_policy.map(str::to_string))
        .send()
        .await
        .map_err(|e| code(&e))?;
    let c = out.credentials().ok_or("no credentials")?;
    Ok(Keys {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: Some(c.session_token().to_string()),
    })
}
