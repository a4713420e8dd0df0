//! The host's own errors. A function's failures (its `errorType`s, timeouts, out of memory,
//! crashes) are not errors here: they are an [`crate::Outcome::Error`] of an invocation, as
//! on Lambda. These are failures to load a function or to start an invocation at all.

use std::path::PathBuf;

/// A function could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read the component {path}: {source}; build it from the checkout with `source scripts/env.sh && build_components` (or `cargo build --profile wasm --target wasm32-wasip2 -p xstage-component`, which leaves it in target/wasm32-wasip2/wasm/)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid WASI 0.2 component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error(
        "the component {path} does not fit this host: {message}; it must import only wasi:cli, wasi:clocks, wasi:random, wasi:io and wasi:http, and export xstage:function/handler"
    )]
    Link { path: PathBuf, message: String },
    #[error(
        "function {function}: MemorySize {asked} MB is above this host's maximum of {max} MB; lower MemorySize or raise HostConfig::max_memory_mb"
    )]
    MemoryTooLarge {
        function: String,
        asked: u32,
        max: u32,
    },
    #[error(
        "function {function}: the environment variable {name} is reserved (Lambda sets it); remove it from Environment.Variables"
    )]
    ReservedVariable { function: String, name: String },
    #[error("function {function}: {message}")]
    Invalid { function: String, message: String },
    #[error("the wasmtime engine could not be configured: {0}")]
    Engine(String),
    #[error("the HTTP client could not load the system's root certificates: {0}")]
    Tls(std::io::Error),
}

/// An invocation could not be started. Lambda answers these as service errors, not as
/// function errors.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(
        "function {function} already runs {limit} execution environments, its concurrency limit; retry later or raise ReservedConcurrentExecutions"
    )]
    TooManyRequests { function: String, limit: u32 },
}
