//! Where the built WASI components are. `scripts/test` (and CI) builds them before
//! `cargo test`, with [`BUILD_COMMAND`], which also strips their main modules' `name` sections
//! and keeps the named originals beside them (`xstage_host::names`).

use std::path::PathBuf;

/// The command that builds the components the tests load.
pub const BUILD_COMMAND: &str = "source scripts/env.sh && build_components";

/// `target/wasm32-wasip2/wasm/{name}.wasm` under `$CARGO_TARGET_DIR` (or the workspace's
/// `target/`). Panics, naming the build command, when it has not been built.
pub fn component(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
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
