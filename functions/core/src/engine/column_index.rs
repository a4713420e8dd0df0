//! Column indexes read after planning: only for the row groups a filter may read, and only
//! for the columns it reads.
//!
//! A column index (min/max per page) prunes pages inside a row group. DataFusion prunes whole
//! row groups by the footer's statistics first, so of a selective filter's file only a row
//! group or two need their column index, and of those only the filter's columns. Yet the
//! column indexes of a file lie together before its offset indexes, and parquet-rs and
//! DataFusion read them whole: on a 20-row-group file of 12 columns, an id lookup read
//! 20 × 12 entries to use one. [`footer::prime`](super::footer::prime) reads the footer and
//! the offset index; once the physical plan holds the filter, [`fetch`] prunes each file's
//! row groups by statistics the way DataFusion will and reads, in one GET per file, the
//! entries of the surviving row groups' filter columns. Every other entry stays absent,
//! which DataFusion reads as "no page statistics": an entry left out costs bytes read later,
//! never a wrong answer. The entries read are kept for the next query of the same object
//! version in this environment ([`kept`](super::kept)), which then skips this round trip.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::DecodeResult;
use parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataPushDecoder,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;

use super::error::store_error;
use super::footer::{Deferred, MAX_FOOTER_BYTES, cache_metadata, not_parquet};
use super::kept;
use crate::error::{FunctionError, Result};
use crate::s3::{IoStats, S3Store, key_of};

/// Files read at once.
const CONCURRENCY: usize = 8;

/// Reads the column index entries the filters of `plan` can use in the files of `deferred`,
/// and replaces those files' entries in DataFusion's metadata cache.
pub async fn fetch(
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
    store: &S3Store,
    stats: &IoStats,
    deferred: Deferred,
) -> Result<()> {
    if deferred.is_empty() {
        return Ok(());
    }
    // (row group, leaf column) entries wanted, per file, over every scan of it.
    let mut wanted: HashMap<Path, BTreeSet<(usize, usize)>> = HashMap::new();
    for scan in super::scans::of(plan) {
        let Some(filter) = &scan.filter else {
            continue;
        };
        for location in &scan.files {
            if let Some((_, metadata)) = deferred.get(location) {
                let entries = entries_for(metadata, &scan.schema, filter, location);
                wanted.entry(location.clone()).or_default().extend(entries);
            }
        }
    }
    let reads = wanted.into_iter().filter_map(|(location, entries)| {
        let (meta, metadata) = deferred.get(&location)?;
        let key = key_of(&meta.location).ok()?;
        // Entries this environment read before from the same version of the object.
        let known = store
            .version_read(&meta.location)
            .map(|e_tag| kept::get(store.scope(), &key, &e_tag, meta.size, &entries))
            .unwrap_or_default();
        let missing: BTreeSet<(usize, usize)> = entries
            .iter()
            .filter(|e| !known.contains_key(e))
            .copied()
            .collect();
        let metadata = with_entries(metadata, known);
        Some(async move {
            let Some(range) = covering(&metadata, &missing) else {
                return Ok::<_, FunctionError>((meta.clone(), metadata));
            };
            let bytes = store
                .get_range(&meta.location, range.clone())
                .await
                .map_err(|e| store_error(e, stats))?;
            let merged = merge(&metadata, &missing, range, bytes, meta.size)
                .map_err(|why| not_parquet(store, meta, why))?;
            // The version again: a GET answered by another ETag since leaves nothing to keep.
            if let (Some(e_tag), Some(index)) =
                (store.version_read(&meta.location), merged.column_index())
            {
                let read = missing.iter().filter_map(|&(rg, leaf)| {
                    let len = entry_range(&merged, rg, leaf).map_or(0, |r| r.end - r.start);
                    Some(((rg, leaf), index.get(rg)?.get(leaf)?.clone(), len))
                });
                kept::add(store.scope(), &key, &e_tag, meta.size, read);
            }
            Ok((meta.clone(), Arc::new(merged)))
        })
    });
    let merged: Vec<(ObjectMeta, Arc<ParquetMetaData>)> = futures::stream::iter(reads)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for (meta, metadata) in merged {
        cache_metadata(ctx, &meta, metadata);
    }
    Ok(())
}

/// The (row group, leaf column) entries `filter` can use in a file: its columns, in the row
/// groups that its statistics do not rule out and do not match whole.
fn entries_for(
    metadata: &ParquetMetaData,
    schema: &SchemaRef,
    filter: &Arc<dyn PhysicalExpr>,
    location: &Path,
) -> Vec<(usize, usize)> {
    let parquet_schema = metadata.file_metadata().schema_descr();
    let leaves: BTreeSet<usize> = collect_columns(filter)
        .iter()
        .filter_map(|c| parquet::arrow::parquet_column(parquet_schema, schema, c.name()))
        .map(|(leaf, _)| leaf)
        .collect();
    if leaves.is_empty() {
        return Vec::new();
    }
    let plan = super::prune::by_statistics(metadata, schema, filter, location);
    let whole = plan.is_fully_matched().clone();
    plan.row_group_indexes()
        .filter(|&rg| !whole.get(rg).copied().unwrap_or(false))
        .flat_map(|rg| leaves.iter().map(move |&leaf| (rg, leaf)))
        .collect()
}

/// Where the column index entry of a column chunk lies, if the file has one.
fn entry_range(metadata: &ParquetMetaData, rg: usize, leaf: usize) -> Option<Range<u64>> {
    let chunk = metadata.row_groups().get(rg)?.columns().get(leaf)?;
    let start = u64::try_from(chunk.column_index_offset()?).ok()?;
    let len = u64::try_from(chunk.column_index_length()?).ok()?;
    Some(start..start.checked_add(len)?)
}

/// One range covering the entries: they lie close together when the surviving row groups
/// do, and a filter that keeps far-apart row groups reads at most the whole column index, as
/// it would have without this module.
pub(crate) fn covering(
    metadata: &ParquetMetaData,
    entries: &BTreeSet<(usize, usize)>,
) -> Option<Range<u64>> {
    entries
        .iter()
        .filter_map(|&(rg, leaf)| entry_range(metadata, rg, leaf))
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
}

/// `metadata` with `entries` in its column index; elsewhere what it held (absent, or kept
/// from an earlier read). An entry outside the file's row groups and columns is ignored.
fn set_entries(
    metadata: &ParquetMetaData,
    entries: impl IntoIterator<Item = ((usize, usize), ColumnIndexMetaData)>,
) -> ParquetMetaData {
    let mut column_index = match metadata.column_index() {
        Some(index) => index.clone(),
        None => metadata
            .row_groups()
            .iter()
            .map(|rg| vec![ColumnIndexMetaData::NONE; rg.num_columns()])
            .collect(),
    };
    for ((rg, leaf), index) in entries {
        if let Some(slot) = column_index.get_mut(rg).and_then(|c| c.get_mut(leaf)) {
            *slot = index;
        }
    }
    metadata
        .clone()
        .into_builder()
        .set_column_index(Some(column_index))
        .build()
}

/// `metadata` with `entries` (kept from an earlier read of the same file) in its column
/// index; `metadata` itself, not a copy, when there are none.
fn with_entries(
    metadata: &Arc<ParquetMetaData>,
    entries: HashMap<(usize, usize), ColumnIndexMetaData>,
) -> Arc<ParquetMetaData> {
    if entries.is_empty() {
        return Arc::clone(metadata);
    }
    Arc::new(set_entries(metadata, entries))
}

/// `metadata` with the column index decoded from `bytes` (the file's `range`) for `entries`;
/// elsewhere what `metadata` held (absent, or kept from an earlier read).
pub(crate) fn merge(
    metadata: &ParquetMetaData,
    entries: &BTreeSet<(usize, usize)>,
    range: Range<u64>,
    bytes: bytes::Bytes,
    size: u64,
) -> std::result::Result<ParquetMetaData, String> {
    if range.end > size || range.end - range.start > MAX_FOOTER_BYTES as u64 {
        return Err(format!(
            "its column index claims bytes {range:?}, beyond the file or the \
             {MAX_FOOTER_BYTES}-byte limit"
        ));
    }
    // A file of just the row groups read, each locating the index of the wanted columns only.
    let groups: Vec<usize> = entries
        .iter()
        .map(|&(rg, _)| rg)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut sub = Vec::with_capacity(groups.len());
    for &rg in &groups {
        let mut group = metadata.row_group(rg).clone();
        for (leaf, column) in group.columns_mut().iter_mut().enumerate() {
            if !entries.contains(&(rg, leaf)) {
                *column = column
                    .clone()
                    .into_builder()
                    .set_column_index_offset(None)
                    .set_column_index_length(None)
                    .build()
                    .map_err(|e| e.to_string())?;
            }
        }
        sub.push(group);
    }
    let sub = ParquetMetaDataBuilder::new(metadata.file_metadata().clone())
        .set_row_groups(sub)
        .build();
    let mut decoder = ParquetMetaDataPushDecoder::try_new_with_metadata(size, sub)
        .map_err(|e| e.to_string())?
        .with_offset_index_policy(PageIndexPolicy::Skip)
        .with_column_index_policy(PageIndexPolicy::Optional);
    decoder
        .push_range(range, bytes)
        .map_err(|e| e.to_string())?;
    let decoded = match decoder.try_decode().map_err(|e| e.to_string())? {
        DecodeResult::Data(m) => m,
        other => return Err(format!("its column index did not decode ({other:?})")),
    };
    let Some(decoded) = decoded.column_index() else {
        return Err("its column index is missing".into());
    };
    // Every entry read describes as many pages as the offset index locates; the entries
    // `metadata` holds already stay.
    let mut read = Vec::new();
    for (&rg, columns) in groups.iter().zip(decoded) {
        for (leaf, index) in columns.iter().enumerate() {
            if matches!(index, ColumnIndexMetaData::NONE) {
                continue;
            }
            let pages = metadata
                .offset_index()
                .and_then(|o| o.get(rg)?.get(leaf))
                .map(|o| o.page_locations().len() as u64);
            if pages != Some(index.num_pages()) {
                return Err(format!(
                    "the column index of row group {rg}, column {leaf} describes {} pages where \
                     the offset index locates {pages:?}",
                    index.num_pages()
                ));
            }
            read.push(((rg, leaf), index.clone()));
        }
    }
    Ok(set_entries(metadata, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, col, lit};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::WriterProperties;

    /// 1,000 rows, `id` 0..1000 sorted and a name, in 10 row groups of 10 pages each.
    fn file() -> (bytes::Bytes, SchemaRef) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .set_data_page_row_count_limit(10)
            .set_write_batch_size(10)
            .build();
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), Some(props)).unwrap();
        let ids: Vec<i64> = (0..1000).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("name-{i:04}")).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        (bytes::Bytes::from(buf), schema)
    }

    /// The footer and offset index, as `footer::prime` leaves a filter's file.
    fn footer(file: &bytes::Bytes) -> ParquetMetaData {
        ParquetMetaDataReader::new()
            .with_offset_index_policy(PageIndexPolicy::Optional)
            .with_column_index_policy(PageIndexPolicy::Skip)
            .parse_and_finish(file)
            .unwrap()
    }

    fn id_between(schema: &SchemaRef, lo: i64, hi: i64) -> Arc<dyn PhysicalExpr> {
        let cmp = |op, v| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(
                col("id", schema).unwrap(),
                op,
                lit(ScalarValue::Int64(Some(v))),
            ))
        };
        Arc::new(BinaryExpr::new(
            cmp(Operator::GtEq, lo),
            Operator::And,
            cmp(Operator::LtEq, hi),
        ))
    }

    #[test]
    fn a_selective_filter_reads_one_entry_and_the_rest_stays_absent() {
        let (file, schema) = file();
        let metadata = footer(&file);
        assert_eq!(metadata.num_row_groups(), 10);
        let filter = id_between(&schema, 250, 259);
        let entries: BTreeSet<_> = entries_for(&metadata, &schema, &filter, &Path::from("t"))
            .into_iter()
            .collect();
        assert_eq!(entries, BTreeSet::from([(2, 0)]));
        let range = covering(&metadata, &entries).unwrap();
        assert_eq!(Some(range.clone()), entry_range(&metadata, 2, 0));
        let whole = (0..10)
            .flat_map(|rg| [entry_range(&metadata, rg, 0), entry_range(&metadata, rg, 1)])
            .map(|r| r.unwrap())
            .map(|r| r.end - r.start)
            .sum::<u64>();
        assert!(
            (range.end - range.start) * 15 < whole,
            "{range:?} of {whole} bytes"
        );

        let bytes = file.slice(range.start as usize..range.end as usize);
        let merged = merge(&metadata, &entries, range, bytes, file.len() as u64).unwrap();
        let index = merged.column_index().unwrap();
        for (rg, columns) in index.iter().enumerate() {
            for (leaf, entry) in columns.iter().enumerate() {
                let absent = matches!(entry, ColumnIndexMetaData::NONE);
                assert_eq!(
                    absent,
                    (rg, leaf) != (2, 0),
                    "row group {rg}, column {leaf}"
                );
            }
        }
        let ColumnIndexMetaData::INT64(id) = &index[2][0] else {
            panic!("{:?}", index[2][0]);
        };
        assert_eq!(id.num_pages(), 10);
        assert_eq!(id.min_value(5), Some(&250));
        assert_eq!(id.max_value(5), Some(&259));
        assert_eq!(merged.offset_index(), metadata.offset_index());
    }

    #[test]
    fn row_groups_matched_whole_or_ruled_out_need_no_entry() {
        let (file, schema) = file();
        let metadata = footer(&file);
        for (lo, hi) in [(0, 999), (5000, 6000)] {
            let filter = id_between(&schema, lo, hi);
            assert!(
                entries_for(&metadata, &schema, &filter, &Path::from("t")).is_empty(),
                "{lo}..={hi}"
            );
        }
        // A filter statistics cannot evaluate keeps every row group.
        let name = Arc::new(BinaryExpr::new(
            col("name", &schema).unwrap(),
            Operator::LikeMatch,
            lit(ScalarValue::Utf8(Some("%7".into()))),
        ));
        assert_eq!(
            entries_for(&metadata, &schema, &(name as _), &Path::from("t")).len(),
            10
        );
    }

    #[test]
    fn entries_that_disagree_with_the_file_are_refused() {
        let (file, _) = file();
        let metadata = footer(&file);
        let entries = BTreeSet::from([(2, 0)]);
        let range = entry_range(&metadata, 2, 0).unwrap();
        let size = file.len() as u64;
        // Beyond the end of the file.
        let far = size..size + 10;
        let err = merge(&metadata, &entries, far, bytes::Bytes::new(), size).unwrap_err();
        assert!(err.contains("beyond the file"), "{err}");
        // Another column chunk's entry under this one's name: its bytes do not decode as
        // this range's index, or describe other pages.
        let other = entry_range(&metadata, 2, 1).unwrap();
        let garbage = file
            .slice(other.start as usize..other.start as usize + (range.end - range.start) as usize);
        assert!(merge(&metadata, &entries, range, garbage, size).is_err());
    }
}
