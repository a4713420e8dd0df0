//! The files of one unload, rolled as they fill: each batch goes to its partition's open file
//! (or the one file), cut into chunks so that a file stops before `MAX_FILE_SIZE`; a full
//! file is completed (created, conditionally) and the next sequence number opened. What was
//! created is remembered, so a failed statement can delete it, and the manifest can list it.
//! The files' parts go out while the source runs, driven by the [`Driver`] made with them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::encode::{self, Encoder};
use super::error::WriteError;
use super::names;
use super::overlap::{self, Driver, Overlap};
use super::stats::WriteStats;
use super::target::Target;
use super::upload::Upload;
use crate::error::FunctionError;
use crate::format::FormatType;

/// Partition files open at once; opening one more completes the least recently written.
pub const MAX_OPEN_PARTITIONS: usize = 8;

/// One created data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Stage-relative.
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub rows: u64,
    /// Databend's `input_bytes` of its rows: their Arrow bytes ([`arrow_bytes`]).
    pub input_bytes: u64,
    /// Another writer of the name had created it with the same bytes ([`super::upload`]):
    /// this statement never deletes it.
    pub adopted: bool,
}

struct Open {
    encoder: Encoder,
    name: String,
    rows: u64,
    /// Arrow bytes written into it, against which its encoded size is estimated.
    arrow_bytes: u64,
    last_used: u64,
}

/// The writer of every file of one statement.
pub struct Files {
    client: aws_sdk_s3::Client,
    bucket: String,
    stage_prefix: String,
    target: Target,
    /// The schema written (the source's without the partition column).
    schema: SchemaRef,
    stats: Arc<WriteStats>,
    overlap: Overlap,
    open: HashMap<String, Open>,
    next_seq: HashMap<String, u32>,
    created: Vec<FileEntry>,
    /// Why the last [`Files::take`] refused the source's batches.
    failed: Option<FunctionError>,
    tick: u64,
    /// Encoded bytes per Arrow byte, learned from the files' exact sizes.
    encoded_per_arrow: f64,
}

impl Files {
    /// The writer, and the driver of its parts under way, to run beside the source
    /// ([`Driver::beside`]).
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: &str,
        stage_prefix: &str,
        target: Target,
        source: SchemaRef,
        stats: Arc<WriteStats>,
    ) -> (Self, Driver) {
        let (overlap, driver) = overlap::channel();
        let schema = if target.partitioned {
            let fields: Vec<_> = source.fields()[..source.fields().len() - 1].to_vec();
            Arc::new(arrow::datatypes::Schema::new(fields))
        } else {
            source
        };
        let files = Self {
            client,
            bucket: bucket.to_string(),
            stage_prefix: stage_prefix.to_string(),
            target,
            schema,
            stats,
            overlap,
            open: HashMap::new(),
            next_seq: HashMap::new(),
            created: Vec::new(),
            failed: None,
            tick: 0,
            encoded_per_arrow: 1.0,
        };
        (files, driver)
    }

    /// The files created so far, in the order they were completed.
    pub fn created(&self) -> &[FileEntry] {
        &self.created
    }

    /// The source's sink: writes `batch`, and `false` (stop) once a write failed, its error
    /// kept for [`Files::end`].
    pub async fn take(&mut self, batch: &RecordBatch) -> crate::error::Result<bool> {
        if self.failed.is_some() {
            return Ok(false);
        }
        match super::boxed(|| self.push(batch)).await {
            Ok(()) => Ok(true),
            Err(e) => {
                self.failed = Some(e.into_function_error());
                Ok(false)
            }
        }
    }

    /// The end of the source, which ran to `ran`: its error, else a write's, else every
    /// open file completed; `ran`'s value.
    pub async fn end<T>(&mut self, ran: crate::error::Result<T>) -> crate::error::Result<T> {
        let value = ran?;
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.finish().await.map_err(|e| e.into_function_error())?;
        Ok(value)
    }

    pub async fn push(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.target.partitioned {
            return self.write_to(String::new(), batch).await;
        }
        let last = batch.num_columns() - 1;
        let values = arrow::compute::cast(batch.column(last), &DataType::Utf8).map_err(|e| {
            WriteError::failed(FunctionError::internal(format!("PARTITION BY value: {e}")))
        })?;
        let values = values.as_string::<i32>();
        let data = batch.project(&(0..last).collect::<Vec<_>>()).map_err(|e| {
            WriteError::failed(FunctionError::internal(format!("PARTITION BY: {e}")))
        })?;
        // Rows of each value, in the order the values first appear.
        let mut groups: Vec<(Option<String>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<Option<&str>, usize> = HashMap::new();
        for row in 0..values.len() {
            let value = values.is_valid(row).then(|| values.value(row));
            let at = *index.entry(value).or_insert_with(|| {
                groups.push((value.map(str::to_string), Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(row as u32);
        }
        for (value, rows) in groups {
            let dir = names::partition_dir(value.as_deref()).map_err(WriteError::failed)?;
            let part = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                arrow::compute::take_record_batch(&data, &UInt32Array::from(rows)).map_err(|e| {
                    WriteError::failed(FunctionError::internal(format!("PARTITION BY: {e}")))
                })?
            };
            self.write_to(dir, &part).await?;
        }
        Ok(())
    }

    /// Writes `batch` into `dir`'s files, in chunks, rolling over before `MAX_FILE_SIZE`.
    async fn write_to(&mut self, dir: String, batch: &RecordBatch) -> Result<(), WriteError> {
        let max = self.target.max_file_size;
        let total = arrow_bytes(batch).max(1);
        let per_row = (total / batch.num_rows() as u64).max(1);
        // Chunks of about a 32nd of a file, so a file ends within one chunk of the bound.
        let chunk_rows = match max {
            Some(max) => ((max / 32) / per_row).max(1) as usize,
            None => batch.num_rows(),
        };
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = chunk_rows.min(batch.num_rows() - offset);
            let chunk = batch.slice(offset, len);
            offset += len;
            let chunk_bytes = arrow_bytes(&chunk);
            // Text is encoded first, so its length is known before it is placed: a text file
            // never passes MAX_FILE_SIZE (compressed, it is measured uncompressed). Parquet's
            // is estimated from the file's ratio so far.
            let encoded = match self.target.format.file.kind {
                FormatType::Parquet => None,
                _ => Some(encode::text(&self.target.format, &chunk, false)?),
            };
            // A Parquet file keeps an eighth of the bound for its footer (row group and page
            // index metadata, written last) and the in-progress estimate's error.
            let max = match (max, &encoded) {
                (Some(max), None) => Some(max - max / 8),
                (max, _) => max,
            };
            // What the chunk adds: its text, or its Arrow bytes at the encoded bytes per Arrow
            // byte of what this statement wrote so far (1 until it knows).
            let grow = |per_arrow: f64| match &encoded {
                Some(text) => text.len() as u64,
                None => (chunk_bytes as f64 * per_arrow) as u64,
            };
            if let (Some(max), Some(open)) = (max, self.open.get_mut(&dir))
                && open.encoder.size() > 0
                && open.encoder.size() + grow(self.encoded_per_arrow) > max
            {
                // Estimates overshoot (Parquet's counts values before compression): make the
                // size exact before deciding.
                open.encoder.settle().await?;
                if open.arrow_bytes > 0 {
                    self.encoded_per_arrow = open.encoder.size() as f64 / open.arrow_bytes as f64;
                }
                if open.encoder.size() + grow(self.encoded_per_arrow) > max {
                    self.close(&dir).await?;
                }
            }
            if !self.open.contains_key(&dir) {
                self.open_file(&dir, &chunk).await?;
            }
            self.tick += 1;
            let open = self.open.get_mut(&dir).expect("opened above");
            open.last_used = self.tick;
            open.rows += chunk.num_rows() as u64;
            open.arrow_bytes += chunk_bytes;
            open.encoder.write(&chunk, encoded.as_deref()).await?;
        }
        Ok(())
    }

    async fn open_file(&mut self, dir: &str, first: &RecordBatch) -> Result<(), WriteError> {
        if self.open.len() >= MAX_OPEN_PARTITIONS
            && let Some(lru) = self
                .open
                .iter()
                .min_by_key(|(_, o)| o.last_used)
                .map(|(d, _)| d.clone())
        {
            self.close(&lru).await?;
        }
        let seq = self.next_seq.entry(dir.to_string()).or_insert(0);
        let name = self.target.file_name(dir, *seq);
        *seq += 1;
        let upload = Upload::new(
            self.client.clone(),
            &self.bucket,
            format!("{}{name}", self.stage_prefix),
            self.target.replace,
            Arc::clone(&self.stats),
            self.overlap.clone(),
        );
        let row_group_bytes = match self.target.partitioned {
            true => encode::ROW_GROUP_BYTES / MAX_OPEN_PARTITIONS,
            false => encode::ROW_GROUP_BYTES,
        };
        let encoder = Encoder::new(
            &self.target.format,
            Arc::clone(&self.schema),
            upload,
            row_group_bytes,
            first,
        )?;
        self.open.insert(
            dir.to_string(),
            Open {
                encoder,
                name,
                rows: 0,
                arrow_bytes: 0,
                last_used: self.tick,
            },
        );
        Ok(())
    }

    async fn close(&mut self, dir: &str) -> Result<(), WriteError> {
        let Some(open) = self.open.remove(dir) else {
            return Ok(());
        };
        let written = super::boxed(move || open.encoder.finish()).await?;
        self.created.push(FileEntry {
            name: open.name,
            size: written.size,
            etag: written.etag,
            rows: open.rows,
            input_bytes: open.arrow_bytes,
            adopted: written.adopted,
        });
        Ok(())
    }

    /// Completes every open file, in name order.
    pub async fn finish(&mut self) -> Result<(), WriteError> {
        let mut dirs: Vec<String> = self.open.keys().cloned().collect();
        dirs.sort();
        for dir in dirs {
            self.close(&dir).await?;
        }
        Ok(())
    }

    /// After a failure: aborts the multipart uploads of the files still open.
    pub async fn abort(&mut self) {
        for (_, open) in self.open.drain() {
            open.encoder.abort().await;
        }
    }

    /// After a failure: aborts what is open and deletes what it created (not what it
    /// adopted). Returns the stage-relative names that could not be deleted.
    pub async fn discard(&mut self) -> Vec<String> {
        self.abort().await;
        let mut left = Vec::new();
        for file in std::mem::take(&mut self.created) {
            if file.adopted {
                continue;
            }
            self.stats.request();
            let deleted = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(format!("{}{}", self.stage_prefix, file.name))
                .send()
                .await;
            if deleted.is_err() {
                left.push(file.name);
            }
        }
        left
    }
}

/// The bytes of a batch's values (its slices, not the buffers' capacity): Databend's
/// `input_bytes`, the same natively and in WASI.
pub fn arrow_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}
