//! The guest's stdout and stderr, captured per invocation. Both streams go into one bounded
//! buffer, like a Lambda log stream; past [`LOG_CAPACITY`] the oldest bytes are dropped, so
//! the tail (what `X-Amz-Log-Type: Tail` returns) is always kept.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamResult};

/// The most log bytes kept per invocation.
pub const LOG_CAPACITY: usize = 1 << 20;

/// A shared, bounded log buffer; clones write to the same buffer.
#[derive(Clone, Default)]
pub struct LogSink(Arc<Mutex<Buffer>>);

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

impl LogSink {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A poisoned lock only means a writer panicked mid-append; the bytes are still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends, dropping the oldest bytes past [`LOG_CAPACITY`].
    pub fn append(&self, data: &[u8]) {
        let mut buf = self.lock();
        buf.bytes.extend_from_slice(data);
        // Trim in batches so a chatty guest does not shift the buffer on every write.
        if buf.bytes.len() > 2 * LOG_CAPACITY {
            let excess = buf.bytes.len() - LOG_CAPACITY;
            buf.bytes.drain(..excess);
            buf.dropped += excess as u64;
        }
    }

    /// Takes what was written since the last call, and how many older bytes were dropped.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut buf = self.lock();
        let mut bytes = std::mem::take(&mut buf.bytes);
        let mut dropped = std::mem::take(&mut buf.dropped);
        if bytes.len() > LOG_CAPACITY {
            let excess = bytes.len() - LOG_CAPACITY;
            bytes.drain(..excess);
            dropped += excess as u64;
        }
        (bytes, dropped)
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_each_invocations_bytes_once() {
        let sink = LogSink::new();
        sink.append(b"one\n");
        let mut other = sink.clone();
        other.write(Bytes::from_static(b"two\n")).unwrap();
        assert_eq!(sink.take(), (b"one\ntwo\n".to_vec(), 0));
        assert_eq!(sink.take(), (Vec::new(), 0));
    }

    #[test]
    fn keeps_the_tail_when_over_capacity() {
        let sink = LogSink::new();
        for i in 0..3 * LOG_CAPACITY / 1024 {
            sink.append(&[b'a' + (i % 26) as u8; 1024]);
        }
        sink.append(b"last line");
        let (bytes, dropped) = sink.take();
        assert_eq!(bytes.len(), LOG_CAPACITY);
        assert!(bytes.ends_with(b"last line"));
        assert_eq!(dropped as usize + bytes.len(), 3 * LOG_CAPACITY + 9);
    }
}
