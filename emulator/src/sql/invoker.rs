//! Where `xstage sql` sends a query's event: to `xstage serve` over the Lambda Invoke API,
//! or, with `--local`, to the function loaded into a host in this process.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use xstage_host::Outcome;

use super::SqlError;
use crate::functions::Deployed;

/// What the function answered.
pub enum Reply {
    Response(Vec<u8>),
    FunctionError {
        error_type: String,
        error_message: String,
    },
}

pub enum Invoker {
    Remote {
        endpoint: String,
        function: String,
        client: Box<Client<HttpConnector, Full<Bytes>>>,
    },
    Local(Arc<Deployed>),
}

impl Invoker {
    /// `endpoint` is the emulator's base URL, e.g. `http://127.0.0.1:3001`.
    pub fn remote(endpoint: &str, function: &str) -> Self {
        Self::Remote {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            function: function.to_string(),
            client: Box::new(Client::builder(TokioExecutor::new()).build_http()),
        }
    }

    pub async fn invoke(&self, event: Vec<u8>) -> Result<Reply, SqlError> {
        match self {
            Self::Local(deployed) => {
                let invocation =
                    deployed
                        .function
                        .invoke(&event)
                        .await
                        .map_err(|e| SqlError::Service {
                            code: "TooManyRequestsException".into(),
                            message: e.to_string(),
                        })?;
                Ok(match invocation.outcome {
                    Outcome::Response(body) => Reply::Response(body),
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => Reply::FunctionError {
                        error_type,
                        error_message,
                    },
                })
            }
            Self::Remote {
                endpoint,
                function,
                client,
            } => {
                let url = format!("{endpoint}/2015-03-31/functions/{function}/invocations");
                let request = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(event)))
                    .map_err(|e| SqlError::Invalid(format!("bad emulator URL {url}: {e}")))?;
                let response = client.request(request).await.map_err(|e| {
                    SqlError::Unreachable(format!(
                        "cannot reach the emulator at {endpoint} ({e}); start it with `xstage serve`, \
                         pass --endpoint URL, or run the function in this process with --local"
                    ))
                })?;
                let status = response.status();
                let error_type = response
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(':').next().unwrap_or(v).to_string());
                let function_error = response.headers().contains_key("x-amz-function-error");
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| {
                        SqlError::Unreachable(format!("the emulator's response was cut off: {e}"))
                    })?
                    .to_bytes();
                if !status.is_success() {
                    let message = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            v.get("message")
                                .or_else(|| v.get("Message"))
                                .and_then(|m| m.as_str().map(str::to_string))
                        })
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                    return Err(SqlError::Service {
                        code: error_type.unwrap_or_else(|| format!("HTTP {status}")),
                        message,
                    });
                }
                if function_error {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let field =
                        |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                    return Ok(Reply::FunctionError {
                        error_type: field("errorType"),
                        error_message: field("errorMessage"),
                    });
                }
                Ok(Reply::Response(body.to_vec()))
            }
        }
    }
}

/// How a streamed invocation ended, after its chunks.
pub enum Ended {
    Complete,
    FunctionError {
        error_type: String,
        error_message: String,
    },
}

impl Invoker {
    /// Invokes with the answer streamed (InvokeWithResponseStream, or the host's
    /// `handle-stream`): `on_chunk` gets each chunk as the function writes it; an error it
    /// returns stops the invocation.
    pub async fn invoke_streaming(
        &self,
        event: Vec<u8>,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), SqlError>,
    ) -> Result<Ended, SqlError> {
        match self {
            Self::Local(deployed) => {
                let (sender, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
                let call = deployed
                    .function
                    .invoke_streaming_as(&event, "local".into(), sender);
                let read = async move {
                    while let Some(chunk) = chunks.recv().await {
                        // Dropping the receiver stops the function's next write.
                        on_chunk(&chunk)?;
                    }
                    Ok::<_, SqlError>(())
                };
                let (invocation, read) = tokio::join!(call, read);
                let invocation = invocation.map_err(|e| SqlError::Service {
                    code: "TooManyRequestsException".into(),
                    message: e.to_string(),
                })?;
                read?;
                Ok(match invocation.outcome {
                    Outcome::Response(_) => Ended::Complete,
                    Outcome::Error {
                        error_type,
                        error_message,
                    } => Ended::FunctionError {
                        error_type,
                        error_message,
                    },
                })
            }
            Self::Remote {
                endpoint,
                function,
                client,
            } => {
                let url = format!(
                    "{endpoint}/2021-11-15/functions/{function}/response-streaming-invocations"
                );
                let request = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(event)))
                    .map_err(|e| SqlError::Invalid(format!("bad emulator URL {url}: {e}")))?;
                let response = client.request(request).await.map_err(|e| {
                    SqlError::Unreachable(format!(
                        "cannot reach the emulator at {endpoint} ({e}); start it with `xstage serve`, \
                         pass --endpoint URL, or run the function in this process with --local"
                    ))
                })?;
                let status = response.status();
                if !status.is_success() {
                    let code = response
                        .headers()
                        .get("x-amzn-errortype")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.split(':').next().unwrap_or(v).to_string())
                        .unwrap_or_else(|| format!("HTTP {status}"));
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let message = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            v.get("message")
                                .and_then(|m| m.as_str().map(str::to_string))
                        })
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                    return Err(SqlError::Service { code, message });
                }
                read_events(response.into_body(), &mut on_chunk).await
            }
        }
    }
}

/// Reads Lambda's event stream: `PayloadChunk` payloads to `on_chunk`, then
/// `InvokeComplete`. A stream that ends without `InvokeComplete` was cut off.
async fn read_events(
    mut body: hyper::body::Incoming,
    on_chunk: &mut impl FnMut(&[u8]) -> Result<(), SqlError>,
) -> Result<Ended, SqlError> {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    let cut = |why: String| SqlError::Unreachable(format!("the emulator's response stream {why}"));
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = bytes::BytesMut::new();
    loop {
        while let DecodedFrame::Complete(message) = decoder
            .decode_frame(&mut buffer)
            .map_err(|e| cut(format!("is not an event stream: {e}")))?
        {
            let event_type = message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == ":event-type")
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            match event_type.as_str() {
                "PayloadChunk" => on_chunk(message.payload())?,
                "InvokeComplete" => {
                    let v: serde_json::Value =
                        serde_json::from_slice(message.payload()).unwrap_or_default();
                    return Ok(match v.get("ErrorCode").and_then(|c| c.as_str()) {
                        None => Ended::Complete,
                        Some(code) => Ended::FunctionError {
                            error_type: code.to_string(),
                            error_message: v["ErrorDetails"].as_str().unwrap_or("").to_string(),
                        },
                    });
                }
                _ => {}
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(cut(format!("was cut off: {e}"))),
            None => return Err(cut("ended before InvokeComplete".into())),
        }
    }
}
