//! Which row groups of a Parquet file a scan reads, from its footer alone: those its
//! filter's statistics do not rule out, as DataFusion prunes them; without a filter, those
//! up to the one that fills its limit. What is counted here is what [`crate::estimate`]
//! reports, [`crate::fanout`] shares out and [`column_index`](super::column_index) reads
//! entries for.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::parquet::{
    ParquetAccessPlan, ParquetFileMetrics, RowGroupAccessPlanFilter,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::SessionContext;
use object_store::path::Path;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

use super::scans::Scan;

/// A file's footer as DataFusion cached it while planning; `None` if it was not read.
pub(crate) fn metadata(ctx: &SessionContext, location: &Path) -> Option<Arc<ParquetMetaData>> {
    let entry = ctx
        .runtime_env()
        .cache_manager
        .get_file_metadata_cache()
        .get(location)?;
    entry
        .file_metadata
        .as_any()
        .downcast_ref::<CachedParquetMetaData>()
        .map(|m| Arc::clone(m.parquet_metadata()))
}

/// The row groups `filter`'s statistics do not rule out (and which of them it matches
/// whole). A filter the statistics cannot evaluate keeps every row group, as in DataFusion.
pub(crate) fn by_statistics(
    metadata: &ParquetMetaData,
    schema: &SchemaRef,
    filter: &Arc<dyn PhysicalExpr>,
    location: &Path,
) -> RowGroupAccessPlanFilter {
    let groups = metadata.row_groups();
    let mut plan = RowGroupAccessPlanFilter::new(ParquetAccessPlan::new_all(groups.len()));
    if let Some(predicate) = PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(schema))
        .build(Arc::clone(filter))
    {
        let metrics =
            ParquetFileMetrics::new(0, location.as_ref(), &ExecutionPlanMetricsSet::new());
        let parquet_schema = metadata.file_metadata().schema_descr();
        plan.prune_by_statistics(schema, parquet_schema, groups, &predicate, &metrics);
    }
    plan
}

/// What `scan` reads of each row group of the file at `location`: the compressed bytes of
/// its chunks of `columns` (the scan's read columns, computed once by the caller; `None`:
/// all), or `None` for a row group its filter's statistics or its limit leave out. `scan:
/// None` reads every row group. `rows_before`: the rows of the scan's files before this one
/// (a limit without a filter is filled in file order, across files), moved past this file's.
pub(crate) fn reads(
    metadata: &ParquetMetaData,
    scan: Option<&Scan>,
    columns: Option<&BTreeSet<String>>,
    location: &Path,
    rows_before: &mut i64,
) -> Vec<Option<u64>> {
    let groups = metadata.row_groups();
    let read: Vec<bool> = match scan {
        None => vec![true; groups.len()],
        Some(Scan {
            filter: Some(filter),
            schema,
            ..
        }) => {
            let plan = by_statistics(metadata, schema, filter, location);
            let mut read = vec![false; groups.len()];
            for rg in plan.row_group_indexes() {
                if let Some(slot) = read.get_mut(rg) {
                    *slot = true;
                }
            }
            read
        }
        // No filter: a limit is filled by the first rows.
        Some(scan) => groups
            .iter()
            .map(|rg| {
                let needed = scan.limit.is_none_or(|limit| *rows_before < limit as i64);
                *rows_before = rows_before.saturating_add(rg.num_rows());
                needed
            })
            .collect(),
    };
    groups
        .iter()
        .zip(read)
        .map(|(rg, read)| read.then(|| column_bytes(rg, columns)))
        .collect()
}

/// The compressed bytes of a row group's chunks of `columns` (top-level names; `None`: all).
fn column_bytes(rg: &RowGroupMetaData, columns: Option<&BTreeSet<String>>) -> u64 {
    let bytes: i64 = rg
        .columns()
        .iter()
        .filter(|c| {
            columns.is_none_or(|names| {
                c.column_path()
                    .parts()
                    .first()
                    .is_some_and(|top| names.contains(top))
            })
        })
        .map(|c| c.compressed_size().max(0))
        .sum();
    bytes as u64
}
