//! Ranges of objects fetched ahead of the reads that need them, during one invocation: a
//! scan that will read whole column chunks of every row group has them fetched at once,
//! concurrently, instead of one row group's round trip after another
//! ([`crate::engine`]'s prefetch). A later read inside a kept range is answered from it.
//!
//! Bounded by the budget the caller gives [`Prefetched::keep`]: past it, ranges are not
//! kept and reads go to S3 as they would have.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;

/// Per key, the kept ranges with where they start.
type Ranges = HashMap<String, Vec<(u64, Bytes)>>;

#[derive(Default)]
pub struct Prefetched {
    /// The kept ranges, and the bytes kept in all.
    kept: Mutex<(Ranges, usize)>,
}

impl Prefetched {
    /// Keeps `bytes`, which start at `start` in the object, if `budget` allows.
    pub fn keep(&self, key: &str, start: u64, bytes: Bytes, budget: usize) -> bool {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (map, total) = &mut *kept;
        if *total + bytes.len() > budget {
            return false;
        }
        *total += bytes.len();
        map.entry(key.to_string()).or_default().push((start, bytes));
        true
    }

    /// The bytes of `range`, if one kept range holds all of it.
    pub fn get(&self, key: &str, range: &Range<u64>) -> Option<Bytes> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (start, bytes) = kept.0.get(key)?.iter().find(|(start, bytes)| {
            *start <= range.start && range.end <= start + bytes.len() as u64
        })?;
        let from = usize::try_from(range.start - start).ok()?;
        let to = usize::try_from(range.end - start).ok()?;
        Some(bytes.slice(from..to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_a_kept_range_are_answered_and_others_are_not() {
        let p = Prefetched::default();
        assert!(p.keep("k", 100, Bytes::from_static(b"abcdefghij"), 15));
        assert_eq!(p.get("k", &(102..105)).as_deref(), Some(&b"cde"[..]));
        assert_eq!(p.get("k", &(100..110)).as_deref(), Some(&b"abcdefghij"[..]));
        assert_eq!(p.get("k", &(95..105)), None);
        assert_eq!(p.get("k", &(105..111)), None);
        assert_eq!(p.get("other", &(102..105)), None);
        // Past the budget nothing more is kept.
        assert!(!p.keep("k", 200, Bytes::from_static(b"0123456789"), 15));
        assert_eq!(p.get("k", &(200..201)), None);
    }
}
