//! DataFusion failures mapped to [`ErrorKind`]s. An S3 failure met during the query is the
//! root cause and wins over however DataFusion wrapped it.

use datafusion::error::DataFusionError;

use crate::error::{ErrorKind, FunctionError};
use crate::s3::IoStats;

/// Maps a failure of planning or running the query. `files` names what was read.
pub fn map(err: DataFusionError, stats: &IoStats, files: &[String]) -> FunctionError {
    if let Some(s3) = stats.first_error() {
        return s3;
    }
    let root = err.find_root();
    let detail = root.to_string();
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
        DataFusionError::External(e) if e.downcast_ref::<parquet::errors::ParquetError>().is_some() => {
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
            other => FunctionError::new(ErrorKind::EndpointUnreachable, format!("reading {what}: {other}")),
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

fn is_parquet_arrow_error(e: &arrow::error::ArrowError) -> bool {
    match e {
        arrow::error::ArrowError::ParquetError(_) => true,
        arrow::error::ArrowError::ExternalError(inner) => {
            inner.downcast_ref::<parquet::errors::ParquetError>().is_some()
        }
        _ => false,
    }
}

fn looks_like_parquet(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("parquet") || m.contains("footer") || m.contains("thrift")
}
