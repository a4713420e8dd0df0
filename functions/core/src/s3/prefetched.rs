//! Ranges of objects fetched ahead of the reads that need them, during one invocation: a
//! scan that will read whole column chunks of every row group has them all requested at
//! once ([`crate::engine`]'s prefetch) while DataFusion decodes the first, instead of one
//! row group's round trip after another.
//!
//! A fetch is kept as a shared future, started by the driver ([`Prefetched::drive`]) or by
//! the first read inside it, whichever polls it first. A later read inside a kept range waits for that fetch rather
//! than sending its own; a fetch that failed answers nothing, and the read goes to S3 as it
//! would have (and reports the failure as its own). What is kept is bounded by the caller,
//! which registers no more than its budget.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};

/// One GET under way or done: its bytes, or `None` if it failed.
pub type Fetch = Shared<BoxFuture<'static, Option<Bytes>>>;

/// The kept fetches: per key with their ranges, and all in the order they were kept.
#[derive(Default)]
struct Kept {
    by_key: HashMap<String, Vec<(Range<u64>, Fetch)>>,
    order: Vec<Fetch>,
}

#[derive(Default)]
pub struct Prefetched {
    kept: Mutex<Kept>,
}

impl Prefetched {
    /// Keeps `fetch`, which will yield the bytes of `range` of `key`.
    pub fn keep(&self, key: &str, range: Range<u64>, fetch: Fetch) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.order.push(fetch.clone());
        kept.by_key
            .entry(key.to_string())
            .or_default()
            .push((range, fetch));
    }

    /// The bytes of `range`, if one kept fetch covers all of it and succeeds; waits for it.
    pub async fn get(&self, key: &str, range: &Range<u64>) -> Option<Bytes> {
        let (start, fetch) = {
            let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let (kept, fetch) = kept
                .by_key
                .get(key)?
                .iter()
                .find(|(kept, _)| kept.start <= range.start && range.end <= kept.end)?;
            (kept.start, fetch.clone())
        };
        let bytes = fetch.await?;
        let from = usize::try_from(range.start - start).ok()?;
        let to = usize::try_from(range.end - start).ok()?;
        (to <= bytes.len()).then(|| bytes.slice(from..to))
    }

    /// Drives every kept fetch, `parallel` at a time, in the order they were kept (the order
    /// the reads will want them), until all are done. Dropping it stops the ones not started.
    pub fn drive(&self, parallel: usize) -> BoxFuture<'static, ()> {
        let fetches: Vec<Fetch> = {
            let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.order.clone()
        };
        futures::stream::iter(fetches)
            .buffer_unordered(parallel.max(1))
            .for_each(|_| async {})
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fetch(bytes: Option<&'static [u8]>, polls: &Arc<AtomicUsize>) -> Fetch {
        let polls = Arc::clone(polls);
        async move {
            polls.fetch_add(1, Ordering::SeqCst);
            bytes.map(Bytes::from_static)
        }
        .boxed()
        .shared()
    }

    #[test]
    fn reads_inside_a_kept_range_are_answered_by_its_one_fetch() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Prefetched::default();
        p.keep("k", 100..110, fetch(Some(b"abcdefghij"), &runs));
        futures::executor::block_on(async {
            assert_eq!(p.get("k", &(102..105)).await.as_deref(), Some(&b"cde"[..]));
            assert_eq!(
                p.get("k", &(100..110)).await.as_deref(),
                Some(&b"abcdefghij"[..])
            );
            assert_eq!(p.get("k", &(95..105)).await, None);
            assert_eq!(p.get("k", &(105..111)).await, None);
            assert_eq!(p.get("other", &(102..105)).await, None);
        });
        // One GET, however many reads it answered.
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_or_short_fetch_answers_nothing() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Prefetched::default();
        p.keep("failed", 0..10, fetch(None, &runs));
        // An object shorter than the range asked for.
        p.keep("short", 0..10, fetch(Some(b"abc"), &runs));
        futures::executor::block_on(async {
            assert_eq!(p.get("failed", &(0..5)).await, None);
            assert_eq!(p.get("short", &(0..2)).await.as_deref(), Some(&b"ab"[..]));
            assert_eq!(p.get("short", &(2..8)).await, None);
        });
    }

    #[test]
    fn the_driver_runs_every_fetch_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Prefetched::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            p.keep(
                key,
                (i as u64 * 10)..(i as u64 * 10 + 3),
                fetch(Some(b"xyz"), &runs),
            );
        }
        futures::executor::block_on(p.drive(2));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // One at a time, they start in the order they were kept, across keys.
        let started = Arc::new(Mutex::new(Vec::new()));
        let q = Prefetched::default();
        for (key, start) in [("z", 50u64), ("a", 10), ("z", 0)] {
            let started = Arc::clone(&started);
            let fetch = async move {
                started.lock().unwrap().push((key, start));
                Some(Bytes::from_static(b"x"))
            };
            q.keep(key, start..start + 1, fetch.boxed().shared());
        }
        futures::executor::block_on(q.drive(1));
        assert_eq!(*started.lock().unwrap(), [("z", 50), ("a", 10), ("z", 0)]);
        // Done fetches answer without running again.
        futures::executor::block_on(async {
            assert_eq!(p.get("b", &(10..13)).await.as_deref(), Some(&b"xyz"[..]));
        });
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
