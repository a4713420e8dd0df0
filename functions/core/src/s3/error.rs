//! S3 failures mapped to [`ErrorKind`]s, with the bucket and key tried and the likely fix.

use crate::aws_error::{AwsFailure, advice};
use crate::error::{ErrorKind, FunctionError};

/// Maps a failed S3 `operation` on `s3://bucket/key` to a typed error.
pub fn map(failure: &AwsFailure, operation: &str, bucket: &str, key: &str) -> FunctionError {
    let target = format!("s3://{bucket}/{key}");
    let said = failure.said();
    if let Some(kind) = failure.common_kind() {
        return FunctionError::new(
            kind,
            format!("S3 {operation} on {target} failed{said}: {}", advice(kind)),
        );
    }
    let (kind, fix) = match (failure.code.as_deref(), failure.status) {
        (Some("NoSuchBucket"), _) => (
            ErrorKind::NoSuchBucket,
            format!("bucket {bucket} does not exist; check the stage URL and the connection's region/endpoint"),
        ),
        (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => (
            ErrorKind::NotFound,
            "no such object; check the path after @stage (LIST @stage shows what exists)".to_string(),
        ),
        (Some("AccessDenied" | "AccessDeniedException" | "AllAccessDisabled" | "AccountProblem"), _) | (None, Some(403)) => (
            ErrorKind::S3AccessDenied,
            format!(
                "the assumed role was accepted, but its permission policy does not allow this read: grant \
                 s3:GetObject on arn:aws:s3:::{bucket}/{key_scope}* and s3:ListBucket on arn:aws:s3:::{bucket} \
                 (check also the bucket policy and KMS key policy)",
                key_scope = key.rsplit_once('/').map_or("", |(dir, _)| dir).to_string()
                    + if key.contains('/') { "/" } else { "" }
            ),
        ),
        (Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException"), _)
        | (None, Some(301)) => (
            ErrorKind::WrongRegion,
            match &failure.bucket_region {
                Some(region) => format!(
                    "bucket {bucket} is in {region}, not in the region the connection names; set the connection's \
                     REGION='{region}'"
                ),
                None => format!(
                    "bucket {bucket} is in another region; set the connection's REGION to the bucket's region"
                ),
            },
        ),
        (Some("PreconditionFailed"), _) | (None, Some(412)) => (
            ErrorKind::ObjectChanged,
            "the object changed while the query read it (its ETag is no longer the one the query \
             was planned with; nothing was answered from two versions): run the query again"
                .to_string(),
        ),
        (Some("InvalidRange"), _) | (None, Some(416)) => (
            ErrorKind::InvalidParquet,
            "a byte range past the end of the object was requested; the object changed or is not a Parquet file".to_string(),
        ),
        _ => (
            ErrorKind::Internal,
            "unexpected S3 error; retry, and report it if it persists".to_string(),
        ),
    };
    FunctionError::new(
        kind,
        format!("S3 {operation} on {target} failed{said}: {fix}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: Option<&str>, status: u16) -> AwsFailure {
        AwsFailure {
            code: code.map(str::to_string),
            message: None,
            status: Some(status),
            transport: None,
            bucket_region: None,
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            (Some("NoSuchBucket"), 404, ErrorKind::NoSuchBucket),
            (Some("NoSuchKey"), 404, ErrorKind::NotFound),
            (Some("NotFound"), 404, ErrorKind::NotFound),
            (None, 404, ErrorKind::NotFound),
            (Some("AccessDenied"), 403, ErrorKind::S3AccessDenied),
            (None, 403, ErrorKind::S3AccessDenied),
            (Some("PermanentRedirect"), 301, ErrorKind::WrongRegion),
            (Some("SlowDown"), 503, ErrorKind::Throttled),
            (Some("PreconditionFailed"), 412, ErrorKind::ObjectChanged),
            (None, 412, ErrorKind::ObjectChanged),
            (
                Some("InvalidAccessKeyId"),
                403,
                ErrorKind::InvalidClientTokenId,
            ),
            (Some("ExpiredToken"), 400, ErrorKind::ExpiredToken),
            (
                Some("SignatureDoesNotMatch"),
                403,
                ErrorKind::SignatureDoesNotMatch,
            ),
        ];
        for (code, status, kind) in cases {
            let e = map(&failure(code, status), "GetObject", "b", "p/k.parquet");
            assert_eq!(e.kind(), kind, "{code:?} {status}");
            assert!(
                e.message().contains("s3://b/p/k.parquet"),
                "{}",
                e.message()
            );
        }
    }

    #[test]
    fn access_denied_names_the_policy_fix() {
        let e = map(
            &failure(Some("AccessDenied"), 403),
            "GetObject",
            "b",
            "p/k.parquet",
        );
        assert!(
            e.message().contains("s3:GetObject on arn:aws:s3:::b/p/*"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("s3:ListBucket"));
    }

    #[test]
    fn a_redirect_names_the_bucket_region() {
        let mut f = failure(Some("PermanentRedirect"), 301);
        f.bucket_region = Some("eu-west-1".into());
        let e = map(&f, "GetObject", "b", "k");
        assert_eq!(e.kind(), ErrorKind::WrongRegion);
        assert!(
            e.message().contains("REGION='eu-west-1'"),
            "{}",
            e.message()
        );
    }
}
