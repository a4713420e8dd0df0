//! The Lambda bootstrap: the same handler under `lambda_runtime`, when the process is started
//! by Lambda (`AWS_LAMBDA_RUNTIME_API` is set). Errors become a [`Diagnostic`] carrying the
//! core's `errorType`; logs go through `tracing`, as JSON when the function's log format is
//! JSON (`AWS_LAMBDA_LOG_FORMAT`). Nothing is set up at init beyond the runtime itself: the
//! SDK configuration is read per invocation and credentials are cached by the core.
//!
//! An event asking for `options.format` `ndjson` or `arrow` is answered with a streamed
//! response (`lambda_runtime`'s streaming mode, for InvokeWithResponseStream): the rows go
//! out as they are produced. The Runtime API does not say which Invoke API the client used,
//! so a `json` answer stays buffered (at most 5 MB) on Lambda.

use std::process::ExitCode;

use std::sync::Arc;

use lambda_runtime::streaming::{Body, channel};
use lambda_runtime::{Diagnostic, FunctionResponse, LambdaEvent, service_fn, tracing};
use xstage_core::result::stream::Format;
use xstage_core::{Event, FunctionError, Response};

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

/// The answer: streamed when the event asks for NDJSON or Arrow, else buffered JSON.
async fn handler(
    event: LambdaEvent<serde_json::Value>,
) -> Result<FunctionResponse<Response, Body>, HandlerError> {
    let streamed =
        Event::from_json(event.payload.clone()).is_ok_and(|e| e.options.format != Format::Json);
    if streamed {
        return Ok(FunctionResponse::StreamingResponse(stream(event).into()));
    }
    buffered(event)
        .await
        .map(FunctionResponse::BufferedResponse)
}

/// Runs the query beside the response, each chunk sent as it is written (waiting while
/// Lambda is behind). An error after the first bytes ends the stream with it.
fn stream(event: LambdaEvent<serde_json::Value>) -> Body {
    let (payload, context) = event.into_parts();
    let (sender, body) = channel();
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let sink_sender = Arc::clone(&sender);
    let sink =
        move |chunk: bytes::Bytes| {
            let sender = Arc::clone(&sink_sender);
            async move {
                sender.lock().await.send_data(chunk).await.map_err(|e| {
                    FunctionError::internal(format!("the response stream closed: {e}"))
                })
            }
        };
    // On this thread (the query's future is not `Send`), beside the runtime's own tasks.
    tokio::task::spawn_local(async move {
        match xstage_core::handle_streaming(payload, sink).await {
            Ok(rows) => tracing::info!(request_id = %context.request_id, rows, "query streamed"),
            Err(e) => {
                tracing::warn!(
                    request_id = %context.request_id,
                    error_type = e.kind().as_str(),
                    "streamed query failed: {}",
                    e.message()
                );
                sender
                    .lock()
                    .await
                    .send_error(lambda_runtime_api_client::Error::new(e));
            }
        }
    });
    body
}

async fn buffered(event: LambdaEvent<serde_json::Value>) -> Result<Response, HandlerError> {
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
    // A local set, for the streamed queries' tasks ([`stream`]).
    let local = tokio::task::LocalSet::new();
    match runtime.block_on(local.run_until(lambda_runtime::run(service_fn(handler)))) {
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
