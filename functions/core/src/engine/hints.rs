//! The metadata size hint per file: how many bytes from its end a file's first request
//! should fetch.
//!
//! A warm execution environment remembers, per object, how long its footer is and where its
//! page indexes start, so the next query's first request fetches exactly the metadata it
//! needs: the footer alone for `count(*)`, down to the offset index for a LIMIT or a filter
//! (whose column index entries are read after planning, [`super::column_index`]). A file never read before gets the length its siblings in the
//! same query needed (files of one dataset come from one writer), and the first of all
//! [`DEFAULT`]. A hint is only ever a guess: the footer says how long it really is, and a
//! short read is completed by a second request.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use parquet::file::metadata::ParquetMetaData;

/// Which page indexes a query can use, and so are worth a request of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageIndexes {
    /// Page locations: reading only the pages a LIMIT or a row selection needs.
    pub offset_index: bool,
    /// Page min/max statistics: pruning pages by a filter.
    pub column_index: bool,
}

/// Bytes read from the end of a file nothing is known about. Large enough for the footer of
/// a wide file with many row groups; far below DataFusion's 512 KiB default.
pub const DEFAULT: u64 = 64 * 1024;
/// Objects remembered per execution environment.
const MAX_ENTRIES: usize = 16_384;

/// The lengths from the end of a file that its metadata takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lengths {
    /// The footer, its length field and the magic.
    pub footer: u64,
    /// Down to the first offset index (the footer's length if the file has none).
    pub offset_index: u64,
}

impl Lengths {
    /// From a file's decoded footer: `footer_len` is its Thrift length plus 8.
    pub fn of(metadata: &ParquetMetaData, size: u64, footer_len: u64) -> Self {
        let offset_start = metadata
            .row_groups()
            .iter()
            .flat_map(|rg| rg.columns())
            .filter_map(|chunk| u64::try_from(chunk.offset_index_offset()?).ok())
            .min()
            .unwrap_or(u64::MAX);
        Self {
            footer: footer_len,
            offset_index: if offset_start < size {
                (size - offset_start).max(footer_len)
            } else {
                footer_len
            },
        }
    }

    /// The bytes a query wanting `want` should read first.
    pub fn wanted(&self, want: PageIndexes) -> u64 {
        if want.offset_index {
            self.offset_index
        } else {
            self.footer
        }
    }
}

static LEARNED: LazyLock<Mutex<HashMap<String, Lengths>>> = LazyLock::new(Mutex::default);

/// `scope` is the store's endpoint and bucket ([`crate::s3::S3Store::scope`]).
fn id(scope: &str, key: &str) -> String {
    format!("{scope}/{key}")
}

/// What this environment learned about `key` in `scope`.
pub fn learned(scope: &str, key: &str) -> Option<Lengths> {
    let map = LEARNED.lock().unwrap_or_else(|p| p.into_inner());
    map.get(&id(scope, key)).copied()
}

/// The learned first read of `key` in `scope` for a query wanting `want`.
pub fn first_read(scope: &str, key: &str, want: PageIndexes) -> Option<u64> {
    learned(scope, key).map(|l| l.wanted(want))
}

/// Remembers `lengths` for `key` in `scope`.
pub fn learn(scope: &str, key: &str, lengths: Lengths) {
    let mut map = LEARNED.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_ENTRIES && !map.contains_key(&id(scope, key)) {
        map.clear();
    }
    map.insert(id(scope, key), lengths);
}

/// The first read of a file like `sibling`: its length and a sixteenth more, for footers
/// whose statistics differ in length.
pub fn from_sibling(sibling: u64) -> u64 {
    sibling + sibling / 16 + 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_length_grows_with_the_indexes() {
        let l = Lengths {
            footer: 100,
            offset_index: 300,
        };
        let want = |offset_index, column_index| PageIndexes {
            offset_index,
            column_index,
        };
        assert_eq!(l.wanted(want(false, false)), 100);
        assert_eq!(l.wanted(want(true, false)), 300);
        // The column index is read after planning, for the row groups a filter may read.
        assert_eq!(l.wanted(want(true, true)), 300);
        assert!((1001..1200).contains(&from_sibling(1000)));
    }

    #[test]
    fn learned_lengths_are_per_object() {
        let l = Lengths {
            footer: 10,
            offset_index: 10,
        };
        learn("b", "hints-test/a", l);
        assert_eq!(learned("b", "hints-test/a"), Some(l));
        assert_eq!(learned("b", "hints-test/b"), None);
        assert_eq!(learned("other", "hints-test/a"), None);
    }
}
