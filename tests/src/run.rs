//! One event run the two ways the tests compare: natively (`xstage_core::handle`, the
//! library the Lambda bootstrap calls) and as the WASI component under the host, each reduced
//! to a [`Reply`]: the response JSON, or `(errorType, errorMessage)`.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;
use xstage_host::{Function, FunctionConfig, InvocationStats, Outcome};

use crate::wasm;

/// Runs `f` on `runtime` with the platform identity's credentials in the environment
/// ([`crate::seed::platform_identity`]), failing the test instead of hanging past `limit`.
pub fn block_on<F: Future>(runtime: &tokio::runtime::Runtime, limit: Duration, f: F) -> F::Output {
    crate::seed::platform_identity();
    runtime.block_on(async {
        tokio::time::timeout(limit, f)
            .await
            .unwrap_or_else(|_| panic!("the test did not finish in {limit:?}"))
    })
}

/// The response, or the error's type and message.
pub type Reply = Result<Value, (String, String)>;

/// The event through `xstage_core::handle`.
pub async fn native(event: Value) -> Reply {
    match xstage_core::handle(event).await {
        Ok(r) => Ok(serde_json::to_value(&r).expect("the response serializes")),
        Err(e) => Err((e.kind().as_str().to_string(), e.message().to_string())),
    }
}

/// The event through the component, with the invocation's counters. Asserts the guest
/// tried no origin outside its allowlist.
pub async fn wasi(function: &Function, event: &Value) -> (Reply, InvocationStats) {
    let invocation = function
        .invoke(&serde_json::to_vec(event).expect("the event serializes"))
        .await
        .expect("the invocation starts");
    assert!(
        invocation.stats.denied_requests.is_empty(),
        "the guest tried origins outside its allowlist: {:?}",
        invocation.stats.denied_requests
    );
    let reply = match invocation.outcome {
        Outcome::Response(body) => Ok(serde_json::from_slice(&body).expect("response JSON")),
        Outcome::Error {
            error_type,
            error_message,
        } => Err((error_type, error_message)),
    };
    (reply, invocation.stats)
}

/// The stage query component loaded once into `cell` with `configure` applied to
/// [`wasm::stage_query_config`].
pub async fn stage_query(
    cell: &OnceCell<Function>,
    configure: impl FnOnce(&mut FunctionConfig),
) -> &Function {
    cell.get_or_init(|| load_stage_query(configure)).await
}

/// The stage query component, newly loaded with `configure` applied to
/// [`wasm::stage_query_config`]: a function of the caller's own.
pub async fn load_stage_query(configure: impl FnOnce(&mut FunctionConfig)) -> Function {
    let mut config = wasm::stage_query_config();
    configure(&mut config);
    wasm::host()
        .load(&wasm::stage_query_component(), config)
        .await
        .expect("load the stage query component")
}

/// A streamed answer: its bytes and, if it ended with one, the error (after those bytes).
pub type Streamed = (Vec<u8>, Option<(String, String)>);

/// The event streamed through `xstage_core::handle_streaming`, its chunks read from a
/// bounded channel as a transport would.
pub async fn native_streamed(event: Value) -> Streamed {
    let (sender, mut chunks) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let sink = move |chunk: bytes::Bytes| {
        let sender = sender.clone();
        async move {
            sender
                .send(chunk)
                .await
                .map_err(|_| xstage_core::FunctionError::internal("the reader went away"))
        }
    };
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            body.extend_from_slice(&chunk);
        }
        body
    };
    let (result, body) = tokio::join!(xstage_core::handle_streaming(event, sink), read);
    let error = result
        .err()
        .map(|e| (e.kind().as_str().to_string(), e.message().to_string()));
    (body, error)
}

/// The event streamed through the component's `handle-stream`, with the invocation's
/// counters; the chunks are read as the guest writes them.
pub async fn wasi_streamed(function: &Function, event: &Value) -> (Streamed, InvocationStats) {
    let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
    let payload = serde_json::to_vec(event).expect("the event serializes");
    let call = function.invoke_streaming_as(&payload, "streamed".into(), sender);
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            body.extend_from_slice(&chunk);
        }
        body
    };
    let (invocation, body) = tokio::join!(call, read);
    let invocation = invocation.expect("the invocation starts");
    let error = match invocation.outcome {
        Outcome::Response(_) => None,
        Outcome::Error {
            error_type,
            error_message,
        } => Some((error_type, error_message)),
    };
    ((body, error), invocation.stats)
}

/// The SQL types of an answer's columns, in order.
pub fn column_types(answer: &Value) -> Vec<&str> {
    answer["schema"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .map(|c| c["type"].as_str().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}
