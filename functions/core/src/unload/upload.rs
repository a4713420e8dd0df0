//! One object written to S3 as it is produced, created only if its key does not exist yet.
//!
//! Bytes are buffered up to a part. An object that ends within its first part is one
//! `PutObject`; a longer one is a multipart upload whose parts go out as they fill. Either
//! way the object is created with `If-None-Match: *` (on `PutObject`, or on
//! `CompleteMultipartUpload`), so a second writer of the same name gets 412 (or 409 while
//! another completion is in flight) and stops: it never replaces or duplicates a file. A
//! multipart upload that does not complete, for whatever reason (a failure, a 412, the
//! query's end), is aborted, so no incomplete upload is left behind.
//!
//! A writer that finds its name taken asks what is there: when the object is byte for byte
//! what it would have written (its ETag is the MD5 of these bytes, or for a multipart upload
//! the MD5 of these parts' MD5s, and its size is theirs), it adopts it. Names are
//! deterministic for (query id, part, sequence), so a retried or speculative writer of the
//! same share finds its own files and goes on, instead of failing the task.
//!
//! A full part is not waited for: its `UploadPart` is started and handed to the statement's
//! [`Overlap`], and the writer goes on encoding while it is sent; it waits only when more
//! than [`PARTS_IN_FLIGHT`] are under way, and for all of them before it completes. Memory
//! holds the part being filled and those under way.
//!
//! [`Upload`] is a parquet [`AsyncFileWriter`], so Parquet's `AsyncArrowWriter` writes
//! through it; the text formats call [`Upload::write`] and [`Upload::complete`] directly.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;
use md5::{Digest, Md5};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::errors::ParquetError;

use super::error::{WriteError, map_write};
use super::overlap::{Overlap, Sent};
use super::stats::WriteStats;
use crate::aws_error::AwsFailure;

/// S3's smallest part (but the last).
pub const MIN_PART: usize = 5 * 1024 * 1024;
/// The first parts' size; it doubles every [`PARTS_PER_DOUBLING`] parts, so S3's 10,000
/// parts hold any file a function can write (1,000 × 8 MiB, then × 16 MiB, …).
pub const FIRST_PART: usize = 8 * 1024 * 1024;
const PARTS_PER_DOUBLING: usize = 1000;
const _: () = assert!(FIRST_PART >= MIN_PART);
/// S3's most parts in one upload.
pub const MAX_PARTS: usize = 10_000;
/// Parts of one upload sent while the next fills: enough to keep its link busy while the
/// encoder works (a part takes about as long to send as to produce), few enough that memory
/// holds two parts per open file.
pub const PARTS_IN_FLIGHT: usize = 1;

/// What a created object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// Another writer of the same name created it with these same bytes.
    pub adopted: bool,
}

/// The writer of one object.
pub struct Upload {
    client: Client,
    bucket: String,
    key: String,
    /// `OVERWRITE = TRUE`: the one raw path may be replaced (no `If-None-Match`).
    replace: bool,
    buffer: BytesMut,
    upload_id: Option<String>,
    /// The parts S3 has, in order.
    parts: Vec<CompletedPart>,
    /// The parts under way, in order: number, length, the request.
    sending: VecDeque<(i32, u64, Sent)>,
    overlap: Overlap,
    size: u64,
    stats: Arc<WriteStats>,
    /// Set once the object exists.
    written: Option<Written>,
    /// The ETag S3 gives these bytes in one `PutObject` (set when it is sent).
    put_etag: Option<String>,
    /// The typed failure behind the last error returned through parquet's writer.
    failure: FailureSlot,
}

/// Where an [`Upload`] driven by parquet's writer leaves the typed failure behind the
/// `ParquetError` it returned (the writer keeps the upload until it is consumed).
#[derive(Clone, Default)]
pub struct FailureSlot(Arc<Mutex<Option<WriteError>>>);

impl FailureSlot {
    pub fn take(&self) -> Option<WriteError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, e: WriteError) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

impl Upload {
    pub fn new(
        client: Client,
        bucket: &str,
        key: String,
        replace: bool,
        stats: Arc<WriteStats>,
        overlap: Overlap,
    ) -> Self {
        Self {
            client,
            bucket: bucket.to_string(),
            key,
            replace,
            buffer: BytesMut::new(),
            upload_id: None,
            parts: Vec::new(),
            sending: VecDeque::new(),
            overlap,
            size: 0,
            stats,
            written: None,
            put_etag: None,
            failure: FailureSlot::default(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes given so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object, once [`Upload::complete`] succeeded.
    pub fn written(&self) -> Option<&Written> {
        self.written.as_ref()
    }

    /// Where the typed failure behind a [`ParquetError`] this writer returns is left.
    pub fn failure_slot(&self) -> FailureSlot {
        self.failure.clone()
    }

    /// Appends `data`, sending a part whenever one is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        self.size += data.len() as u64;
        self.buffer.extend_from_slice(data);
        while self.buffer.len() >= self.part_size() {
            let part = self.buffer.split_to(self.part_size()).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    fn part_size(&self) -> usize {
        let doublings = (self.started() / PARTS_PER_DOUBLING).min(8) as u32;
        FIRST_PART << doublings
    }

    /// Parts sent or under way.
    fn started(&self) -> usize {
        self.parts.len() + self.sending.len()
    }

    /// Starts sending `part`, then waits for the oldest parts while too many are under way.
    async fn send_part(&mut self, part: Bytes) -> Result<(), WriteError> {
        if self.started() + 1 >= MAX_PARTS {
            return Err(WriteError::failed(crate::FunctionError::new(
                crate::ErrorKind::ResourcesExhausted,
                format!(
                    "s3://{}/{} would need more than S3's {MAX_PARTS} parts; lower MAX_FILE_SIZE",
                    self.bucket, self.key
                ),
            )));
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                self.stats.request();
                let request = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key);
                let out = super::boxed(move || request.send())
                    .await
                    .map_err(|e| self.fail("CreateMultipartUpload", &AwsFailure::from_sdk(&e)))?;
                let id = out.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.started() as i32 + 1;
        let len = part.len() as u64;
        self.stats.request();
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part));
        let sent: Sent = async move {
            match request.send().await {
                Ok(out) => Ok(out.e_tag().map(str::to_string)),
                Err(e) => Err(AwsFailure::from_sdk(&e)),
            }
        }
        .boxed()
        .shared();
        self.overlap.start(&sent);
        self.sending.push_back((number, len, sent));
        while self.sending.len() > PARTS_IN_FLIGHT {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Waits for the oldest part under way.
    async fn settle_one(&mut self) -> Result<(), WriteError> {
        let Some((number, len, sent)) = self.sending.pop_front() else {
            return Ok(());
        };
        let etag = sent
            .await
            .map_err(|failure| self.fail("UploadPart", &failure))?;
        self.stats.wrote(len);
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(etag)
                .build(),
        );
        Ok(())
    }

    /// Waits for every part under way.
    async fn settle(&mut self) -> Result<(), WriteError> {
        while !self.sending.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    /// Creates the object from what was written: one conditional `PutObject`, or the last
    /// part and a conditional `CompleteMultipartUpload`. On any failure a multipart upload is
    /// aborted before the error is returned.
    /// A name another writer took is adopted if the object there is these bytes.
    pub async fn complete(&mut self) -> Result<Written, WriteError> {
        let result = super::boxed(|| self.create()).await;
        if result.is_err() {
            self.abort().await;
        }
        match result {
            Err(WriteError::Exists { .. }) if !self.replace => match self.adopt().await {
                Some(written) => Ok(written),
                None => result,
            },
            result => result,
        }
    }

    /// The object at the key, if it is exactly what this writer wrote.
    async fn adopt(&mut self) -> Option<Written> {
        let expected = match &self.put_etag {
            Some(etag) => etag.clone(),
            None => multipart_etag(&self.parts)?,
        };
        self.stats.request();
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .ok()?;
        let etag = head.e_tag()?.trim_matches('"').to_string();
        let same = etag == expected && head.content_length() == Some(self.size as i64);
        tracing::info!(
            bucket = %self.bucket,
            key = %self.key,
            same,
            "the name was taken; the object there is {}these bytes",
            if same { "" } else { "not " }
        );
        if !same {
            return None;
        }
        let written = Written {
            key: self.key.clone(),
            size: self.size,
            etag,
            adopted: true,
        };
        self.written = Some(written.clone());
        Some(written)
    }

    async fn create(&mut self) -> Result<Written, WriteError> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        let etag = match self.upload_id.clone() {
            None => {
                let len = rest.len() as u64;
                self.put_etag = Some(hex(&Md5::digest(&rest)));
                self.stats.request();
                let request = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .set_if_none_match(self.if_none_match())
                    .body(ByteStream::from(rest));
                let out = super::boxed(move || request.send())
                    .await
                    .map_err(|e| self.fail("PutObject", &AwsFailure::from_sdk(&e)))?;
                self.stats.wrote(len);
                out.e_tag().unwrap_or_default().to_string()
            }
            Some(upload_id) => {
                if !rest.is_empty() {
                    self.send_part(rest).await?;
                }
                self.settle().await?;
                self.stats.request();
                let request = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(&upload_id)
                    .set_if_none_match(self.if_none_match())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(self.parts.clone()))
                            .build(),
                    );
                let out = super::boxed(move || request.send())
                    .await
                    .map_err(|e| self.fail("CompleteMultipartUpload", &AwsFailure::from_sdk(&e)))?;
                self.upload_id = None;
                out.e_tag().unwrap_or_default().to_string()
            }
        };
        self.stats.created();
        let written = Written {
            key: self.key.clone(),
            size: self.size,
            etag: etag.trim_matches('"').to_string(),
            adopted: false,
        };
        self.written = Some(written.clone());
        Ok(written)
    }

    /// Aborts the multipart upload, if one was started and not completed. Best effort: an
    /// upload that cannot be aborted is named in the log (a bucket lifecycle rule
    /// `AbortIncompleteMultipartUpload` removes it).
    pub async fn abort(&mut self) {
        // Parts still under way are let finish first: one landing after the abort would
        // leave the upload's storage behind.
        for (_, _, sent) in std::mem::take(&mut self.sending) {
            let _ = sent.await;
        }
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        self.stats.request();
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            let failure = AwsFailure::from_sdk(&e);
            tracing::warn!(
                bucket = %self.bucket,
                key = %self.key,
                "could not abort the multipart upload of s3://{}/{}{}",
                self.bucket,
                self.key,
                failure.said()
            );
        }
    }

    /// `If-None-Match: *`: create only if the key does not exist (not for `OVERWRITE`).
    fn if_none_match(&self) -> Option<String> {
        (!self.replace).then(|| "*".to_string())
    }

    fn fail(&self, operation: &str, failure: &AwsFailure) -> WriteError {
        map_write(failure, operation, &self.bucket, &self.key)
    }

    fn parquet_error(&mut self, e: WriteError) -> ParquetError {
        let text = e.to_string();
        self.failure.put(e);
        ParquetError::External(text.into())
    }
}

/// S3's ETag of a multipart upload of `parts`: the MD5 of their MD5s, `-` their count.
/// `None` when a part's ETag is not an MD5 (an encrypted bucket's, say).
fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let etag = part.e_tag()?.trim_matches('"');
        if etag.len() != 32 {
            return None;
        }
        for i in (0..32).step_by(2) {
            md5s.push(u8::from_str_radix(etag.get(i..i + 2)?, 16).ok()?);
        }
    }
    Some(format!("{}-{}", hex(&Md5::digest(&md5s)), parts.len()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AsyncFileWriter for Upload {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            match Upload::write(self, &bs).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.parquet_error(e)),
            }
        })
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            match Upload::complete(self).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.parquet_error(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_s3s() {
        // `md5sum` of "hello": S3's PutObject ETag of those bytes.
        assert_eq!(
            hex(&Md5::digest(b"hello")),
            "5d41402abc4b2a76b9719d911017c592"
        );
        let part = |etag: &str| CompletedPart::builder().e_tag(etag).part_number(1).build();
        // A two-part upload of "hello" and "world": the MD5 of the two MD5s, "-2".
        let parts = [
            part("\"5d41402abc4b2a76b9719d911017c592\""),
            part("7d793037a0760186574b0282f2f435e7"),
        ];
        let mut both = Vec::new();
        both.extend(Md5::digest(b"hello"));
        both.extend(Md5::digest(b"world"));
        assert_eq!(
            multipart_etag(&parts).unwrap(),
            format!("{}-2", hex(&Md5::digest(&both)))
        );
        assert!(multipart_etag(&[part("not-an-md5")]).is_none());
    }
}
