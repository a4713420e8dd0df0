//! Reads: `GetObject` for a range or a whole object, answered from a kept tail or a
//! prefetched chunk where one covers it, the object's size and version learnt from each
//! answer, and its page headers checked when the file's pages are known.

use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta};

use super::ranges::{absolute, http_range, parse_content_range};
use super::{S3Store, to_store_error};
use crate::aws_error::{AwsFailure, chain};
use crate::error::{ErrorKind, FunctionError};
use crate::s3::stats::Request;
use crate::s3::tails::{Split, join};

impl S3Store {
    /// A read, answered from the object's kept tail where it can be, its page headers
    /// checked when the file's pages are known.
    pub(super) async fn get_key(
        &self,
        key: &str,
        options: &GetOptions,
    ) -> object_store::Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none();
        if plain && options.range.is_none() && self.page_map(key).is_none() {
            return self.stream(key).await;
        }
        let wanted = match (&options.range, self.tails.size(key)) {
            (Some(range), Some(size)) if plain => absolute(range, size),
            _ => None,
        };
        let split = match &wanted {
            Some(range) => self.tails.split(key, range),
            None => Split::Miss,
        };
        let (bytes, range, meta) = match (split, wanted) {
            (Split::Cached(bytes), Some(range)) => (bytes, range, self.known(key)),
            (Split::Partly { fetch, cached }, Some(range)) => {
                let (head, meta) = match self.prefetched.get(key, &fetch).await {
                    Some(head) => (head, self.known(key)),
                    None => self.fetch_exactly(key, fetch).await?,
                };
                let bytes = join(&head, &cached);
                self.tails.keep(key, range.start, bytes.clone(), meta.size);
                (bytes, range, meta)
            }
            (Split::Miss, Some(range)) => match self.prefetched.get(key, &range).await {
                Some(bytes) => (bytes, range, self.known(key)),
                None => self.fetch_and_keep(key, options).await?,
            },
            _ => self.fetch_and_keep(key, options).await?,
        };
        if let Some(map) = self.page_map(key)
            && let Err(why) = map.check(range.start, &bytes)
        {
            let err = FunctionError::new(
                ErrorKind::InvalidParquet,
                format!(
                    "s3://{}/{key} is not a readable Parquet file: {why}",
                    self.bucket
                ),
            );
            self.stats.failed(&err);
            return Err(to_store_error(err, key));
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    /// One GET, its bytes kept as the object's tail when they reach its end.
    pub(super) async fn fetch_and_keep(
        &self,
        key: &str,
        options: &GetOptions,
    ) -> object_store::Result<(Bytes, Range<u64>, ObjectMeta)> {
        let (bytes, range, meta) = self.fetch(key, options).await?;
        self.tails.keep(key, range.start, bytes.clone(), meta.size);
        Ok((bytes, range, meta))
    }

    /// One GET of exactly `range`: an endpoint that answers other bytes is an error.
    pub(super) async fn fetch_exactly(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> object_store::Result<(Bytes, ObjectMeta)> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let (bytes, got, meta) = self.fetch(key, &options).await?;
        if got != range {
            let err = FunctionError::new(
                ErrorKind::EndpointUnreachable,
                format!(
                    "S3 GetObject on s3://{}/{key} returned bytes {got:?} where {range:?} \
                     were asked for; does the endpoint honour Range requests?",
                    self.bucket
                ),
            );
            self.stats.failed(&err);
            return Err(to_store_error(err, key));
        }
        Ok((bytes, meta))
    }

    /// The ETag the query planned `key` with (its listing's, its first read's, or the
    /// coordinator's, for a worker): every later read of it asks for that version
    /// (`If-Match`), so an object replaced mid-query fails `ObjectChanged` instead of
    /// answering from two versions.
    pub(super) fn planned_version(&self, key: &str) -> Option<String> {
        self.known_map().get(key).and_then(|m| m.e_tag.clone())
    }

    /// What is known of an object without a request.
    pub(super) fn known(&self, key: &str) -> ObjectMeta {
        self.known_map()
            .get(key)
            .cloned()
            .unwrap_or_else(|| ObjectMeta {
                location: Self::path(key),
                last_modified: DateTime::<Utc>::default(),
                size: self.tails.size(key).unwrap_or(0),
                e_tag: None,
                version: None,
            })
    }

    /// One `GetObject`: the bytes, the range they cover and the object's metadata.
    pub(super) async fn fetch(
        &self,
        key: &str,
        options: &GetOptions,
    ) -> object_store::Result<(Bytes, Range<u64>, ObjectMeta)> {
        let range = options.range.as_ref().map(http_range).transpose()?;
        tracing::debug!(bucket = %self.bucket, key, range = range.as_deref().unwrap_or("all"), "GetObject");
        self.stats.request(Request::Get);
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .set_if_match(
                options
                    .if_match
                    .clone()
                    .or_else(|| self.planned_version(key)),
            )
            .set_if_none_match(options.if_none_match.clone())
            .set_version_id(options.version.clone());
        if let Some(t) = options.if_modified_since {
            req = req.if_modified_since(aws_smithy_types::DateTime::from_millis(
                t.timestamp_millis(),
            ));
        }
        if let Some(t) = options.if_unmodified_since {
            req = req.if_unmodified_since(aws_smithy_types::DateTime::from_millis(
                t.timestamp_millis(),
            ));
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.fail(&AwsFailure::from_sdk(&e), "GetObject", key))?;
        self.saw_version(key, out.e_tag());
        let (range, size) = match out.content_range().and_then(parse_content_range) {
            Some(parsed) => parsed,
            None => {
                let len = out.content_length().unwrap_or(0).max(0) as u64;
                (0..len, len)
            }
        };
        let meta = Self::meta_of(key, size, &out);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.cut_off(key, chain(&e)))?;
        let bytes = body.into_bytes();
        self.stats.bytes(bytes.len() as u64);
        if bytes.len() as u64 != range.end - range.start {
            let err = FunctionError::new(
                ErrorKind::EndpointUnreachable,
                format!(
                    "S3 GetObject on s3://{}/{key} returned {} bytes where {} were announced; retry",
                    self.bucket,
                    bytes.len(),
                    range.end - range.start
                ),
            );
            self.stats.failed(&err);
            return Err(to_store_error(err, key));
        }
        Ok((bytes, range, meta))
    }
}
