//! Ranges of objects fetched ahead of the reads that need them, during one invocation: a
//! scan that will read whole column chunks of every row group has them requested ahead
//! ([`crate::engine`]'s prefetch) while DataFusion decodes the row group before, instead of
//! one row group's round trip after another.
//!
//! A fetch is kept as a shared future, started by the driver ([`Prefetched::drive`]) or by
//! the first read inside it, whichever polls it first. A later read inside a kept range
//! waits for that fetch rather than sending its own; a fetch that failed answers nothing,
//! and the read goes to S3 as it would have (and reports the failure as its own).
//!
//! The driver keeps a window: it starts fetches in the order they were kept while the bytes
//! started and not yet read stay within its budget, and a fetch leaves the window (and
//! memory) once reads have asked for every range it was kept for. So a scan of any size is
//! fetched ahead of its reads by at most the budget, and the fetches go on while the plan
//! waits on something else (a writer's upload): the window refills as the reads catch up.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

/// One GET under way or done: its bytes, or `None` if it failed.
pub type Fetch = Shared<BoxFuture<'static, Option<Bytes>>>;

/// A kept fetch, found by key; the fetch itself is its [`Slot`].
struct Entry {
    /// Its place in [`Kept::order`].
    id: usize,
    range: Range<u64>,
    /// The ranges it was kept for that no read has asked for yet.
    unread: Vec<Range<u64>>,
}

/// A kept fetch, in the driver's order: its length and the fetch, `None` once read through.
struct Slot {
    len: u64,
    fetch: Option<Fetch>,
    started: bool,
}

#[derive(Default)]
struct Kept {
    by_key: HashMap<String, Vec<Entry>>,
    order: Vec<Slot>,
    /// Bytes of the fetches the driver started that reads have not gone through yet.
    held: u64,
    /// The driver, waiting for the window to move.
    driver: Option<Waker>,
}

impl Kept {
    /// Counts `range` of `key` read (from a kept fetch or from S3), and lets go of the
    /// fetches read through.
    fn read(&mut self, key: &str, range: &Range<u64>) {
        let Some(entries) = self.by_key.get_mut(key) else {
            return;
        };
        let mut through = Vec::new();
        entries.retain_mut(|e| {
            if e.range.end <= range.start || range.end <= e.range.start {
                return true;
            }
            e.unread = subtract(&e.unread, range);
            if e.unread.is_empty() {
                through.push(e.id);
            }
            !e.unread.is_empty()
        });
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        if through.is_empty() {
            return;
        }
        for id in through {
            let slot = &mut self.order[id];
            slot.fetch = None;
            if slot.started {
                self.held -= slot.len;
            }
        }
        // The window moved.
        if let Some(driver) = self.driver.take() {
            driver.wake();
        }
    }
}

/// `ranges` less `cut`.
fn subtract(ranges: &[Range<u64>], cut: &Range<u64>) -> Vec<Range<u64>> {
    let mut left = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.end <= cut.start || cut.end <= r.start {
            left.push(r.clone());
            continue;
        }
        if r.start < cut.start {
            left.push(r.start..cut.start);
        }
        if cut.end < r.end {
            left.push(cut.end..r.end);
        }
    }
    left
}

#[derive(Default)]
pub struct Prefetched {
    kept: Mutex<Kept>,
}

impl Prefetched {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `fetch`, which will yield the bytes of `range` of `key`, for the reads of
    /// `wanted` (ranges inside it).
    pub fn keep(&self, key: &str, range: Range<u64>, wanted: Vec<Range<u64>>, fetch: Fetch) {
        let mut kept = self.lock();
        let id = kept.order.len();
        kept.order.push(Slot {
            len: range.end - range.start,
            fetch: Some(fetch),
            started: false,
        });
        kept.by_key.entry(key.to_string()).or_default().push(Entry {
            id,
            range,
            unread: wanted,
        });
    }

    /// The bytes of `range`, if one kept fetch covers all of it and succeeds; waits for it.
    /// Either way `range` counts as read: a fetch kept for it alone is let go.
    pub async fn get(&self, key: &str, range: &Range<u64>) -> Option<Bytes> {
        let (start, fetch) = {
            let mut kept = self.lock();
            let found = kept.by_key.get(key).and_then(|entries| {
                let e = entries
                    .iter()
                    .find(|e| e.range.start <= range.start && range.end <= e.range.end)?;
                Some((e.range.start, kept.order[e.id].fetch.clone()?))
            });
            kept.read(key, range);
            found?
        };
        let bytes = fetch.await?;
        let from = usize::try_from(range.start - start).ok()?;
        let to = usize::try_from(range.end - start).ok()?;
        (to <= bytes.len()).then(|| bytes.slice(from..to))
    }

    /// Drives the kept fetches in the order they were kept (the order the reads will want
    /// them), `parallel` at a time, while the bytes started and not yet read stay within
    /// `budget` (one fetch always may start); done when every fetch was started or read
    /// through and has finished. Dropping it stops the ones not started.
    pub fn drive(self: &Arc<Self>, parallel: usize, budget: u64) -> BoxFuture<'static, ()> {
        let this = Arc::clone(self);
        let mut next = 0;
        let mut running = FuturesUnordered::new();
        futures::future::poll_fn(move |cx| {
            loop {
                let all_started = {
                    let mut kept = this.lock();
                    kept.driver = Some(cx.waker().clone());
                    while running.len() < parallel.max(1) && next < kept.order.len() {
                        let held = kept.held;
                        let slot = &mut kept.order[next];
                        let Some(fetch) = slot.fetch.clone() else {
                            next += 1; // read through before its turn
                            continue;
                        };
                        if held > 0 && held + slot.len > budget {
                            break;
                        }
                        slot.started = true;
                        let len = slot.len;
                        kept.held += len;
                        running.push(fetch);
                        next += 1;
                    }
                    next == kept.order.len()
                };
                match running.poll_next_unpin(cx) {
                    Poll::Ready(Some(_)) => continue,
                    Poll::Ready(None) if all_started => return Poll::Ready(()),
                    _ => return Poll::Pending,
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of ranges that hold one
mod tests {
    use super::*;
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
        p.keep(
            "k",
            100..110,
            vec![100..110],
            fetch(Some(b"abcdefghij"), &runs),
        );
        futures::executor::block_on(async {
            assert_eq!(p.get("k", &(102..105)).await.as_deref(), Some(&b"cde"[..]));
            assert_eq!(p.get("other", &(102..105)).await, None);
            // Bytes 100..102 and 105..110 were not asked for yet: still kept.
            assert_eq!(
                p.get("k", &(100..110)).await.as_deref(),
                Some(&b"abcdefghij"[..])
            );
            // Read through: let go.
            assert_eq!(p.get("k", &(100..102)).await, None);
        });
        // One GET, however many reads it answered.
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A read no fetch covers goes to S3, and counts as read for the fetches it overlaps.
        p.keep("j", 0..10, vec![0..10], fetch(Some(b"abcdefghij"), &runs));
        futures::executor::block_on(async {
            assert_eq!(p.get("j", &(5..15)).await, None);
            assert_eq!(p.get("j", &(0..5)).await.as_deref(), Some(&b"abcde"[..]));
            assert_eq!(p.get("j", &(0..5)).await, None, "read through");
        });
    }

    #[test]
    fn a_failed_or_short_fetch_answers_nothing() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Prefetched::default();
        p.keep("failed", 0..10, vec![0..10], fetch(None, &runs));
        // An object shorter than the range asked for.
        p.keep("short", 0..10, vec![0..10], fetch(Some(b"abc"), &runs));
        futures::executor::block_on(async {
            assert_eq!(p.get("failed", &(0..5)).await, None);
            assert_eq!(p.get("short", &(0..2)).await.as_deref(), Some(&b"ab"[..]));
            assert_eq!(p.get("short", &(2..8)).await, None);
        });
    }

    #[test]
    fn the_driver_runs_every_fetch_once_in_the_order_kept() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Arc::new(Prefetched::default());
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            let range = (i as u64 * 10)..(i as u64 * 10 + 3);
            p.keep(key, range.clone(), vec![range], fetch(Some(b"xyz"), &runs));
        }
        futures::executor::block_on(p.drive(2, u64::MAX));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // One at a time, they start in the order they were kept, across keys.
        let started = Arc::new(Mutex::new(Vec::new()));
        let q = Arc::new(Prefetched::default());
        for (key, start) in [("z", 50u64), ("a", 10), ("z", 0)] {
            let started = Arc::clone(&started);
            let fetch = async move {
                started.lock().unwrap().push((key, start));
                Some(Bytes::from_static(b"x"))
            };
            q.keep(
                key,
                start..start + 1,
                vec![start..start + 1],
                fetch.boxed().shared(),
            );
        }
        futures::executor::block_on(q.drive(1, u64::MAX));
        assert_eq!(*started.lock().unwrap(), [("z", 50), ("a", 10), ("z", 0)]);
        // Done fetches answer without running again.
        futures::executor::block_on(async {
            assert_eq!(p.get("b", &(10..13)).await.as_deref(), Some(&b"xyz"[..]));
        });
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// The driver starts what the budget holds, and the next fetch once reads went through
    /// one: a scan of any size is fetched ahead by at most the budget.
    #[test]
    fn the_window_moves_as_reads_go_through() {
        let runs = Arc::new(AtomicUsize::new(0));
        let p = Arc::new(Prefetched::default());
        for i in 0..3u64 {
            // Two chunks per fetch, a gap between them.
            let wanted = vec![i * 10..i * 10 + 4, i * 10 + 6..i * 10 + 10];
            p.keep(
                "k",
                i * 10..i * 10 + 10,
                wanted,
                fetch(Some(b"0123456789"), &runs),
            );
        }
        let mut drive = p.drive(8, 15);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(drive.poll_unpin(&mut cx).is_pending());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "10 bytes held, 10 more would pass 15"
        );
        futures::executor::block_on(async {
            assert_eq!(p.get("k", &(0..4)).await.as_deref(), Some(&b"0123"[..]));
        });
        assert!(drive.poll_unpin(&mut cx).is_pending());
        assert_eq!(runs.load(Ordering::SeqCst), 1, "half read: still held");
        futures::executor::block_on(async {
            assert_eq!(p.get("k", &(6..10)).await.as_deref(), Some(&b"6789"[..]));
        });
        assert!(drive.poll_unpin(&mut cx).is_pending());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The third fetch read before its turn: the read started it; the driver skips it.
        futures::executor::block_on(async {
            assert_eq!(
                p.get("k", &(20..30)).await.as_deref(),
                Some(&b"0123456789"[..])
            );
        });
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(drive.poll_unpin(&mut cx).is_ready());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn subtracting_a_read() {
        assert_eq!(subtract(&[0..10, 20..30], &(5..25)), vec![0..5, 25..30]);
        assert_eq!(subtract(&[0..10], &(0..10)), Vec::<Range<u64>>::new());
        assert_eq!(subtract(&[0..10], &(3..4)), vec![0..3, 4..10]);
        assert_eq!(subtract(&[0..10], &(10..20)), vec![0..10]);
    }
}
