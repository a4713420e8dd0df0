//! Counters of what one invocation asked of S3, and the first S3 failure it met.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::FunctionError;

/// Shared by the store and the handler of one invocation.
#[derive(Debug, Default)]
pub struct IoStats {
    requests: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<FunctionError>>,
    /// The object whose streamed body last gave bytes: the file a reader failing on them
    /// was reading.
    reading: Mutex<Option<String>>,
}

/// A snapshot of [`IoStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub requests: u64,
    pub gets: u64,
    pub lists: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    Get,
    List,
}

impl IoStats {
    pub(crate) fn request(&self, kind: Request) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match kind {
            Request::Get => &self.gets,
            Request::List => &self.lists,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn reading(&self, key: &str) {
        let mut slot = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() != Some(key) {
            *slot = Some(key.to_string());
        }
    }

    /// The key of the object a streamed read last took bytes from.
    pub fn last_streamed(&self) -> Option<String> {
        self.reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remembers the first failure: it is the root cause when a query fails later.
    pub(crate) fn failed(&self, error: &FunctionError) {
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error.clone());
        }
    }

    pub fn first_error(&self) -> Option<FunctionError> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn counts(&self) -> IoCounts {
        IoCounts {
            requests: self.requests.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}
