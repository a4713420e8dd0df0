//! The Parquet scans of a physical plan, as the readers that work ahead of DataFusion see
//! them: [`column_index`](super::column_index) (scans with a filter) and
//! [`prefetch`](super::prefetch) (whole scans).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;

/// One Parquet scan.
pub struct Scan {
    /// The filter pushed into it.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The names of the columns it reads; `None`: all.
    pub columns: Option<BTreeSet<String>>,
    /// The most rows it produces.
    pub limit: Option<usize>,
    /// The schema its filter and columns refer to.
    pub schema: SchemaRef,
    pub files: Vec<Path>,
}

/// Every Parquet scan in `plan`.
pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Vec<Scan> {
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        let config = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>());
        if let Some(config) = config
            && let Some(source) = config.file_source().downcast_ref::<ParquetSource>()
        {
            scans.push(Scan {
                filter: source.filter(),
                columns: source.projection().map(|p| {
                    p.expr_iter()
                        .flat_map(|e| collect_columns(&e))
                        .map(|c| c.name().to_string())
                        .collect()
                }),
                limit: config.limit,
                schema: Arc::clone(config.file_schema()),
                files: config
                    .file_groups
                    .iter()
                    .flat_map(|g| g.files())
                    .map(|f| f.object_meta.location.clone())
                    .collect(),
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}
