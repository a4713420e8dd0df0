//! A [`FileFormat`] as DataFusion's own reader of it: `ParquetFormat`, `CsvFormat` (CSV and
//! TSV) or `JsonFormat` (NDJSON), for one compression.

use std::sync::Arc;

use datafusion::datasource::file_format::FileFormat as DataFusionFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::prelude::SessionContext;

use super::{Compression, FileFormat, FormatType};

/// Rows read to infer a CSV or NDJSON file's column types.
pub const INFER_ROWS: usize = 1000;

/// DataFusion's reader of `format` for files compressed with `compression` (not `Auto`:
/// resolve it per file with [`Compression::for_key`]).
pub fn reader(
    ctx: &SessionContext,
    format: &FileFormat,
    compression: Compression,
) -> Arc<dyn DataFusionFormat> {
    let compression = compression_type(compression);
    match format.kind {
        FormatType::Parquet => Arc::new(
            ParquetFormat::default().with_options(ctx.state().default_table_options().parquet),
        ),
        FormatType::Csv | FormatType::Tsv => Arc::new(
            CsvFormat::default()
                .with_has_header(format.skip_header)
                .with_delimiter(format.field_delimiter)
                .with_quote(format.quote)
                .with_escape(format.escape)
                .with_terminator(format.record_delimiter)
                .with_null_regex(Some(format.null_regex()))
                // Quoted fields may hold newlines: never split a file at a newline.
                .with_newlines_in_values(true)
                .with_schema_infer_max_rec(INFER_ROWS)
                .with_file_compression_type(compression),
        ),
        FormatType::Ndjson => Arc::new(
            JsonFormat::default()
                .with_newline_delimited(true)
                .with_schema_infer_max_rec(INFER_ROWS)
                .with_file_compression_type(compression),
        ),
    }
}

/// DataFusion's name for a compression (`Auto` resolved already: it reads as none).
pub fn compression_type(compression: Compression) -> FileCompressionType {
    match compression {
        Compression::Gzip => FileCompressionType::GZIP,
        Compression::Zstd => FileCompressionType::ZSTD,
        Compression::Bz2 => FileCompressionType::BZIP2,
        Compression::Xz => FileCompressionType::XZ,
        Compression::None | Compression::Auto => FileCompressionType::UNCOMPRESSED,
    }
}
