//! Parquet footers read once per file, with one suffix GET, and handed to DataFusion's
//! metadata cache so neither planning nor execution reads them again.
//!
//! DataFusion alone loads the whole page index while planning (a second GET per file), which
//! a `count(*)` answered from the footer does not need. Here the offset index (for reading
//! just the pages a LIMIT or a filter needs) is decoded when it already lies in the bytes
//! fetched, and fetched otherwise only when the query can use it ([`PageIndexes`]). The
//! column index (for page pruning) is decoded when it lies in those bytes too; otherwise a
//! filter's entries are read after planning ([`column_index`](super::column_index)). An
//! index left out is recorded as absent, which DataFusion reads as "no page statistics",
//! never as a reason to fetch.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::page_index::column_index::ColumnIndexMetaData;

use super::error::store_error;
use super::hints::{self, PageIndexes};
use crate::checks;
use crate::error::{ErrorKind, FunctionError, Result};
use crate::s3::{IoStats, S3Store, key_of};

/// A footer (metadata plus page indexes) larger than this is refused as corrupt or hostile.
pub const MAX_FOOTER_BYTES: usize = 64 * 1024 * 1024;
/// Footers fetched at once.
const CONCURRENCY: usize = 8;

/// Files whose footer and offset index are loaded and whose column index is left for
/// [`column_index::fetch`](super::column_index::fetch), by location.
#[derive(Debug, Default)]
pub struct Deferred(HashMap<Path, (ObjectMeta, Arc<ParquetMetaData>)>);

impl Deferred {
    pub fn insert(&mut self, meta: ObjectMeta, metadata: Arc<ParquetMetaData>) {
        self.0.insert(meta.location.clone(), (meta, metadata));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, location: &Path) -> Option<&(ObjectMeta, Arc<ParquetMetaData>)> {
        self.0.get(location)
    }
}

/// Loads the footers of `files`, primes DataFusion's metadata cache with them and tells the
/// store where their pages are, so it checks every page header it fetches. The files whose
/// column index the query wants and was not in the bytes read go to `deferred`.
///
/// Each file's first read is its learned length ([`hints`]); when the first file is new to
/// this environment it is read alone, with `hint`, and the others are read like it.
#[allow(clippy::too_many_arguments)]
pub async fn prime(
    ctx: &SessionContext,
    store: &S3Store,
    stats: &IoStats,
    files: &[ObjectMeta],
    hint: u64,
    want: PageIndexes,
    max_page: u64,
    deferred: &mut Deferred,
) -> Result<()> {
    let learned = |meta: &ObjectMeta| {
        key_of(&meta.location)
            .ok()
            .and_then(|key| hints::first_read(store.scope(), &key, want))
    };
    let mut loaded: Vec<(ObjectMeta, ParquetMetaData)> = Vec::with_capacity(files.len());
    let mut rest = files;
    let mut sibling = None;
    if let [first, others @ ..] = files
        && !others.is_empty()
        && learned(first).is_none()
    {
        loaded.push((first.clone(), load(store, stats, first, hint, want).await?));
        sibling = learned(first).map(hints::from_sibling);
        rest = others;
    }
    let more: Vec<(ObjectMeta, ParquetMetaData)> = futures::stream::iter(rest.iter().cloned())
        .map(|meta| {
            let first_read = learned(&meta).or(sibling).unwrap_or(hint);
            async move {
                let metadata = load(store, stats, &meta, first_read, want).await?;
                Ok::<_, FunctionError>((meta, metadata))
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    loaded.extend(more);
    for (meta, metadata) in loaded {
        store.expect_pages(&meta.location, checks::PageMap::new(&metadata, max_page));
        let defer = want.column_index && lacks_column_index(&metadata);
        let metadata = Arc::new(mark_missing_column_index(metadata));
        if defer {
            deferred.insert(meta.clone(), Arc::clone(&metadata));
        }
        cache_metadata(ctx, &meta, metadata);
    }
    Ok(())
}

/// Puts a file's metadata in DataFusion's metadata cache, where planning and execution read
/// it instead of the file.
pub fn cache_metadata(ctx: &SessionContext, meta: &ObjectMeta, metadata: Arc<ParquetMetaData>) {
    let entry =
        CachedFileMetadataEntry::new(meta.clone(), Arc::new(CachedParquetMetaData::new(metadata)));
    ctx.runtime_env()
        .cache_manager
        .get_file_metadata_cache()
        .put(&meta.location, entry);
}

/// The error for an object that is not readable Parquet, and why.
pub fn not_parquet(store: &S3Store, meta: &ObjectMeta, why: String) -> FunctionError {
    let key = key_of(&meta.location).unwrap_or_default();
    FunctionError::new(
        ErrorKind::InvalidParquet,
        format!(
            "s3://{}/{key} is not a readable Parquet file: {why}",
            store.bucket()
        ),
    )
}

/// The file has a column index and it is not decoded; the offset index is.
fn lacks_column_index(metadata: &ParquetMetaData) -> bool {
    metadata.column_index().is_none()
        && metadata.offset_index().is_some()
        && metadata
            .row_groups()
            .iter()
            .flat_map(|rg| rg.columns())
            .any(|c| c.column_index_offset().is_some())
}

/// One file's metadata: footer, the offset index when wanted or free, the column index when
/// free (in the bytes read for the others).
pub async fn load(
    store: &S3Store,
    stats: &IoStats,
    meta: &ObjectMeta,
    hint: u64,
    want: PageIndexes,
) -> Result<ParquetMetaData> {
    let key = key_of(&meta.location).unwrap_or_default();
    let invalid = |why: String| not_parquet(store, meta, why);
    let size = meta.size;
    check_size(size).map_err(invalid)?;
    let mut tail = fetch_tail(store, stats, meta, hint).await?;
    let footer = match parse_tail(&tail, size).map_err(invalid)? {
        Tail::Footer(footer) => footer,
        Tail::Needs(len) => {
            tail = fetch_tail(store, stats, meta, len).await?;
            match parse_tail(&tail, size).map_err(invalid)? {
                Tail::Footer(footer) => footer,
                Tail::Needs(_) => {
                    return Err(invalid(format!(
                        "S3 returned {} bytes for its last {len}",
                        tail.len()
                    )));
                }
            }
        }
    };

    // What this environment learns of the file: from the footer as written, whose chunks say
    // where the page indexes are, before a query that does without them strips them (below).
    // Learned from the stripped footer, a `count(*)` would make the next LIMIT on the file
    // take a request more for its offset index. The footer's claims are unchecked here, so
    // no first read is learned longer than a footer with its indexes may be.
    // `parse_tail` found the trailer in these bytes.
    let mut lengths = hints::Lengths::of(&footer, size, footer_len(&tail[tail.len() - 8..]) + 8);
    lengths.offset_index = lengths.offset_index.min(MAX_FOOTER_BYTES as u64);

    // Page indexes: whatever the tail already holds costs nothing; the offset index is
    // fetched only when the query can use it, the column index only after planning.
    let attempt = |bytes: &Bytes, offset: PageIndexPolicy, column: PageIndexPolicy| {
        with_page_indexes(&footer, bytes, size, offset, column)
    };
    use PageIndexPolicy::{Optional, Skip};
    // 1. Both indexes from the tail; 2. else the offset index alone. A NeedMoreData left
    // over says how much the offset index needs.
    let mut parsed = attempt(&tail, Optional, Optional);
    if matches!(parsed, Err(ParquetError::NeedMoreData(_))) {
        parsed = attempt(&tail, Optional, Skip);
    }
    // 3. Fetch it if wanted; if not, do without page indexes.
    let metadata = match parsed {
        Ok(m) => m,
        Err(ParquetError::NeedMoreData(needed)) if want.offset_index => {
            let more = fetch_for_index(store, stats, meta, needed, &invalid).await?;
            attempt(&more, Optional, Skip).map_err(|e| invalid(e.to_string()))?
        }
        Err(ParquetError::NeedMoreData(_)) => {
            without_page_index(footer).map_err(|e| invalid(e.to_string()))?
        }
        Err(e) => return Err(invalid(e.to_string())),
    };
    hints::learn(store.scope(), &key, lengths);
    Ok(metadata)
}

fn check_size(size: u64) -> std::result::Result<(), String> {
    if size < 12 {
        return Err(format!(
            "it is {size} bytes, smaller than the smallest Parquet file"
        ));
    }
    Ok(())
}

/// The footer length a file's 8-byte trailer (length, then magic) declares.
fn footer_len(trailer: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]))
}

/// What the last bytes of a file say.
#[derive(Debug)]
pub enum Tail {
    /// The decoded footer; page indexes are read apart ([`with_page_indexes`]).
    Footer(ParquetMetaData),
    /// The footer needs this many bytes from the end of the file.
    Needs(u64),
}

/// Decodes the footer from `tail`, the last bytes of a `size`-byte file, after the checks of
/// [`checks::footer`] and before trusting its row counts ([`check_rows`]). `Err` says why
/// the file is not readable Parquet. No I/O: the fuzz target `parquet_footer` calls it.
pub fn parse_tail(tail: &Bytes, size: u64) -> std::result::Result<Tail, String> {
    check_size(size)?;
    // The trailer: the footer's length and the magic, checked before anything is sized
    // from them, with messages that say which of the two is wrong.
    let Some(at) = tail.len().checked_sub(8) else {
        return Err(format!("S3 returned {} bytes for its last 8", tail.len()));
    };
    let trailer = &tail[at..];
    match &trailer[4..] {
        b"PAR1" => {}
        b"PARE" => return Err("it is encrypted (magic PARE), which xstage does not read".into()),
        other => {
            return Err(format!(
                "it does not end with the Parquet magic PAR1 (it ends with {other:02x?}); is it \
                 another format, or cut short?"
            ));
        }
    }
    let footer_len = footer_len(trailer);
    if footer_len + 8 > size.saturating_sub(4) {
        return Err(format!(
            "its footer claims {footer_len} bytes, more than the {size}-byte file holds"
        ));
    }
    if footer_len + 8 > MAX_FOOTER_BYTES as u64 {
        return Err(format!(
            "its footer claims {footer_len} bytes, more than the {MAX_FOOTER_BYTES}-byte limit"
        ));
    }
    if (tail.len() as u64) < footer_len + 8 {
        return Ok(Tail::Needs(footer_len + 8));
    }
    checks::footer::check(&tail[at - footer_len as usize..at])?;
    let mut reader = ParquetMetaDataReader::new();
    reader
        .try_parse_sized(tail, size)
        .map_err(|e| e.to_string())?;
    let footer = without_unsafe_arrow_hint(reader.finish().map_err(|e| e.to_string())?);
    check_rows(&footer)?;
    check_chunks(&footer, size - 8 - footer_len)?;
    Ok(Tail::Footer(footer))
}

/// `footer` with the page indexes found in `bytes`, the last bytes of a `size`-byte file.
/// `NeedMoreData` says how many bytes from the end the wanted indexes need.
pub fn with_page_indexes(
    footer: &ParquetMetaData,
    bytes: &Bytes,
    size: u64,
    offset: PageIndexPolicy,
    column: PageIndexPolicy,
) -> parquet::errors::Result<ParquetMetaData> {
    let mut r = ParquetMetaDataReader::new_with_metadata(footer.clone())
        .with_offset_index_policy(offset)
        .with_column_index_policy(column);
    r.read_page_indexes_sized(bytes, size)?;
    let metadata = r.finish()?;
    check_offset_index(&metadata).map_err(ParquetError::General)?;
    Ok(metadata)
}

/// Page locations inside their column chunk, first rows increasing from 0 and below the row
/// group's count (DataFusion subtracts them to count rows per page).
fn check_offset_index(metadata: &ParquetMetaData) -> std::result::Result<(), String> {
    let Some(index) = metadata.offset_index() else {
        return Ok(());
    };
    for (rg, columns) in metadata.row_groups().iter().zip(index) {
        for (column, pages) in rg.columns().iter().zip(columns) {
            let (start, len) = column.byte_range();
            let mut previous: Option<i64> = None;
            for page in pages.page_locations() {
                let end = page
                    .offset
                    .saturating_add(i64::from(page.compressed_page_size));
                let inside = page.offset >= start as i64
                    && page.compressed_page_size >= 0
                    && end <= start.saturating_add(len) as i64;
                let ordered = match previous {
                    None => page.first_row_index == 0,
                    Some(p) => page.first_row_index > p,
                } && page.first_row_index < rg.num_rows().max(1);
                if !inside || !ordered {
                    return Err(format!(
                        "the offset index of column {} is inconsistent (a page at {} with first row {})",
                        column.column_path(),
                        page.offset,
                        page.first_row_index
                    ));
                }
                previous = Some(page.first_row_index);
            }
        }
    }
    Ok(())
}

async fn fetch_for_index(
    store: &S3Store,
    stats: &IoStats,
    meta: &ObjectMeta,
    needed: usize,
    invalid: &impl Fn(String) -> FunctionError,
) -> Result<Bytes> {
    if needed > MAX_FOOTER_BYTES {
        return Err(invalid(format!(
            "its page index needs {needed} bytes, more than the {MAX_FOOTER_BYTES}-byte limit"
        )));
    }
    fetch_tail(store, stats, meta, needed as u64).await
}

/// The last `len` bytes of the object (all of it if smaller).
async fn fetch_tail(
    store: &S3Store,
    stats: &IoStats,
    meta: &ObjectMeta,
    len: u64,
) -> Result<Bytes> {
    let start = meta.size.saturating_sub(len);
    store
        .get_range(&meta.location, start..meta.size)
        .await
        .map_err(|e| store_error(e, stats))
}

/// The row counts agree: the file's is the sum of its row groups', and no column chunk has
/// fewer values than its row group has rows. A footer that disagrees with itself is
/// corrupt, and a `count(*)` answered from it would be a lie.
fn check_rows(metadata: &ParquetMetaData) -> std::result::Result<(), String> {
    let claimed = metadata.file_metadata().num_rows();
    let mut sum: i64 = 0;
    for rg in metadata.row_groups() {
        if rg.num_rows() < 0 {
            return Err(format!("a row group claims {} rows", rg.num_rows()));
        }
        // Every row has at least one value (or null) in every column, repeated or not.
        if let Some(c) = rg.columns().iter().find(|c| c.num_values() < rg.num_rows()) {
            return Err(format!(
                "a row group claims {} rows, but its column {} holds {} values",
                rg.num_rows(),
                c.column_path(),
                c.num_values()
            ));
        }
        sum = sum.saturating_add(rg.num_rows());
    }
    if sum != claimed {
        return Err(format!(
            "its footer claims {claimed} rows but its row groups hold {sum}"
        ));
    }
    Ok(())
}

/// The footer without its embedded Arrow schema when arrow-ipc would panic converting it
/// ([`checks::arrow_hint`]): the file is then read by its Parquet schema alone.
fn without_unsafe_arrow_hint(metadata: ParquetMetaData) -> ParquetMetaData {
    let file = metadata.file_metadata();
    let Some(kv) = file.key_value_metadata() else {
        return metadata;
    };
    let unsafe_hint = |e: &parquet::file::metadata::KeyValue| {
        e.key == checks::arrow_hint::KEY
            && e.value
                .as_deref()
                .is_some_and(|v| !checks::arrow_hint::is_safe(v))
    };
    if !kv.iter().any(unsafe_hint) {
        return metadata;
    }
    tracing::warn!("ignoring an embedded Arrow schema that cannot be converted");
    let kept: Vec<_> = kv.iter().filter(|e| !unsafe_hint(e)).cloned().collect();
    let file = parquet::file::metadata::FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(kept),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    // Decoded before any page index, so the row groups are all there is besides.
    let row_groups = metadata.into_builder().take_row_groups();
    parquet::file::metadata::ParquetMetaDataBuilder::new(file)
        .set_row_groups(row_groups)
        .build()
}

/// Every column chunk lies between the leading magic and the footer (`data_end`), with
/// offsets and sizes that are not negative (parquet-rs panics on those when asked for a
/// chunk's byte range).
fn check_chunks(metadata: &ParquetMetaData, data_end: u64) -> std::result::Result<(), String> {
    for column in metadata.row_groups().iter().flat_map(|rg| rg.columns()) {
        let start = column
            .dictionary_page_offset()
            .unwrap_or(column.data_page_offset());
        let (data, len) = (column.data_page_offset(), column.compressed_size());
        let end = start.checked_add(len).unwrap_or(i64::MAX);
        if start < 0 || data < 0 || len < 0 || end as u64 > data_end {
            return Err(format!(
                "column {} claims bytes {start}..{end}, outside the data of a file whose footer \
                 starts at {data_end}",
                column.column_path()
            ));
        }
    }
    Ok(())
}

/// The footer with its page index locations removed, so nothing downstream fetches them:
/// the query reads whole column chunks, which it would anyway.
fn without_page_index(metadata: ParquetMetaData) -> parquet::errors::Result<ParquetMetaData> {
    let mut builder = metadata.into_builder();
    let mut row_groups = builder.take_row_groups();
    for rg in &mut row_groups {
        for column in rg.columns_mut() {
            *column = column
                .clone()
                .into_builder()
                .set_offset_index_offset(None)
                .set_offset_index_length(None)
                .set_column_index_offset(None)
                .set_column_index_length(None)
                .build()?;
        }
    }
    Ok(builder
        .set_row_groups(row_groups)
        .set_offset_index(None)
        .set_column_index(None)
        .build())
}

/// With an offset index but no column index, record every column index as absent, so
/// DataFusion treats the page index as loaded instead of fetching it.
fn mark_missing_column_index(metadata: ParquetMetaData) -> ParquetMetaData {
    if metadata.offset_index().is_none() || metadata.column_index().is_some() {
        return metadata;
    }
    let none: Vec<Vec<ColumnIndexMetaData>> = metadata
        .row_groups()
        .iter()
        .map(|rg| vec![ColumnIndexMetaData::NONE; rg.num_columns()])
        .collect();
    metadata.into_builder().set_column_index(Some(none)).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::thrift::{Writer, ty};

    /// A file of one INT32 column whose only chunk starts at `offset`: magic, 20 bytes of
    /// "data", the footer, its length and the magic.
    fn file_with_chunk_at(offset: i64) -> Bytes {
        let mut m = Writer::default();
        m.begin().field(1, ty::I32).int(2);
        m.field(2, ty::LIST).list(ty::STRUCT, 2);
        m.begin().field(4, ty::BINARY).binary(b"schema");
        m.field(5, ty::I32).int(1).end();
        m.begin().field(1, ty::I32).int(1).field(3, ty::I32).int(0);
        m.field(4, ty::BINARY).binary(b"v").end();
        m.field(3, ty::I64).int(1);
        m.field(4, ty::LIST).list(ty::STRUCT, 1);
        m.begin().field(1, ty::LIST).list(ty::STRUCT, 1);
        m.begin()
            .field(2, ty::I64)
            .int(offset)
            .field(3, ty::STRUCT)
            .begin();
        m.field(1, ty::I32)
            .int(1)
            .field(2, ty::LIST)
            .list(ty::I32, 1)
            .int(0);
        m.field(3, ty::LIST).list(ty::BINARY, 1).binary(b"v");
        m.field(4, ty::I32).int(0).field(5, ty::I64).int(1);
        m.field(6, ty::I64).int(10).field(7, ty::I64).int(10);
        m.field(9, ty::I64).int(offset).end().end();
        m.field(2, ty::I64).int(10).field(3, ty::I64).int(1).end();
        m.end();
        let mut file = b"PAR1".to_vec();
        file.extend([0u8; 20]);
        file.extend(&m.bytes);
        file.extend((m.bytes.len() as u32).to_le_bytes());
        file.extend(b"PAR1");
        Bytes::from(file)
    }

    #[test]
    fn chunks_inside_the_data_are_accepted() {
        let file = file_with_chunk_at(4);
        assert!(matches!(
            parse_tail(&file, file.len() as u64),
            Ok(Tail::Footer(_))
        ));
    }

    #[test]
    fn chunks_outside_the_data_are_refused_before_parquet_rs_panics_on_them() {
        for offset in [-5, 1 << 40] {
            let file = file_with_chunk_at(offset);
            let err = parse_tail(&file, file.len() as u64).unwrap_err();
            assert!(err.contains("outside the data"), "{offset}: {err}");
            // The fuzz target's path over the same bytes returns without panicking.
            let mut input = 0u64.to_le_bytes().to_vec();
            input.extend_from_slice(&file);
            crate::fuzz::parquet_footer(&input);
        }
    }

    #[test]
    fn a_tail_shorter_than_the_footer_asks_for_more() {
        let file = file_with_chunk_at(4);
        let tail = file.slice(file.len() - 16..);
        assert!(matches!(
            parse_tail(&tail, file.len() as u64),
            Ok(Tail::Needs(n)) if n as usize == file.len() - 24
        ));
    }
}
