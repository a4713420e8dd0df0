//! Which objects a [`Location`] selects: one suffix GET (its size, and the footer the query
//! reads next) for a plain path, ListObjectsV2 for a directory, a glob or a pattern,
//! concurrent suffix GETs for `FILES => (...)`.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;

use super::footer::PageIndexes;
use super::hints;
use crate::error::{ErrorKind, FunctionError, Result};
use crate::s3::{IoStats, S3Store, key_of};
use crate::stage::{Location, Selection, StageUrl};

/// The most objects one location may list.
pub const MAX_LISTED: usize = 100_000;

/// Objects selected by `location`, sorted by key. `exists_check`: a plain path that names no
/// object and no directory is an error (queries), rather than an empty result (LIST).
pub async fn resolve(
    store: &S3Store,
    stats: &IoStats,
    stage: &StageUrl,
    location: &Location,
    listing_only: bool,
    want: PageIndexes,
) -> Result<Vec<ObjectMeta>> {
    // The first read of a file: as much of its end as its footer (and the page indexes the
    // query wants) took last time, else the default.
    let first_read =
        |key: &str| hints::first_read(store.bucket(), key, want).unwrap_or(hints::DEFAULT);
    let list_prefix = match &location.selection {
        Selection::Path(p) if !listing_only && location.pattern.is_none() => {
            let key = stage.key(p);
            match store.probe(&key, first_read(&key)).await {
                Ok(meta) => return Ok(vec![meta]),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e, stats)),
            }
            format!("{p}/") // not an object: maybe a directory
        }
        Selection::Path(p) => p.clone(),
        Selection::Prefix(p) => p.clone(),
        Selection::Glob { list_prefix, .. } => list_prefix.clone(),
        Selection::Files(files) => {
            let metas: Vec<ObjectMeta> = futures::stream::iter(files.iter().map(|f| {
                let key = stage.key(f);
                let tail = first_read(&key);
                async move { store.probe(&key, tail).await }
            }))
            .buffered(8)
            .try_collect()
            .await
            .map_err(|e| store_error(e, stats))?;
            return Ok(metas
                .into_iter()
                .filter(|m| relative(stage, m).is_some_and(|r| location.matches(&r)))
                .collect());
        }
    };
    let mut listing = store.list_keys(stage.key(&list_prefix));
    let mut found = Vec::new();
    let mut seen = 0usize;
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| store_error(e, stats))?
    {
        seen += 1;
        if seen > MAX_LISTED {
            return Err(FunctionError::invalid_query(format!(
                "{} lists more than {MAX_LISTED} objects; narrow the path or add PATTERN",
                location.written
            )));
        }
        if relative(stage, &meta).is_some_and(|r| location.matches(&r)) {
            found.push(meta);
        }
    }
    found.sort_by(|a, b| a.location.cmp(&b.location));
    if found.is_empty() && !listing_only {
        let message = match &location.selection {
            Selection::Path(p) if location.pattern.is_none() => format!(
                "{}: there is no object {stage}{p} and no files under {stage}{list_prefix}; \
                 LIST @stage shows what exists",
                location.written
            ),
            _ => format!(
                "{} matches no object under {stage}{list_prefix}; LIST @stage shows what exists",
                location.written
            ),
        };
        return Err(FunctionError::new(ErrorKind::NotFound, message));
    }
    Ok(found)
}

/// The stage-relative path of an object.
pub fn relative(stage: &StageUrl, meta: &ObjectMeta) -> Option<String> {
    let key = key_of(&meta.location).ok()?;
    stage.relative(&key).map(str::to_string)
}

/// The typed error behind a store failure: the [`FunctionError`] the store boxed into it.
pub fn store_error(e: object_store::Error, stats: &IoStats) -> FunctionError {
    use std::error::Error;
    if let Some(typed) = e.source().and_then(|s| s.downcast_ref::<FunctionError>()) {
        return typed.clone();
    }
    stats
        .first_error()
        .unwrap_or_else(|| FunctionError::internal(format!("object store: {e}")))
}
