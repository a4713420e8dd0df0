//! # xstage-sandbox-guest
//!
//! A small component exporting `xstage:function/handler` whose event says what to try, so
//! the host's tests can prove the sandbox from inside: `{"fetch": URL}` sends a GET,
//! `{"spin": true}` loops forever, `{"sleep_ms": N}` sleeps, `{"allocate_mb": N}` allocates and touches N MB,
//! `{"environment": true}` returns the variables it sees, `{"read_dir": PATH}` lists a
//! directory, `{"print": TEXT}` writes to stdout and stderr, `{"panic": TEXT}` panics, and
//! anything else is echoed back. Streamed (`handle-stream`), `{"chunks": N, "chunk_bytes":
//! M, "fail": TEXT}` writes N chunks and then fails if asked. Built for `wasm32-wasip2` only;
//! empty elsewhere.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ world: "function", path: "../../../functions/component/wit" });

use exports::xstage::function::handler::{FunctionError, Guest};
use serde_json::{Value, json};

struct Sandbox;

fn error(error_type: &str, message: impl ToString) -> FunctionError {
    FunctionError {
        error_type: error_type.to_string(),
        error_message: message.to_string(),
    }
}

impl Guest for Sandbox {
    /// `{"chunks": N, "chunk_bytes": M}` writes N chunks of M bytes (the first `a`s, the next
    /// `b`s, ...), then fails with `{"fail": TEXT}` if given.
    fn handle_stream(event: Vec<u8>) -> Result<(), FunctionError> {
        let event: Value = serde_json::from_slice(&event).map_err(|e| error("InvalidEvent", e))?;
        let size = event["chunk_bytes"].as_u64().unwrap_or(16) as usize;
        for i in 0..event["chunks"].as_u64().unwrap_or(1) {
            let chunk = vec![b'a' + (i % 26) as u8; size];
            xstage::function::response_stream::write(&chunk)
                .map_err(|e| error("StreamClosed", e))?;
        }
        match event["fail"].as_str() {
            Some(text) => Err(error("Failed", text)),
            None => Ok(()),
        }
    }

    fn handle(event: Vec<u8>) -> Result<Vec<u8>, FunctionError> {
        let event: Value = serde_json::from_slice(&event).map_err(|e| error("InvalidEvent", e))?;
        let reply = if let Some(url) = event["fetch"].as_str() {
            fetch(url)?
        } else if event["spin"] == json!(true) {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        } else if let Some(ms) = event["sleep_ms"].as_u64() {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            json!({"slept_ms": ms})
        } else if let Some(mb) = event["allocate_mb"].as_u64() {
            let mut blocks = Vec::new();
            for _ in 0..mb {
                blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
            json!({"allocated_mb": blocks.len()})
        } else if event["environment"] == json!(true) {
            json!(std::env::vars().collect::<std::collections::BTreeMap<_, _>>())
        } else if let Some(path) = event["read_dir"].as_str() {
            match std::fs::read_dir(path) {
                Ok(entries) => json!({"entries": entries.count()}),
                Err(e) => json!({"error": e.to_string()}),
            }
        } else if let Some(text) = event["print"].as_str() {
            println!("stdout: {text}");
            eprintln!("stderr: {text}");
            json!({"printed": text})
        } else if let Some(text) = event["panic"].as_str() {
            panic!("{text}");
        } else {
            event
        };
        serde_json::to_vec(&reply).map_err(|e| error("Internal", e))
    }
}

fn fetch(url: &str) -> Result<Value, FunctionError> {
    use wstd::http::{Body, Client, Request};
    let request = Request::get(url)
        .body(Body::empty())
        .map_err(|e| error("InvalidEvent", e))?;
    wstd::runtime::block_on(async move {
        match Client::new().send(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let text = body
                    .str_contents()
                    .await
                    .map(str::to_string)
                    .unwrap_or_default();
                Ok(json!({"status": status, "body": text}))
            }
            Err(e) => Ok(json!({"error": format!("{e:?}")})),
        }
    })
}

export!(Sandbox);
