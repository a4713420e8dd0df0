//! Which objects a [`Location`] selects: one suffix GET (its size, and the footer the query
//! reads next) for a plain path, ListObjectsV2 for a directory, a glob or a pattern,
//! concurrent suffix GETs for `FILES => (...)`.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;

use super::error::store_error;
use super::hints::{self, PageIndexes};
use crate::error::{ErrorKind, FunctionError, Result};
use crate::format::{FileFormat, FormatType};
use crate::s3::{IoStats, S3Store, key_of};
use crate::stage::{Location, Selection, StageUrl};

/// The most objects one location may list.
pub const MAX_LISTED: usize = 100_000;

/// Objects selected by `location`, sorted by key. `listing_only`: a plain path that names no
/// object and no directory is an empty result (LIST), rather than an error (queries).
/// `kind`: the format the query reads them as, if known before they are (else each key's
/// extension tells, and a key without one is Parquet).
pub async fn resolve(
    store: &S3Store,
    stats: &IoStats,
    stage: &StageUrl,
    location: &Location,
    listing_only: bool,
    kind: Option<FormatType>,
    want: PageIndexes,
) -> Result<Vec<ObjectMeta>> {
    // The first read of a file: as much of its end as its footer (and the page indexes the
    // query wants) took last time, else the default. A text file has no footer: its size
    // costs one byte.
    let first_read = |key: &str| {
        let kind = kind.or_else(|| FileFormat::detect(key).map(|(k, _)| k));
        if kind.is_some_and(|k| k != FormatType::Parquet) {
            return 1;
        }
        hints::first_read(store.scope(), key, want).unwrap_or(hints::DEFAULT)
    };
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
        // A query reads an unload's data, not its manifest; LIST shows both.
        if relative(stage, &meta).is_some_and(|r| {
            location.matches(&r) && (listing_only || !crate::unload::names::is_manifest(&r))
        }) {
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

/// The format of files nothing names one for: the one their extensions agree on (a file
/// without a known extension follows the others), else Parquet. Extensions that disagree
/// are an error naming two files.
pub fn format_of(
    stage: &StageUrl,
    location: &Location,
    metas: &[ObjectMeta],
) -> Result<FileFormat> {
    let mut seen: Option<(FormatType, String)> = None;
    for meta in metas {
        let key = key_of(&meta.location).unwrap_or_default();
        let Some((kind, _)) = FileFormat::detect(&key) else {
            continue;
        };
        match &seen {
            None => seen = Some((kind, key)),
            Some((first, first_key)) if *first != kind => {
                let name = |k: &str| stage.relative(k).unwrap_or(k).to_string();
                return Err(FunctionError::invalid_query(format!(
                    "{} holds files of two formats: {} is {} and {} is {}; select one kind \
                     with PATTERN (e.g. PATTERN => '.*[.]csv') or name it with FILE_FORMAT => '{}'",
                    location.written,
                    name(first_key),
                    first.as_str(),
                    name(&key),
                    kind.as_str(),
                    first.as_str().to_ascii_lowercase()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(FileFormat::new(
        seen.map_or(FormatType::Parquet, |(k, _)| k),
    ))
}
