//! A fault-injecting, counting HTTP proxy in front of an emulator: it forwards every request
//! as is (method, path, headers including `Host`, so SigV4 signatures stay valid), counts
//! what it forwards by kind with the response body bytes ([`Traffic`]), and, while a fault is set for a
//! service, applies it to that service's requests.
//!
//! Error faults are AWS's own wire formats ([`Fault::sts_error`], [`Fault::s3_error`]), so
//! the SDK under test parses, classifies and retries them exactly as it would AWS's. This is
//! how the tests provoke what no emulator does on demand: throttling, 500s, an expired token
//! on S3, a bucket in another region. [`Fault::ResetMidBody`] cuts a forwarded response off
//! after some bytes and [`Fault::Stall`] holds requests; [`FaultProxy::set_upstream`] points
//! the proxy at a restarted emulator.
//!
//! Requests are told apart by shape: STS is `POST /` (the query protocol), everything else
//! is S3 (path-style). The proxy runs on its own thread and runtime, so tests can block on a
//! child process while it serves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, std::io::Error>;

/// Which AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Sts,
    S3,
}

/// What the proxy does to a request of a faulted service.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answers with this response instead of forwarding.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Forwards, then sends the upstream's headers and only the first `after_bytes` bytes
    /// of its body, and resets the connection.
    ResetMidBody { after_bytes: usize },
    /// Holds the request this long before forwarding it.
    Stall(Duration),
}

impl Fault {
    /// An STS (query protocol) error: `<ErrorResponse><Error><Type>Sender</Type><Code>…`.
    pub fn sts_error(status: u16, code: &str, message: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                 <Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ),
        }
    }

    /// S3's 500 `InternalError`, which its SDKs retry.
    pub fn s3_internal_error() -> Self {
        Self::s3_error(
            500,
            "InternalError",
            "We encountered an internal error.",
            &[],
        )
    }

    /// An S3 (REST-XML) error: `<Error><Code>…</Code><Message>…</Message></Error>`, with extra
    /// response headers such as `x-amz-bucket-region`.
    pub fn s3_error(status: u16, code: &str, message: &str, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![("content-type".to_string(), "application/xml".to_string())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::Respond {
            status,
            headers: all,
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>0000000000000000</RequestId></Error>"
            ),
        }
    }

    /// S3's answer for a bucket in another region than the one asked: a 301
    /// `PermanentRedirect` naming `region` in `x-amz-bucket-region`.
    pub fn s3_bucket_in(region: &str) -> Self {
        Self::s3_error(
            301,
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint.",
            &[("x-amz-bucket-region", region)],
        )
    }
}

/// Which requests of a service a fault applies to ([`FaultProxy::inject_only`]).
#[derive(Debug, Clone, Default)]
pub struct Only {
    path_contains: Option<String>,
    method: Option<String>,
    query_contains: Option<String>,
    explicit_ranges: bool,
    below: Option<u64>,
    times: Option<usize>,
    spent: Arc<AtomicUsize>,
}

impl Only {
    /// Requests whose path contains `part` (an object key).
    pub fn path(part: &str) -> Self {
        Self {
            path_contains: Some(part.to_string()),
            ..Self::default()
        }
    }

    /// Only requests of this method (`POST`: with `query("uploadId")`, an S3
    /// CompleteMultipartUpload).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Only requests whose query string contains `part` (`uploadId`, `partNumber`).
    pub fn query(mut self, part: &str) -> Self {
        self.query_contains = Some(part.to_string());
        self
    }

    /// Only GETs of an explicit byte range (`Range: bytes=a-b`): a worker's reads of column
    /// chunks, not a footer's suffix read.
    pub fn explicit_ranges(mut self) -> Self {
        self.explicit_ranges = true;
        self
    }

    /// Only GETs of an explicit range starting below `offset`: a file's first row groups,
    /// not its page indexes and footer at the end.
    pub fn ranges_below(mut self, offset: u64) -> Self {
        self.explicit_ranges = true;
        self.below = Some(offset);
        self
    }

    /// Only the first `n` matching requests; then the fault is spent.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, request: &Request<Incoming>) -> bool {
        if let Some(part) = &self.path_contains
            && !request.uri().path().contains(part.as_str())
        {
            return false;
        }
        if let Some(method) = &self.method
            && request.method().as_str() != method
        {
            return false;
        }
        if let Some(part) = &self.query_contains
            && !request
                .uri()
                .query()
                .unwrap_or_default()
                .contains(part.as_str())
        {
            return false;
        }
        if self.explicit_ranges {
            let range = request
                .headers()
                .get(hyper::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !range.starts_with("bytes=") || range.starts_with("bytes=-") {
                return false;
            }
            let start = range["bytes=".len()..]
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            if let (Some(below), Some(start)) = (self.below, start)
                && start >= below
            {
                return false;
            }
        }
        match self.times {
            Some(times) => self.spent.fetch_add(1, Ordering::SeqCst) < times,
            None => true,
        }
    }
}

/// What passed through the proxy: requests by kind and response body bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// STS calls (`POST /`).
    pub sts: u64,
    pub head: u64,
    /// Object GETs, ranged or not.
    pub get: u64,
    /// Bucket listings (a GET of the bucket itself).
    pub list: u64,
    /// Anything else (PUTs, …).
    pub other: u64,
    /// Response body bytes, as forwarded to the client.
    pub bytes: u64,
}

impl Traffic {
    /// Requests to S3: HEAD, GET and LIST.
    pub fn s3_requests(&self) -> u64 {
        self.head + self.get + self.list
    }
}

#[derive(Default)]
struct Counters {
    sts: AtomicU64,
    head: AtomicU64,
    get: AtomicU64,
    list: AtomicU64,
    other: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    fn count(&self, method: &hyper::Method, path: &str) {
        let counter = match *method {
            hyper::Method::POST if path == "/" => &self.sts,
            hyper::Method::HEAD => &self.head,
            // Path-style: `/bucket` or `/bucket/` (with a query) is the bucket, anything
            // longer an object.
            hyper::Method::GET
                if path
                    .trim_start_matches('/')
                    .trim_end_matches('/')
                    .contains('/') =>
            {
                &self.get
            }
            hyper::Method::GET => &self.list,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn take(&self) -> Traffic {
        let take = |c: &AtomicU64| c.swap(0, Ordering::SeqCst);
        Traffic {
            sts: take(&self.sts),
            head: take(&self.head),
            get: take(&self.get),
            list: take(&self.list),
            other: take(&self.other),
            bytes: take(&self.bytes),
        }
    }
}

#[derive(Default)]
struct State {
    upstream: Mutex<String>,
    faults: Mutex<Vec<(Service, Fault, Only)>>,
    /// S3 response bytes per second per access key (one execution environment's
    /// credentials), and when each key's link is next free.
    bandwidth: Mutex<Option<u64>>,
    links: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    sts_requests: AtomicUsize,
    s3_requests: AtomicUsize,
    faulted: AtomicUsize,
    traffic: Arc<Counters>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    url: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the proxy")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let state = Arc::new(State::default());
        *state.upstream.lock().unwrap() = upstream.trim_end_matches('/').to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the proxy");
                runtime.block_on(serve(listener, served, stopped));
            })
            .context("starting the proxy thread")?;
        Ok(Self {
            url: format!("http://{addr}"),
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's base URL, to use as an `endpoint_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers every request for `service` with `fault` until [`FaultProxy::clear`].
    pub fn inject(&self, service: Service, fault: Fault) {
        self.inject_only(service, fault, Only::default());
    }

    /// Like [`FaultProxy::inject`], for the requests `only` selects.
    pub fn inject_only(&self, service: Service, fault: Fault, only: Only) {
        let mut faults = self.state.faults.lock().unwrap();
        faults.retain(|(s, _, _)| *s != service);
        faults.push((service, fault, only));
    }

    /// Caps S3 response bodies, and request bodies apart, at `bytes_per_second` per access
    /// key: each key (one execution environment's assumed-role credentials, or one peer
    /// process) has a link of its own, as each Lambda execution environment has its own
    /// network share.
    pub fn limit_bandwidth(&self, bytes_per_second: u64) {
        *self.state.bandwidth.lock().unwrap() = Some(bytes_per_second.max(1));
    }

    /// Forwards to another upstream from now on (a restarted emulator).
    pub fn set_upstream(&self, upstream: &str) {
        *self.state.upstream.lock().unwrap() = upstream.trim_end_matches('/').to_string();
    }

    /// Forwards everything again.
    pub fn clear(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Requests seen for `service`, faulted or forwarded.
    pub fn requests(&self, service: Service) -> usize {
        match service {
            Service::Sts => self.state.sts_requests.load(Ordering::SeqCst),
            Service::S3 => self.state.s3_requests.load(Ordering::SeqCst),
        }
    }

    /// The traffic since the last call (or the start), and the counters back to zero.
    pub fn take_traffic(&self) -> Traffic {
        self.state.traffic.take()
    }

    /// Requests answered with a fault.
    pub fn faulted(&self) -> usize {
        self.state.faulted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (client, state) = (client.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let service =
                service_fn(move |request| handle(request, client.clone(), Arc::clone(&state)));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    mut request: Request<Incoming>,
    client: Client<HttpConnector, Body>,
    state: Arc<State>,
) -> Result<Response<Body>, std::io::Error> {
    let service = if request.method() == hyper::Method::POST && request.uri().path() == "/" {
        state.sts_requests.fetch_add(1, Ordering::SeqCst);
        Service::Sts
    } else {
        state.s3_requests.fetch_add(1, Ordering::SeqCst);
        Service::S3
    };
    let fault = state
        .faults
        .lock()
        .unwrap()
        .iter()
        .find(|(s, _, only)| *s == service && only.matches(&request))
        .map(|(_, f, _)| f.clone());
    if fault.is_some() {
        state.faulted.fetch_add(1, Ordering::SeqCst);
    }
    let cut = match fault {
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => {
            // Read the request to its end, as a server would before answering.
            let _ = request.body_mut().collect().await;
            let mut response = Response::builder().status(status);
            for (k, v) in &headers {
                response = response.header(k, v);
            }
            let body = Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed();
            return Ok(response.body(body).expect("a valid fault response"));
        }
        Some(Fault::Stall(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(Fault::ResetMidBody { after_bytes }) => Some(after_bytes),
        None => None,
    };
    state.traffic.count(request.method(), request.uri().path());
    let upstream = state.upstream.lock().unwrap().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let uri = match format!("{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    *request.uri_mut() = uri;
    let parts_headers = request.headers().clone();
    let rate = *state.bandwidth.lock().unwrap();
    // An upload takes the link's other direction: its own budget at the same rate.
    let request = match (rate, service) {
        (Some(rate), Service::S3) => {
            let key = format!("{} (up)", access_key(&parts_headers));
            let state = Arc::clone(&state);
            request.map(|b| shaped(b, rate, key, state, None))
        }
        _ => request.map(|b| b.map_err(std::io::Error::other).boxed()),
    };
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(_) => return Ok(status(StatusCode::BAD_GATEWAY)),
    };
    let Some(after_bytes) = cut else {
        let traffic = Arc::clone(&state.traffic);
        let rate = *state.bandwidth.lock().unwrap();
        if let (Some(rate), Service::S3) = (rate, service) {
            let key = access_key(&parts_headers);
            return Ok(response.map(|b| shaped(b, rate, key, state, Some(traffic))));
        }
        return Ok(response.map(|b| {
            b.map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    traffic.bytes.fetch_add(data.len() as u64, Ordering::SeqCst);
                }
                frame
            })
            .map_err(std::io::Error::other)
            .boxed()
        }));
    };
    // The headers as they came (Content-Length included), then part of the body, then an
    // I/O error: hyper aborts the connection mid-body, as a reset peer would.
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let head = bytes.slice(..after_bytes.min(bytes.len()));
    // The pause lets hyper flush the headers and the first bytes before the abort.
    let frames = futures::stream::iter([Ok(hyper::body::Frame::data(head))]).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault: reset mid-body",
            ))
        }),
    );
    let body = http_body_util::StreamBody::new(frames)
        .map_err(|e: std::io::Error| e)
        .boxed();
    Ok(Response::from_parts(parts, body))
}

/// The access key id a request is signed with (`Credential=AKID/...`), or `""`.
fn access_key(headers: &hyper::HeaderMap) -> String {
    headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// `body`, its frames let through no faster than `rate` bytes per second on `key`'s link,
/// counted in `traffic` (a response's) if given.
fn shaped(
    body: Incoming,
    rate: u64,
    key: String,
    state: Arc<State>,
    traffic: Option<Arc<Counters>>,
) -> Body {
    let frames = http_body_util::BodyStream::new(body).then(move |frame| {
        let (state, traffic, key) = (Arc::clone(&state), traffic.clone(), key.clone());
        async move {
            let frame = frame.map_err(std::io::Error::other)?;
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                if let Some(traffic) = &traffic {
                    traffic.bytes.fetch_add(n, Ordering::SeqCst);
                }
                let cost = Duration::from_secs_f64(n as f64 / rate as f64);
                let until = {
                    let mut links = state.links.lock().unwrap();
                    let now = tokio::time::Instant::now();
                    let free = links.get(&key).copied().unwrap_or(now).max(now);
                    let until = free + cost;
                    links.insert(key, until);
                    until
                };
                tokio::time::sleep_until(until).await;
            }
            Ok::<_, std::io::Error>(frame)
        }
    });
    BodyExt::boxed(http_body_util::StreamBody::new(frames))
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    response
}
