//! # xstage-tests
//!
//! xstage's end-to-end tests and benchmarks. The harness (emulators, the fault proxy,
//! fixtures, the seed scenario, clients for `xstage serve`) is `xstage-harness`
//! (`tests/harness`), re-exported here module by module, so tests name one crate. This crate
//! adds the WASI side: the stage query component on the wasmtime host ([`wasm`]) and one event
//! run natively and under WASI ([`run`]). Its binaries are the read `bench` (with [`minimum`],
//! a query's physical minimum, and the Python peers in `peers/`), `bench-fanout`,
//! `host-bench` and `fuzz-seeds`. Neighbours: it drives `xstage-core` (`functions/core`) and
//! `xstage-host` (`host/`) as libraries.

pub use xstage_harness::{
    clients, components, fakecloud, fault_proxy, fixtures, forge, invoke, lambda_watch, localstack,
    moto, process, query_cli, runtime, seed, table,
};

pub mod bench_data;
pub mod bench_queries;
pub mod minimum;
pub mod peers;
pub mod rss;
pub mod run;
pub mod tpch;
pub mod wasm;
