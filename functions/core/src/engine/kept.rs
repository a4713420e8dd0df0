//! Column index entries kept across the invocations of a warm execution environment, per
//! object version.
//!
//! A filter's column index entries ([`super::column_index`]) cost a round trip of their own,
//! between the footer and the pages they select. The next query of the same file in the same
//! environment (a dashboard's refresh, the next page of a lookup) usually needs the same
//! entries; they are kept here, keyed by endpoint, bucket, key, ETag and size, and used only when this
//! invocation's own GETs of the object (its footer, at least) were answered with that ETag:
//! an overwritten object is a new version whose entries are read anew, and nothing kept
//! reaches an invocation whose credentials could not read the object itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex};

use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// (row group, leaf column).
pub type Entry = (usize, usize);

/// Encoded bytes of the entries kept per environment, over every object (decoded, a small
/// multiple of it); past it, all are dropped.
const MAX_BYTES: u64 = 4 << 20;

/// One object version's entries, with their encoded lengths.
struct Kept {
    e_tag: String,
    size: u64,
    entries: HashMap<Entry, (ColumnIndexMetaData, u64)>,
}

impl Kept {
    fn bytes(&self) -> u64 {
        self.entries.values().map(|(_, len)| *len).sum()
    }
}

static KEPT: LazyLock<Mutex<(HashMap<String, Kept>, u64)>> = LazyLock::new(Mutex::default);

fn id(scope: &str, key: &str) -> String {
    format!("{scope}/{key}")
}

/// Of `wanted`, the entries kept for this version of `key` in `scope` (the store's endpoint
/// and bucket, [`crate::s3::S3Store::scope`]).
pub fn get(
    scope: &str,
    key: &str,
    e_tag: &str,
    size: u64,
    wanted: &BTreeSet<Entry>,
) -> HashMap<Entry, ColumnIndexMetaData> {
    let kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    match kept.0.get(&id(scope, key)) {
        Some(k) if k.e_tag == e_tag && k.size == size => wanted
            .iter()
            .filter_map(|e| Some((*e, k.entries.get(e)?.0.clone())))
            .collect(),
        _ => HashMap::new(),
    }
}

/// Keeps `entries` (each with its encoded length) of this version of `key` in `scope`, replacing
/// those of any other version.
pub fn add(
    scope: &str,
    key: &str,
    e_tag: &str,
    size: u64,
    entries: impl IntoIterator<Item = (Entry, ColumnIndexMetaData, u64)>,
) {
    let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
    let (map, total) = &mut *kept;
    let id = id(scope, key);
    if map
        .get(&id)
        .is_some_and(|k| k.e_tag != e_tag || k.size != size)
        && let Some(old) = map.remove(&id)
    {
        *total -= old.bytes();
    }
    let k = map.entry(id).or_insert_with(|| Kept {
        e_tag: e_tag.to_string(),
        size,
        entries: HashMap::new(),
    });
    for (entry, index, len) in entries {
        if let Some((_, old)) = k.entries.insert(entry, (index, len)) {
            *total -= old;
        }
        *total += len;
    }
    if *total > MAX_BYTES {
        map.clear();
        *total = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ColumnIndexMetaData {
        ColumnIndexMetaData::NONE
    }

    #[test]
    fn entries_are_kept_per_object_version_within_a_byte_budget() {
        let wanted = BTreeSet::from([(0, 0), (1, 0)]);
        add("b", "kept-test/a", "\"v1\"", 100, [((1, 0), index(), 10)]);
        let got = get("b", "kept-test/a", "\"v1\"", 100, &wanted);
        assert_eq!(got.keys().collect::<Vec<_>>(), [&(1, 0)]);
        // Another ETag, another size, another object: nothing.
        assert!(get("b", "kept-test/a", "\"v2\"", 100, &wanted).is_empty());
        assert!(get("b", "kept-test/a", "\"v1\"", 101, &wanted).is_empty());
        assert!(get("b", "kept-test/b", "\"v1\"", 100, &wanted).is_empty());
        assert!(get("other", "kept-test/a", "\"v1\"", 100, &wanted).is_empty());
        // Entries of a new version replace the old version's.
        add("b", "kept-test/a", "\"v2\"", 100, [((0, 0), index(), 10)]);
        assert!(get("b", "kept-test/a", "\"v1\"", 100, &wanted).is_empty());
        let got = get("b", "kept-test/a", "\"v2\"", 100, &wanted);
        assert_eq!(got.keys().collect::<Vec<_>>(), [&(0, 0)]);

        // Past the byte budget everything is dropped. (In this test: the map is global, and
        // tests run at once.)
        let wanted = BTreeSet::from([(0, 0)]);
        add("b", "kept-budget/a", "e", 1, [((0, 0), index(), 100)]);
        assert_eq!(get("b", "kept-budget/a", "e", 1, &wanted).len(), 1);
        add("b", "kept-budget/b", "e", 1, [((0, 0), index(), MAX_BYTES)]);
        assert!(get("b", "kept-budget/a", "e", 1, &wanted).is_empty());
        assert!(get("b", "kept-budget/b", "e", 1, &wanted).is_empty());
    }
}
