//! Cranelift's incremental compilation cache on disk: a compiled function is kept under the
//! hash of its IR and the compiler's settings, so recompiling a component after a small
//! change to the guest compiles only the functions that changed. The whole-artifact cache
//! ([`super::ArtifactCache`]) misses on any change; this is what makes that miss cheap.
//!
//! One file per function, `incremental/<2 hex>/<62 hex>`, written to a temporary name and
//! renamed, so a reader never sees half an entry. An unreadable entry is a miss: Cranelift
//! then compiles the function again and checks nothing it did not compile itself.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use wasmtime::CacheStore;

/// The directory-backed store.
#[derive(Debug)]
pub struct IncrementalStore {
    dir: PathBuf,
}

impl IncrementalStore {
    /// A store under `cache_dir/incremental`, created if missing.
    pub fn new(cache_dir: &Path) -> std::io::Result<Self> {
        let dir = cache_dir.join("incremental");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let hex = blake3::hash(key).to_hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }
}

impl CacheStore for IncrementalStore {
    /// The entry, marked as just used for [`prune`].
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        use std::io::Read;
        let mut file = std::fs::File::options()
            .read(true)
            .append(true)
            .open(self.path(key))
            .ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let _ = file.set_modified(std::time::SystemTime::now());
        Some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let Some(parent) = path.parent() else {
            return false;
        };
        if std::fs::create_dir_all(parent).is_err() {
            return false;
        }
        let temp = parent.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .map_or_else(Default::default, |n| n.to_string_lossy()),
            std::process::id()
        ));
        let written = std::fs::write(&temp, &value).and_then(|()| std::fs::rename(&temp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.is_ok()
    }
}

/// The most bytes the store keeps: a compile of the stage query component writes about 300 MB
/// of entries, and each small change to it some tens more.
pub const BUDGET: u64 = 1 << 30;

/// Past `budget` bytes, removes the least recently used entries of the store under
/// `cache_dir` until a quarter of the budget is free again; best effort, as another host may
/// be compiling or pruning too.
pub fn prune(cache_dir: &Path, budget: u64) {
    let Ok(shards) = std::fs::read_dir(cache_dir.join("incremental")) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = shards
        .flatten()
        .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|file| {
            let meta = file.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), file.path()))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    if total <= budget {
        return;
    }
    entries.sort_unstable_by_key(|(modified, _, _)| *modified);
    for (_, len, path) in entries {
        if total <= budget / 4 * 3 {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_missing_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncrementalStore::new(dir.path()).unwrap();
        assert!(store.get(b"f").is_none());
        assert!(store.insert(b"f", vec![1, 2, 3]));
        assert_eq!(store.get(b"f").as_deref(), Some(&[1u8, 2, 3][..]));
        assert!(store.insert(b"f", vec![4]));
        assert_eq!(store.get(b"f").as_deref(), Some(&[4u8][..]));
        assert!(store.get(b"g").is_none());
    }

    /// Past the budget the least recently used entries go, down to three quarters of it; an
    /// entry read since it was written counts as used then.
    #[test]
    fn pruning_keeps_the_entries_used_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncrementalStore::new(dir.path()).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for i in 0..8u8 {
            assert!(store.insert(&[i], vec![0; 100]));
            let file = std::fs::File::options()
                .append(true)
                .open(store.path(&[i]))
                .unwrap();
            file.set_modified(old + std::time::Duration::from_secs(u64::from(i)))
                .unwrap();
        }
        assert!(
            store.get(&[0]).is_some(),
            "entry 0 is now the most recently used"
        );
        prune(dir.path(), 1_000);
        assert!(store.get(&[7]).is_some(), "under budget: nothing goes");
        prune(dir.path(), 500);
        let kept: Vec<u8> = (0..8u8).filter(|i| store.path(&[*i]).exists()).collect();
        assert_eq!(
            kept,
            [0, 6, 7],
            "the least recently used go, down to 375 of 800 bytes"
        );
    }
}
