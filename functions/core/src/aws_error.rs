//! What an AWS SDK error says, reduced to the facts our messages need: the service's error
//! code and message, the HTTP status, or the kind of transport failure.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::ErrorKind;

/// A classified SDK failure.
#[derive(Debug, Clone, Default)]
pub struct AwsFailure {
    /// The service's error code, e.g. `AccessDenied`.
    pub code: Option<String>,
    /// The service's message, e.g. `User: ... is not authorized to perform: sts:AssumeRole`.
    pub message: Option<String>,
    pub status: Option<u16>,
    /// Set when no response was received.
    pub transport: Option<Transport>,
    /// S3's `x-amz-bucket-region` header: where the bucket really is.
    pub bucket_region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Timeout,
    Unreachable,
    /// The SDK found no credentials to sign with: nothing was sent.
    NoCredentials,
    Other,
}

impl AwsFailure {
    pub fn from_sdk<E: ProvideErrorMetadata + std::error::Error>(
        err: &SdkError<E, HttpResponse>,
    ) -> Self {
        match err {
            SdkError::ServiceError(ctx) => Self {
                code: ctx.err().code().map(str::to_string),
                message: ctx.err().message().map(str::to_string),
                status: Some(ctx.raw().status().as_u16()),
                transport: None,
                bucket_region: ctx
                    .raw()
                    .headers()
                    .get("x-amz-bucket-region")
                    .map(str::to_string),
            },
            SdkError::TimeoutError(_) => Self {
                transport: Some(Transport::Timeout),
                message: Some("the request timed out".into()),
                ..Self::default()
            },
            SdkError::DispatchFailure(d) => {
                let message = match d.as_connector_error() {
                    Some(c) => transport_cause(&chain(c)),
                    None => "the request could not be sent".to_string(),
                };
                Self {
                    // wasi:http reports a read timeout as an error code, not as a timeout.
                    transport: Some(if d.is_timeout() || message.contains("timed out") {
                        Transport::Timeout
                    } else if d.is_io() {
                        Transport::Unreachable
                    } else if names_missing_credentials(&message) {
                        Transport::NoCredentials
                    } else {
                        Transport::Other
                    }),
                    message: Some(message),
                    ..Self::default()
                }
            }
            SdkError::ResponseError(r) => Self {
                status: Some(r.raw().status().as_u16()),
                message: Some("the response could not be read".into()),
                ..Self::default()
            },
            other => Self {
                transport: Some(Transport::Other),
                message: Some(other.to_string()),
                ..Self::default()
            },
        }
    }

    /// `code`, else a name for the status.
    pub fn code_or_status(&self) -> String {
        match (&self.code, self.status) {
            (Some(code), _) => code.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "no response".into(),
        }
    }

    /// ` (AWS said: ...)`, or nothing.
    pub fn said(&self) -> String {
        let code = self.code_or_status();
        match &self.message {
            Some(m) if !m.is_empty() => format!(" ({code}: {m})"),
            _ => format!(" ({code})"),
        }
    }

    /// The kinds every service shares: transport, throttling, signature and token problems.
    pub fn common_kind(&self) -> Option<ErrorKind> {
        if let Some(t) = self.transport {
            return Some(match t {
                Transport::Timeout => ErrorKind::Timeout,
                Transport::NoCredentials => ErrorKind::InvalidConfiguration,
                Transport::Unreachable | Transport::Other => ErrorKind::EndpointUnreachable,
            });
        }
        let kind = match self.code.as_deref() {
            Some(
                "Throttling"
                | "ThrottlingException"
                | "SlowDown"
                | "TooManyRequestsException"
                | "RequestLimitExceeded",
            ) => ErrorKind::Throttled,
            Some("InvalidClientTokenId" | "InvalidAccessKeyId" | "UnrecognizedClientException") => {
                ErrorKind::InvalidClientTokenId
            }
            Some("ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired") => {
                ErrorKind::ExpiredToken
            }
            Some("SignatureDoesNotMatch" | "RequestTimeTooSkewed") => {
                ErrorKind::SignatureDoesNotMatch
            }
            Some("InternalError" | "InternalFailure" | "ServiceUnavailable") => {
                ErrorKind::ServiceUnavailable
            }
            // S3 says SlowDown with a 503; a bare 503 is read the same way.
            _ if self.status == Some(503) => ErrorKind::Throttled,
            _ if self.status.is_some_and(|s| s >= 500) => ErrorKind::ServiceUnavailable,
            _ => return None,
        };
        Some(kind)
    }
}

/// Whether the SDK's dispatch failure says it had no identity (credentials) to sign with:
/// smithy's "no identity resolver" when no provider is configured or none found any.
fn names_missing_credentials(message: &str) -> bool {
    message.contains("no identity resolver") || message.contains("failed to select an auth scheme")
}

/// Why a request could not be sent, in the same words natively and under WASI: hyper says
/// `tcp connect error: Connection refused (os error 111)` where wasi:http says
/// `ErrorCode::ConnectionRefused`. A cause neither names is kept as the chain says it.
pub fn transport_cause(chain: &str) -> String {
    const TIMED_OUT: &str = "the connection timed out";
    const CAUSES: &[(&[&str], &str)] = &[
        (
            &["connection refused", "connectionrefused"],
            "connection refused",
        ),
        (
            &[
                "connection reset",
                "connectionreset",
                "connectionterminated",
                "broken pipe",
            ],
            "connection reset",
        ),
        (
            &[
                "dns",
                "failed to lookup address",
                "name or service not known",
            ],
            "the endpoint's host name did not resolve",
        ),
        (
            &[
                "timed out",
                "connectiontimeout",
                "connectionreadtimeout",
                "connectionwritetimeout",
                "httpresponsetimeout",
            ],
            TIMED_OUT,
        ),
        (&["certificate", "tls"], "TLS handshake failed"),
    ];
    let lower = chain.to_ascii_lowercase();
    CAUSES
        .iter()
        .find(|(words, _)| words.iter().any(|w| lower.contains(w)))
        .map_or_else(|| chain.to_string(), |(_, cause)| (*cause).to_string())
}

/// An error and its sources on one line, `outer: inner: root`, each said once: a connector
/// error alone says only "io" or "other"; its sources say "connection reset by peer".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        // One line each: a wasi:http error rendered by the host may carry its backtrace.
        let text = e.to_string();
        let text = text
            .split_once("\nStack backtrace:")
            .map_or(text.as_str(), |(head, _)| head)
            .replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The standard advice for the shared kinds.
pub fn advice(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => {
            "the endpoint did not answer in time; check the endpoint, region and network path, then retry"
        }
        ErrorKind::InvalidConfiguration => {
            "the function has no AWS credentials of its own to call STS with: on Lambda its execution role gives them; elsewhere set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to the platform's identity"
        }
        ErrorKind::EndpointUnreachable => {
            "the connection failed or was cut; check `endpoint_url`/`region` and that the endpoint is reachable from the function, then retry"
        }
        ErrorKind::Throttled => "AWS is throttling these calls; retry with backoff",
        ErrorKind::ServiceUnavailable => {
            "AWS answered with a server error through every retry; retry with backoff, and check the AWS Health Dashboard if it persists"
        }
        ErrorKind::InvalidClientTokenId => {
            "the function's own AWS credentials are not valid in this partition/endpoint: check AWS_ACCESS_KEY_ID/the execution role, and that the role ARN's partition and endpoint match"
        }
        ErrorKind::ExpiredToken => {
            "a session token has expired; refresh the function's own credentials (a new invocation re-assumes the role)"
        }
        ErrorKind::SignatureDoesNotMatch => {
            "the request signature did not verify: the secret key is wrong or the clock is skewed"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("streaming error")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_missing_identity_is_a_configuration_error() {
        let said = "other: failed to select an auth scheme to sign the request with. \"sigv4\" wasn't a valid option because there was no identity resolver for it.";
        assert!(names_missing_credentials(said));
        assert!(!names_missing_credentials("io: connection refused"));
        let failure = AwsFailure {
            transport: Some(Transport::NoCredentials),
            ..AwsFailure::default()
        };
        assert_eq!(failure.common_kind(), Some(ErrorKind::InvalidConfiguration));
        assert!(advice(ErrorKind::InvalidConfiguration).contains("AWS_ACCESS_KEY_ID"));
    }

    /// hyper's words (native) and wasi:http's (under WASI) for one cause give one message.
    #[test]
    fn transport_causes_read_the_same_on_both_targets() {
        let native = "io error: client error (Connect): tcp connect error: Connection refused (os error 111)";
        let wasi = "other: ErrorCode::ConnectionRefused";
        assert_eq!(transport_cause(native), "connection refused");
        assert_eq!(transport_cause(wasi), "connection refused");
        assert_eq!(
            transport_cause("dns error: failed to lookup address information"),
            transport_cause("other: ErrorCode::DnsError(DnsErrorPayload { .. })")
        );
        assert_eq!(
            transport_cause("other: ErrorCode::ConnectionReadTimeout"),
            "the connection timed out"
        );
        assert_eq!(transport_cause("something new"), "something new");
    }

    #[test]
    fn chains_are_one_line_without_backtraces() {
        let inner = std::io::Error::other(
            "reading incoming body stream: connection terminated\nStack backtrace:\n   0: capture\n at /src/x.rs:1",
        );
        assert_eq!(
            chain(&Outer(inner)),
            "streaming error: reading incoming body stream: connection terminated"
        );
    }
}
