//! What an unload sent to S3, counted as it goes (clones of the [`Arc`] share the counts).

use std::sync::atomic::{AtomicU64, Ordering};

/// Write-side counters of one invocation.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Requests that write: PutObject, CreateMultipartUpload, UploadPart,
    /// CompleteMultipartUpload, AbortMultipartUpload, DeleteObject.
    requests: AtomicU64,
    /// Body bytes sent in PutObject and UploadPart.
    bytes: AtomicU64,
    /// Objects created (data files and the manifest).
    created: AtomicU64,
}

impl WriteStats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn wrote(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn objects(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}
