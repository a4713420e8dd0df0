//! A worker's answer on the wire: its batches as one Arrow IPC stream, zstd-compressed,
//! base64 in the JSON response (Lambda's payloads are JSON).
//!
//! The stream is compressed whole rather than with Arrow IPC's own buffer compression:
//! arrow-ipc 59 writes a buffer's uncompressed length as a `usize`, four bytes on
//! `wasm32-wasip2` where readers expect eight, so a WASI worker's compressed buffers could
//! not be read anywhere.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::io::Read;

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use base64::Engine;

use crate::error::{ErrorKind, FunctionError, Result};

/// The most compressed bytes one worker returns: base64 and the response around them stay
/// under Lambda's 6 MB response limit.
pub const MAX_PARTIAL_BYTES: usize = 4 << 20;
/// The most bytes an answer may inflate to.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;
/// zstd's level: fast, as the answer is compressed once and sent once.
const LEVEL: i32 = 3;

/// Writes batches as they come, refusing to pass [`MAX_PARTIAL_BYTES`] compressed.
pub struct PartialWriter {
    writer: StreamWriter<zstd::stream::Encoder<'static, Vec<u8>>>,
    rows: u64,
    limit: usize,
}

impl PartialWriter {
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        Self::with_limit(schema, MAX_PARTIAL_BYTES)
    }

    pub fn with_limit(schema: &SchemaRef, limit: usize) -> Result<Self> {
        let encoder = zstd::stream::Encoder::new(Vec::new(), LEVEL).map_err(io)?;
        let writer = StreamWriter::try_new(encoder, schema).map_err(internal)?;
        Ok(Self {
            writer,
            rows: 0,
            limit,
        })
    }

    /// Adds a batch; a `ResultTooLarge` error once the stream passes the limit.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(internal)?;
        self.rows += batch.num_rows() as u64;
        let size = self.writer.get_ref().get_ref().len();
        if size > self.limit {
            return Err(FunctionError::new(
                ErrorKind::ResultTooLarge,
                format!(
                    "a worker's partial result passed {} bytes after {} rows, more than Lambda's 6 MB \
                     response can carry; the coordinator gives such a task to more workers",
                    self.limit, self.rows
                ),
            ));
        }
        Ok(())
    }

    /// The rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The stream, compressed, base64.
    pub fn finish(mut self) -> Result<String> {
        self.writer.finish().map_err(internal)?;
        let encoder = self.writer.into_inner().map_err(internal)?;
        let bytes = encoder.finish().map_err(io)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// Reads a worker's answer back into batches.
pub fn read(encoded: &str) -> Result<Vec<RecordBatch>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|e| {
            FunctionError::internal(format!("a worker's partial result is not base64: {e}"))
        })?;
    let mut inflated = Vec::new();
    zstd::stream::Decoder::new(std::io::Cursor::new(bytes))
        .map_err(io)?
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(io)?;
    if inflated.len() as u64 > MAX_INFLATED_BYTES {
        return Err(FunctionError::new(
            ErrorKind::ResourcesExhausted,
            format!("a worker's partial result inflates past {MAX_INFLATED_BYTES} bytes"),
        ));
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(inflated), None).map_err(internal)?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(internal)
}

fn io(e: std::io::Error) -> FunctionError {
    FunctionError::internal(format!("a worker's partial result (zstd): {e}"))
}

fn internal(e: arrow::error::ArrowError) -> FunctionError {
    FunctionError::internal(format!("a worker's partial result (Arrow IPC): {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("value-{}", i * 7919 % 1_000_003)),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn batches_round_trip_compressed() {
        let b = batch(10_000);
        let mut w = PartialWriter::new(&b.schema()).unwrap();
        w.push(&b).unwrap();
        w.push(&b).unwrap();
        assert_eq!(w.rows(), 20_000);
        let encoded = w.finish().unwrap();
        let back = read(&encoded).unwrap();
        assert_eq!(back, vec![b.clone(), b.clone()]);
        let raw = b.get_array_memory_size() * 2;
        assert!(
            encoded.len() < raw,
            "{} base64 bytes for {raw} in memory",
            encoded.len()
        );
    }

    #[test]
    fn passing_the_limit_is_typed() {
        let b = batch(100_000);
        let mut w = PartialWriter::with_limit(&b.schema(), 64 * 1024).unwrap();
        let e = w.push(&b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResultTooLarge);
        assert!(e.message().contains("6 MB"), "{e}");
    }
}
