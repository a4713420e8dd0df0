//! The host's own wasi:http `send_request` hook: every outbound request of a guest passes
//! here. It is checked against the invocation's [`Allowlist`] (denied requests get
//! `HttpRequestDenied` and are recorded), its Host header is set from the URI it is sent to,
//! and it goes out over one process-wide keep-alive connection pool with rustls, rather than
//! wasmtime-wasi-http's default of a new TCP and TLS connection per request.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::egress::{Allowlist, Origin};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Used when the guest sets no first-byte or between-bytes timeout of its own.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The largest request body sent: far above STS's forms and S3's requests of a read-only
/// function.
const MAX_REQUEST_BODY: usize = 64 << 20;

type Pool = Client<HttpsConnector<HttpConnector>, WasiBody>;

/// The process-wide HTTP client: HTTP/1.1 keep-alive, TLS through rustls (aws-lc-rs) with the
/// system's root certificates.
#[derive(Clone)]
pub struct HttpClient(Pool);

impl HttpClient {
    pub fn new() -> std::io::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build(https);
        Ok(Self(pool))
    }
}

/// What one invocation sent.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    response_bytes: AtomicU64,
    denied: Mutex<Vec<String>>,
}

impl HttpStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn response_bytes(&self) -> u64 {
        self.response_bytes.load(Ordering::Relaxed)
    }

    /// The origins of denied requests, in order.
    pub fn denied(&self) -> Vec<String> {
        self.denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The hooks of one execution environment; `allow` and `stats` are replaced per invocation.
pub struct Outbound {
    client: HttpClient,
    pub allow: Allowlist,
    pub stats: Arc<HttpStats>,
}

impl Outbound {
    pub fn new(client: HttpClient) -> Self {
        Self {
            client,
            allow: Allowlist::empty(),
            stats: Arc::default(),
        }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let origin = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => Origin::of(scheme, authority),
            _ => None,
        };
        let authority = match origin {
            Some(ref origin) if self.allow.permits(origin) => uri.authority().cloned(),
            _ => None,
        };
        let Some(authority) = authority else {
            let shown = origin.map_or_else(|| format!("{uri}"), |o| o.to_string());
            tracing::warn!(origin = %shown, "outbound request denied: not on the allowlist");
            self.stats
                .denied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(shown);
            return Box::new(async move {
                discard_body(request.into_body()).await;
                Err(Error::HttpRequestDenied)
            });
        };
        // The connection goes to the URI's authority; the Host header must name the same.
        match http::HeaderValue::from_str(authority.as_str()) {
            Ok(host) => _ = request.headers_mut().insert(http::header::HOST, host),
            Err(_) => return Box::new(async { Err(Error::HttpRequestUriInvalid) }),
        }
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_READ_TIMEOUT);
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_READ_TIMEOUT)
            .max(Duration::from_millis(1));
        let client = self.client.clone();
        let stats = Arc::clone(&self.stats);
        Box::new(async move {
            let request = buffer_body(request).await?;
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = tokio::time::timeout(first_byte, client.0.request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(classify)?;
            let response = response.map(|incoming| {
                CountedBody {
                    incoming,
                    stats,
                    between_bytes,
                    idle: Box::pin(tokio::time::sleep(between_bytes)),
                }
                .boxed_unsync()
            });
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Reads the request body whole (up to [`MAX_REQUEST_BODY`]) before sending, so the request
/// goes out with its length and the guest's body stream always completes: hyper would
/// otherwise drop an unsized body of a GET, and the guest would see its stream reset.
async fn buffer_body(request: http::Request<WasiBody>) -> Result<http::Request<WasiBody>, Error> {
    let (parts, mut body) = request.into_parts();
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            if bytes.len() + data.len() > MAX_REQUEST_BODY {
                return Err(Error::HttpRequestBodySize(Some(
                    (bytes.len() + data.len()) as u64,
                )));
            }
            bytes.extend_from_slice(data);
        }
    }
    let body = http_body_util::Full::new(bytes.freeze())
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

/// Reads and drops a denied request's body (up to a bound), so the guest's body stream
/// completes and it sees `HttpRequestDenied` on the response, not a body stream reset.
async fn discard_body(mut body: WasiBody) {
    const LIMIT: usize = 16 << 20;
    let drain = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// The wasi:http error for a failed request of the pool.
fn classify(err: hyper_util::client::legacy::Error) -> Error {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    tracing::debug!(error = %text, "outbound request failed");
    if err.is_connect() {
        if text.contains("dns error") {
            Error::DnsError {
                rcode: Some(text),
                info_code: None,
            }
        } else if text.contains("timed out") {
            Error::ConnectionTimeout
        } else {
            Error::ConnectionRefused
        }
    } else {
        Error::ConnectionTerminated
    }
}

/// A response body that counts its bytes and fails if the next frame takes too long.
struct CountedBody {
    incoming: hyper::body::Incoming,
    stats: Arc<HttpStats>,
    between_bytes: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.stats
                        .response_bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                let next = tokio::time::Instant::now() + this.between_bytes;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            // The guest learns that the connection broke, not the host's error chain (which
            // wasmtime would render with a host backtrace when RUST_BACKTRACE is set).
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "outbound response body failed");
                Poll::Ready(Some(Err(Error::ConnectionTerminated)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.idle.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
