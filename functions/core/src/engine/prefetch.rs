//! Whole-scan prefetch: a scan that will read every row group of its columns to the end has
//! those column chunks fetched at once, concurrently, before execution starts.
//!
//! DataFusion (one partition) reads a file row group by row group and column chunk by
//! column chunk, each a round trip of its own: a GROUP BY over two columns of a
//! 20-row-group file waited for 40 round trips one after another. The chunks it will read
//! are known once the plan is: every row group (no filter to prune them), the columns of its
//! projection, whole (no LIMIT to stop early, no row selection to read pages of, no join
//! whose dynamic filter could skip row groups). They are registered here with the store
//! ([`S3Store::prefetch`]), coalesced like any read (ranges less than 64 KiB apart in one
//! GET, so chunks of neighbouring small row groups share a request), and sent all at once
//! while the plan runs, so DataFusion decodes the first row group while the others arrive.
//! Bounded by a budget from the memory limit: a scan larger than it is read as before.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use parquet::file::metadata::ParquetMetaData;

use crate::error::Result;
use crate::s3::{IoStats, S3Store};

/// Registers with `store`, within `budget` bytes, GETs for the column chunks the whole scans
/// of `plan` will read. [`S3Store::drive_prefetch`] sends them while the plan runs.
pub fn start(
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
    store: &S3Store,
    stats: &IoStats,
    budget: usize,
) -> Result<()> {
    // A join fills in a dynamic filter on its probe side from what it built, and may then
    // skip row groups: what such a scan reads is not known before it runs.
    if plan
        .exists(|node| Ok(node.name().contains("Join")))
        .unwrap_or(true)
    {
        return Ok(());
    }
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    let mut total = 0u64;
    for scan in super::scans::of(plan) {
        if scan.filter.is_some() {
            continue; // it reads what the filter selects
        }
        for location in scan.files {
            let Some(entry) = cache.get(&location) else {
                continue;
            };
            let Some(metadata) = entry
                .file_metadata
                .as_any()
                .downcast_ref::<CachedParquetMetaData>()
                .map(|m| Arc::clone(m.parquet_metadata()))
            else {
                continue;
            };
            if scan
                .limit
                .is_some_and(|l| (l as i64) < metadata.file_metadata().num_rows())
            {
                continue; // the scan may stop early
            }
            let ranges = chunks(&metadata, scan.columns.as_ref());
            let size: u64 = ranges.iter().map(|r| r.end - r.start).sum();
            if size == 0 || total + size > budget as u64 {
                continue;
            }
            total += size;
            store
                .prefetch(&location, &ranges)
                .map_err(|e| super::error::store_error(e, stats))?;
        }
    }
    Ok(())
}

/// The byte ranges of the column chunks of `columns` (top-level names) in every row group.
fn chunks(metadata: &ParquetMetaData, columns: Option<&BTreeSet<String>>) -> Vec<Range<u64>> {
    let schema = metadata.file_metadata().schema_descr();
    let roots = schema.root_schema().get_fields();
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|&leaf| {
            let root = schema.get_column_root_idx(leaf);
            columns.is_none_or(|c| roots.get(root).is_some_and(|f| c.contains(f.name())))
        })
        .collect();
    metadata
        .row_groups()
        .iter()
        .flat_map(|rg| {
            leaves
                .iter()
                .filter_map(move |&leaf| rg.columns().get(leaf))
        })
        .map(|chunk| {
            let (start, len) = chunk.byte_range();
            start..start.saturating_add(len)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::WriterProperties;

    #[test]
    fn the_chunks_of_the_projected_columns_in_every_row_group() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("flag", DataType::Boolean, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), Some(props)).unwrap();
        let ids: Vec<i64> = (0..300).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| format!("n{i}")),
                )),
                Arc::new(BooleanArray::from_iter(
                    ids.iter().map(|i| Some(i % 2 == 0)),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let file = bytes::Bytes::from(buf);
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let want = |rg: usize, leaf: usize| {
            let (start, len) = metadata.row_group(rg).column(leaf).byte_range();
            start..start + len
        };
        let columns = BTreeSet::from(["name".to_string(), "flag".to_string()]);
        assert_eq!(
            chunks(&metadata, Some(&columns)),
            vec![
                want(0, 1),
                want(0, 2),
                want(1, 1),
                want(1, 2),
                want(2, 1),
                want(2, 2)
            ]
        );
        assert_eq!(chunks(&metadata, None).len(), 9);
        assert!(chunks(&metadata, Some(&BTreeSet::new())).is_empty());
        // The chunks lie in the data, before the footer.
        let data_end = file.len() as u64 - 8;
        assert!(
            chunks(&metadata, None)
                .iter()
                .all(|r| r.start >= 4 && r.end <= data_end)
        );
    }
}
