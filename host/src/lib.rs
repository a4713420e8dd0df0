//! # xstage-host
//!
//! Runs WASI 0.2 function components (`wasm32-wasip2`) the way AWS Lambda runs functions,
//! on wasmtime. A [`Host`] owns one wasmtime engine, a compile cache, a pooled HTTP client and
//! an epoch ticker; [`Host::load`] turns a component and its [`FunctionConfig`] into a
//! [`Function`]; [`Function::invoke`] runs one event and returns an [`Invocation`]: the
//! response or `{errorType, errorMessage}`, the log lines and the counters.
//!
//! What the host guarantees, per function:
//! - **Execution environments like Lambda's** ([`pool`]): a warm instance serves invocations
//!   one after another (so the guest's caches work), a new one is instantiated from an
//!   `InstancePre` when all are busy, idle ones are dropped after `idle_timeout`, and
//!   `reserved_concurrency` caps how many exist ([`InvokeError::TooManyRequests`]).
//! - **Limits** ([`limits`]): `memory_size_mb` caps linear memory (an error result, never a
//!   host crash); `timeout` is enforced by epoch interruption for CPU-bound guests and by a
//!   timer for guests waiting on I/O; no directories are preopened and no sockets are allowed.
//! - **Egress** ([`egress`], [`outbound`]): wasi:http requests leave only through the host's
//!   own `send_request` hook, only to the origins the [`EgressPolicy`] allows for the event
//!   (checked on the request URI's scheme, host and port, never on a Host header), over a
//!   keep-alive connection pool with rustls. Anything else gets `HttpRequestDenied`.
//! - **Environment** ([`environment`]): built like Lambda's (`AWS_REGION`, the function's own
//!   credentials, `AWS_LAMBDA_FUNCTION_*`, the configured variables) and nothing else.
//! - **Logs** ([`logs`]): the guest's stdout and stderr become the invocation's log, framed by
//!   Lambda's `START`/`END`/`REPORT` lines.
//! - **Named traps** ([`names`]): a component stripped of its names gets them back in a trap's
//!   backtrace from the named copy beside it.
//! - **Compile once** ([`cache`]): the compiled artifact is cached by component hash, wasmtime
//!   version and engine settings, verified by its digest before it is loaded.
//!
//! Neighbours: `functions/component` builds the stage query component this host runs; the
//! `emulator/` crate serves the Lambda Invoke API on top of [`Function::invoke`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use xstage_host::{EgressPolicy, FunctionConfig, Host, HostConfig};
//! let host = Host::new(HostConfig::default())?;
//! let mut config = FunctionConfig::new("stage-query");
//! config.egress = EgressPolicy::stage_query();
//! let function = host.load("xstage_component.wasm".as_ref(), config).await?;
//! let invocation = function.invoke(br#"{"query": "..."}"#).await?;
//! println!("{}", String::from_utf8_lossy(&invocation.body()));
//! # Ok(()) }
//! ```

pub mod cache;
pub mod config;
pub mod egress;
pub mod environment;
pub mod error;
mod function;
pub mod limits;
pub mod logs;
pub mod names;
pub mod outbound;
pub mod pool;
mod runtime;

pub use config::{FunctionConfig, FunctionCredentials, HostConfig};
pub use egress::{Allowlist, EgressPolicy, Origin};
pub use error::{InvokeError, LoadError};
pub use function::{Function, Invocation, InvocationStats, Outcome};
pub use runtime::Host;

/// The `errorType`s the host itself reports, besides those the function returns.
pub mod error_type {
    /// The invocation ran past the function's timeout.
    pub const TIMEOUT: &str = "Timeout";
    /// The guest tried to grow its memory past the function's memory size.
    pub const OUT_OF_MEMORY: &str = "OutOfMemory";
    /// The guest trapped or panicked.
    pub const CRASHED: &str = "Crashed";
    /// A new execution environment could not be initialised.
    pub const INIT_ERROR: &str = "InitError";
}
