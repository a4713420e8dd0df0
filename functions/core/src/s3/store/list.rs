//! Listing: `ListObjectsV2` pages under a key prefix, objects outside the stage or that
//! would not round-trip skipped, and what a listing learns kept for later reads.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ListResult, ObjectMeta};

use super::{S3Store, to_chrono};
use crate::aws_error::AwsFailure;
use crate::s3::stats::Request;

impl S3Store {
    /// One `ListObjectsV2` page under `prefix`.
    pub(super) async fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        token: Option<String>,
    ) -> object_store::Result<(Vec<ObjectMeta>, Vec<Path>, Option<String>)> {
        self.stats.request(Request::List);
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(token);
        if delimiter {
            req = req.delimiter("/");
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.fail(&AwsFailure::from_sdk(&e), "ListObjectsV2", prefix))?;
        let objects: Vec<ObjectMeta> =
            out.contents()
                .iter()
                .filter_map(|o| {
                    let key = o.key()?;
                    // Directory markers and anything that would not round-trip are skipped.
                    (key.starts_with(&self.root) && !key.ends_with('/') && !key.contains("//"))
                        .then(|| ObjectMeta {
                            location: Self::path(key),
                            last_modified: to_chrono(o.last_modified()),
                            size: o.size().unwrap_or(0).max(0) as u64,
                            e_tag: o.e_tag().map(str::to_string),
                            version: None,
                        })
                })
                .collect();
        for meta in &objects {
            self.remember(meta);
        }
        let prefixes = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(Self::path))
            .collect();
        let next = out
            .is_truncated()
            .unwrap_or(false)
            .then(|| out.next_continuation_token().map(str::to_string))
            .flatten();
        Ok((objects, prefixes, next))
    }

    /// Every object under a key prefix (a raw S3 prefix, not segment-aligned).
    pub fn list_keys(
        &self,
        prefix: String,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = self.clone();
        stream::try_unfold(Some(None::<String>), move |state| {
            let this = this.clone();
            let prefix = prefix.clone();
            async move {
                let Some(token) = state else {
                    return Ok::<_, object_store::Error>(None);
                };
                let (objects, _, next) = this.list_page(&prefix, false, token).await?;
                Ok(Some((
                    stream::iter(objects.into_iter().map(Ok)),
                    next.map(Some),
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// The key prefix of the directory `prefix` names: the stage's root for none, else its
    /// key with a trailing `/`.
    fn directory(&self, prefix: Option<&Path>) -> object_store::Result<String> {
        let Some(path) = prefix else {
            return Ok(self.root.clone());
        };
        let key = self.key(path)?;
        Ok(if key.is_empty() || key.ends_with('/') {
            key
        } else {
            format!("{key}/")
        })
    }

    /// [`ObjectStore::list`](object_store::ObjectStore::list): every object under a directory of the stage.
    pub(super) fn list_under(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // DataFusion lists segment-aligned prefixes; our own listing goes through `list_keys`.
        match self.directory(prefix) {
            Ok(prefix) => self.list_keys(prefix),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    /// [`ObjectStore::list_with_delimiter`](object_store::ObjectStore::list_with_delimiter): one directory level, every page of it.
    pub(super) async fn list_delimited(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<ListResult> {
        let prefix = self.directory(prefix)?;
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        let mut token = None;
        loop {
            let (objects, prefixes, next) = self.list_page(&prefix, true, token).await?;
            result.objects.extend(objects);
            result.common_prefixes.extend(prefixes);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(result),
            }
        }
    }
}
