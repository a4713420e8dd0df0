//! Reading a request body under Lambda's payload limit. An oversized body is read to its end
//! (up to [`DRAIN_LIMIT`]) and discarded, so the client, still sending, gets the 413 rather
//! than a reset connection.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// The most of an oversized body read and discarded before the connection is given up.
pub const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

pub enum Read {
    Complete(Bytes),
    TooLarge,
    /// The client went away mid-body.
    Failed(String),
}

pub async fn read(body: Body, limit: usize) -> Read {
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Read::Failed(e.to_string()),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen > DRAIN_LIMIT {
            return Read::TooLarge;
        }
        if seen <= limit {
            buf.extend_from_slice(&data);
        }
    }
    if seen > limit {
        Read::TooLarge
    } else {
        Read::Complete(buf.freeze())
    }
}
