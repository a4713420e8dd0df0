//! A fault-injecting HTTP proxy in front of an emulator: it forwards every request as is
//! (method, path, headers including `Host`, so SigV4 signatures stay valid) and, while a
//! fault is set for a service, answers that service's requests with the fault instead.
//!
//! The faults are AWS's own wire formats ([`Fault::sts_error`], [`Fault::s3_error`]), so the
//! SDK under test parses, classifies and retries them exactly as it would AWS's. This is how
//! the tests provoke what no emulator does on demand: throttling, an expired token on S3, a
//! bucket in another region.
//!
//! Requests are told apart by shape: STS is `POST /` (the query protocol), everything else
//! is S3 (path-style). The proxy runs on its own thread and runtime, so tests can block on a
//! child process while it serves.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, hyper::Error>;

/// Which AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Sts,
    S3,
}

/// A canned response.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Fault {
    /// An STS (query protocol) error: `<ErrorResponse><Error><Type>Sender</Type><Code>…`.
    pub fn sts_error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                 <Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ),
        }
    }

    /// An S3 (REST-XML) error: `<Error><Code>…</Code><Message>…</Message></Error>`, with extra
    /// response headers such as `x-amz-bucket-region`.
    pub fn s3_error(status: u16, code: &str, message: &str, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![("content-type".to_string(), "application/xml".to_string())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self {
            status,
            headers: all,
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>0000000000000000</RequestId></Error>"
            ),
        }
    }
}

#[derive(Default)]
struct State {
    faults: Mutex<Vec<(Service, Fault)>>,
    sts_requests: AtomicUsize,
    s3_requests: AtomicUsize,
    faulted: AtomicUsize,
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
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let upstream = upstream.trim_end_matches('/').to_string();
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the proxy");
                runtime.block_on(serve(listener, upstream, served, stopped));
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
        let mut faults = self.state.faults.lock().unwrap();
        faults.retain(|(s, _)| *s != service);
        faults.push((service, fault));
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
    upstream: String,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (client, upstream, state) = (client.clone(), upstream.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                handle(
                    request,
                    client.clone(),
                    upstream.clone(),
                    Arc::clone(&state),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    mut request: Request<Incoming>,
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
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
        .find(|(s, _)| *s == service)
        .map(|(_, f)| f.clone());
    if let Some(fault) = fault {
        state.faulted.fetch_add(1, Ordering::SeqCst);
        // Read the request to its end, as a server would before answering.
        let _ = request.body_mut().collect().await;
        let mut response = Response::builder().status(fault.status);
        for (k, v) in &fault.headers {
            response = response.header(k, v);
        }
        let body = Full::new(Bytes::from(fault.body))
            .map_err(|never| match never {})
            .boxed();
        return Ok(response.body(body).expect("a valid fault response"));
    }
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
    match client.request(request).await {
        Ok(response) => Ok(response.map(|b| b.boxed())),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
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
