//! # xstage-component
//!
//! The stage query function as a WASI 0.2 component (`wasm32-wasip2`). It exports
//! `xstage:function/handler` (see `wit/function.wit`): event bytes in, response JSON out, or a
//! `function-error` carrying the core's `errorType` and message; or, streamed, the answer
//! written through the host's `response-stream` as it is produced.
//!
//! There is no logic here: [`xstage_core::handle_bytes`] runs under `wstd`'s executor, with
//! AWS HTTP going through wasi:http (`aws-smithy-wasm`, see `xstage_core::platform`).
//! Neighbours: `host/` loads this component and runs it like Lambda runs a function;
//! `functions/stage-query` runs the same core natively.
//!
//! Build it with `cargo build --profile wasm --target wasm32-wasip2 -p xstage-component`; the
//! component is `target/wasm32-wasip2/wasm/xstage_component.wasm`. On other targets this
//! crate is empty.

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ world: "function", path: "wit" });

use exports::xstage::function::handler::{FunctionError, Guest};

struct Function;

fn to_wit(error: xstage_core::FunctionError) -> FunctionError {
    FunctionError {
        error_type: error.kind().as_str().to_string(),
        error_message: error.message().to_string(),
    }
}

impl Guest for Function {
    fn handle_stream(event: Vec<u8>) -> Result<(), FunctionError> {
        // A blocking import: the host holds the guest while the client is behind.
        let sink = |chunk: bytes::Bytes| {
            std::future::ready(
                xstage::function::response_stream::write(&chunk).map_err(|why| {
                    xstage_core::FunctionError::internal(format!(
                        "the response stream closed: {why}"
                    ))
                }),
            )
        };
        wstd::runtime::block_on(xstage_core::handle_streaming_bytes(&event, sink))
            .map(|_rows| ())
            .map_err(to_wit)
    }

    fn handle(event: Vec<u8>) -> Result<Vec<u8>, FunctionError> {
        let result = wstd::runtime::block_on(xstage_core::handle_bytes(&event));
        let error = match result {
            Ok(response) => match serde_json::to_vec(&response) {
                Ok(body) => return Ok(body),
                Err(e) => xstage_core::FunctionError::internal(format!(
                    "the response could not be encoded as JSON: {e}"
                )),
            },
            Err(error) => error,
        };
        Err(to_wit(error))
    }
}

export!(Function);
