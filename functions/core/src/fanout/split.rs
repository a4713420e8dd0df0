//! Where a physical plan splits between the workers and the coordinator.
//!
//! A plan splits when it reads exactly one Parquet scan through a chain of row-wise nodes
//! (filters, projections) up to a node whose work can be done in parts and merged:
//!
//! | boundary | each worker runs | the coordinator runs |
//! | --- | --- | --- |
//! | `AggregateExec` (`Partial`) | the partial aggregation | the `Final` aggregation above it |
//! | `SortExec` with a fetch (top-k) | the top k of its share | the same top k over all shares |
//! | `GlobalLimitExec` / `LocalLimitExec` | the first `skip + fetch` rows of its share | the limit over the shares in file order |
//!
//! The plan is DataFusion's own: planned with the partial and final phases of every
//! aggregation kept apart (`engine::Prepared::physical` with `split`), it is cut at the
//! boundary; the coordinator's part reads the workers' batches from a memory source where the
//! boundary's input was. Anything else (joins, unions, windows, several tables, `LIST`)
//! does not split and runs in one invocation.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{
    CsvSource, FileGroup, FileScanConfig, FileScanConfigBuilder, JsonSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::sorts::sort::SortExec;

use crate::error::{FunctionError, Result};

/// Nodes that pass rows through one by one: they may stand between the scan and the
/// boundary, in a worker's fragment.
pub const ROW_WISE: &[&str] = &[
    "FilterExec",
    "ProjectionExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
];

/// What the boundary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// A partial aggregation; the coordinator finalizes.
    Aggregate,
    /// A top k (`ORDER BY ... LIMIT k`).
    TopK,
    /// A limit without order: shares are taken in file order.
    Limit,
    /// None: every row is the answer, each worker's share written where it runs (a
    /// `COPY INTO`'s rows, [`crate::unload::spread`]).
    Rows,
}

/// A plan cut into the workers' fragment and the coordinator's rest.
pub struct Split {
    /// Root to leaf: the plan is a chain (one scan, no node with two inputs).
    chain: Vec<Arc<dyn ExecutionPlan>>,
    /// The index in `chain` of the worker fragment's root (the boundary's input for a limit
    /// or a top k is the boundary itself, re-rooted).
    worker_root: usize,
    /// The index in `chain` of the node whose input the coordinator replaces; `None` when
    /// the plan is row-wise up to its root (its limit pushed into it): the coordinator then
    /// takes the limit over the shares.
    coordinator_leaf: Option<usize>,
    pub boundary: Boundary,
    /// For a limit: the rows each worker returns at most.
    worker_limit: Option<usize>,
}

impl Split {
    /// The split of `plan`, if it has one.
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Option<Split> {
        let mut chain = vec![Arc::clone(plan)];
        loop {
            let children = chain.last()?.children();
            match children.as_slice() {
                [] => break,
                [one] => {
                    let next = Arc::clone(one);
                    chain.push(next);
                }
                _ => return None,
            }
        }
        scan_config(chain.last()?)?;
        // Up from the scan through row-wise nodes to the boundary.
        let mut at = chain.len() - 1;
        while at > 0 && ROW_WISE.contains(&chain[at - 1].name()) {
            at -= 1;
        }
        let Some(boundary) = at.checked_sub(1) else {
            // Row-wise up to the root: the limit DataFusion pushed into the chain (the scan's,
            // a filter's fetch) is the boundary.
            let rows = chain.iter().filter_map(|n| n.fetch()).min()?;
            return Some(Split {
                worker_root: 0,
                coordinator_leaf: None,
                boundary: Boundary::Limit,
                worker_limit: Some(rows),
                chain,
            });
        };
        let node = &chain[boundary];
        if let Some(agg) = node.downcast_ref::<AggregateExec>() {
            // The partial phase goes to the workers; what reads it stays here.
            return (*agg.mode() == AggregateMode::Partial && boundary > 0).then_some(Split {
                worker_root: boundary,
                coordinator_leaf: Some(boundary - 1),
                boundary: Boundary::Aggregate,
                worker_limit: None,
                chain,
            });
        }
        if let Some(sort) = node.downcast_ref::<SortExec>() {
            return sort.fetch().map(|_| Split {
                worker_root: boundary,
                coordinator_leaf: Some(boundary),
                boundary: Boundary::TopK,
                worker_limit: None,
                chain,
            });
        }
        let rows = if let Some(limit) = node.downcast_ref::<GlobalLimitExec>() {
            limit.fetch().map(|f| f.saturating_add(limit.skip()))
        } else {
            node.downcast_ref::<LocalLimitExec>().map(|l| l.fetch())
        }?;
        Some(Split {
            worker_root: boundary + 1,
            coordinator_leaf: Some(boundary),
            boundary: Boundary::Limit,
            worker_limit: Some(rows),
            chain,
        })
    }

    /// The split of a plan that is row-wise from its root down to one file scan (Parquet, or
    /// whole CSV, TSV and NDJSON files): each worker runs all of it over its share.
    pub fn rows(plan: &Arc<dyn ExecutionPlan>) -> Option<Split> {
        let chain = row_wise_chain(plan)?;
        Some(Split {
            chain,
            worker_root: 0,
            coordinator_leaf: None,
            boundary: Boundary::Rows,
            worker_limit: None,
        })
    }

    /// The scan the workers divide.
    pub fn scan(&self) -> &FileScanConfig {
        // Checked in `of` and `rows`.
        self.chain
            .last()
            .and_then(|leaf| file_scan(leaf, true))
            .expect("a split's leaf is a file scan")
    }

    /// The scan's files, in scan order.
    pub fn files(&self) -> Vec<datafusion::datasource::listing::PartitionedFile> {
        self.scan()
            .file_groups
            .iter()
            .flat_map(|g| g.files().iter().cloned())
            .collect()
    }

    /// The schema of what each worker returns.
    pub fn partial_schema(&self) -> SchemaRef {
        // A limit above the fragment's root keeps its schema.
        self.chain[self.worker_root].schema()
    }

    /// One worker's fragment: the plan from the scan up to the boundary, over `files` (all of
    /// the scan's when `None`).
    pub fn worker(&self, files: Option<FileGroup>) -> Result<Arc<dyn ExecutionPlan>> {
        let mut node: Arc<dyn ExecutionPlan> = match files {
            None => Arc::clone(self.chain.last().expect("a chain has a leaf")),
            Some(group) => {
                let config = FileScanConfigBuilder::from(self.scan().clone())
                    .with_file_groups(vec![group])
                    .build();
                DataSourceExec::from_data_source(config)
            }
        };
        for parent in self.chain[self.worker_root..self.chain.len() - 1]
            .iter()
            .rev()
        {
            node = replace_children_if_necessary(Arc::clone(parent), vec![node])
                .map_err(|e| FunctionError::internal(format!("building a worker fragment: {e}")))?;
        }
        if let Some(rows) = self.worker_limit {
            node = Arc::new(LocalLimitExec::new(node, rows));
        }
        Ok(node)
    }

    /// The coordinator's plan, reading `partials` (the workers' batches, in task order) where
    /// the boundary's input was.
    pub fn coordinator(&self, partials: Vec<RecordBatch>) -> Result<Arc<dyn ExecutionPlan>> {
        let internal = |e: datafusion::error::DataFusionError| {
            FunctionError::internal(format!("building the coordinator's plan: {e}"))
        };
        let schema = self.partial_schema();
        let mut node: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[partials], schema, None).map_err(internal)?;
        let Some(leaf) = self.coordinator_leaf else {
            return Ok(Arc::new(GlobalLimitExec::new(node, 0, self.worker_limit)));
        };
        for parent in self.chain[..=leaf].iter().rev() {
            node = over(parent, node).map_err(internal)?;
        }
        Ok(node)
    }
}

/// What a tree's inner node runs over its children's answers (`partials`, in order), given
/// a child fragment's `root`: the same step again, with partial results in and out
/// (`AggregateMode::PartialReduce` for an aggregation).
pub fn reduce(
    root: &Arc<dyn ExecutionPlan>,
    partials: Vec<RecordBatch>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let internal = |e: datafusion::error::DataFusionError| {
        FunctionError::internal(format!("building an inner node's plan: {e}"))
    };
    let exchange: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&[partials], root.schema(), None).map_err(internal)?;
    if let Some(agg) = root.downcast_ref::<AggregateExec>() {
        return Ok(Arc::new(
            AggregateExec::try_new(
                AggregateMode::PartialReduce,
                agg.group_expr().as_final(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                exchange,
                agg.input_schema(),
            )
            .map_err(internal)?,
        ));
    }
    over(root, exchange).map_err(internal)
}

/// `node` again, over `input`. A top k is built anew: its dynamic filter is its own, and
/// must not hold the threshold of a run over other rows.
fn over(
    node: &Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if let Some(sort) = node.downcast_ref::<SortExec>() {
        return Ok(Arc::new(
            SortExec::new(sort.expr().clone(), input).with_fetch(sort.fetch()),
        ));
    }
    replace_children_if_necessary(Arc::clone(node), vec![input])
}

/// `plan` from its root to its leaf, if every node above the leaf is row-wise and the leaf
/// is a Parquet scan.
pub fn row_wise_chain(plan: &Arc<dyn ExecutionPlan>) -> Option<Vec<Arc<dyn ExecutionPlan>>> {
    let mut chain = vec![Arc::clone(plan)];
    loop {
        let node = chain.last()?;
        match node.children().as_slice() {
            [] => break,
            [one] if ROW_WISE.contains(&node.name()) => {
                let next = Arc::clone(one);
                chain.push(next);
            }
            _ => return None,
        }
    }
    file_scan(chain.last()?, true)?;
    Some(chain)
}

/// The Parquet scan configuration of `node`, if it is one.
pub fn scan_config(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    file_scan(node, false)
}

/// The scan configuration of `node` if it reads Parquet, or with `text` CSV, TSV or NDJSON
/// (whole files: a writer's share of a text source is files, never ranges).
pub fn file_scan(node: &Arc<dyn ExecutionPlan>, text: bool) -> Option<&FileScanConfig> {
    let config = node
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()?;
    let source = config.file_source();
    let ok = source.downcast_ref::<ParquetSource>().is_some()
        || text
            && (source.downcast_ref::<CsvSource>().is_some()
                || source.downcast_ref::<JsonSource>().is_some());
    ok.then_some(config)
}

/// Whether a scan reads text (CSV, TSV, NDJSON) rather than Parquet.
pub fn is_text(scan: &FileScanConfig) -> bool {
    scan.file_source().downcast_ref::<ParquetSource>().is_none()
}
