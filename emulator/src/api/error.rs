//! Lambda's service exceptions, as the Invoke API sends them: an HTTP status, the
//! `x-amzn-ErrorType` header and a JSON body `{"Type": "User", "message": ...}`. The AWS SDKs
//! and the CLI read the code from the header and the message from the body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The largest synchronous payload Lambda accepts (6 MB), and its asynchronous one (1 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Reason`, for throttling.
    pub reason: Option<&'static str>,
}

impl ServiceError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    pub fn not_found(arn: &str, known: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {arn}. This emulator serves {known}"),
        )
    }

    pub fn invalid_json(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {detail}"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
        )
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self {
            reason: Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                message,
            )
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    pub fn unknown_operation(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!(
                "{method} {path} is not an operation this emulator serves; it serves Invoke: \
                 POST /2015-03-31/functions/FUNCTION/invocations"
            ),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", message)
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let mut body = json!({"Type": "User", "message": self.message});
        if let Some(reason) = self.reason {
            body["Reason"] = json!(reason);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        response
    }
}
