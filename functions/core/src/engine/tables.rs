//! The tables a query reads, registered under their generated names: files as a DataFusion
//! `ListingTable` of their format (one per compression, joined by name), and `LIST` /
//! `INFER_SCHEMA` answers as in-memory tables.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result as DfResult;
use datafusion::functions::expr_fn::nullif;
use datafusion::prelude::{Expr, SessionContext, cast, ident, lit};
use object_store::{ObjectMeta, ObjectStore};

use crate::format::{Compression, FileFormat, FormatType, listing};
use crate::s3::{S3Store, key_of};
use crate::sql::FILENAME_COLUMN;
use crate::stage::StageUrl;
use crate::types::sql_type;

/// Most files INFER_SCHEMA reads footers of.
pub const INFER_SCHEMA_MAX_FILES: usize = 100;

/// The URL DataFusion uses for an object.
fn url(bucket: &str, meta: &ObjectMeta) -> DfResult<ListingTableUrl> {
    let key = key_of(&meta.location)?;
    let mut url = url::Url::parse(&format!("s3://{bucket}/"))
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    url.path_segments_mut()
        .map_err(|()| datafusion::error::DataFusionError::Internal("s3 URL without path".into()))?
        .pop_if_empty()
        .extend(key.split('/'));
    ListingTableUrl::try_new(url, None)
}

/// A table over exactly `files`, read as `format`. The schema is the union of the files'
/// schemas. Files of one compression share a listing table; tables of several are joined by
/// column name.
pub async fn file_table(
    ctx: &SessionContext,
    bucket: &str,
    format: &FileFormat,
    files: &[ObjectMeta],
) -> DfResult<Arc<dyn TableProvider>> {
    let mut groups: Vec<(Compression, Vec<ObjectMeta>)> = Vec::new();
    for meta in files {
        let compression = match format.kind {
            FormatType::Parquet => Compression::None,
            _ => format.compression.for_key(meta.location.as_ref()),
        };
        match groups.iter_mut().find(|(c, _)| *c == compression) {
            Some((_, group)) => group.push(meta.clone()),
            None => groups.push((compression, vec![meta.clone()])),
        }
    }
    if let [(compression, group)] = groups.as_slice() {
        return listing_table(ctx, bucket, format, *compression, group).await;
    }
    let mut frames = Vec::with_capacity(groups.len());
    for (compression, group) in &groups {
        let table = listing_table(ctx, bucket, format, *compression, group).await?;
        frames.push(ctx.read_table(table)?);
    }
    joined(frames)
}

async fn listing_table(
    ctx: &SessionContext,
    bucket: &str,
    format: &FileFormat,
    compression: Compression,
    files: &[ObjectMeta],
) -> DfResult<Arc<dyn TableProvider>> {
    let urls = files
        .iter()
        .map(|m| url(bucket, m))
        .collect::<DfResult<Vec<_>>>()?;
    // Keys need not end in .parquet: the selection, not the extension, decides what is read.
    let options =
        ListingOptions::new(listing::reader(ctx, format, compression)).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    match (&config.file_schema, format.kind.is_delimited()) {
        (Some(inferred), true) => {
            let inferred = Arc::clone(inferred);
            with_null_display(ctx, config, &inferred, &format.null_display)
        }
        _ => Ok(Arc::new(ListingTable::try_new(config)?)),
    }
}

/// A CSV or TSV table whose `NULL_DISPLAY` fields are NULL whatever their column's type.
/// DataFusion 55 applies the NULL pattern when it infers the types but not when it reads
/// (`CsvSource::builder` never sets it), so `\N` in a number column would fail to parse:
/// the files are read as text (an empty field is NULL there) and each column is turned
/// into its inferred type by a projection that DataFusion pushes projections, filters and
/// limits through. A value that does not convert fails the query with the value and type.
fn with_null_display(
    ctx: &SessionContext,
    config: ListingTableConfig,
    inferred: &Schema,
    null_display: &str,
) -> DfResult<Arc<dyn TableProvider>> {
    let text = Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let table = ListingTable::try_new(config.with_schema(Arc::new(text)))?;
    let columns: Vec<Expr> = inferred
        .fields()
        .iter()
        .map(|f| {
            let value = ident(f.name());
            let value = match null_display {
                "" => value,
                shown => nullif(value, lit(shown)),
            };
            match f.data_type() {
                DataType::Utf8 => value,
                other => cast(value, other.clone()),
            }
            .alias(f.name())
        })
        .collect();
    Ok(ctx
        .read_table(Arc::new(table))?
        .select(columns)?
        .into_view())
}

/// Like [`file_table`], with Databend's `METADATA$FILENAME` (the stage-relative path) as a
/// last column.
pub async fn file_table_with_filename(
    ctx: &SessionContext,
    bucket: &str,
    stage: &StageUrl,
    format: &FileFormat,
    files: &[ObjectMeta],
) -> DfResult<Arc<dyn TableProvider>> {
    let mut frames = Vec::with_capacity(files.len());
    for meta in files {
        let name = super::files::relative(stage, meta).unwrap_or_default();
        let table = file_table(ctx, bucket, format, std::slice::from_ref(meta)).await?;
        frames.push(
            ctx.read_table(table)?
                .with_column(FILENAME_COLUMN, lit(name))?,
        );
    }
    joined(frames)
}

/// `frames` joined by column name, as one table.
fn joined(frames: Vec<datafusion::dataframe::DataFrame>) -> DfResult<Arc<dyn TableProvider>> {
    let mut frames = frames.into_iter();
    let first = frames
        .next()
        .ok_or_else(|| datafusion::error::DataFusionError::Plan("no files".into()))?;
    Ok(frames
        .try_fold(first, |joined, df| joined.union_by_name(df))?
        .into_view())
}

/// Databend's `LIST` columns: name, size, md5 ([`md5_of`]), last_modified, creator.
pub fn list_table(stage: &StageUrl, files: &[ObjectMeta]) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("md5", DataType::Utf8, true),
        Field::new(
            "last_modified",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("creator", DataType::Utf8, true),
    ]));
    let names: StringArray = files
        .iter()
        .map(|m| super::files::relative(stage, m))
        .collect();
    let sizes = UInt64Array::from_iter_values(files.iter().map(|m| m.size));
    let md5: StringArray = files.iter().map(|m| md5_of(m.e_tag.as_deref())).collect();
    let modified = TimestampMillisecondArray::from_iter_values(
        files.iter().map(|m| m.last_modified.timestamp_millis()),
    )
    .with_timezone("UTC");
    let creator = StringArray::new_null(files.len());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(names),
        Arc::new(sizes),
        Arc::new(md5),
        Arc::new(modified),
        Arc::new(creator),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// The object's MD5, where its ETag is one: a single-part upload's ETag is the MD5 of its
/// bytes (32 hex digits); a multipart upload's (`<hex>-<parts>`) is not, and gives NULL.
fn md5_of(e_tag: Option<&str>) -> Option<String> {
    let tag = e_tag?.trim_matches('"');
    (tag.len() == 32 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| tag.to_ascii_lowercase())
}

/// Databend's `INFER_SCHEMA` columns: column_name, type, nullable, filenames, order_id. Each
/// column appears once, in first-seen order; `filenames` lists the files that have it. A
/// text file's types come from its first [`listing::INFER_ROWS`] rows.
pub async fn infer_schema_table(
    ctx: &SessionContext,
    store: &S3Store,
    stage: &StageUrl,
    format: &FileFormat,
    files: &[ObjectMeta],
) -> DfResult<Arc<dyn TableProvider>> {
    let state = ctx.state();
    let store: Arc<dyn ObjectStore> = Arc::new(store.clone());
    let mut columns: Vec<(Field, Vec<String>)> = Vec::new();
    for meta in files.iter().take(INFER_SCHEMA_MAX_FILES) {
        let compression = format.compression.for_key(meta.location.as_ref());
        let schema = listing::reader(ctx, format, compression)
            .infer_schema(&state, &store, std::slice::from_ref(meta))
            .await?;
        let file = super::files::relative(stage, meta).unwrap_or_default();
        for field in schema.fields() {
            match columns.iter_mut().find(|(f, _)| f.name() == field.name()) {
                Some((_, names)) => names.push(file.clone()),
                None => columns.push((field.as_ref().clone(), vec![file.clone()])),
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("column_name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("nullable", DataType::Boolean, false),
        Field::new("filenames", DataType::Utf8, false),
        Field::new("order_id", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                columns.iter().map(|(f, _)| f.name().clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                columns.iter().map(|(f, _)| sql_type(f.data_type())),
            )),
            Arc::new(BooleanArray::from_iter(
                columns.iter().map(|(f, _)| Some(f.is_nullable())),
            )),
            Arc::new(StringArray::from_iter_values(
                columns.iter().map(|(_, n)| n.join(", ")),
            )),
            Arc::new(UInt64Array::from_iter_values(0..columns.len() as u64)),
        ],
    )?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_is_a_single_part_etag_only() {
        let md5 = "\"9E107D9D372BB6826BD81D3542A419D6\"";
        assert_eq!(
            super::md5_of(Some(md5)).as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(
            super::md5_of(Some("\"9e107d9d372bb6826bd81d3542a419d6-2\"")),
            None
        );
        assert_eq!(super::md5_of(Some("W/\"abc\"")), None);
        assert_eq!(super::md5_of(None), None);
    }
}
