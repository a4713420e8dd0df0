//! A streamed answer: the rows written as they are produced, in `options.format`, to a
//! [`Sink`] in chunks, up to [`MAX_STREAM_BYTES`] (Lambda's limit for a streamed response).
//!
//! - `json`: the same document as the buffered answer (`{"schema": …, "rows": [ … ],
//!   "row_count": …, "truncated": …, "stats": …}`), its rows written as they come.
//! - `ndjson`: a first line `{"schema": […]}`, one line per row (a JSON array, as in `json`),
//!   and a last line `{"row_count": …, "truncated": …, "stats": …}`.
//! - `arrow`: an Arrow IPC stream (schema, then record batches, then the end marker), its
//!   string and binary columns in Arrow's plain layouts ([`plain`]).
//!
//! An answer that would pass the bound ends with a typed `ResultTooLarge`, after the rows
//! already sent: the transport reports it as the stream's error, so a client never takes a
//! cut answer for a whole one.

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;

use super::json;
use super::plain;
use super::{Column, Stats, columns};
use crate::error::{ErrorKind, FunctionError, Result};

/// The most bytes one streamed answer may take: Lambda's bound for `InvokeWithResponseStream`.
pub const MAX_STREAM_BYTES: u64 = 200 * 1024 * 1024;
/// Bytes gathered before a chunk goes to the sink.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// `options.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Json,
    Ndjson,
    Arrow,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "ndjson" => Some(Format::Ndjson),
            "arrow" => Some(Format::Arrow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Arrow => "arrow",
        }
    }

    /// The content type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Where a streamed answer goes, chunk by chunk: the query waits on each write, so a slow
/// reader slows it rather than filling memory. An error (the client went away) stops the
/// query.
pub trait Sink: Send {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>>;
}

impl<F, Fut> Sink for F
where
    F: FnMut(Bytes) -> Fut + Send,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(self(chunk))
    }
}

/// Writes one streamed answer.
pub struct AnswerWriter<S: Sink> {
    format: Format,
    sink: S,
    pending: Vec<u8>,
    sent: u64,
    limit: u64,
    rows: u64,
    max_rows: Option<u64>,
    truncated: bool,
    /// An Arrow answer's IPC writer, and the plain schema its batches are cast to.
    arrow: Option<(StreamWriter<Vec<u8>>, SchemaRef)>,
}

impl<S: Sink> AnswerWriter<S> {
    /// Starts the answer: its schema goes out first. `max_rows`: stop after that many rows
    /// (`truncated` then says so); `None`, only the byte bound stops it.
    pub async fn new(
        format: Format,
        schema: &Schema,
        max_rows: Option<u64>,
        sink: S,
    ) -> Result<Self> {
        Self::with_limit(format, schema, max_rows, sink, MAX_STREAM_BYTES).await
    }

    /// [`new`](Self::new) with another byte bound (tests).
    pub async fn with_limit(
        format: Format,
        schema: &Schema,
        max_rows: Option<u64>,
        sink: S,
        limit: u64,
    ) -> Result<Self> {
        let mut writer = Self {
            format,
            sink,
            pending: Vec::with_capacity(CHUNK_BYTES),
            sent: 0,
            limit,
            rows: 0,
            max_rows,
            truncated: false,
            arrow: None,
        };
        let columns: Vec<Column> = columns(schema);
        match format {
            Format::Json => {
                writer.pending.extend_from_slice(b"{\"schema\":");
                writer.pending.extend_from_slice(&encode(&columns)?);
                writer.pending.extend_from_slice(b",\"rows\":[");
            }
            Format::Ndjson => {
                let head = serde_json::json!({ "schema": columns });
                writer.pending.extend_from_slice(&encode(&head)?);
                writer.pending.push(b'\n');
            }
            Format::Arrow => {
                let plain = std::sync::Arc::new(plain::schema(schema));
                let ipc = StreamWriter::try_new(Vec::new(), &plain).map_err(arrow_error)?;
                writer.arrow = Some((ipc, plain));
                writer.take_arrow()?;
            }
        }
        writer.flush_if_full().await?;
        Ok(writer)
    }

    /// Adds a batch; returns `false` once `max_rows` rows were written.
    pub async fn push(&mut self, batch: &RecordBatch) -> Result<bool> {
        let room = self
            .max_rows
            .map_or(u64::MAX, |m| m.saturating_sub(self.rows));
        let take = (batch.num_rows() as u64).min(room) as usize;
        if take < batch.num_rows() {
            self.truncated = true;
        }
        match self.format {
            Format::Json | Format::Ndjson => {
                for i in 0..take {
                    if self.format == Format::Json && self.rows > 0 {
                        self.pending.push(b',');
                    }
                    let row: Vec<serde_json::Value> = batch
                        .columns()
                        .iter()
                        .map(|c| json::value(c.as_ref(), i))
                        .collect();
                    serde_json::to_writer(&mut self.pending, &row)
                        .map_err(|e| FunctionError::internal(format!("encoding a row: {e}")))?;
                    if self.format == Format::Ndjson {
                        self.pending.push(b'\n');
                    }
                    self.rows += 1;
                    self.flush_if_full().await?;
                }
            }
            Format::Arrow => {
                if take > 0 {
                    let (ipc, plain) = self.arrow.as_mut().expect("an arrow answer has its writer");
                    ipc.write(&plain::batch(&batch.slice(0, take), plain)?)
                        .map_err(arrow_error)?;
                    self.rows += take as u64;
                    self.take_arrow()?;
                    self.flush_if_full().await?;
                }
            }
        }
        Ok(!self.truncated)
    }

    /// Ends the answer with its counts and `stats`, and sends what is left.
    pub async fn finish(mut self, stats: &Stats) -> Result<u64> {
        let tail = Tail {
            row_count: self.rows,
            truncated: self.truncated,
            stats,
        };
        match self.format {
            Format::Json => {
                self.pending.extend_from_slice(b"],");
                let tail = encode(&tail)?;
                self.pending.extend_from_slice(&tail[1..]);
            }
            Format::Ndjson => {
                self.pending.extend_from_slice(&encode(&tail)?);
                self.pending.push(b'\n');
            }
            Format::Arrow => {
                if let Some((mut ipc, _)) = self.arrow.take() {
                    ipc.finish().map_err(arrow_error)?;
                    self.pending
                        .extend_from_slice(&ipc.into_inner().map_err(arrow_error)?);
                }
            }
        }
        self.flush().await?;
        Ok(self.rows)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes the IPC writer produced, moved to `pending`.
    fn take_arrow(&mut self) -> Result<()> {
        if let Some((ipc, _)) = self.arrow.as_mut() {
            let produced = std::mem::take(ipc.get_mut());
            self.pending.extend_from_slice(&produced);
        }
        Ok(())
    }

    async fn flush_if_full(&mut self) -> Result<()> {
        if self.pending.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let len = self.pending.len() as u64;
        if self.sent + len > self.limit {
            return Err(FunctionError::new(
                ErrorKind::ResultTooLarge,
                format!(
                    "the answer passed {} MB after {} rows, the most a streamed response may \
                     carry; add a LIMIT or a WHERE, select fewer columns, or use options.format \
                     \"arrow\", which is smaller",
                    self.limit >> 20,
                    self.rows
                ),
            ));
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.sink.write(chunk).await?;
        self.sent += len;
        Ok(())
    }
}

/// The fields after the rows, in the buffered answer's order.
#[derive(serde::Serialize)]
struct Tail<'a> {
    row_count: u64,
    truncated: bool,
    stats: &'a Stats,
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| FunctionError::internal(format!("encoding JSON: {e}")))
}

fn arrow_error(e: arrow::error::ArrowError) -> FunctionError {
    FunctionError::internal(format!("encoding Arrow IPC: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::result::RowWriter;

    fn batch(from: i64, n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n as i64)),
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 3 != 0).then(|| format!("row {i}"))),
                )),
            ],
        )
        .unwrap()
    }

    fn stream(format: Format, batches: &[RecordBatch], max_rows: Option<u64>) -> (Vec<Bytes>, u64) {
        let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = chunks.clone();
        let sink = move |c: Bytes| {
            kept.lock().unwrap().push(c);
            std::future::ready(Ok(()))
        };
        let rows = futures::executor::block_on(async {
            let mut w = AnswerWriter::new(format, &batches[0].schema(), max_rows, sink)
                .await
                .unwrap();
            for b in batches {
                if !w.push(b).await.unwrap() {
                    break;
                }
            }
            w.finish(&Stats::default()).await.unwrap()
        });
        let chunks = chunks.lock().unwrap().clone();
        (chunks, rows)
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// The streamed JSON document is the buffered answer, byte for byte.
    #[test]
    fn json_is_the_buffered_answer() {
        let batches = [batch(0, 5_000), batch(5_000, 7_000)];
        let (chunks, rows) = stream(Format::Json, &batches, Some(11_000));
        assert_eq!(rows, 11_000);
        assert!(chunks.len() > 2, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 200));
        let mut buffered = RowWriter::new(&batches[0].schema(), 11_000);
        for b in &batches {
            buffered.push(b).unwrap();
        }
        let want = serde_json::to_vec(&buffered.finish(Stats::default())).unwrap();
        assert_eq!(
            String::from_utf8(joined(&chunks)).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    #[test]
    fn ndjson_has_a_schema_line_a_line_per_row_and_a_closing_line() {
        let (chunks, rows) = stream(Format::Ndjson, &[batch(0, 10)], None);
        assert_eq!(rows, 10);
        let text = String::from_utf8(joined(&chunks)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0]["schema"][1]["name"], "s");
        assert_eq!(lines[1], serde_json::json!([0, null]));
        assert_eq!(lines[2], serde_json::json!([1, "row 1"]));
        assert_eq!(lines[11]["row_count"], 10);
        assert_eq!(lines[11]["truncated"], false);
    }

    #[test]
    fn arrow_reads_back_with_the_ipc_reader() {
        let batches = [batch(0, 3_000), batch(3_000, 3_000)];
        let (chunks, rows) = stream(Format::Arrow, &batches, Some(4_000));
        assert_eq!(rows, 4_000);
        let bytes = joined(&chunks);
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let total: usize = read.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 4_000);
        assert_eq!(
            read[1]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(999),
            3_999
        );
    }

    #[test]
    fn past_the_bound_is_a_typed_error_after_the_rows_sent() {
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = sent.clone();
        let sink = move |c: Bytes| {
            counted.fetch_add(c.len(), std::sync::atomic::Ordering::Relaxed);
            std::future::ready(Ok(()))
        };
        let schema = batch(0, 1).schema();
        let e = futures::executor::block_on(async {
            let mut w = AnswerWriter::with_limit(Format::Ndjson, &schema, None, sink, 200_000)
                .await
                .unwrap();
            for i in 0..100 {
                if let Err(e) = w.push(&batch(i * 1_000, 1_000)).await {
                    return e;
                }
            }
            panic!("the bound is never reached")
        });
        assert_eq!(e.kind(), ErrorKind::ResultTooLarge);
        assert!(e.message().contains("add a LIMIT"), "{e}");
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent > 100_000 && sent <= 200_000, "{sent}");
    }

    #[test]
    fn a_sink_that_fails_stops_the_writer() {
        let schema = batch(0, 1).schema();
        let sink =
            |_: Bytes| std::future::ready(Err(FunctionError::internal("the client went away")));
        let e = futures::executor::block_on(async {
            let mut w = AnswerWriter::new(Format::Json, &schema, None, sink)
                .await
                .unwrap();
            w.push(&batch(0, 20_000)).await.unwrap_err()
        });
        assert!(e.message().contains("went away"));
    }
}
