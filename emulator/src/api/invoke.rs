//! The Invoke operation.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use xstage_host::{Invocation, InvokeError, Outcome};

use super::body::{self, Read};
use super::target::{LATEST, Target};
use super::{Api, MAX_QUEUED_EVENTS, ServiceError};
use super::{MAX_ASYNC_PAYLOAD, MAX_SYNC_PAYLOAD};
use crate::functions::{Deployed, arn};

/// Lambda's limit on a synchronous response.
pub const MAX_RESPONSE: usize = 6 * 1024 * 1024;
/// How much of the log `X-Amz-Log-Result` carries.
pub const LOG_TAIL: usize = 4096;
/// How long a throttled `Event` invocation is retried (Lambda: up to 6 hours).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

pub async fn invoke(
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
    let kind = match header("x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(ServiceError::validation(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )));
        }
    };
    let tail = log_tail(headers)?;
    let deployed = target_function(api, function, query)?;

    let limit = if kind == InvocationType::Event {
        MAX_ASYNC_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    let payload = event_payload(body, limit).await?;
    refuse_if_never_runs(&deployed)?;

    match kind {
        InvocationType::DryRun => Ok(status_only(StatusCode::NO_CONTENT, None)),
        InvocationType::Event => {
            let request_id = queue_event(api, deployed, payload)?;
            Ok(status_only(StatusCode::ACCEPTED, Some(&request_id)))
        }
        InvocationType::RequestResponse => {
            let invocation = deployed
                .function
                .invoke(&payload)
                .await
                .map_err(|e| match e {
                    InvokeError::TooManyRequests { .. } => {
                        ServiceError::too_many_requests(format!("Rate Exceeded. {e}"))
                    }
                })?;
            if api.print_logs {
                print_log(&invocation);
            }
            Ok(respond(&invocation, tail))
        }
    }
}

/// `X-Amz-Log-Type`: whether the log's tail is asked for.
pub(super) fn log_tail(headers: &HeaderMap) -> Result<bool, ServiceError> {
    match headers.get("x-amz-log-type").and_then(|v| v.to_str().ok()) {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ServiceError::validation(format!(
            "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: \
             Member must satisfy enum value set: [Tail, None]"
        ))),
    }
}

/// The function a `FunctionName` path segment and its `Qualifier` name.
pub(super) fn target_function(
    api: &Api,
    function: &str,
    query: &HashMap<String, String>,
) -> Result<Arc<Deployed>, ServiceError> {
    let target = Target::parse(function)
        .with_qualifier(query.get("Qualifier").map(String::as_str))
        .map_err(ServiceError::invalid_parameter)?;
    resolve(api, &target)
}

/// The request body as an event: at most `limit` bytes of JSON; an empty body is `{}`.
pub(super) async fn event_payload(body: Body, limit: usize) -> Result<bytes::Bytes, ServiceError> {
    let payload = match body::read(body, limit).await {
        Read::Complete(bytes) => bytes,
        Read::TooLarge => return Err(ServiceError::too_large(limit)),
        Read::Failed(e) => {
            return Err(ServiceError::invalid_parameter(format!(
                "the request body could not be read: {e}"
            )));
        }
    };
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        bytes::Bytes::from_static(b"{}")
    } else {
        payload
    };
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        return Err(ServiceError::invalid_json(&e.to_string()));
    }
    Ok(payload)
}

/// A function with `ReservedConcurrentExecutions: 0` is throttled before anything runs.
pub(super) fn refuse_if_never_runs(deployed: &Deployed) -> Result<(), ServiceError> {
    if deployed.spec.reserved_concurrency == Some(0) {
        return Err(ServiceError::too_many_requests(format!(
            "Rate Exceeded. Function {} has ReservedConcurrentExecutions 0: every invocation is throttled",
            deployed.spec.name()
        )));
    }
    Ok(())
}

fn resolve(api: &Api, target: &Target) -> Result<Arc<Deployed>, ServiceError> {
    let not_found = || {
        let mut arn = arn(&api.region, &target.name);
        if let Some(q) = &target.qualifier {
            arn = format!("{arn}:{q}");
        }
        ServiceError::not_found(&arn, &api.known())
    };
    let deployed = api.functions.get(&target.name).ok_or_else(not_found)?;
    match target.qualifier.as_deref() {
        None | Some(LATEST) => Ok(deployed.clone()),
        Some(_) => Err(not_found()),
    }
}

pub(super) fn status_only(status: StatusCode, request_id: Option<&str>) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    h.insert("X-Amz-Executed-Version", HeaderValue::from_static(LATEST));
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        h.insert("x-amzn-RequestId", id);
    }
    response
}

/// The 200 response of a synchronous invocation.
fn respond(invocation: &Invocation, tail: bool) -> Response {
    let mut body = invocation.body();
    let mut failed = invocation.is_error();
    if !failed && body.len() > MAX_RESPONSE {
        body = serde_json::to_vec(&serde_json::json!({
            "errorType": "Function.ResponseSizeTooLarge",
            "errorMessage": format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
                body.len()
            ),
        }))
        .unwrap_or_default();
        failed = true;
    }
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert("Content-Type", HeaderValue::from_static("application/json"));
    h.insert("X-Amz-Executed-Version", HeaderValue::from_static(LATEST));
    if let Ok(id) = HeaderValue::from_str(&invocation.request_id) {
        h.insert("x-amzn-RequestId", id);
    }
    if failed {
        h.insert(
            "X-Amz-Function-Error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if tail {
        let logs = &invocation.logs;
        let start = logs.len().saturating_sub(LOG_TAIL);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&logs[start..]);
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            h.insert("X-Amz-Log-Result", v);
        }
    }
    response
}

/// Accepts an `Event` invocation: it runs in the background, retried while the function is
/// at its concurrency limit, until [`MAX_EVENT_AGE`] or shutdown.
fn queue_event(
    api: &Arc<Api>,
    deployed: Arc<Deployed>,
    payload: bytes::Bytes,
) -> Result<String, ServiceError> {
    if api.stopping.is_cancelled() {
        return Err(ServiceError::unavailable(
            "the emulator is shutting down and accepts no new Event invocations",
        ));
    }
    if api.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_EVENTS {
        api.queued.fetch_sub(1, Ordering::AcqRel);
        return Err(ServiceError::too_many_requests(format!(
            "Rate Exceeded. {MAX_QUEUED_EVENTS} Event invocations are already queued"
        )));
    }
    let request_id = uuid();
    let api = api.clone();
    let id = request_id.clone();
    api.clone().events.spawn(async move {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            match deployed.function.invoke_as(&payload, id.clone()).await {
                Ok(invocation) => {
                    if api.print_logs {
                        print_log(&invocation);
                    }
                    if let Outcome::Error { error_type, .. } = &invocation.outcome {
                        eprintln!(
                            "xstage: Event invocation {id} of {} failed with {error_type}",
                            deployed.spec.name()
                        );
                    }
                    break;
                }
                Err(InvokeError::TooManyRequests { .. }) => {
                    if started.elapsed() > MAX_EVENT_AGE {
                        eprintln!("xstage: Event invocation {id} dropped: throttled for {MAX_EVENT_AGE:?}");
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = api.stopping.cancelled() => {
                            eprintln!("xstage: Event invocation {id} dropped at shutdown: it was throttled and never started");
                            break;
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        api.queued.fetch_sub(1, Ordering::AcqRel);
    });
    Ok(request_id)
}

pub(super) fn print_log(invocation: &Invocation) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&invocation.logs);
    if !invocation.logs.ends_with(b"\n") {
        let _ = err.write_all(b"\n");
    }
}

pub(super) fn uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
