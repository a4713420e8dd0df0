//! A loaded [`Function`] and its invocations.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use crate::cache::{CacheOutcome, Loaded};
use crate::config::FunctionConfig;
use crate::environment::{Environment, GuestState, bindings, variables};
use crate::error::{InvokeError, LoadError};
use crate::error_type;
use crate::pool::{Checkout, Pool};
use crate::runtime::{EPOCH_TICK, Host};

/// A function ready to invoke: its component linked and prepared for instantiation, and its
/// warm execution environments. Cheap to clone; clones share the environments.
#[derive(Clone)]
pub struct Function {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    config: FunctionConfig,
    component: PathBuf,
    vars: Vec<(String, String)>,
    pre: bindings::FunctionPre<GuestState>,
    pool: Pool<Environment>,
    cache: CacheOutcome,
    compile_time: Option<Duration>,
    load_time: Duration,
}

/// What an invocation returned: the response JSON, or Lambda's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response(Vec<u8>),
    Error {
        error_type: String,
        error_message: String,
    },
}

/// One invocation's result, log and counters.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    /// The guest's stdout and stderr, between Lambda's `START` and `END`/`REPORT` lines.
    pub logs: Vec<u8>,
    pub stats: InvocationStats,
}

/// Counters of one invocation.
#[derive(Debug, Clone, Default)]
pub struct InvocationStats {
    /// The handler call, excluding instantiation.
    pub duration: Duration,
    /// Instantiation, when this invocation created its environment (a cold start).
    pub init_duration: Option<Duration>,
    /// Which environment served it, and how many invocations it has served, this included.
    pub environment: u64,
    pub environment_invocations: u64,
    /// The largest linear memory the environment has reached.
    pub peak_memory_bytes: u64,
    /// Outbound wasi:http requests sent, their response bytes, and the origins denied.
    pub http_requests: u64,
    pub http_response_bytes: u64,
    pub denied_requests: Vec<String>,
}

impl Invocation {
    pub fn is_error(&self) -> bool {
        matches!(self.outcome, Outcome::Error { .. })
    }

    /// The response body as Lambda returns it: the function's JSON, or
    /// `{"errorType": ..., "errorMessage": ...}`.
    pub fn body(&self) -> Vec<u8> {
        match &self.outcome {
            Outcome::Response(body) => body.clone(),
            Outcome::Error {
                error_type,
                error_message,
            } => serde_json::to_vec(&serde_json::json!({
                "errorType": error_type,
                "errorMessage": error_message,
            }))
            .unwrap_or_default(),
        }
    }

    /// The error type, if the invocation failed.
    pub fn error_type(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Error { error_type, .. } => Some(error_type),
            Outcome::Response(_) => None,
        }
    }
}

impl Host {
    /// Loads a function: compiles its component once (through the cache), links it and
    /// prepares its instantiation. (Defined here, beside [`Function`], so that the engine's
    /// module does not depend on the functions it runs.)
    pub async fn load(&self, path: &Path, config: FunctionConfig) -> Result<Function, LoadError> {
        if config.memory_size_mb > self.inner.config.max_memory_mb {
            return Err(LoadError::MemoryTooLarge {
                function: config.name.clone(),
                asked: config.memory_size_mb,
                max: self.inner.config.max_memory_mb,
            });
        }
        let loaded = self.compile(path).await?;
        Function::new(self.clone(), path, loaded, config)
    }
}

impl Function {
    pub(crate) fn new(
        host: Host,
        path: &Path,
        loaded: Loaded,
        config: FunctionConfig,
    ) -> Result<Self, LoadError> {
        let vars = variables(&config)?;
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let pre = host
            .inner
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(link_error)?;
        let pre = bindings::FunctionPre::new(pre).map_err(link_error)?;
        if config.timeout.is_zero() {
            return Err(LoadError::Invalid {
                function: config.name.clone(),
                message: "Timeout must be at least 1 second".into(),
            });
        }
        let host_limit = host.inner.config.max_environments;
        let limit = config
            .reserved_concurrency
            .map_or(host_limit, |r| r.min(host_limit));
        let inner = Arc::new(Inner {
            host,
            component: path.to_path_buf(),
            vars,
            pre,
            pool: Pool::new(limit),
            cache: loaded.outcome,
            compile_time: loaded.compile_time,
            load_time: loaded.load_time,
            config,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap_idle(Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.inner.config
    }

    pub fn component(&self) -> &Path {
        &self.inner.component
    }

    /// How the component was obtained, and what compiling or loading it took.
    pub fn load_stats(&self) -> (&CacheOutcome, Option<Duration>, Duration) {
        (
            &self.inner.cache,
            self.inner.compile_time,
            self.inner.load_time,
        )
    }

    /// (idle, live) execution environments.
    pub fn environments(&self) -> (u32, u32) {
        self.inner.pool.counts()
    }

    /// Drops every idle environment, so the next invocation starts cold.
    pub fn drop_idle(&self) {
        drop(self.inner.pool.reap(Duration::ZERO));
    }

    /// Runs one invocation in a warm environment, or a new one. Function failures (an
    /// `errorType` from the guest, a timeout, running out of memory, a crash) are an
    /// [`Outcome::Error`]; only a refusal to start is an `Err`.
    pub async fn invoke(&self, event: &[u8]) -> Result<Invocation, InvokeError> {
        self.invoke_as(event, request_id()).await
    }

    /// [`Function::invoke`] under a request id chosen by the caller (the Invoke API's
    /// `x-amzn-RequestId`, given before an `Event` invocation runs).
    pub async fn invoke_as(
        &self,
        event: &[u8],
        request_id: String,
    ) -> Result<Invocation, InvokeError> {
        self.call(event, request_id, None).await
    }

    /// Runs one invocation whose response is streamed (`handle-stream`): each chunk the
    /// guest writes goes to `chunks` as it is written, the guest waiting while the channel
    /// is full. The [`Invocation`]'s outcome is then an empty response, or the error that
    /// ended the stream (after the chunks already sent). Dropping the receiver stops the
    /// guest's next write with an error.
    pub async fn invoke_streaming_as(
        &self,
        event: &[u8],
        request_id: String,
        chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<Invocation, InvokeError> {
        self.call(event, request_id, Some(chunks)).await
    }

    async fn call(
        &self,
        event: &[u8],
        request_id: String,
        stream: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) -> Result<Invocation, InvokeError> {
        let inner = &self.inner;
        drop(inner.pool.reap(inner.config.idle_timeout));
        // A lease counts the environment as live until it is checked in; dropped otherwise (a
        // trap, a timeout, or this future dropped mid-call), it forgets the environment.
        let warm = match inner.pool.checkout() {
            Checkout::Full => {
                return Err(InvokeError::TooManyRequests {
                    function: inner.config.name.clone(),
                    limit: inner.pool.limit(),
                });
            }
            Checkout::Warm(env) => Some(env),
            Checkout::New => None,
        };
        let lease = Lease {
            pool: &inner.pool,
            settled: false,
        };
        let (mut env, init_duration) = match warm {
            Some(env) => (env, None),
            None => {
                let started = Instant::now();
                match inner.create().await {
                    Ok(env) => (env, Some(started.elapsed())),
                    Err(Failure::Busy) => {
                        return Err(InvokeError::TooManyRequests {
                            function: inner.config.name.clone(),
                            limit: inner.host.inner.config.max_environments,
                        });
                    }
                    Err(Failure::Init(message)) => {
                        let outcome = Outcome::Error {
                            error_type: error_type::INIT_ERROR.into(),
                            error_message: message,
                        };
                        let stats = InvocationStats {
                            init_duration: Some(started.elapsed()),
                            ..InvocationStats::default()
                        };
                        return Ok(inner.report(request_id, outcome, Vec::new(), stats));
                    }
                }
            }
        };
        let (outcome, healthy, logs, mut stats) = inner.run(&mut env, event, stream).await;
        stats.init_duration = init_duration;
        if healthy {
            lease.checkin(env);
        } else {
            // A trapped or interrupted instance may not be entered again.
            tracing::debug!(environment = stats.environment, "environment discarded");
        }
        Ok(inner.report(request_id, outcome, logs, stats))
    }
}

/// An environment counted as live in its pool: returned by [`Lease::checkin`], otherwise
/// forgotten when the lease drops.
struct Lease<'a> {
    pool: &'a Pool<Environment>,
    settled: bool,
}

impl Lease<'_> {
    fn checkin(mut self, env: Environment) {
        self.pool.checkin(env);
        self.settled = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.pool.discard();
        }
    }
}

enum Failure {
    /// The host's pooling allocator has no free slot.
    Busy,
    Init(String),
}

impl Inner {
    fn deadline_ticks(&self) -> u64 {
        (self.config.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }

    async fn create(&self) -> Result<Environment, Failure> {
        let host = &self.host.inner;
        let memory = (self.config.memory_size_mb as usize) << 20;
        let state = GuestState::new(&self.vars, memory, host.client.clone());
        let mut store = Store::new(&host.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(self.deadline_ticks());
        store.epoch_deadline_trap();
        let instantiate = self.pre.instantiate_async(&mut store);
        let handler = match tokio::time::timeout(self.config.timeout, instantiate).await {
            Ok(Ok(handler)) => handler,
            Ok(Err(e)) => {
                let message = format!("{e:#}");
                if message.contains("concurrent") && message.contains("limit") {
                    return Err(Failure::Busy);
                }
                return Err(Failure::Init(format!(
                    "the function's execution environment could not start: {message}"
                )));
            }
            Err(_) => {
                return Err(Failure::Init(format!(
                    "the function's initialisation did not finish within its timeout of {:.2} seconds",
                    self.config.timeout.as_secs_f64()
                )));
            }
        };
        Ok(Environment {
            store,
            handler,
            id: host.next_environment.fetch_add(1, Ordering::Relaxed),
            invocations: 0,
            last_used: Instant::now(),
        })
    }

    /// Calls the handler once: (outcome, whether the environment may be reused, guest log,
    /// counters).
    async fn run(
        &self,
        env: &mut Environment,
        event: &[u8],
        stream: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) -> (Outcome, bool, Vec<u8>, InvocationStats) {
        let state = env.store.data_mut();
        let streamed = stream.is_some();
        state.stream = stream;
        state.outbound.allow = self.config.egress.allowlist(event, &self.config.region);
        state.outbound.stats = Arc::default();
        state.limiter.reset_refused();
        drop(state.logs.take());
        env.store.set_epoch_deadline(self.deadline_ticks());
        env.invocations += 1;

        let started = Instant::now();
        let handler = env.handler.xstage_function_handler();
        let call = async {
            if streamed {
                let done = handler.call_handle_stream(&mut env.store, event).await;
                done.map(|r| r.map(|()| Vec::new()))
            } else {
                handler.call_handle(&mut env.store, event).await
            }
        };
        let result = tokio::time::timeout(self.config.timeout, call).await;
        let duration = started.elapsed();
        env.last_used = Instant::now();
        // The stream ends with the call: its receiver sees the channel close.
        env.store.data_mut().stream = None;

        let state = env.store.data();
        let (mut logs, dropped) = state.logs.take();
        if dropped > 0 {
            logs.splice(
                0..0,
                format!("[{dropped} earlier log bytes dropped]\n").into_bytes(),
            );
        }
        let refused = state.limiter.refused();
        let stats = InvocationStats {
            duration,
            init_duration: None,
            environment: env.id,
            environment_invocations: env.invocations,
            peak_memory_bytes: state.limiter.peak() as u64,
            http_requests: state.outbound.stats.requests(),
            http_response_bytes: state.outbound.stats.response_bytes(),
            denied_requests: state.outbound.stats.denied(),
        };
        let timed_out = || Outcome::Error {
            error_type: error_type::TIMEOUT.into(),
            error_message: format!(
                "Task timed out after {:.2} seconds",
                self.config.timeout.as_secs_f64()
            ),
        };
        let (outcome, healthy) = match result {
            Ok(Ok(Ok(body))) => (Outcome::Response(body), true),
            Ok(Ok(Err(e))) => (
                Outcome::Error {
                    error_type: e.error_type,
                    error_message: e.error_message,
                },
                true,
            ),
            Err(_elapsed) => (timed_out(), false),
            Ok(Err(trap)) if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                (timed_out(), false)
            }
            Ok(Err(trap)) => {
                // A stripped component's frames are numbers until named from its copy.
                let report = crate::names::name_frames(&format!("{trap:?}"), &self.component);
                let _ = writeln!(StringSink(&mut logs), "{report}");
                let outcome = match refused {
                    Some(asked) => Outcome::Error {
                        error_type: error_type::OUT_OF_MEMORY.into(),
                        error_message: format!(
                            "the function needed more than its MemorySize of {} MB (it asked for {} MB); raise MemorySize or make the query read less (select fewer columns, add a LIMIT or a filter)",
                            self.config.memory_size_mb,
                            asked >> 20
                        ),
                    },
                    None => Outcome::Error {
                        error_type: error_type::CRASHED.into(),
                        error_message: format!(
                            "the function crashed: {}; this is a bug, please report it with the log",
                            panic_message(&logs).unwrap_or_else(|| root_cause(&trap))
                        ),
                    },
                };
                (outcome, false)
            }
        };
        (outcome, healthy, logs, stats)
    }

    /// Frames the guest's log like Lambda's and assembles the invocation.
    fn report(
        &self,
        request_id: String,
        outcome: Outcome,
        guest_logs: Vec<u8>,
        stats: InvocationStats,
    ) -> Invocation {
        let mut logs = format!("START RequestId: {request_id} Version: $LATEST\n").into_bytes();
        logs.extend_from_slice(&guest_logs);
        if !logs.ends_with(b"\n") {
            logs.push(b'\n');
        }
        if let Outcome::Error {
            error_type,
            error_message,
        } = &outcome
            && [
                error_type::TIMEOUT,
                error_type::OUT_OF_MEMORY,
                error_type::CRASHED,
                error_type::INIT_ERROR,
            ]
            .contains(&error_type.as_str())
        {
            let _ = writeln!(
                StringSink(&mut logs),
                "{request_id} {error_type}: {error_message}"
            );
        }
        let millis = stats.duration.as_secs_f64() * 1000.0;
        let _ = writeln!(StringSink(&mut logs), "END RequestId: {request_id}");
        let _ = write!(
            StringSink(&mut logs),
            "REPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            millis.ceil() as u64,
            self.config.memory_size_mb,
            stats.peak_memory_bytes.div_ceil(1 << 20),
        );
        if let Some(init) = stats.init_duration {
            let _ = write!(
                StringSink(&mut logs),
                "\tInit Duration: {:.2} ms",
                init.as_secs_f64() * 1000.0
            );
        }
        logs.push(b'\n');
        Invocation {
            request_id,
            outcome,
            logs,
            stats,
        }
    }
}

/// Drops idle environments past their idle timeout, until the function is dropped.
async fn reap_idle(function: Weak<Inner>) {
    loop {
        let period = match function.upgrade() {
            Some(inner) => {
                drop(inner.pool.reap(inner.config.idle_timeout));
                (inner.config.idle_timeout / 2)
                    .clamp(Duration::from_millis(10), Duration::from_secs(1))
            }
            None => return,
        };
        tokio::time::sleep(period).await;
    }
}

/// `fmt::Write` into a byte log.
struct StringSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StringSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The message of a Rust panic in the guest's log: the line after `panicked at`.
fn panic_message(logs: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(logs);
    let mut lines = text.lines();
    lines.find(|l| l.contains("panicked at"))?;
    lines.next().map(|l| format!("panic: {}", l.trim()))
}

fn root_cause(trap: &wasmtime::Error) -> String {
    match trap.downcast_ref::<Trap>() {
        Some(t) => format!("wasm trap: {t}"),
        None => trap.root_cause().to_string(),
    }
}

/// A random version 4 UUID, as Lambda's request ids are.
fn request_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_v4_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
    }

    #[test]
    fn finds_the_panic_message() {
        let log = b"thread '<unnamed>' panicked at src/lib.rs:3:5:\nindex out of bounds\nnote: run with RUST_BACKTRACE";
        assert_eq!(
            panic_message(log).as_deref(),
            Some("panic: index out of bounds")
        );
        assert_eq!(panic_message(b"all fine"), None);
    }
}
