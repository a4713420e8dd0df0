//! The Lambda bootstrap: the same handler under `lambda_runtime`, when the process is started
//! by Lambda (`AWS_LAMBDA_RUNTIME_API` is set). Errors become a [`Diagnostic`] carrying the
//! core's `errorType`; logs go through `tracing`, as JSON when the function's log format is
//! JSON (`AWS_LAMBDA_LOG_FORMAT`). Nothing is set up at init beyond the runtime itself: the
//! SDK configuration is read per invocation and credentials are cached by the core.

use std::process::ExitCode;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn, tracing};
use xstage_core::{FunctionError, Response};

/// A core error as Lambda reports it.
#[derive(Debug)]
pub struct HandlerError(pub FunctionError);

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.0.kind().as_str().to_string(),
            error_message: e.0.message().to_string(),
        }
    }
}

async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<Response, HandlerError> {
    let (payload, context) = event.into_parts();
    match xstage_core::handle(payload).await {
        Ok(response) => {
            tracing::info!(
                request_id = %context.request_id,
                rows = response.row_count,
                files = response.stats.files,
                s3_requests = response.stats.s3_requests,
                bytes_read = response.stats.bytes_read,
                sts_calls = response.stats.sts_calls,
                "query answered"
            );
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(
                request_id = %context.request_id,
                error_type = e.kind().as_str(),
                "query failed: {}",
                e.message()
            );
            Err(HandlerError(e))
        }
    }
}

/// Serves invocations until Lambda stops the process.
pub fn run() -> ExitCode {
    tracing::init_default_subscriber();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xstage-query: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(lambda_runtime::run(service_fn(handler))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("the Lambda runtime stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xstage_core::ErrorKind;

    #[test]
    fn errors_keep_the_core_error_type() {
        let d: Diagnostic = HandlerError(FunctionError::invalid_event("no connection")).into();
        assert_eq!(d.error_type, ErrorKind::InvalidEvent.as_str());
        assert_eq!(d.error_type, "InvalidEvent");
        assert_eq!(d.error_message, "no connection");
    }
}
