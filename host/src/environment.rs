//! One execution environment: a component instance in its own store, with the guest's WASI
//! context (environment variables built like Lambda's, stdout and stderr into a
//! [`LogSink`], no preopened directories, no sockets), its wasi:http hooks and its memory
//! limiter. An environment serves invocations one after another until it is idle too long,
//! or until an invocation traps, after which it is discarded.

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::FunctionConfig;
use crate::error::LoadError;
use crate::limits::MemoryLimiter;
use crate::logs::LogSink;
use crate::outbound::{HttpClient, Outbound};

/// Generated bindings of `xstage:function/handler` (`functions/component/wit`).
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "function",
        path: "../functions/component/wit",
        imports: { default: async },
        exports: { default: async },
    });
}

/// Variables Lambda sets itself and refuses in a function's configuration.
pub const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// The guest's environment: Lambda's variables for this function, its own credentials and
/// its configured variables. Nothing is inherited from the host process.
pub fn variables(config: &FunctionConfig) -> Result<Vec<(String, String)>, LoadError> {
    if let Some(name) = config
        .environment
        .keys()
        .find(|k| RESERVED_VARIABLES.contains(&k.as_str()))
    {
        return Err(LoadError::ReservedVariable {
            function: config.name.clone(),
            name: name.clone(),
        });
    }
    let mut vars = vec![
        ("AWS_REGION".to_string(), config.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), config.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME".to_string(), config.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(),
            config.memory_size_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_VERSION".to_string(),
            "$LATEST".to_string(),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_string(),
            "on-demand".to_string(),
        ),
    ];
    if let Some(c) = &config.credentials {
        vars.push(("AWS_ACCESS_KEY_ID".to_string(), c.access_key_id.clone()));
        vars.push((
            "AWS_SECRET_ACCESS_KEY".to_string(),
            c.secret_access_key.clone(),
        ));
        if let Some(token) = &c.session_token {
            vars.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
    }
    vars.extend(
        config
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(vars)
}

/// The data of an environment's store.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    pub outbound: Outbound,
    pub limiter: MemoryLimiter,
    pub logs: LogSink,
    /// Where a streamed invocation's `response-stream.write` chunks go; `None` outside one.
    pub stream: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
}

impl GuestState {
    pub fn new(vars: &[(String, String)], memory_bytes: usize, client: HttpClient) -> Self {
        let logs = LogSink::new();
        let wasi = WasiCtx::builder()
            .envs(vars)
            .stdout(logs.clone())
            .stderr(logs.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(client),
            limiter: MemoryLimiter::new(memory_bytes),
            logs,
            stream: None,
        }
    }
}

impl bindings::xstage::function::response_stream::Host for GuestState {
    /// Forwards a chunk, waiting while the receiver is behind (the channel is bounded).
    async fn write(&mut self, chunk: Vec<u8>) -> Result<(), String> {
        let Some(sender) = &self.stream else {
            return Err("this invocation is not streamed: return the response instead".into());
        };
        sender
            .send(chunk)
            .await
            .map_err(|_| "the client stopped reading the response".to_string())
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// A live instance and its store.
pub struct Environment {
    pub store: Store<GuestState>,
    pub handler: bindings::Function,
    /// Unique within the host, for logs and tests.
    pub id: u64,
    /// Invocations this environment has served.
    pub invocations: u64,
    pub last_used: std::time::Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_lambdas_plus_configured_and_refuse_reserved_names() {
        let mut config = FunctionConfig::new("f");
        config.memory_size_mb = 256;
        config.environment.insert("MY_SETTING".into(), "1".into());
        let vars = variables(&config).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_REGION"), Some("us-east-1"));
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
        assert_eq!(get("MY_SETTING"), Some("1"));
        assert_eq!(get("AWS_ACCESS_KEY_ID"), None);
        assert_eq!(get("PATH"), None, "nothing is inherited from the host");

        config
            .environment
            .insert("AWS_REGION".into(), "eu-west-1".into());
        assert!(
            matches!(variables(&config), Err(LoadError::ReservedVariable { name, .. }) if name == "AWS_REGION")
        );
    }
}
