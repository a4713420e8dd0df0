//! # xstage-harness
//!
//! The test harness of xstage: it gives tests real emulator endpoints (LocalStack for
//! S3/STS/IAM, moto for its record of AssumeRole calls, fakecloud for IAM that is enforced),
//! started once per test process as child processes or containers; a fault-injecting proxy
//! that answers with AWS's own error responses; Parquet fixtures with independently computed
//! expectations; the seed scenario; and clients for `xstage serve` and `xstage sql`. Its binary
//! is the README's `demo`, which runs the seed query natively.
//!
//! Neighbours: it drives `xstage-core` (`functions/core`) as a library. It does not link the
//! wasmtime host, so the demo builds without Cranelift; `xstage-tests` (`tests/`) adds the
//! WASI side (`xstage_tests::wasm`, `xstage_tests::run`), the end-to-end tests and the
//! benchmarks, and re-exports every module here.

pub mod clients;
pub mod components;
pub mod fakecloud;
pub mod fault_proxy;
pub mod fixtures;
pub mod forge;
pub mod invoke;
pub mod lambda_watch;
pub mod localstack;
pub mod moto;
pub mod process;
pub mod query_cli;
pub mod seed;
pub mod table;

/// The runtime of a test binary or benchmark: multi-threaded (two workers), timers and I/O.
/// One per process, so SDK clients and connection pools outlive a single test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
