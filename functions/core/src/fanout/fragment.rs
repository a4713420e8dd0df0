//! A worker's plan fragment on the wire (`datafusion-proto`), and the check every fragment
//! passes before it runs.
//!
//! A fragment is accepted only if it is the shape a coordinator makes ([`super::split`]):
//! a partial aggregation, a top k or a limit (or, for a `COPY INTO`'s writer, nothing),
//! over row-wise nodes, over one Parquet scan (for a writer, or a scan of whole CSV, TSV or
//! NDJSON files) of the event's own bucket whose every file lies inside the event's stage. A
//! forged or hand-made fragment gets `InvalidEvent` and never reaches S3. The event around it is
//! checked like any (allowed principals, ExternalId, session policy): a worker holds no
//! credentials but the ones it assumes itself.

use std::sync::Arc;

use datafusion::common::config::ParquetOptions;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::limit::LocalLimitExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::prelude::SessionContext;
use datafusion_proto::physical_plan::{AsExecutionPlan, DefaultPhysicalExtensionCodec};
use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType as Node;
use datafusion_proto::protobuf::{FileScanExecConf, PhysicalPlanNode};
use object_store::ObjectMeta;

use super::split::{ROW_WISE, file_scan, row_wise_chain};
use crate::error::{FunctionError, Result};
use crate::event::Stage;
use crate::s3::key_of;

/// The most bytes an encoded fragment may have (Lambda's request limit is 6 MB).
pub const MAX_FRAGMENT_BYTES: usize = 4 << 20;

/// Encodes a fragment's plan.
pub fn encode(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>> {
    let bytes = datafusion_proto::bytes::physical_plan_to_bytes(plan)
        .map_err(|e| FunctionError::internal(format!("encoding a worker's fragment: {e}")))?;
    if bytes.len() > MAX_FRAGMENT_BYTES {
        return Err(FunctionError::new(
            crate::ErrorKind::ResultTooLarge,
            format!(
                "a worker's plan fragment is {} bytes, above {MAX_FRAGMENT_BYTES}: too many files for \
                 one worker; raise options.fan_out.max_workers or lower bytes_per_worker",
                bytes.len()
            ),
        ));
    }
    Ok(bytes.to_vec())
}

/// A fragment that passed [`decode`]'s checks.
pub struct Checked {
    pub plan: Arc<dyn ExecutionPlan>,
    /// The files it reads, with the sizes and ETags the coordinator listed.
    pub files: Vec<ObjectMeta>,
    /// The same, as `s3://bucket/key`, for messages.
    pub names: Vec<String>,
}

/// What a fragment's root must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A partial aggregation, a top k or a limit: a worker answering with its rows.
    Partial,
    /// Row-wise nodes only: a `COPY INTO`'s writer.
    Rows,
}

/// Decodes a fragment in `ctx` and checks it against the event's stage.
pub fn decode(bytes: &[u8], ctx: &SessionContext, stage: &Stage, shape: Shape) -> Result<Checked> {
    let refuse = |why: String| {
        FunctionError::invalid_event(format!(
            "`fragment` is not a worker fragment of this stage: {why}. Fragments are made by an \
             xstage coordinator for the event's own stage; send SQL in `query` instead"
        ))
    };
    if bytes.len() > MAX_FRAGMENT_BYTES {
        return Err(refuse(format!("it is {} bytes", bytes.len())));
    }
    // The protobuf first (prost bounds its nesting), then its nodes, before any becomes a plan.
    let proto = PhysicalPlanNode::try_decode(bytes)
        .map_err(|e| refuse(format!("its plan could not be decoded ({e})")))?;
    chain(&proto).map_err(refuse)?;
    let task = ctx.task_ctx();
    // Decoding hostile bytes must fail, not take the process down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        proto.try_into_physical_plan(&task, &DefaultPhysicalExtensionCodec {})
    }))
    .map_err(|_| refuse("its plan could not be decoded".into()))?
    .map_err(|e| {
        // Only the stage's bucket has a store in a worker's session.
        if e.to_string().contains("No suitable object store found") {
            refuse(format!(
                "it reads outside the stage's bucket s3://{}/",
                stage.url.bucket()
            ))
        } else {
            refuse(format!("its plan could not be decoded ({e})"))
        }
    })?;
    let files = check(&decoded, stage, shape).map_err(refuse)?;
    let names = files
        .iter()
        .filter_map(|m| key_of(&m.location).ok())
        .map(|k| format!("s3://{}/{k}", stage.url.bucket()))
        .collect();
    Ok(Checked {
        plan: decoded,
        files,
        names,
    })
}

/// The most plan nodes a fragment has: its root, the row-wise nodes under it, its scan.
pub const MAX_NODES: usize = 16;

/// Checks the protobuf's nodes before any is decoded into a plan: a chain of at most
/// [`MAX_NODES`] of the kinds a coordinator sends, each over one input, ending in a file scan.
fn chain(proto: &PhysicalPlanNode) -> std::result::Result<(), String> {
    let mut node = proto;
    for _ in 0..MAX_NODES {
        let input = match &node.physical_plan_type {
            Some(Node::ParquetScan(scan)) => {
                if let Some(options) = &scan.parquet_options {
                    // datafusion-proto unwraps both (a panic on a forged fragment).
                    let global = options
                        .global
                        .as_ref()
                        .ok_or("its Parquet options are empty")?;
                    ParquetOptions::try_from(global)
                        .map_err(|e| format!("its Parquet options are not valid ({e})"))?;
                }
                return scan_conf(scan.base_conf.as_ref());
            }
            Some(Node::CsvScan(scan)) => return scan_conf(scan.base_conf.as_ref()),
            Some(Node::JsonScan(scan)) => return scan_conf(scan.base_conf.as_ref()),
            Some(Node::Aggregate(n)) => &n.input,
            Some(Node::Sort(n)) => &n.input,
            Some(Node::LocalLimit(n)) => &n.input,
            Some(Node::Filter(n)) => &n.input,
            Some(Node::Projection(n)) => &n.input,
            Some(Node::CoalesceBatches(n)) => &n.input,
            Some(Node::Cooperative(n)) => &n.input,
            Some(other) => {
                return Err(format!(
                    "it has a {} node: not a partial aggregation, a top k or a limit over \
                     row-wise nodes and a file scan",
                    kind(other)
                ));
            }
            None => return Err("it has an empty node".into()),
        };
        node = input.as_deref().ok_or("a node has no input")?;
    }
    Err(format!("it has more than {MAX_NODES} nodes"))
}

/// A scan's configuration, as far as datafusion-proto would panic on it rather than refuse.
fn scan_conf(conf: Option<&FileScanExecConf>) -> std::result::Result<(), String> {
    let constraints = conf.and_then(|c| c.constraints.as_ref());
    if constraints.is_some_and(|c| c.constraints.iter().any(|c| c.constraint_mode.is_none())) {
        return Err("a constraint of its scan has no kind".into());
    }
    Ok(())
}

/// A protobuf node's kind, as its `Debug` begins (`Merge(…`); the rest is never formatted.
fn kind(node: &Node) -> String {
    struct Prefix(String);
    impl std::fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.push_str(s);
            if self.0.contains('(') || self.0.len() > 64 {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut prefix = Prefix(String::new());
    let _ = std::fmt::Write::write_fmt(&mut prefix, format_args!("{node:?}"));
    prefix.0.split('(').next().unwrap_or_default().to_string()
}

/// The fragment's files, if its shape and files are what a coordinator makes.
fn check(
    plan: &Arc<dyn ExecutionPlan>,
    stage: &Stage,
    shape: Shape,
) -> std::result::Result<Vec<ObjectMeta>, String> {
    let root_ok = if shape == Shape::Rows {
        if row_wise_chain(plan).is_none() {
            return Err(format!(
                "a writer's plan is row-wise nodes over one file scan, and this one has a {}",
                plan.name()
            ));
        }
        true
    } else if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
        *agg.mode() == AggregateMode::Partial
    } else if let Some(sort) = plan.downcast_ref::<SortExec>() {
        sort.fetch().is_some()
    } else {
        plan.downcast_ref::<LocalLimitExec>().is_some()
    };
    if !root_ok {
        return Err(format!(
            "its root is {}, not a partial aggregation, a top k or a limit",
            plan.name()
        ));
    }
    let mut node = Arc::clone(plan);
    loop {
        let children = node.children();
        match children.as_slice() {
            [] => break,
            [one] if ROW_WISE.contains(&one.name()) || one.children().is_empty() => {
                let next = Arc::clone(one);
                node = next;
            }
            [one] => return Err(format!("it has a {} under its root", one.name())),
            _ => return Err(format!("{} has several inputs", node.name())),
        }
    }
    // A writer may read text (whole files); a reader's partial answer reads Parquet.
    let scan = file_scan(&node, shape == Shape::Rows)
        .ok_or_else(|| format!("it reads a {}, not a Parquet scan", node.name()))?;
    let bucket = format!("s3://{}/", stage.url.bucket());
    if scan.object_store_url.as_str() != bucket {
        return Err(format!(
            "it reads {}, outside the stage's bucket {bucket}",
            scan.object_store_url.as_str()
        ));
    }
    let files: Vec<ObjectMeta> = scan
        .file_groups
        .iter()
        .flat_map(|g| g.files())
        .map(|f| f.object_meta.clone())
        .collect();
    if files.is_empty() {
        return Err("it reads no file".into());
    }
    for meta in &files {
        let key = key_of(&meta.location).map_err(|e| format!("a file path is not a key ({e})"))?;
        let inside = stage.url.relative(&key).is_some_and(|rel| {
            !rel.is_empty()
                && !rel.starts_with('/')
                && !rel.chars().any(char::is_control)
                && rel
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        });
        if !inside {
            return Err(format!(
                "it reads s3://{}/{key}, outside the stage {}",
                stage.url.bucket(),
                stage.url
            ));
        }
    }
    Ok(files)
}
