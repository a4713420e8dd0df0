//! DataFusion failures mapped to [`ErrorKind`]s. An S3 failure met during the query is the
//! root cause and wins over however DataFusion wrapped it.

use datafusion::error::DataFusionError;

use crate::error::{ErrorKind, FunctionError};
use crate::s3::IoStats;

/// Maps a failure of planning or running the query. `files` names what was read; `tables`
/// pairs each generated table name with the location it stands for, so messages show the
/// user's `@stage/path` rather than `__xstage_0`.
pub fn map(
    err: DataFusionError,
    stats: &IoStats,
    files: &[String],
    tables: &[(String, String)],
) -> FunctionError {
    if let Some(s3) = stats.first_error() {
        return s3;
    }
    let root = err.find_root();
    let detail = humanize(&root.to_string(), tables);
    if is_text_error(root, stats) {
        let file = stats
            .last_streamed()
            .map(|key| {
                let bucket = files.first().and_then(|f| f.strip_prefix("s3://"));
                let bucket = bucket.and_then(|f| f.split('/').next()).unwrap_or("");
                format!("s3://{bucket}/{key}")
            })
            .unwrap_or_else(|| match files {
                [one] => one.clone(),
                _ => "a file of the stage".to_string(),
            });
        return FunctionError::new(
            ErrorKind::InvalidFormat,
            format!(
                "{file} does not match its file format: {detail}. Check the format's TYPE, \
                 FIELD_DELIMITER, QUOTE, SKIP_HEADER and COMPRESSION against the file"
            ),
        );
    }
    let what = match files {
        [] => "the stage".to_string(),
        [one] => one.clone(),
        many => format!("one of {} files ({}, ...)", many.len(), many[0]),
    };
    let invalid_parquet = || {
        FunctionError::new(
            ErrorKind::InvalidParquet,
            format!(
                "{what} is not a readable Parquet file: {detail}. Check that the path selects only Parquet \
                 files (use PATTERN => '.*[.]parquet') and that the files are complete"
            ),
        )
    };
    match root {
        DataFusionError::ParquetError(_) => invalid_parquet(),
        DataFusionError::ArrowError(e, _) if is_parquet_arrow_error(e) => invalid_parquet(),
        DataFusionError::External(e)
            if e.downcast_ref::<parquet::errors::ParquetError>().is_some() =>
        {
            invalid_parquet()
        }
        DataFusionError::External(e) if e.downcast_ref::<FunctionError>().is_some() => e
            .downcast_ref::<FunctionError>()
            .cloned()
            .unwrap_or_else(|| FunctionError::internal(detail.clone())),
        DataFusionError::ObjectStore(e) => match e.as_ref() {
            object_store::Error::NotFound { path, .. } => FunctionError::new(
                ErrorKind::NotFound,
                format!("object {path} disappeared while the query ran; rerun it"),
            ),
            other => FunctionError::new(
                ErrorKind::EndpointUnreachable,
                format!("reading {what}: {other}"),
            ),
        },
        DataFusionError::ResourcesExhausted(_) => FunctionError::new(
            ErrorKind::ResourcesExhausted,
            format!(
                "the query needs more memory than the function has: {detail}. Add a LIMIT or a WHERE, \
                 aggregate fewer groups, or raise the function's memory"
            ),
        ),
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => FunctionError::invalid_query(detail),
        DataFusionError::ArrowError(..) => FunctionError::invalid_query(detail),
        DataFusionError::Execution(msg) if looks_like_parquet(msg) => invalid_parquet(),
        DataFusionError::Execution(_) => FunctionError::invalid_query(detail),
        _ => FunctionError::internal(format!("the query failed unexpectedly: {detail}")),
    }
}

/// Generated table names back to what the user wrote, and DataFusion's repeated prefixes
/// folded. Longer names first, so `__xstage_10` is not read as `__xstage_1`.
fn humanize(message: &str, tables: &[(String, String)]) -> String {
    let mut out = message.replace("Parquet error: Parquet error: ", "Parquet error: ");
    let mut tables: Vec<&(String, String)> = tables.iter().collect();
    tables.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, written) in tables {
        out = out
            .replace(&format!("'{name}."), "'")
            .replace(&format!("{name}."), "")
            .replace(name.as_str(), written);
    }
    out
}

/// A CSV or JSON reader's refusal, or a failed decompression or UTF-8 check of a streamed
/// (text) file.
fn is_text_error(root: &DataFusionError, stats: &IoStats) -> bool {
    use arrow::error::ArrowError;
    let streamed = stats.last_streamed().is_some();
    let arrow = |e: &ArrowError| match e {
        ArrowError::CsvError(_) | ArrowError::JsonError(_) => true,
        // A CSV value that does not parse as its inferred type names its line.
        ArrowError::ParseError(m) => m.contains(" line "),
        // A CSV value that does not convert to its column's inferred type
        // (`tables::with_null_display`).
        ArrowError::CastError(_) => streamed,
        ArrowError::IoError(..) | ArrowError::ExternalError(_) => streamed,
        _ => false,
    };
    match root {
        DataFusionError::ArrowError(e, _) => arrow(e),
        DataFusionError::IoError(_) => streamed,
        DataFusionError::External(e) => {
            streamed
                && (e.downcast_ref::<std::io::Error>().is_some()
                    || e.downcast_ref::<ArrowError>().is_some_and(arrow))
        }
        DataFusionError::Execution(m) => streamed && m.to_ascii_lowercase().contains("utf-8"),
        _ => false,
    }
}

fn is_parquet_arrow_error(e: &arrow::error::ArrowError) -> bool {
    match e {
        arrow::error::ArrowError::ParquetError(_) => true,
        arrow::error::ArrowError::ExternalError(inner) => inner
            .downcast_ref::<parquet::errors::ParquetError>()
            .is_some(),
        _ => false,
    }
}

fn looks_like_parquet(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("parquet") || m.contains("footer") || m.contains("thrift")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_what_the_user_wrote() {
        let tables = vec![
            ("__xstage_1".to_string(), "@s/b.parquet".to_string()),
            ("__xstage_10".to_string(), "@s/k.parquet".to_string()),
        ];
        assert_eq!(
            humanize(
                "No field named nope. Did you mean '__xstage_1.name'?",
                &tables
            ),
            "No field named nope. Did you mean 'name'?"
        );
        assert_eq!(
            humanize("table __xstage_10 is empty", &tables),
            "table @s/k.parquet is empty"
        );
    }
}
