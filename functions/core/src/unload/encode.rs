//! One file's encoder: Parquet through parquet's `AsyncArrowWriter` over an [`Upload`], CSV
//! and TSV through arrow-csv, NDJSON through arrow-json, each optionally compressed (gzip,
//! zstd, bzip2, xz) as it goes. Memory holds one Parquet row group, or one batch's text and
//! the compressor's window, never the file.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::AsyncArrowWriter;

use super::error::WriteError;
use super::format::OutputFormat;
use super::upload::{FailureSlot, Upload, Written};
use crate::error::{ErrorKind, FunctionError};
use crate::format::{Compression, FormatType};

/// A Parquet file's row group is flushed at this many encoded bytes (or 1M rows), so memory
/// holds at most about this much of it; with PARTITION BY, each open file flushes at its
/// share of it.
pub const ROW_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// The encoder of one file.
pub enum Encoder {
    Parquet(Box<ParquetFile>),
    Text(Box<Text>),
}

/// A Parquet file: the writer, where its upload leaves a typed failure, and the row group
/// size it flushes at.
pub struct ParquetFile {
    writer: AsyncArrowWriter<Upload>,
    failure: FailureSlot,
    row_group_bytes: usize,
    /// A flushed row group's bytes over the writer's estimate of it before the flush
    /// (`in_progress_size` counts values before compression and dictionaries).
    ratio: f64,
}

impl ParquetFile {
    /// Flushes the row group in progress, learning what its estimate was worth.
    async fn flush(&mut self) -> Result<(), WriteError> {
        let estimate = self.writer.in_progress_size();
        if estimate == 0 {
            return Ok(());
        }
        let before = self.writer.bytes_written();
        if let Err(e) = self.writer.flush().await {
            return Err(parquet_failure(&self.failure, e));
        }
        self.ratio = (self.writer.bytes_written() - before) as f64 / estimate as f64;
        Ok(())
    }
}

/// A text file: encoded batch by batch, compressed into a buffer drained into the upload.
pub struct Text {
    upload: Upload,
    format: OutputFormat,
    compressor: Compressor,
    /// Whether the header line still has to be written.
    header: bool,
}

enum Compressor {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Bz2(bzip2::write::BzEncoder<Vec<u8>>),
    Xz(liblzma::write::XzEncoder<Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None | Compression::Auto => Compressor::None(Vec::new()),
            // zlib-rs's level 6 is zlib-ng's faster strategy, 9% larger than zlib's level 6
            // (DuckDB's) on the benchmark's CSV; its level 7 is zlib's 6 in size.
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(7),
            )),
            Compression::Zstd => {
                Compressor::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?)
            }
            Compression::Bz2 => Compressor::Bz2(bzip2::write::BzEncoder::new(
                Vec::new(),
                bzip2::Compression::default(),
            )),
            Compression::Xz => Compressor::Xz(liblzma::write::XzEncoder::new(Vec::new(), 6)),
        })
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Compressor::None(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
            Compressor::Gzip(e) => e.write_all(data),
            Compressor::Zstd(e) => e.write_all(data),
            Compressor::Bz2(e) => e.write_all(data),
            Compressor::Xz(e) => e.write_all(data),
        }
    }

    /// Makes the compressor give out everything written so far (gzip's sync flush, zstd's
    /// and xz's block end, bzip2's), so the file's size is known exactly after each chunk.
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Compressor::None(_) => Ok(()),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::Bz2(e) => e.flush(),
            Compressor::Xz(e) => e.flush(),
        }
    }

    /// The compressed bytes produced so far.
    fn drain(&mut self) -> Vec<u8> {
        std::mem::take(match self {
            Compressor::None(v) => v,
            Compressor::Gzip(e) => e.get_mut(),
            Compressor::Zstd(e) => e.get_mut(),
            Compressor::Bz2(e) => e.get_mut(),
            Compressor::Xz(e) => e.get_mut(),
        })
    }

    /// Ends the stream; returns its last bytes.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Compressor::None(v) => Ok(v),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::Bz2(e) => e.finish(),
            Compressor::Xz(e) => e.finish(),
        }
    }
}

fn encode_failed(what: &str, e: impl std::fmt::Display) -> WriteError {
    WriteError::failed(FunctionError::new(
        ErrorKind::InvalidQuery,
        format!("COPY INTO: the result cannot be written as {what}: {e}"),
    ))
}

impl Encoder {
    /// The encoder of one file whose first chunk is `first`; a Parquet row group is flushed
    /// at `row_group_bytes`.
    pub fn new(
        format: &OutputFormat,
        schema: SchemaRef,
        upload: Upload,
        row_group_bytes: usize,
        first: &RecordBatch,
    ) -> Result<Self, WriteError> {
        if format.file.kind == FormatType::Parquet {
            let props = super::properties::of(format.parquet_compression, first);
            let failure = upload.failure_slot();
            let writer = AsyncArrowWriter::try_new(upload, schema, Some(props))
                .map_err(|e| encode_failed("Parquet", e))?;
            return Ok(Encoder::Parquet(Box::new(ParquetFile {
                writer,
                failure,
                row_group_bytes,
                ratio: 1.0,
            })));
        }
        let compressor =
            Compressor::new(format.file.compression).map_err(|e| encode_failed("text", e))?;
        Ok(Encoder::Text(Box::new(Text {
            upload,
            format: format.clone(),
            compressor,
            header: format.output_header,
        })))
    }

    /// Bytes the file holds so far: exact for text (its compressor is flushed after each
    /// chunk, and its output handed to the upload), and for Parquet its flushed row groups
    /// plus an estimate of the one in progress (its writer's estimate, scaled by what the
    /// last flush showed it was worth).
    pub fn size(&self) -> u64 {
        match self {
            Encoder::Parquet(p) => {
                p.writer.bytes_written() as u64
                    + (p.writer.in_progress_size() as f64 * p.ratio) as u64
            }
            Encoder::Text(t) => t.upload.size(),
        }
    }

    /// Makes [`Encoder::size`] exact: a Parquet file's row group in progress is flushed.
    pub async fn settle(&mut self) -> Result<(), WriteError> {
        match self {
            Encoder::Parquet(p) => p.flush().await,
            Encoder::Text(_) => Ok(()),
        }
    }

    /// Writes `batch`; a text file takes it as [`text`] encoded it (`encoded`).
    pub async fn write(
        &mut self,
        batch: &RecordBatch,
        encoded: Option<&[u8]>,
    ) -> Result<(), WriteError> {
        match self {
            Encoder::Parquet(p) => {
                if let Err(e) = p.writer.write(batch).await {
                    return Err(parquet_failure(&p.failure, e));
                }
                if p.writer.in_progress_size() >= p.row_group_bytes {
                    p.flush().await?;
                }
                Ok(())
            }
            Encoder::Text(t) => {
                let encoded = encoded.ok_or_else(|| {
                    WriteError::failed(FunctionError::internal("a text chunk came unencoded"))
                })?;
                t.write(batch, encoded).await
            }
        }
    }

    /// Writes what is buffered and creates the object (conditionally, see [`Upload`]).
    pub async fn finish(self) -> Result<Written, WriteError> {
        match self {
            Encoder::Parquet(p) => {
                let ParquetFile {
                    mut writer,
                    failure,
                    ..
                } = *p;
                match writer.finish().await {
                    Ok(_) => writer.into_inner().written().cloned().ok_or_else(|| {
                        WriteError::failed(FunctionError::internal(
                            "a completed upload wrote nothing",
                        ))
                    }),
                    Err(e) => {
                        let e = parquet_failure(&failure, e);
                        writer.into_inner().abort().await;
                        Err(e)
                    }
                }
            }
            Encoder::Text(t) => t.finish().await,
        }
    }

    /// Gives up on the file: a multipart upload in progress is aborted.
    pub async fn abort(self) {
        match self {
            Encoder::Parquet(p) => p.writer.into_inner().abort().await,
            Encoder::Text(mut t) => t.upload.abort().await,
        }
    }
}

/// The typed failure behind a parquet writer's error: the upload's own (its slot), else an
/// encoding error.
fn parquet_failure(slot: &FailureSlot, e: parquet::errors::ParquetError) -> WriteError {
    slot.take().unwrap_or_else(|| encode_failed("Parquet", e))
}

impl Text {
    /// Writes a chunk already encoded by [`text`] (without a header); the header goes
    /// first if this is the file's first write.
    async fn write(&mut self, batch: &RecordBatch, encoded: &[u8]) -> Result<(), WriteError> {
        if std::mem::take(&mut self.header) {
            let header = text(&self.format, &batch.slice(0, 0), true)?;
            self.feed(&header)?;
        }
        self.feed(encoded)?;
        self.compressor
            .flush()
            .map_err(|e| encode_failed("compressed text", e))?;
        let out = self.compressor.drain();
        self.upload.write(&out).await
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), WriteError> {
        self.compressor
            .write(data)
            .map_err(|e| encode_failed("compressed text", e))
    }

    async fn finish(mut self) -> Result<Written, WriteError> {
        let last = self
            .compressor
            .finish()
            .map_err(|e| encode_failed("compressed text", e))?;
        if let Err(e) = self.upload.write(&last).await {
            self.upload.abort().await;
            return Err(e);
        }
        self.upload.complete().await
    }
}

/// `batch` as CSV, TSV or NDJSON text, uncompressed; `header`: the column names first.
pub fn text(
    format: &OutputFormat,
    batch: &RecordBatch,
    header: bool,
) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::new();
    let f = &format.file;
    match f.kind {
        FormatType::Ndjson => {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
            w.write(batch).map_err(|e| encode_failed("NDJSON", e))?;
            w.finish().map_err(|e| encode_failed("NDJSON", e))?;
        }
        FormatType::Csv | FormatType::Tsv => {
            let mut builder = arrow_csv::WriterBuilder::new()
                .with_header(header)
                .with_delimiter(f.field_delimiter)
                .with_null(f.null_display.clone());
            if f.kind == FormatType::Tsv {
                check_tsv(batch)?;
                builder = builder.with_quote_style(arrow_csv::QuoteStyle::Never);
            } else {
                builder = builder.with_quote(f.quote);
                if let Some(escape) = f.escape {
                    builder = builder.with_escape(escape).with_double_quote(false);
                }
            }
            let mut w = builder.build(&mut out);
            w.write(batch)
                .map_err(|e| encode_failed(f.kind.as_str(), e))?;
        }
        FormatType::Parquet => {
            return Err(WriteError::failed(FunctionError::internal(
                "Parquet is not encoded as text",
            )));
        }
    }
    if let Some(delimiter) = f.record_delimiter.filter(|d| *d != b'\n') {
        for b in &mut out {
            if *b == b'\n' {
                *b = delimiter;
            }
        }
    }
    Ok(out)
}

/// TSV does not quote: a tab or line break inside a value would split it.
fn check_tsv(batch: &RecordBatch) -> Result<(), WriteError> {
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column: Arc<dyn Array> = match column.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                arrow::compute::cast(column, &DataType::Utf8)
                    .map_err(|e| encode_failed("TSV", e))?
            }
            DataType::Utf8 => Arc::clone(column),
            _ => continue,
        };
        let values = column.as_string::<i32>();
        if values
            .iter()
            .flatten()
            .any(|v| v.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')))
        {
            return Err(encode_failed(
                "TSV",
                format!(
                    "column {} holds a tab or a line break, which TSV cannot quote; unload as CSV",
                    field.name()
                ),
            ));
        }
    }
    Ok(())
}
