//! An [`ObjectStore`] over `aws-sdk-s3`, confined to one stage and read-only.
//!
//! DataFusion reads Parquet through it: `GetObject` with byte ranges (close ranges coalesced,
//! far ones fetched concurrently), a suffix `GetObject` for an object's size and last bytes
//! ([`S3Store::probe`]), and `ListObjectsV2`. Object metadata already learnt from a listing is
//! served without another request, and reads inside an object's fetched tail without one
//! either ([`super::tails`]). Every key is checked to lie under the stage prefix, so even a
//! bug upstream cannot read outside the stage.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::error::map as map_s3_error;
use super::prefetched::Prefetched;
use super::stats::{IoStats, Request};
use super::tails::{Split, Tails};
use crate::aws_error::AwsFailure;
use crate::checks::PageMap;
use crate::error::{ErrorKind, FunctionError};

mod get;
mod list;
mod ranges;
mod whole;

pub use ranges::COALESCE_GAP;
use ranges::{merge_close, parse_content_range, slice_of};

/// GETs in flight at once for one read of many ranges. object_store's `coalesce_ranges`
/// sends 10 at a time, so the 40 column chunks of a GROUP BY over a 20-row-group file left
/// in four waves, each waiting out S3's first-byte latency.
pub const PARALLEL_GETS: usize = 32;

/// A read-only view of `s3://bucket/root`. Clones share counters and known metadata.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// [`S3Store::scope`].
    scope: String,
    root: String,
    stats: Arc<IoStats>,
    known: Arc<Mutex<HashMap<String, ObjectMeta>>>,
    pages: Arc<Mutex<HashMap<String, Arc<PageMap>>>>,
    tails: Arc<Tails>,
    prefetched: Arc<Prefetched>,
    /// Per key, the ETag every GET of it answered with; `None` once two differed (or one
    /// had none).
    versions: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl S3Store {
    /// `root` is the stage prefix: empty or ending with `/`; `endpoint` the connection's
    /// `endpoint_url`, if it has one (the client was built with it).
    pub fn new(
        client: Client,
        endpoint: Option<&str>,
        bucket: &str,
        root: &str,
        stats: Arc<IoStats>,
    ) -> Self {
        Self {
            client,
            scope: format!("{}|{bucket}", endpoint.unwrap_or("aws")),
            bucket: bucket.to_string(),
            root: root.to_string(),
            stats,
            known: Arc::default(),
            pages: Arc::default(),
            tails: Arc::default(),
            prefetched: Arc::default(),
            versions: Arc::default(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The client, signed with the invocation's credentials: [`crate::unload`] writes with it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The endpoint and the bucket, as one string: what a warm environment remembers of an
    /// object is keyed by it and the key ([`crate::engine`]'s metadata lengths). The bucket
    /// alone is not enough: an S3-compatible store or an emulator (`endpoint_url`) may hold
    /// a bucket of the same name, with other objects under the same keys.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The object_store path of a key.
    pub fn path(key: &str) -> Path {
        Path::from_iter(key.split('/'))
    }

    /// Registers GETs for `ranges` of the object at `path` (coalesced like any read), to be
    /// sent by [`S3Store::drive_prefetch`] or by the first read inside one: the reads to come
    /// wait for them instead of sending their own.
    pub fn prefetch(&self, path: &Path, ranges: &[Range<u64>]) -> object_store::Result<()> {
        let key = self.key(path)?;
        for range in merge_close(ranges) {
            // What the object's kept tail holds is read from it, not fetched again.
            let range = match self.tails.split(&key, &range) {
                Split::Cached(_) => continue,
                Split::Partly { fetch, .. } => fetch,
                Split::Miss => range,
            };
            // A store without the kept fetches: a fetch holding the map it is kept in would
            // never be freed if it is never polled (a query that ends early).
            let this = Self {
                prefetched: Arc::default(),
                ..self.clone()
            };
            let wanted: Vec<Range<u64>> = ranges
                .iter()
                .filter(|r| r.start < range.end && range.start < r.end)
                .map(|r| r.start.max(range.start)..r.end.min(range.end))
                .collect();
            let key_ = key.clone();
            let asked = range.clone();
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            };
            // Not `get_key`: that would wait for this very fetch.
            let fetch = async move {
                let (bytes, got, _) = this.fetch(&key_, &options).await.ok()?;
                (got == asked).then_some(bytes)
            };
            self.prefetched
                .keep(&key, range, wanted, fetch.boxed().shared());
        }
        Ok(())
    }

    /// Sends the prefetched GETs, [`PARALLEL_GETS`] at a time, while those sent and not yet
    /// read hold at most `budget` bytes, until all are answered.
    pub fn drive_prefetch(&self, budget: u64) -> BoxFuture<'static, ()> {
        self.prefetched.drive(PARALLEL_GETS, budget)
    }

    /// The ETag with which every GET of `path` in this invocation was answered, if there was
    /// one and all agreed: the version of the object this invocation read.
    pub fn version_read(&self, path: &Path) -> Option<String> {
        let key = key_of(path).ok()?;
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(&key).cloned().flatten()
    }

    fn saw_version(&self, key: &str, e_tag: Option<&str>) {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let seen = versions
            .entry(key.to_string())
            .or_insert_with(|| e_tag.map(str::to_string));
        if seen.as_deref() != e_tag {
            *seen = None;
        }
    }

    /// An object's metadata from a `GetObject` answer and its full size.
    fn meta_of(
        key: &str,
        size: u64,
        out: &aws_sdk_s3::operation::get_object::GetObjectOutput,
    ) -> ObjectMeta {
        ObjectMeta {
            location: Self::path(key),
            last_modified: to_chrono(out.last_modified()),
            size,
            e_tag: out.e_tag().map(str::to_string),
            version: out.version_id().map(str::to_string),
        }
    }

    /// Remembers metadata so `head` needs no request.
    pub fn remember(&self, meta: &ObjectMeta) {
        if let Ok(key) = key_of(&meta.location) {
            self.known_map().insert(key, meta.clone());
        }
    }

    /// The versions a coordinator planned with (ETags by key): every later read of a known
    /// object asks for its version ([`S3Store::planned_version`]).
    pub fn plan_versions(&self, versions: &std::collections::BTreeMap<String, String>) {
        let mut known = self.known_map();
        for (key, e_tag) in versions {
            if let Some(meta) = known.get_mut(key) {
                meta.e_tag = Some(e_tag.clone());
            }
        }
    }

    /// Where a file's pages are: from now on, every ranged read of it has its page headers
    /// checked ([`PageMap::check`]) before anyone decodes them.
    pub fn expect_pages(&self, path: &Path, map: PageMap) {
        if let Ok(key) = key_of(path) {
            let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
            pages.insert(key, Arc::new(map));
        }
    }

    fn page_map(&self, key: &str) -> Option<Arc<PageMap>> {
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        pages.get(key).cloned()
    }

    fn known_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, ObjectMeta>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The S3 key of `path`, refused unless it lies under the stage root.
    fn key(&self, path: &Path) -> object_store::Result<String> {
        let key = key_of(path)?;
        if !key.starts_with(&self.root) {
            return Err(object_store::Error::PermissionDenied {
                path: key.clone(),
                source: format!(
                    "s3://{}/{key} is outside the stage s3://{}/{}",
                    self.bucket, self.bucket, self.root
                )
                .into(),
            });
        }
        Ok(key)
    }

    fn fail(&self, failure: &AwsFailure, operation: &str, key: &str) -> object_store::Error {
        let err = map_s3_error(failure, operation, &self.bucket, key);
        // A missing object is an answer (a probe for a file or a directory), not a root cause.
        if err.kind() != ErrorKind::NotFound {
            self.stats.failed(&err);
        }
        to_store_error(err, key)
    }

    /// An object's metadata and its last `tail` bytes, from one suffix `GetObject` rather
    /// than a `HeadObject`: `Content-Range` carries the size, and the bytes are the footer a
    /// Parquet read needs next (kept, so that read costs no request). The same permission
    /// (`s3:GetObject`), and a failure comes with S3's error code in the body (a HEAD response
    /// has none, so an expired token, a bad signature and a denied read would all be a bare
    /// 403). An empty object answers 416, which is size 0.
    pub async fn probe(&self, key: &str, tail: u64) -> object_store::Result<ObjectMeta> {
        if let Some(meta) = self.known_map().get(key) {
            return Ok(meta.clone());
        }
        self.stats.request(Request::Get);
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=-{}", tail.max(1)))
            .send()
            .await;
        let meta = match result {
            Ok(out) => {
                self.saw_version(key, out.e_tag());
                let announced = out.content_range().and_then(parse_content_range);
                let size = announced.as_ref().map_or_else(
                    || out.content_length().unwrap_or(0).max(0) as u64,
                    |(_, total)| *total,
                );
                let meta = Self::meta_of(key, size, &out);
                // A body cut short is not kept: the read that needs it fetches it again.
                if let Ok(body) = out.body.collect().await {
                    let bytes = body.into_bytes();
                    self.stats.bytes(bytes.len() as u64);
                    let start = announced.map_or(0, |(range, _)| range.start);
                    self.tails.keep(key, start, bytes, size);
                }
                meta
            }
            Err(e) => {
                let failure = AwsFailure::from_sdk(&e);
                if failure.code.as_deref() != Some("InvalidRange") && failure.status != Some(416) {
                    return Err(self.fail(&failure, "GetObject", key));
                }
                ObjectMeta {
                    location: Self::path(key),
                    last_modified: DateTime::<Utc>::default(),
                    size: 0,
                    e_tag: None,
                    version: None,
                }
            }
        };
        self.remember(&meta);
        Ok(meta)
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Store(s3://{}/{})", self.bucket, self.root)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_opts(
        &self,
        path: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only(path))
    }

    async fn put_multipart_opts(
        &self,
        path: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only(path))
    }

    async fn get_opts(&self, path: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let key = self.key(path)?;
        if options.head {
            let meta = self.probe(&key, 1).await?;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                range: 0..meta.size,
                meta,
                attributes: Default::default(),
            });
        }
        self.get_key(&key, &options).await
    }

    async fn get_ranges(
        &self,
        path: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let requests = merge_close(ranges);
        let fetched: Vec<Bytes> = stream::iter(requests.iter().cloned())
            .map(|range| async move {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..GetOptions::default()
                };
                self.get_opts(path, options).await?.bytes().await
            })
            .buffered(PARALLEL_GETS)
            .try_collect()
            .await?;
        ranges
            .iter()
            .map(|range| slice_of(&requests, &fetched, range))
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations
            .map(|p| p.and_then(|p| Err(read_only(&p))))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_under(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.list_delimited(prefix).await
    }

    async fn copy_opts(&self, _: &Path, to: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only(to))
    }
}

fn read_only(path: &Path) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("xstage only reads stages; writing {path} is not supported").into(),
    }
}

/// The S3 key of an object_store path.
pub fn key_of(path: &Path) -> object_store::Result<String> {
    percent_encoding::percent_decode_str(path.as_ref())
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })
}

fn to_store_error(err: FunctionError, key: &str) -> object_store::Error {
    match err.kind() {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: key.to_string(),
            source: Box::new(err),
        },
        ErrorKind::S3AccessDenied => object_store::Error::PermissionDenied {
            path: key.to_string(),
            source: Box::new(err),
        },
        _ => object_store::Error::Generic {
            store: "S3",
            source: Box::new(err),
        },
    }
}

fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client without credentials or endpoint: nothing it is asked for can be sent.
    fn offline_client() -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        Client::from_conf(config)
    }

    #[test]
    fn kept_fetches_do_not_keep_their_store_alive() {
        let store = S3Store::new(offline_client(), None, "b", "p/", Arc::default());
        let path = S3Store::path("p/x.parquet");
        store.prefetch(&path, &[0..10, 200_000..200_010]).unwrap();
        // Registered and never sent, as when a query ends before its prefetch: the map of
        // kept fetches is held by this store alone, so it is freed with it.
        assert_eq!(Arc::strong_count(&store.prefetched), 1);
        // Outside the stage: refused, nothing registered.
        let outside = S3Store::path("q/y.parquet");
        assert!(store.prefetch(&outside, &[0..10, 20..30]).is_err());
    }

    /// README: the store itself refuses a key outside the stage, whatever DataFusion asks for,
    /// before any request is made (this client has no credentials and no endpoint).
    #[test]
    fn keys_outside_the_stage_are_refused_before_any_request() {
        use object_store::ObjectStoreExt as _;
        let stats = Arc::<IoStats>::default();
        let store = S3Store::new(offline_client(), None, "b", "p/", Arc::clone(&stats));
        let refused = |r: object_store::Result<()>, what: &str| match r {
            Err(object_store::Error::PermissionDenied { source, .. }) => {
                assert!(
                    source
                        .to_string()
                        .contains("is outside the stage s3://b/p/"),
                    "{what}: {source}"
                );
            }
            other => panic!("{what}: {other:?}"),
        };
        for key in ["q/y.parquet", "p2/y.parquet", "y.parquet"] {
            let path = S3Store::path(key);
            refused(
                futures::executor::block_on(store.head(&path)).map(drop),
                key,
            );
            refused(futures::executor::block_on(store.get(&path)).map(drop), key);
            refused(
                futures::executor::block_on(store.get_range(&path, 0..4)).map(drop),
                key,
            );
            refused(
                futures::executor::block_on(store.list_with_delimiter(Some(&path))).map(drop),
                key,
            );
            let listed = futures::executor::block_on(store.list(Some(&path)).collect::<Vec<_>>());
            refused(listed.into_iter().next().expect("an error").map(drop), key);
        }
        assert_eq!(stats.counts().requests, 0);
    }

    #[test]
    fn paths_round_trip_keys() {
        for key in ["p/test.parquet", "p/a b[1]%.parquet", "p/ünï/x.parquet"] {
            assert_eq!(key_of(&S3Store::path(key)).unwrap(), key);
        }
    }
}
