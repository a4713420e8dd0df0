//! AWS tools written by no one here, to test against: the AWS CLI, boto3, cfn-lint and
//! cargo-lambda (its Lambda Runtime API emulator, `cargo lambda watch`), from PyPI, in `${XSTAGE_CACHE:-$HOME/.cache/xstage}/venv/clients` (`scripts/env.sh setup`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

use crate::process::{cache_dir, env_var};

/// The venv's Python (it has boto3): `$XSTAGE_CLIENTS_PYTHON`, else the cache's venv.
pub fn python() -> PathBuf {
    env_var("XSTAGE_CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv/clients/bin/python"))
}

/// The AWS CLI beside that Python.
pub fn aws() -> PathBuf {
    python().with_file_name("aws")
}

/// cargo-lambda beside that Python.
pub fn cargo_lambda() -> PathBuf {
    python().with_file_name("cargo-lambda")
}

pub fn check(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!(
            "{} is missing; run `scripts/env.sh`'s setup (scripts/test does) to install awscli and boto3",
            path.display()
        );
    }
    Ok(())
}

/// A client process with test credentials and no config files of the user's.
fn client(program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE");
    command
}

/// Runs the AWS CLI with `args`, test credentials and no config files; returns its output.
pub fn aws_cli(args: &[&str]) -> Result<Output> {
    aws_cli_as("test", args)
}

/// [`aws_cli`] with another access key id: LocalStack derives the account from a 12-digit one.
pub fn aws_cli_as(access_key_id: &str, args: &[&str]) -> Result<Output> {
    let aws = aws();
    check(&aws)?;
    client(&aws)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .output()
        .with_context(|| format!("running {}", aws.display()))
}

/// Runs a Python script with boto3 available; `args` become `sys.argv[1:]`. Returns stdout,
/// and fails with stderr when the script fails.
pub fn python_script(script: &str, args: &[&str]) -> Result<String> {
    let python = python();
    check(&python)?;
    let out = client(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the Python script failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs cfn-lint (from the same venv) on a template; returns its exit code and output.
pub fn cfn_lint(template: &Path) -> Result<(i32, String)> {
    let lint = python().with_file_name("cfn-lint");
    check(&lint)?;
    let out = client(&lint)
        .arg(template)
        .output()
        .with_context(|| format!("running {}", lint.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}
