//! `xstage serve`: the Invoke API on a TCP port until SIGINT or SIGTERM, then a graceful
//! stop: the listener closes, in-flight invocations (synchronous and `Event`) finish.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::Api;
use crate::error::EmulatorError;

/// The Lambda emulators' customary port (`sam local start-lambda`).
pub const DEFAULT_PORT: u16 = 3001;

pub async fn bind(address: &str, port: u16) -> Result<TcpListener, EmulatorError> {
    let addr = format!("{address}:{port}");
    TcpListener::bind(&addr)
        .await
        .map_err(|source| EmulatorError::Bind { addr, source })
}

/// Serves until `shutdown` completes, then waits for in-flight invocations.
pub async fn run(
    api: Arc<Api>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    let queued = api.queued_events();
    if queued > 0 {
        eprintln!("xstage: waiting for {queued} Event invocation(s) to finish");
    }
    api.drain().await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, naming the signal.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
