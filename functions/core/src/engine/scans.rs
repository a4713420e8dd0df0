//! The Parquet scans of a physical plan, as the readers that work ahead of DataFusion see
//! them: [`column_index`](super::column_index) (scans with a filter) and
//! [`prefetch`](super::prefetch) (whole scans).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;

/// One Parquet scan.
pub struct Scan {
    /// The filter pushed into it, as it stands once planned: a dynamic filter (a TopK's, a
    /// join's, filled in while the query runs) that holds nothing yet counts as none.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The names of the columns it reads; `None`: all.
    pub columns: Option<BTreeSet<String>>,
    /// The most rows it produces.
    pub limit: Option<usize>,
    /// The schema its filter and columns refer to.
    pub schema: SchemaRef,
    pub files: Vec<Path>,
}

impl Scan {
    /// The columns it reads to answer: its projection's and its filter's; `None`: all.
    pub fn read_columns(&self) -> Option<BTreeSet<String>> {
        let mut columns = self.columns.clone()?;
        if let Some(filter) = &self.filter {
            columns.extend(
                collect_columns(filter)
                    .into_iter()
                    .map(|c| c.name().to_string()),
            );
        }
        Some(columns)
    }
}

/// `filter` with its dynamic parts as they stand; `None` if that is `true`.
fn planned(filter: Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
    let now = snapshot_physical_expr(Arc::clone(&filter)).unwrap_or(filter);
    let always = now
        .downcast_ref::<Literal>()
        .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(true)));
    (!always).then_some(now)
}

/// Every Parquet scan in `plan`.
pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Vec<Scan> {
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        let config = node
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>());
        scans.extend(config.and_then(parquet));
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}

/// The scan `config` makes, if it reads Parquet.
pub fn parquet(config: &FileScanConfig) -> Option<Scan> {
    let source = config.file_source().downcast_ref::<ParquetSource>()?;
    Some(Scan {
        filter: source.filter().and_then(planned),
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
    })
}
