//! Typed errors: a stable [`ErrorKind`] that becomes Lambda's `errorType`, and a message that
//! names what was tried, the likely cause and the fix. Never a credential.

use serde::Serialize;

/// The stable kind of a failure. Its name is the `errorType` of the Lambda response, so
/// callers can branch on it; never rename a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The event is malformed: unknown key, wrong type, or a value that fails validation.
    InvalidEvent,
    /// The SQL does not parse, names an unknown column or stage, or cannot be planned.
    InvalidQuery,
    /// The role ARN is outside this deployment's allowed principals; STS was not called.
    RoleNotAllowed,
    /// The connection has no ExternalId and this deployment requires one; STS was not called.
    ExternalIdRequired,
    /// STS refused `AssumeRole`: the role's trust policy does not trust our principal or
    /// requires a different ExternalId.
    AssumeRoleDenied,
    /// The function's own credentials (or the role ARN's account) are not recognised by STS/S3.
    InvalidClientTokenId,
    /// A credential used for the call has expired.
    ExpiredToken,
    /// The request signature did not verify: wrong secret key or a clock skew.
    SignatureDoesNotMatch,
    /// S3 refused a request made with the assumed role's credentials.
    S3AccessDenied,
    /// The stage's bucket does not exist.
    NoSuchBucket,
    /// The bucket lives in another region than the one the connection names.
    WrongRegion,
    /// No object matches the stage path.
    NotFound,
    /// An object is not a readable Parquet file.
    InvalidParquet,
    /// A CSV, TSV or NDJSON file does not match its format: a malformed row, a wrong
    /// delimiter, a truncated compressed stream, invalid UTF-8. The message names the file
    /// and, where the reader can tell, the line.
    InvalidFormat,
    /// AWS throttled the call; retry later.
    Throttled,
    /// A call to AWS did not finish in time.
    Timeout,
    /// AWS answered with a server error (500, 502, 504, `InternalError`, `ServiceUnavailable`)
    /// through every retry the SDK made.
    ServiceUnavailable,
    /// The STS or S3 endpoint could not be reached.
    EndpointUnreachable,
    /// The query needs more memory than the function may use.
    ResourcesExhausted,
    /// A fan-out worker's partial result would not fit in Lambda's 6 MB response, and its
    /// task could not be split further.
    ResultTooLarge,
    /// The function's own configuration (its environment) is invalid.
    InvalidConfiguration,
    /// A bug or an unexpected condition inside xstage.
    Internal,
    /// A `COPY INTO` reached a function whose configuration does not allow writes
    /// (`XSTAGE_ALLOW_WRITES`); nothing was called.
    WritesNotAllowed,
    /// A file a `COPY INTO` would create already exists (a conditional write got 412): the
    /// statement never replaces a file it did not create.
    AlreadyExists,
    /// The query would read more than `options.max_bytes_scanned` (counted from the footers,
    /// after pruning); nothing was read.
    ScanLimitExceeded,
    /// An object the query reads was replaced while it ran (a read asked for the version the
    /// query was planned with and S3 answered 412); run the query again.
    ObjectChanged,
}

impl ErrorKind {
    /// The `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidEvent => "InvalidEvent",
            ErrorKind::InvalidQuery => "InvalidQuery",
            ErrorKind::RoleNotAllowed => "RoleNotAllowed",
            ErrorKind::ExternalIdRequired => "ExternalIdRequired",
            ErrorKind::AssumeRoleDenied => "AssumeRoleDenied",
            ErrorKind::InvalidClientTokenId => "InvalidClientTokenId",
            ErrorKind::ExpiredToken => "ExpiredToken",
            ErrorKind::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            ErrorKind::S3AccessDenied => "S3AccessDenied",
            ErrorKind::NoSuchBucket => "NoSuchBucket",
            ErrorKind::WrongRegion => "WrongRegion",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::InvalidParquet => "InvalidParquet",
            ErrorKind::InvalidFormat => "InvalidFormat",
            ErrorKind::Throttled => "Throttled",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
            ErrorKind::EndpointUnreachable => "EndpointUnreachable",
            ErrorKind::ResourcesExhausted => "ResourcesExhausted",
            ErrorKind::ResultTooLarge => "ResultTooLarge",
            ErrorKind::InvalidConfiguration => "InvalidConfiguration",
            ErrorKind::Internal => "Internal",
            ErrorKind::WritesNotAllowed => "WritesNotAllowed",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::ScanLimitExceeded => "ScanLimitExceeded",
            ErrorKind::ObjectChanged => "ObjectChanged",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 26] = [
        ErrorKind::InvalidEvent,
        ErrorKind::InvalidQuery,
        ErrorKind::RoleNotAllowed,
        ErrorKind::ExternalIdRequired,
        ErrorKind::AssumeRoleDenied,
        ErrorKind::InvalidClientTokenId,
        ErrorKind::ExpiredToken,
        ErrorKind::SignatureDoesNotMatch,
        ErrorKind::S3AccessDenied,
        ErrorKind::NoSuchBucket,
        ErrorKind::WrongRegion,
        ErrorKind::NotFound,
        ErrorKind::InvalidParquet,
        ErrorKind::InvalidFormat,
        ErrorKind::Throttled,
        ErrorKind::Timeout,
        ErrorKind::ServiceUnavailable,
        ErrorKind::EndpointUnreachable,
        ErrorKind::ResourcesExhausted,
        ErrorKind::ResultTooLarge,
        ErrorKind::InvalidConfiguration,
        ErrorKind::Internal,
        ErrorKind::WritesNotAllowed,
        ErrorKind::AlreadyExists,
        ErrorKind::ScanLimitExceeded,
        ErrorKind::ObjectChanged,
    ];

    /// The kind an `errorType` names.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the same event may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::Timeout
                | ErrorKind::ServiceUnavailable
                | ErrorKind::EndpointUnreachable
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of one invocation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct FunctionError {
    kind: ErrorKind,
    message: String,
}

impl FunctionError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_event(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidEvent, message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidQuery, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Lambda-shaped body: `{"errorType": "...", "errorMessage": "..."}`.
    pub fn to_body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error_type: self.kind.as_str(),
            error_message: &self.message,
        }
    }
}

/// Serialized form of a [`FunctionError`], the same shape as Lambda's.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    #[serde(rename = "errorType")]
    pub error_type: &'a str,
    #[serde(rename = "errorMessage")]
    pub error_message: &'a str,
}

pub type Result<T, E = FunctionError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_lambda_shape() {
        let e = FunctionError::new(ErrorKind::NotFound, "no object s3://b/k");
        let json = serde_json::to_value(e.to_body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorType": "NotFound", "errorMessage": "no object s3://b/k"})
        );
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        assert!(ErrorKind::Throttled.is_retryable());
        assert!(!ErrorKind::AssumeRoleDenied.is_retryable());
        assert!(!ErrorKind::InvalidEvent.is_retryable());
    }
}
