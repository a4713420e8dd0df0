//! # xstage-tests
//!
//! The test harness of xstage: it gives tests real emulator endpoints (LocalStack for
//! S3/STS/IAM, moto for its record of AssumeRole calls, fakecloud for IAM that is enforced),
//! started once per test process as child processes or containers; a fault-injecting proxy
//! that answers with AWS's own error responses; generates Parquet fixtures with independently computed
//! expectations; and sets up the seed scenario. Its binaries are the README's `demo`, the read
//! `bench` (with `minimum`, a query's physical minimum, and the Python peers in `peers/`). Neighbours: it drives `xstage-core` (`functions/core`) as a library.

pub mod bench_data;
pub mod clients;
pub mod fakecloud;
pub mod fault_proxy;
pub mod fixtures;
pub mod forge;
pub mod invoke;
pub mod lambda_watch;
pub mod localstack;
pub mod minimum;
pub mod moto;
pub mod peers;
pub mod process;
pub mod query_cli;
pub mod run;
pub mod seed;
pub mod table;
pub mod tpch;
pub mod wasm;

/// The runtime of a test binary or benchmark: multi-threaded (two workers), timers and I/O.
/// One per process, so SDK clients and connection pools outlive a single test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
