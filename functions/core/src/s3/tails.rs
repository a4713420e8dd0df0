//! The last bytes of objects, as fetched during one invocation: the first request for a
//! Parquet file is a suffix GET (its size, footer and often page index in one response),
//! and every later read that falls in those bytes is answered from memory; a read that
//! straddles them fetches only the part before.
//!
//! Bounded: past [`MAX_TAIL_BYTES`] in all, tails are not kept (reads then go to S3).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// The most tail bytes kept per invocation, all objects together.
pub const MAX_TAIL_BYTES: usize = 64 * 1024 * 1024;

struct Tail {
    /// Where `bytes` start in the object.
    start: u64,
    bytes: Bytes,
    size: u64,
}

/// How to answer a read of `range`.
#[derive(Debug, PartialEq, Eq)]
pub enum Split {
    /// Entirely in the kept tail.
    Cached(Bytes),
    /// `fetch` from S3, then append `cached`.
    Partly { fetch: Range<u64>, cached: Bytes },
    /// Nothing kept for it.
    Miss,
}

#[derive(Default)]
pub struct Tails {
    kept: Mutex<(HashMap<String, Tail>, usize)>,
}

impl Tails {
    /// Keeps `bytes`, which start at `start` in an object of `size` bytes and run to its end,
    /// unless a longer tail is kept already or the budget is spent.
    pub fn keep(&self, key: &str, start: u64, bytes: Bytes, size: u64) {
        if start + bytes.len() as u64 != size || bytes.is_empty() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (map, total) = &mut *kept;
        let old = map.get(key).map(|t| (t.start, t.bytes.len(), t.size));
        if let Some((old_start, _, old_size)) = old
            && old_size == size
            && old_start <= start
        {
            return;
        }
        let freed = old.map_or(0, |(_, len, _)| len);
        if *total - freed + bytes.len() > MAX_TAIL_BYTES {
            return;
        }
        *total = *total - freed + bytes.len();
        map.insert(key.to_string(), Tail { start, bytes, size });
    }

    /// The object's size, if a tail of it is kept.
    pub fn size(&self, key: &str) -> Option<u64> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.0.get(key).map(|t| t.size)
    }

    /// How to read `range` of `key`.
    pub fn split(&self, key: &str, range: &Range<u64>) -> Split {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tail) = kept.0.get(key) else {
            return Split::Miss;
        };
        if range.end > tail.size || range.start >= range.end || range.end <= tail.start {
            return Split::Miss;
        }
        let end = (range.end - tail.start) as usize;
        if range.start >= tail.start {
            let start = (range.start - tail.start) as usize;
            return Split::Cached(tail.bytes.slice(start..end));
        }
        Split::Partly {
            fetch: range.start..tail.start,
            cached: tail.bytes.slice(..end),
        }
    }
}

/// `head` then `rest`.
pub fn join(head: &Bytes, rest: &Bytes) -> Bytes {
    let mut all = BytesMut::with_capacity(head.len() + rest.len());
    all.extend_from_slice(head);
    all.extend_from_slice(rest);
    all.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tails() -> Tails {
        let t = Tails::default();
        // Bytes 90..100 of a 100-byte object.
        t.keep("k", 90, Bytes::from_static(b"0123456789"), 100);
        t
    }

    #[test]
    fn reads_inside_the_tail_are_answered_from_it() {
        let t = tails();
        assert_eq!(
            t.split("k", &(92..95)),
            Split::Cached(Bytes::from_static(b"234"))
        );
        assert_eq!(
            t.split("k", &(90..100)),
            Split::Cached(Bytes::from_static(b"0123456789"))
        );
        assert_eq!(t.size("k"), Some(100));
    }

    #[test]
    fn a_straddling_read_fetches_only_the_part_before() {
        assert_eq!(
            tails().split("k", &(50..93)),
            Split::Partly {
                fetch: 50..90,
                cached: Bytes::from_static(b"012")
            }
        );
    }

    #[test]
    fn other_reads_miss() {
        let t = tails();
        assert_eq!(t.split("k", &(10..90)), Split::Miss);
        assert_eq!(t.split("k", &(95..101)), Split::Miss);
        assert_eq!(t.split("other", &(95..96)), Split::Miss);
        assert_eq!(t.split("k", &(95..95)), Split::Miss);
    }

    #[test]
    fn only_tails_that_reach_the_end_and_fit_the_budget_are_kept() {
        let t = Tails::default();
        t.keep("mid", 10, Bytes::from_static(b"abc"), 100);
        assert_eq!(t.size("mid"), None);
        t.keep(
            "big",
            0,
            Bytes::from(vec![0; MAX_TAIL_BYTES + 1]),
            MAX_TAIL_BYTES as u64 + 1,
        );
        assert_eq!(t.size("big"), None);
        // A longer tail replaces a shorter one; a shorter one does not replace a longer.
        let t = tails();
        t.keep("k", 95, Bytes::from_static(b"56789"), 100);
        assert_eq!(
            t.split("k", &(90..91)),
            Split::Cached(Bytes::from_static(b"0"))
        );
        t.keep("k", 80, Bytes::from_static(b"abcdefghij0123456789"), 100);
        assert_eq!(
            t.split("k", &(80..81)),
            Split::Cached(Bytes::from_static(b"a"))
        );
    }
}
