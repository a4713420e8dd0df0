//! # xstage-emulator
//!
//! The `xstage` command: the stage query function run locally the way it runs on AWS, with
//! the clients people already use.
//!
//! - [`template`] reads `template.yaml` (SAM): each `AWS::Serverless::Function` with its
//!   MemorySize, Timeout, Environment.Variables and ReservedConcurrentExecutions.
//! - [`functions`] loads each function's WASI component into the wasmtime host
//!   (`xstage-host`) with those settings.
//! - [`api`] serves the Lambda Invoke API (`xstage serve`, see [`serve`]), so
//!   `aws lambda invoke --endpoint-url http://127.0.0.1:3001` and the SDKs work unchanged.
//! - [`sql`] is `xstage sql`: Databend's `CREATE CONNECTION` / `CREATE STAGE` over a local
//!   catalog, and queries on stages sent to the function as events.
//! - [`policy`] is `xstage policy`: the customer's trust and least-privilege permission
//!   policies for a stage.
//!
//! Neighbours: `host/` runs the components; `functions/component` is the stage query
//! component; `functions/core` defines the event and validates it.

pub mod api;
pub mod error;
pub mod functions;
pub mod policy;
pub mod serve;
pub mod sql;
pub mod template;

pub use error::EmulatorError;
