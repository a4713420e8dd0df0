//! Whole-scan prefetch: a scan that will read every row group of its columns to the end has
//! those column chunks fetched ahead of its reads, concurrently, within a window of bytes.
//!
//! DataFusion (one partition) reads a file row group by row group and column chunk by
//! column chunk, each a round trip of its own: a GROUP BY over two columns of a
//! 20-row-group file waited for 40 round trips one after another. The chunks it will read
//! are known once the plan is: every row group (no filter to prune them), the columns of its
//! projection, whole (no LIMIT to stop early, no row selection to read pages of, no join
//! whose dynamic filter could skip row groups). They are registered here with the store
//! ([`S3Store::prefetch`]) in runs of whole row groups of about [`RUN_BYTES`], coalesced like
//! any read (ranges less than 64 KiB apart in one GET, so chunks of neighbouring small row
//! groups share a request), and sent in order while the plan runs, as many as a budget from
//! the memory limit holds ahead of the reads ([`S3Store::drive_prefetch`]): DataFusion
//! decodes one row group while the next ones arrive, and a run leaves memory once read.

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

/// A run of row groups fetched by one GET (and let go of once read): small enough that
/// the first row group is decoded while the next arrive, and that a window holds several.
pub const RUN_BYTES: u64 = 8 << 20;

/// Registers with `store` GETs for the column chunks the whole scans of `plan` will read.
/// [`S3Store::drive_prefetch`] sends them while the plan runs.
pub fn start(
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
    store: &S3Store,
    stats: &IoStats,
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
            for run in runs(&chunks(&metadata, scan.columns.as_ref()), RUN_BYTES) {
                store
                    .prefetch(&location, &run)
                    .map_err(|e| super::error::store_error(e, stats))?;
            }
        }
    }
    Ok(())
}

/// `row_groups`' chunks in runs of whole row groups of at most `max` bytes (or one row
/// group larger than it): a read of one row group never spans two runs' GETs.
fn runs(row_groups: &[Vec<Range<u64>>], max: u64) -> Vec<Vec<Range<u64>>> {
    let mut runs: Vec<Vec<Range<u64>>> = Vec::new();
    let mut size = 0;
    for chunks in row_groups.iter().filter(|c| !c.is_empty()) {
        let bytes: u64 = chunks.iter().map(|r| r.end - r.start).sum();
        match runs.last_mut() {
            Some(run) if size + bytes <= max => {
                run.extend(chunks.iter().cloned());
                size += bytes;
            }
            _ => {
                runs.push(chunks.clone());
                size = bytes;
            }
        }
    }
    runs
}

/// The byte ranges of the column chunks of `columns` (top-level names), per row group.
fn chunks(metadata: &ParquetMetaData, columns: Option<&BTreeSet<String>>) -> Vec<Vec<Range<u64>>> {
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
        .map(|rg| {
            leaves
                .iter()
                .filter_map(|&leaf| rg.columns().get(leaf))
                .map(|chunk| {
                    let (start, len) = chunk.byte_range();
                    start..start.saturating_add(len)
                })
                .collect()
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
                vec![want(0, 1), want(0, 2)],
                vec![want(1, 1), want(1, 2)],
                vec![want(2, 1), want(2, 2)],
            ]
        );
        let all = chunks(&metadata, None);
        assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3]);
        assert!(
            chunks(&metadata, Some(&BTreeSet::new()))
                .iter()
                .all(Vec::is_empty)
        );
        // The chunks lie in the data, before the footer.
        let data_end = file.len() as u64 - 8;
        assert!(
            all.iter()
                .flatten()
                .all(|r| r.start >= 4 && r.end <= data_end)
        );
    }

    #[test]
    fn runs_hold_whole_row_groups_up_to_the_size() {
        let rg = |start: u64, len: u64| vec![start..start + len / 2, start + len / 2..start + len];
        let groups = vec![rg(0, 4), rg(4, 4), rg(8, 4), vec![], rg(12, 20), rg(32, 2)];
        assert_eq!(
            runs(&groups, 10),
            vec![
                [rg(0, 4), rg(4, 4)].concat(),
                rg(8, 4),
                // Larger than a run: alone.
                rg(12, 20),
                rg(32, 2),
            ]
        );
        assert_eq!(runs(&groups, u64::MAX).len(), 1);
        assert!(runs(&[], 10).is_empty());
    }
}
