//! How a write fails: the object already exists (another writer of the same name got there
//! first: 412 `PreconditionFailed`, or 409 `ConditionalRequestConflict` while its completion
//! is in flight), or a typed [`FunctionError`] whose message names the action, the key and
//! the fix.

use crate::aws_error::AwsFailure;
use crate::error::{ErrorKind, FunctionError};

/// A failed write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The key exists: this writer stopped without replacing it.
    #[error("s3://{bucket}/{key} already exists")]
    Exists { bucket: String, key: String },
    #[error("{0}")]
    Failed(FunctionError),
}

impl WriteError {
    pub fn failed(e: FunctionError) -> Self {
        WriteError::Failed(e)
    }

    /// The typed error for the answer.
    pub fn into_function_error(self) -> FunctionError {
        match self {
            WriteError::Failed(e) => e,
            WriteError::Exists { bucket, key } => FunctionError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "s3://{bucket}/{key} already exists, and xstage never replaces a file it did not \
                     create in this statement: another COPY with the same query id wrote it, or is \
                     writing it now. Give the statement a new query id (or none), or, to replace one \
                     file on purpose, USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE OVERWRITE = TRUE"
                ),
            ),
        }
    }
}

/// An S3 write failure of `operation` on `key`.
pub fn map_write(failure: &AwsFailure, operation: &str, bucket: &str, key: &str) -> WriteError {
    match (failure.code.as_deref(), failure.status) {
        (Some("PreconditionFailed" | "ConditionalRequestConflict"), _)
        | (None, Some(412 | 409)) => {
            return WriteError::Exists {
                bucket: bucket.to_string(),
                key: key.to_string(),
            };
        }
        (Some("AccessDenied" | "AccessDeniedException"), _) | (None, Some(403)) => {
            let action = match operation {
                "AbortMultipartUpload" => "s3:AbortMultipartUpload",
                "DeleteObject" => "s3:DeleteObject",
                _ => "s3:PutObject",
            };
            return WriteError::Failed(FunctionError::new(
                ErrorKind::S3AccessDenied,
                format!(
                    "S3 {operation} on s3://{bucket}/{key} was denied{said}: the assumed role may not \
                     {action} on arn:aws:s3:::{bucket}/{key}. Grant the role s3:PutObject, \
                     s3:AbortMultipartUpload and s3:DeleteObject under the stage's prefix (`xstage policy \
                     --write` prints the permission policy), and check the bucket policy and KMS key policy",
                    said = failure.said()
                ),
            ));
        }
        _ => {}
    }
    WriteError::Failed(crate::s3::map_error(failure, operation, bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: Option<&str>, status: u16) -> AwsFailure {
        AwsFailure {
            code: code.map(str::to_string),
            status: Some(status),
            ..AwsFailure::default()
        }
    }

    #[test]
    fn conditional_failures_are_exists() {
        for (code, status) in [
            (Some("PreconditionFailed"), 412),
            (Some("ConditionalRequestConflict"), 409),
            (None, 412),
        ] {
            let e = map_write(&failure(code, status), "PutObject", "b", "k");
            assert!(matches!(e, WriteError::Exists { .. }), "{code:?}");
            assert_eq!(e.into_function_error().kind(), ErrorKind::AlreadyExists);
        }
    }

    #[test]
    fn denied_names_the_action_key_and_fix() {
        let e = map_write(
            &failure(Some("AccessDenied"), 403),
            "PutObject",
            "b",
            "p/data_1.csv",
        )
        .into_function_error();
        assert_eq!(e.kind(), ErrorKind::S3AccessDenied);
        for needle in [
            "s3:PutObject",
            "arn:aws:s3:::b/p/data_1.csv",
            "xstage policy --write",
        ] {
            assert!(e.message().contains(needle), "{needle}: {}", e.message());
        }
        let e = map_write(&failure(Some("SlowDown"), 503), "UploadPart", "b", "k")
            .into_function_error();
        assert_eq!(e.kind(), ErrorKind::Throttled);
    }
}
