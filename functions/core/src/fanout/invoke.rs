//! Invoking this function's workers through the Lambda Invoke API (`aws-sdk-lambda`), and
//! reading what they answer as the function's own typed errors.
//!
//! Which function: `XSTAGE_FAN_OUT_FUNCTION` (`template.yaml` sets it to the function's own
//! name, and grants `lambda:InvokeFunction` on it and nothing else). Where:
//! `AWS_ENDPOINT_URL_LAMBDA`, as the AWS SDKs read it, else Lambda's regional endpoint.
//! `xstage serve` sets it to itself for a function that has `XSTAGE_FAN_OUT_FUNCTION`, and lets
//! that origin through the guest's egress allowlist. Without `XSTAGE_FAN_OUT_FUNCTION` a query
//! never fans out.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;

use crate::aws_error::{AwsFailure, advice};
use crate::error::{ErrorKind, FunctionError};

/// The variable naming the function a coordinator invokes for its workers.
pub const FUNCTION_VARIABLE: &str = "XSTAGE_FAN_OUT_FUNCTION";
/// The version of the function this invocation runs, as Lambda sets it (`$LATEST` or a
/// number); the workers are invoked with it as their `Qualifier`.
pub const VERSION_VARIABLE: &str = "AWS_LAMBDA_FUNCTION_VERSION";
/// The AWS SDKs' endpoint override for Lambda.
pub const ENDPOINT_VARIABLE: &str = "AWS_ENDPOINT_URL_LAMBDA";

/// A Lambda client for this function's workers.
#[derive(Clone)]
pub struct Invoker {
    client: aws_sdk_lambda::Client,
    function: String,
    endpoint: Option<String>,
    /// This invocation's own version (`AWS_LAMBDA_FUNCTION_VERSION`): workers run the same
    /// code as their coordinator, even while a new version is published.
    qualifier: Option<String>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("function", &self.function)
            .field("endpoint", &self.endpoint)
            .field("qualifier", &self.qualifier)
            .finish()
    }
}

impl Invoker {
    /// The invoker the environment configures, if any.
    pub fn from_env(base: &SdkConfig) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let function = var(FUNCTION_VARIABLE)?;
        let endpoint = var(ENDPOINT_VARIABLE);
        // A worker may run as long as a Lambda invocation can; the SDK's own retries are
        // replaced by the coordinator's, which know a worker's errors.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(900))
            .operation_attempt_timeout(Duration::from_secs(900))
            .build();
        let mut config = aws_sdk_lambda::config::Builder::from(base)
            .timeout_config(timeouts)
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled());
        if let Some(url) = &endpoint {
            config = config.endpoint_url(url);
        }
        Some(Self {
            client: aws_sdk_lambda::Client::from_conf(config.build()),
            function,
            endpoint,
            qualifier: var(VERSION_VARIABLE),
        })
    }

    /// The function invoked.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// One synchronous invocation; the worker's response body, or why there is none.
    pub async fn invoke(&self, payload: Vec<u8>) -> std::result::Result<Vec<u8>, Unanswered> {
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .set_qualifier(self.qualifier.clone())
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                let failure = AwsFailure::from_sdk(&e);
                let error = self.service_error(&failure);
                match failure.code.as_deref() {
                    Some("TooManyRequestsException") => Unanswered::NoConcurrency(error),
                    _ => Unanswered::Failed(error),
                }
            })?;
        let body = output
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        match output.function_error() {
            None => Ok(body),
            Some(_) => Err(Unanswered::Failed(worker_error(&body))),
        }
    }

    fn service_error(&self, failure: &AwsFailure) -> FunctionError {
        let at = match &self.endpoint {
            Some(url) => format!("function {} at {url}", self.function),
            None => format!("function {}", self.function),
        };
        let code = failure.code.as_deref().unwrap_or_default();
        let (kind, fix) = match code {
            "ResourceNotFoundException" => (
                ErrorKind::InvalidConfiguration,
                format!("set {FUNCTION_VARIABLE} to this function's own name"),
            ),
            "AccessDeniedException" | "AccessDenied" => (
                ErrorKind::InvalidConfiguration,
                "grant the function lambda:InvokeFunction on itself, as template.yaml does".into(),
            ),
            "RequestTooLargeException" => (
                ErrorKind::ResultTooLarge,
                "a worker's event passed Lambda's 6 MB request limit; lower bytes_per_worker"
                    .into(),
            ),
            // An answer cut off after its status: the worker may be fine; ask again.
            _ if failure.code.is_none()
                && failure.transport.is_none()
                && failure.status.is_some_and(|s| s < 300) =>
            {
                (
                    ErrorKind::EndpointUnreachable,
                    "the worker's answer was cut off; it is invoked again".into(),
                )
            }
            _ if failure.status == Some(403) => (
                ErrorKind::InvalidConfiguration,
                "grant the function lambda:InvokeFunction on itself, as template.yaml does".into(),
            ),
            _ => match failure.common_kind() {
                Some(kind) => (kind, advice(kind).to_string()),
                None => (
                    ErrorKind::Internal,
                    "Lambda refused the worker's invocation".into(),
                ),
            },
        };
        FunctionError::new(
            kind,
            format!(
                "invoking a fan-out worker ({at}) failed{}: {fix}",
                failure.said()
            ),
        )
    }
}

/// Why an invocation brought no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// Lambda had no concurrency left for it (`TooManyRequestsException`): it never ran.
    NoConcurrency(FunctionError),
    /// Anything else: Lambda refused it, it was lost, or the worker failed.
    Failed(FunctionError),
}

impl From<Unanswered> for FunctionError {
    fn from(u: Unanswered) -> Self {
        match u {
            Unanswered::NoConcurrency(e) | Unanswered::Failed(e) => e,
        }
    }
}

/// A worker's function error (`{"errorType", "errorMessage"}`) as the coordinator's. A
/// worker the runtime lost (a crash, Lambda's `Runtime.*` and `Sandbox.*` errors) is
/// `ServiceUnavailable`: transient, so the task runs again.
pub fn worker_error(body: &[u8]) -> FunctionError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Diagnostic {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let diagnostic: Diagnostic = serde_json::from_slice(body).unwrap_or(Diagnostic {
        error_type: None,
        error_message: Some(String::from_utf8_lossy(body).chars().take(512).collect()),
    });
    let error_type = diagnostic.error_type.unwrap_or_default();
    let message = diagnostic.error_message.unwrap_or_default();
    let kind = ErrorKind::from_name(&error_type).unwrap_or(match error_type.as_str() {
        "OutOfMemory" => ErrorKind::ResourcesExhausted,
        t if t == "Crashed" || t.starts_with("Runtime.") || t.starts_with("Sandbox.") => {
            ErrorKind::ServiceUnavailable
        }
        _ => ErrorKind::Internal,
    });
    let shown = if ErrorKind::from_name(&error_type).is_some() {
        message
    } else {
        format!("{error_type}: {message}")
    };
    FunctionError::new(kind, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_errors_keep_their_kind_and_lost_workers_are_transient() {
        let e = worker_error(
            br#"{"errorType":"S3AccessDenied","errorMessage":"no access to s3://b/k"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::S3AccessDenied);
        assert_eq!(e.message(), "no access to s3://b/k");
        for lost in ["Crashed", "Runtime.ExitError", "Sandbox.Timedout"] {
            let body = format!(r#"{{"errorType":"{lost}","errorMessage":"gone"}}"#);
            let e = worker_error(body.as_bytes());
            assert!(e.kind().is_retryable(), "{lost}: {e}");
            assert!(e.message().contains(lost), "{e}");
        }
        let e = worker_error(br#"{"errorType":"OutOfMemory","errorMessage":"past 512 MB"}"#);
        assert_eq!(e.kind(), ErrorKind::ResourcesExhausted);
        assert_eq!(worker_error(b"not json").kind(), ErrorKind::Internal);
    }
}
