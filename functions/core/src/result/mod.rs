//! The response: a schema, rows as JSON, and what the invocation cost. Rows stop at
//! `max_rows` or at [`MAX_RESPONSE_BYTES`] of JSON, whichever comes first, with
//! `truncated: true`; Lambda's 6 MB synchronous limit is never reached.

pub mod json;
pub mod plain;
pub mod stream;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{FunctionError, Result};
use crate::types::sql_type;

/// The most JSON the rows of one response may take.
pub const MAX_RESPONSE_BYTES: usize = 5 * 1024 * 1024;

/// A successful invocation's output.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    pub schema: Vec<Column>,
    pub rows: Vec<Box<RawValue>>,
    pub row_count: u64,
    pub truncated: bool,
    pub stats: Stats,
    /// A fan-out worker's answer: its batches as a zstd-compressed Arrow IPC stream, base64
    /// (`schema` and `rows` are then empty; `row_count` counts its rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub nullable: bool,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Parquet files the query's tables cover.
    pub files: u64,
    /// Requests sent to S3 (GET, LIST).
    pub s3_requests: u64,
    /// Body bytes received from S3 GETs.
    pub bytes_read: u64,
    /// `sts:AssumeRole` calls made (0 when cached credentials were used).
    pub sts_calls: u64,
    pub elapsed_ms: u64,
    /// How the query ran: in this invocation, or fanned out over workers (whose S3 requests,
    /// bytes and STS calls the figures above include).
    pub path: QueryPath,
    /// Fan-out only: the workers that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,
    /// Fan-out only: the invocations whose answers were used, at every level (the workers and
    /// a tree's inner nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocations: Option<u64>,
    /// Fan-out only: tasks invoked again after a transient failure or split after a partial
    /// result too large to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_retried: Option<u64>,
    /// Fan-out only: tasks that got a speculative duplicate whose answer came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_speculated: Option<u64>,
    /// Fan-out only: from the first invocation to the last worker's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_worker_ms: Option<u64>,
    /// `single_after_fan_out` only: why the fanned-out attempt gave way (its `errorType:
    /// message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fan_out_failure: Option<String>,
    /// `COPY INTO` only: the statement's query id (in its file names and manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// `COPY INTO` only: body bytes sent to S3 (data files and the manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// `COPY INTO` only: objects created (data files and the manifest), by this invocation
    /// and its workers; a file a retry found already written by the same statement (and
    /// adopted) is not counted again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_written: Option<u64>,
    /// `COPY INTO` only: write requests (PutObject, CreateMultipartUpload, UploadPart,
    /// CompleteMultipartUpload, AbortMultipartUpload, DeleteObject, and the HEAD, LIST and
    /// ListMultipartUploads that check and clean up what was written); `s3_requests` counts
    /// the reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_requests: Option<u64>,
}

/// Where a query ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryPath {
    /// In one invocation.
    #[default]
    Single,
    /// Over many invocations of the function (`options.fan_out`).
    FanOut,
    /// A fan-out worker's share.
    Worker,
    /// Not run: `options.dry_run` answered with what it would read ([`crate::estimate`]).
    DryRun,
    /// In one invocation, after fanning out failed in a way one invocation does not
    /// ([`crate::fanout::falls_back`]); `fan_out_failure` says why.
    SingleAfterFanOut,
}

/// The answer's `schema`: each column's name, SQL type and nullability.
pub fn columns(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            type_name: sql_type(f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Accumulates rows within the limits.
pub struct RowWriter {
    schema: Vec<Column>,
    rows: Vec<Box<RawValue>>,
    bytes: usize,
    max_rows: u64,
    truncated: bool,
}

impl RowWriter {
    pub fn new(schema: &Schema, max_rows: u64) -> Self {
        let schema = columns(schema);
        let bytes = serde_json::to_string(&schema).map_or(0, |s| s.len()) + 512;
        Self {
            schema,
            rows: Vec::new(),
            bytes,
            max_rows,
            truncated: false,
        }
    }

    /// Adds a batch's rows; returns `false` once the response is full.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<bool> {
        let columns = batch.columns();
        for i in 0..batch.num_rows() {
            if self.rows.len() as u64 >= self.max_rows {
                self.truncated = true;
                return Ok(false);
            }
            let row: Vec<serde_json::Value> =
                columns.iter().map(|c| json::value(c.as_ref(), i)).collect();
            let text = serde_json::to_string(&row)
                .map_err(|e| FunctionError::internal(format!("encoding a row: {e}")))?;
            if self.bytes + text.len() + 1 > MAX_RESPONSE_BYTES {
                self.truncated = true;
                return Ok(false);
            }
            self.bytes += text.len() + 1;
            let raw = RawValue::from_string(text)
                .map_err(|e| FunctionError::internal(format!("encoding a row: {e}")))?;
            self.rows.push(raw);
        }
        Ok(true)
    }

    pub fn finish(self, stats: Stats) -> Response {
        Response {
            schema: self.schema,
            row_count: self.rows.len() as u64,
            rows: self.rows,
            truncated: self.truncated,
            stats,
            partial: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn batch(n: usize, width: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|_| "x".repeat(width)),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn stops_at_max_rows() {
        let b = batch(10, 1);
        let mut w = RowWriter::new(&b.schema(), 3);
        assert!(!w.push(&b).unwrap());
        let r = w.finish(Stats::default());
        assert_eq!(r.row_count, 3);
        assert!(r.truncated);
        assert_eq!(r.rows[2].get(), r#"[2,"x"]"#);
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let b = batch(3, 1);
        let mut w = RowWriter::new(&b.schema(), 3);
        assert!(w.push(&b).unwrap());
        assert!(!w.finish(Stats::default()).truncated);
    }

    #[test]
    fn never_exceeds_the_byte_budget() {
        let b = batch(100, 100_000); // ~10 MB of JSON
        let mut w = RowWriter::new(&b.schema(), 1_000_000);
        assert!(!w.push(&b).unwrap());
        let r = w.finish(Stats::default());
        assert!(r.truncated);
        let body = serde_json::to_string(&r).unwrap();
        assert!(body.len() <= MAX_RESPONSE_BYTES, "{}", body.len());
        assert!(r.row_count > 10);
    }
}
