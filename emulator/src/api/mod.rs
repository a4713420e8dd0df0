//! The Lambda Invoke API over HTTP: `POST /2015-03-31/functions/{FunctionName}/invocations`,
//! as the AWS CLI, the SDKs and `sam local start-lambda` speak it, and InvokeWithResponseStream
//! (`POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations`, [`stream`]).
//!
//! - `X-Amz-Invocation-Type`: `RequestResponse` (200), `Event` (202, run in the background,
//!   retried while the function is throttled), `DryRun` (204).
//! - `X-Amz-Log-Type: Tail`: `X-Amz-Log-Result`, the base64 of the log's last 4 KB.
//! - A function error: 200, `X-Amz-Function-Error: Unhandled`, `{errorType, errorMessage}`.
//! - `X-Amz-Executed-Version: $LATEST`; the `Qualifier` `$LATEST` is accepted.
//! - Service errors ([`ServiceError`]): 404 `ResourceNotFoundException`, 400
//!   `InvalidRequestContentException`, 413 `RequestTooLargeException`, 429
//!   `TooManyRequestsException`.

mod body;
mod error;
mod invoke;
mod stream;
pub mod target;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::post;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{MAX_ASYNC_PAYLOAD, MAX_SYNC_PAYLOAD, ServiceError};
pub use stream::MAX_STREAMED_RESPONSE;

use crate::functions::Functions;

/// The most `Event` invocations waiting or running at once; beyond, `TooManyRequests`.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// What the API serves.
pub struct Api {
    pub functions: Functions,
    pub region: String,
    /// Print each invocation's log to stderr, as `sam local` does.
    pub print_logs: bool,
    events: TaskTracker,
    queued: AtomicUsize,
    stopping: CancellationToken,
}

impl Api {
    pub fn new(functions: Functions, region: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            functions,
            region: region.into(),
            print_logs: true,
            events: TaskTracker::new(),
            queued: AtomicUsize::new(0),
            stopping: CancellationToken::new(),
        })
    }

    pub fn quiet(functions: Functions, region: impl Into<String>) -> Arc<Self> {
        let mut api = Self::new(functions, region);
        Arc::get_mut(&mut api).expect("new").print_logs = false;
        api
    }

    /// The router: Invoke, and Lambda-shaped errors for anything else.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/2015-03-31/functions/{function}/invocations",
                post(invoke::invoke),
            )
            .route(
                "/2021-11-15/functions/{function}/response-streaming-invocations",
                post(stream::invoke_stream),
            )
            .fallback(|request: Request| async move {
                ServiceError::unknown_operation(request.method().as_str(), request.uri().path())
                    .into_response()
            })
            .with_state(self.clone())
    }

    /// `Event` invocations accepted and not finished.
    pub fn queued_events(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Stops retrying throttled `Event` invocations and waits for the running ones.
    pub async fn drain(&self) {
        self.stopping.cancel();
        self.events.close();
        self.events.wait().await;
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self.functions.iter().map(|d| d.spec.name()).collect();
        if names.is_empty() {
            "no functions".to_string()
        } else {
            names.join(", ")
        }
    }
}
