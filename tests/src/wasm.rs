//! The WASI side of the tests: the stage query function loaded on a [`Host`] configured like
//! the native test process (the platform's credentials, region `us-east-1`, the stage query
//! egress policy), and where the built components are ([`xstage_harness::components`],
//! re-exported here).

use std::time::Duration;

use xstage_host::{EgressPolicy, FunctionConfig, FunctionCredentials, Host, HostConfig};

pub use xstage_harness::components::{
    BUILD_COMMAND, component, sandbox_component, stage_query_component,
};

use crate::seed;

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
