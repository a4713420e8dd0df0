//! The WASI side of the tests: where the built components are, and the stage query function
//! loaded on a [`Host`] configured like the native test process (the platform's credentials,
//! region `us-east-1`, the stage query egress policy).
//!
//! The components are built by `scripts/test` (and CI) before `cargo test`, with
//! [`BUILD_COMMAND`], which also strips their main modules' `name` sections and keeps the
//! named originals beside them (`xstage_host::names`).

use std::path::PathBuf;
use std::time::Duration;

use xstage_host::{EgressPolicy, FunctionConfig, FunctionCredentials, Host, HostConfig};

use crate::seed;

/// The command that builds the components the tests load.
pub const BUILD_COMMAND: &str = "source scripts/env.sh && build_components";

/// `target/wasm32-wasip2/wasm/{name}.wasm` under `$CARGO_TARGET_DIR` (or the workspace's
/// `target/`). Panics, naming the build command, when it has not been built.
pub fn component(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target
        .join("wasm32-wasip2/wasm")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing; build the components first: {BUILD_COMMAND}",
        path.display()
    );
    path
}

/// The stage query component.
pub fn stage_query_component() -> PathBuf {
    component("xstage_component")
}

/// The sandbox probe component (`tests/guests/sandbox`).
pub fn sandbox_component() -> PathBuf {
    component("xstage_sandbox_guest")
}

/// A host with the default settings (compile cache under `$XSTAGE_CACHE/wasmtime`).
pub fn host() -> Host {
    Host::new(HostConfig::default()).expect("wasmtime host")
}

/// The stage query function as the tests run it: the platform identity's credentials (call
/// `seed::platform_identity` first), region `us-east-1`, 1 GB, 60 s.
pub fn stage_query_config() -> FunctionConfig {
    let mut config = FunctionConfig::new("xstage-stage-query");
    config.credentials = FunctionCredentials::from_env();
    assert!(
        config.credentials.is_some(),
        "call seed::platform_identity() first"
    );
    config.region = "us-east-1".to_string();
    config.memory_size_mb = 1024;
    config.timeout = Duration::from_secs(60);
    config.egress = EgressPolicy::stage_query();
    config
        .environment
        .insert(seed::ALLOWED_ROLES_VAR.to_string(), seed::allowed_roles());
    config
}
