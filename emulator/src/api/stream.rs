//! The InvokeWithResponseStream operation:
//! `POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations`.
//!
//! The function's `handle-stream` writes its answer in chunks; each goes out as it is
//! written, framed as Lambda frames it (`application/vnd.amazon.eventstream`): a
//! `PayloadChunk` event per chunk, then one `InvokeComplete` event, whose `ErrorCode` and
//! `ErrorDetails` carry the function's `errorType` and `errorMessage` when it failed (after
//! the chunks already sent, so a client never takes a cut answer for a whole one) and whose
//! `LogResult` carries the log's tail with `X-Amz-Log-Type: Tail`. A throttled invocation is
//! a 429 before any frame, as Lambda answers it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_smithy_types::event_stream::{Header, HeaderValue as EventHeader, Message};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use xstage_host::{Invocation, InvokeError, Outcome};

use super::invoke::{
    LOG_TAIL, event_payload, log_tail, print_log, refuse_if_never_runs, status_only,
    target_function, uuid,
};
use super::target::LATEST;
use super::{Api, MAX_SYNC_PAYLOAD, ServiceError};

/// Lambda's bound on a streamed response.
pub const MAX_STREAMED_RESPONSE: u64 = 200 * 1024 * 1024;
/// Chunks the function may write ahead of the client.
const CHANNEL_CHUNKS: usize = 8;

pub async fn invoke_stream(
    State(api): State<Arc<Api>>,
    Path(function): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&api, &function, &query, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    api: &Arc<Api>,
    function: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ServiceError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let dry_run = match header("x-amz-invocation-type") {
        None | Some("RequestResponse") => false,
        Some("DryRun") => true,
        Some(other) => {
            return Err(ServiceError::validation(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [RequestResponse, DryRun]"
            )));
        }
    };
    let tail = log_tail(headers)?;
    let deployed = target_function(api, function, query)?;
    let payload = event_payload(body, MAX_SYNC_PAYLOAD).await?;
    refuse_if_never_runs(&deployed)?;
    if dry_run {
        return Ok(status_only(StatusCode::NO_CONTENT, None));
    }

    let request_id = uuid();
    let (sender, mut chunks) = mpsc::channel::<Vec<u8>>(CHANNEL_CHUNKS);
    let function = deployed.function.clone();
    let id = request_id.clone();
    let mut run =
        tokio::spawn(async move { function.invoke_streaming_as(&payload, id, sender).await });
    // Until the first chunk or the end, a refusal to start is still an HTTP error.
    let first = tokio::select! {
        chunk = chunks.recv() => First::Chunk(chunk),
        done = &mut run => First::Done(done),
    };
    let (first_chunk, finished) = match first {
        First::Chunk(chunk) => (chunk, None),
        First::Done(Ok(Err(e @ InvokeError::TooManyRequests { .. }))) => {
            return Err(ServiceError::too_many_requests(format!(
                "Rate Exceeded. {e}"
            )));
        }
        First::Done(done) => (None, Some(done)),
    };
    let api = api.clone();
    let frames = futures::stream::unfold(
        Framer {
            first: first_chunk,
            chunks,
            run: Some(run),
            finished,
            sent: 0,
            tail,
            print_logs: api.print_logs,
            done: false,
        },
        Framer::next_frame,
    );
    let mut response = Response::new(Body::from_stream(
        frames.map(Ok::<_, std::convert::Infallible>),
    ));
    let h = response.headers_mut();
    h.insert(
        "Content-Type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    h.insert("X-Amz-Executed-Version", HeaderValue::from_static(LATEST));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-RequestId", id);
    }
    Ok(response)
}

enum First {
    Chunk(Option<Vec<u8>>),
    Done(Result<Result<Invocation, InvokeError>, tokio::task::JoinError>),
}

type Finished = Result<Result<Invocation, InvokeError>, tokio::task::JoinError>;

/// The frames of one streamed response, produced as the function writes.
struct Framer {
    first: Option<Vec<u8>>,
    chunks: mpsc::Receiver<Vec<u8>>,
    run: Option<tokio::task::JoinHandle<Result<Invocation, InvokeError>>>,
    finished: Option<Finished>,
    sent: u64,
    tail: bool,
    print_logs: bool,
    done: bool,
}

impl Framer {
    async fn next_frame(mut self) -> Option<(Bytes, Self)> {
        if self.done {
            return None;
        }
        // The channel holds what the function wrote, until it ends (the host drops the
        // sender when the call returns), even when the end was seen first.
        let chunk = match self.first.take() {
            Some(chunk) => Some(chunk),
            None => self.chunks.recv().await,
        };
        if let Some(chunk) = chunk {
            self.sent += chunk.len() as u64;
            if self.sent > MAX_STREAMED_RESPONSE {
                // Stop the function (its next write fails) and end with Lambda's error.
                self.chunks.close();
                if let Some(run) = self.run.take() {
                    run.abort();
                }
                self.done = true;
                let error = (
                    "Function.ResponseSizeTooLarge".to_string(),
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({MAX_STREAMED_RESPONSE} bytes)."
                    ),
                );
                return Some((complete(Some(error), None), self));
            }
            return Some((payload_chunk(chunk), self));
        }
        // The channel closed: the invocation is over.
        let finished = match (self.finished.take(), self.run.take()) {
            (Some(done), _) => done,
            (None, Some(run)) => run.await,
            (None, None) => return None,
        };
        self.done = true;
        let (error, logs) = match finished {
            Ok(Ok(invocation)) => {
                if self.print_logs {
                    print_log(&invocation);
                }
                let error = match invocation.outcome {
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => Some((error_type, error_message)),
                    Outcome::Response(_) => None,
                };
                (error, self.tail.then_some(invocation.logs))
            }
            Ok(Err(e)) => (
                Some(("TooManyRequestsException".into(), e.to_string())),
                None,
            ),
            Err(e) => (
                Some((
                    "ServiceException".into(),
                    format!("the invocation stopped: {e}"),
                )),
                None,
            ),
        };
        Some((complete(error, logs.as_deref()), self))
    }
}

fn event(event_type: &'static str, content_type: &'static str, payload: Bytes) -> Bytes {
    let message = Message::new(payload)
        .add_header(Header::new(
            ":event-type",
            EventHeader::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            EventHeader::String(content_type.into()),
        ))
        .add_header(Header::new(
            ":message-type",
            EventHeader::String("event".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .expect("a message of one chunk frames");
    Bytes::from(out)
}

fn payload_chunk(chunk: Vec<u8>) -> Bytes {
    event(
        "PayloadChunk",
        "application/octet-stream",
        Bytes::from(chunk),
    )
}

/// `InvokeComplete`: the error (its type and message) and the log's tail, if any.
fn complete(error: Option<(String, String)>, logs: Option<&[u8]>) -> Bytes {
    let mut body = serde_json::Map::new();
    if let Some((code, details)) = error {
        body.insert("ErrorCode".into(), code.into());
        body.insert("ErrorDetails".into(), details.into());
    }
    if let Some(logs) = logs {
        let start = logs.len().saturating_sub(LOG_TAIL);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&logs[start..]);
        body.insert("LogResult".into(), encoded.into());
    }
    let body = serde_json::to_vec(&body).unwrap_or_default();
    event("InvokeComplete", "application/json", Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(frame: &Bytes) -> Message {
        aws_smithy_eventstream::frame::read_message_from(frame.clone()).unwrap()
    }

    fn header<'a>(m: &'a Message, name: &str) -> &'a str {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
            .unwrap()
    }

    #[test]
    fn frames_are_lambdas_events() {
        let chunk = read(&payload_chunk(b"rows".to_vec()));
        assert_eq!(header(&chunk, ":event-type"), "PayloadChunk");
        assert_eq!(header(&chunk, ":content-type"), "application/octet-stream");
        assert_eq!(header(&chunk, ":message-type"), "event");
        assert_eq!(&chunk.payload()[..], b"rows");
        let done = read(&complete(
            Some(("ResultTooLarge".into(), "too big".into())),
            Some(b"START\nEND\n"),
        ));
        assert_eq!(header(&done, ":event-type"), "InvokeComplete");
        let body: serde_json::Value = serde_json::from_slice(done.payload()).unwrap();
        assert_eq!(body["ErrorCode"], "ResultTooLarge");
        assert_eq!(body["ErrorDetails"], "too big");
        assert_eq!(body["LogResult"], "U1RBUlQKRU5ECg==");
        let ok = read(&complete(None, None));
        assert_eq!(&ok.payload()[..], b"{}");
    }
}
