//! What a query would read, from its footers alone, as BigQuery's dry run and
//! `maximum_bytes_billed` and Athena's per-query data limit give it: the files, the row
//! groups its filters' statistics and its limits leave ([`crate::engine::prune`]), and the
//! bytes of the columns it reads in them. `options.dry_run` answers with it instead of
//! running the query; `options.max_bytes_scanned` refuses a query above it
//! (`ScanLimitExceeded`) before any data page is read.
//!
//! Neighbours: [`crate::engine`] plans the query (its footers are then in DataFusion's
//! metadata cache); [`crate::fanout`] says whether it would fan out, and to how many workers.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use crate::engine::{prune, scans};
use crate::error::{ErrorKind, FunctionError, Result};

/// A query's planned reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Distinct files its scans read.
    pub files: u64,
    /// Row groups it reads, and those its filters' statistics or its limits leave out.
    pub row_groups: u64,
    pub row_groups_pruned: u64,
    /// The compressed bytes of the column chunks it reads (of a CSV, TSV or NDJSON file, the
    /// whole file); a LIMIT with a filter may stop sooner, a page index may skip pages.
    pub bytes: u64,
}

impl Estimate {
    /// The estimate of `plan`, planned in `ctx`.
    pub fn of(ctx: &SessionContext, plan: &Arc<dyn ExecutionPlan>) -> Estimate {
        let mut estimate = Estimate::default();
        let mut files = BTreeSet::new();
        let _ = plan.apply(|node| {
            let config = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>());
            if let Some(config) = config {
                let scan = scans::parquet(config);
                let columns = scan.as_ref().and_then(scans::Scan::read_columns);
                let mut rows_before = 0i64;
                for file in config.file_groups.iter().flat_map(|g| g.files()) {
                    let location = &file.object_meta.location;
                    files.insert(location.clone());
                    let metadata = scan.as_ref().and_then(|_| prune::metadata(ctx, location));
                    let (Some(scan), Some(metadata)) = (&scan, metadata) else {
                        estimate.bytes += file.object_meta.size;
                        continue;
                    };
                    let reads = prune::reads(
                        &metadata,
                        Some(scan),
                        columns.as_ref(),
                        location,
                        &mut rows_before,
                    );
                    for bytes in reads {
                        match bytes {
                            Some(bytes) => {
                                estimate.row_groups += 1;
                                estimate.bytes += bytes;
                            }
                            None => estimate.row_groups_pruned += 1,
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        estimate.files = files.len() as u64;
        estimate
    }

    /// `ScanLimitExceeded` if the query would read more than `limit` bytes.
    pub fn check(&self, limit: Option<u64>) -> Result<()> {
        match limit {
            Some(limit) if self.bytes > limit => Err(FunctionError::new(
                ErrorKind::ScanLimitExceeded,
                format!(
                    "the query would read {} bytes of column data ({} row groups of {} files, \
                     after pruning by statistics), above options.max_bytes_scanned ({limit}); \
                     nothing was read. Narrow it (a filter, fewer columns, a smaller path) or \
                     raise max_bytes_scanned; options.dry_run shows the figures",
                    self.bytes, self.row_groups, self.files
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The dry run's answer: one row of the figures, the path the query would take and the
    /// workers it would use (0 in one invocation).
    pub fn answer(&self, path: &str, workers: u64) -> Result<RecordBatch> {
        let count = |name: &str| Field::new(name, DataType::UInt64, false);
        let schema = Schema::new(vec![
            count("files"),
            count("row_groups"),
            count("row_groups_pruned"),
            count("bytes_scanned"),
            Field::new("path", DataType::Utf8, false),
            count("workers"),
        ]);
        let one = |v: u64| Arc::new(UInt64Array::from(vec![v])) as _;
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                one(self.files),
                one(self.row_groups),
                one(self.row_groups_pruned),
                one(self.bytes),
                Arc::new(StringArray::from(vec![path])),
                one(workers),
            ],
        )
        .map_err(|e| FunctionError::internal(format!("the dry run's answer: {e}")))
    }
}
