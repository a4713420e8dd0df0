//! Compile once: the compiled form of a component is cached on disk, keyed by the
//! component's BLAKE3 hash, the wasmtime version and the engine's settings
//! (`Engine::precompile_compatibility_hash`). Each artifact is written with its own BLAKE3
//! digest beside it, and is loaded only if its bytes still match that digest; a missing,
//! stale or corrupt entry is compiled again and replaced, never trusted.
//!
//! A cache hit reads neither file in full. Both hashes are remembered with the
//! [`FileIdentity`] of the bytes they cover (device, inode, size, times): the component's
//! hash in `wasm/`, the artifact's beside it. While a file's identity holds, its hash holds;
//! when it moves (a rebuild, a rewrite in place, a restore from elsewhere), the file is
//! hashed again before it is trusted. The artifact is then mapped from a sealed private
//! copy ([`sealed`]), never from the cache directory.
//!
//! Entries are written to a temporary file and renamed into place, so a reader never sees a
//! half-written artifact, and concurrent writers of one key agree on its content.

mod identity;
mod incremental;
#[cfg(target_os = "linux")]
mod sealed;

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;
pub use identity::FileIdentity;
pub use incremental::IncrementalStore;

/// How a component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified cache entry.
    Hit,
    /// Not in the cache (or no cache): compiled.
    Compiled,
    /// In the cache but not trusted: compiled again.
    Recompiled { reason: String },
}

/// A component ready to instantiate, and what loading it cost.
pub struct Loaded {
    pub component: Component,
    pub outcome: CacheOutcome,
    /// Cranelift's time, when it ran.
    pub compile_time: Option<Duration>,
    /// Everything a cache hit costs, from the component's path to a component ready to
    /// instantiate: `key_time`, `verify_time` and `deserialize_time`.
    pub load_time: Duration,
    /// Finding the component's hash: its identity, or reading and hashing it.
    pub key_time: Duration,
    /// Checking the cache entry (its identity, or a full BLAKE3 pass) and copying it into
    /// sealed memory.
    pub verify_time: Duration,
    /// `Component::deserialize` of the verified bytes.
    pub deserialize_time: Duration,
    /// The cache entry, when there is a cache.
    pub artifact: Option<PathBuf>,
}

/// Entries kept at most; the least recently used go first. A stage query entry is ~320 MB.
pub const MAX_ENTRIES: usize = 6;
/// Remembered component hashes kept at most (a few dozen bytes each).
const MAX_HASHES: usize = 256;

/// A directory of compiled components, bounded to [`MAX_ENTRIES`].
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

/// A verified entry: the component, the time its check took and its deserialization's.
type Found = (Component, Duration, Duration);

impl ArtifactCache {
    /// Uses (and creates, private to this user) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("wasm"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for a component of this BLAKE3 hash under this engine.
    pub fn key(engine: &Engine, component_hash: &blake3::Hash) -> String {
        struct Blake3(blake3::Hasher);
        impl Hasher for Blake3 {
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
            fn finish(&self) -> u64 {
                0
            }
        }
        // The compatibility hash covers the target, Cranelift's flags, the engine's tunables
        // and wasm features, and the wasmtime version.
        let mut settings = Blake3(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut settings);
        let component = component_hash.to_hex();
        let settings = settings.0.finalize().to_hex();
        format!("{}-{}", &component[..32], &settings[..16])
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.cwasm")),
            self.dir.join(format!("{key}.cwasm.blake3")),
        )
    }

    /// Where the hash of the component file with this identity is remembered.
    fn hash_record(&self, identity: &FileIdentity) -> PathBuf {
        let name = blake3::hash(identity.encode().as_bytes()).to_hex();
        self.dir.join("wasm").join(&name[..32])
    }

    /// The component's BLAKE3 hash, from the record of its file's identity when there is
    /// one; else the file is read and hashed, and the bytes returned for a compile.
    fn component_hash(&self, path: &Path) -> Result<(blake3::Hash, Option<Vec<u8>>), LoadError> {
        let read_error = |source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let before = FileIdentity::of_file(&file);
        if let Some(identity) = &before
            && let Ok(hex) = std::fs::read_to_string(self.hash_record(identity))
            && let Ok(hash) = blake3::Hash::from_hex(hex.trim())
        {
            return Ok((hash, None));
        }
        let mut wasm = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut wasm).map_err(read_error)?;
        let hash = blake3::hash(&wasm);
        let after = FileIdentity::of_file(&file);
        // Remembered only if nothing wrote the file while it was read.
        if let Some(identity) = before.filter(|b| Some(*b) == after) {
            let record = self.hash_record(&identity);
            if write_atomically(&record, hash.to_hex().as_bytes()).is_ok() {
                prune_files(
                    &self.dir.join("wasm"),
                    |_| true,
                    MAX_HASHES,
                    |p| p.to_path_buf(),
                );
            }
        }
        Ok((hash, Some(wasm)))
    }

    /// The verified entry, or why there is none to trust. The digest record beside the
    /// artifact holds its BLAKE3 digest and the identity of the file it was last checked
    /// against; a file of another identity is read in full and checked again.
    fn lookup(&self, engine: &Engine, key: &str) -> Result<Found, Option<String>> {
        let (artifact, digest_path) = self.paths(key);
        let started = Instant::now();
        let mut file = match std::fs::File::open(&artifact) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
            Err(e) => return Err(Some(format!("cannot read {}: {e}", artifact.display()))),
        };
        let record = std::fs::read_to_string(&digest_path)
            .map_err(|e| Some(format!("no digest beside the artifact ({e})")))?;
        let mut lines = record.lines();
        let expected = lines.next().unwrap_or_default().trim().to_string();
        let checked = lines.next().and_then(FileIdentity::decode);
        let before = FileIdentity::of_file(&file);
        let trusted = before.is_some() && before == checked;
        let (bytes, digest_now) = read_entry(&mut file, trusted)
            .map_err(|e| Some(format!("cannot read {}: {e}", artifact.display())))?;
        if FileIdentity::of_file(&file) != before {
            return Err(Some("the artifact changed while it was read".to_string()));
        }
        if let Some(digest_now) = digest_now {
            if digest_now != expected {
                return Err(Some("the artifact does not match its digest".to_string()));
            }
            if before.is_some() {
                let _ = write_digest_record(&digest_path, &expected, before.as_ref());
            }
        }
        let verify_time = started.elapsed();
        let started = Instant::now();
        // SAFETY: these bytes are exactly what `precompile_component` wrote for an engine with
        // this version and these settings (both are in the key), as the digest recorded when
        // they were written shows (checked now, or under this same file identity before). They
        // are a sealed private copy (or in memory), so they cannot change after the check.
        let component = unsafe { bytes.deserialize(engine) }
            .map_err(|e| Some(format!("wasmtime refused the artifact: {e}")))?;
        Ok((component, verify_time, started.elapsed()))
    }

    fn store(&self, key: &str, artifact_bytes: &[u8]) -> std::io::Result<()> {
        let (artifact, digest_path) = self.paths(key);
        write_atomically(&artifact, artifact_bytes)?;
        let identity = std::fs::File::open(&artifact)
            .ok()
            .as_ref()
            .and_then(FileIdentity::of_file);
        write_digest_record(&digest_path, &digest(artifact_bytes), identity.as_ref())?;
        self.prune(MAX_ENTRIES);
        incremental::prune(&self.dir, incremental::BUDGET);
        Ok(())
    }

    /// Marks an entry as just used, for [`ArtifactCache::prune`]; best effort. The digest
    /// record is touched, not the artifact, whose identity must not move.
    fn touch(&self, key: &str) {
        let (_, digest_path) = self.paths(key);
        if let Ok(file) = std::fs::File::options().append(true).open(&digest_path) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes all but the `keep` most recently used entries (and their digests); best
    /// effort, as another host may be pruning too.
    pub fn prune(&self, keep: usize) {
        prune_files(
            &self.dir,
            |p| p.extension().is_some_and(|x| x == "cwasm"),
            keep,
            |p| p.with_extension("cwasm.blake3"),
        );
    }
}

/// Keeps the `keep` files of `dir` chosen by `select` whose `stamp` file was modified last;
/// removes the others and their stamps. Best effort.
fn prune_files(
    dir: &Path,
    select: impl Fn(&Path) -> bool,
    keep: usize,
    stamp: impl Fn(&Path) -> PathBuf,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let modified = |p: &Path| std::fs::metadata(p).ok()?.modified().ok();
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && select(p))
        .filter_map(|p| Some((modified(&stamp(&p)).or_else(|| modified(&p))?, p)))
        .collect();
    files.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, path) in files.into_iter().skip(keep) {
        let _ = std::fs::remove_file(stamp(&path));
        let _ = std::fs::remove_file(&path);
    }
}

/// An entry's bytes where nothing can change them, and their digest when they were read in
/// full to get it.
enum EntryBytes {
    #[cfg(target_os = "linux")]
    Sealed(sealed::Sealed),
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Memory(Vec<u8>),
}

impl EntryBytes {
    /// # Safety
    /// As `Component::deserialize`: the bytes are an artifact this engine's settings wrote.
    unsafe fn deserialize(&self, engine: &Engine) -> wasmtime::Result<Component> {
        match self {
            #[cfg(target_os = "linux")]
            // SAFETY: the caller's; and the sealed copy lives, unchanged, as long as its map.
            Self::Sealed(sealed) => unsafe { Component::deserialize_file(engine, sealed.path()) },
            // SAFETY: the caller's.
            Self::Memory(bytes) => unsafe { Component::deserialize(engine, bytes) },
        }
    }
}

/// The entry's bytes, hashed on the way unless its identity is `trusted`.
fn read_entry(
    file: &mut std::fs::File,
    trusted: bool,
) -> std::io::Result<(EntryBytes, Option<String>)> {
    #[cfg(target_os = "linux")]
    {
        let mut hasher = blake3::Hasher::new();
        let sealed = sealed::Sealed::copy(file, (!trusted).then_some(&mut hasher))?;
        let digest = (!trusted).then(|| hasher.finalize().to_hex().to_string());
        Ok((EntryBytes::Sealed(sealed), digest))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(file, &mut bytes)?;
        let digest = (!trusted).then(|| digest(&bytes));
        Ok((EntryBytes::Memory(bytes), digest))
    }
}

/// The hex BLAKE3 digest recorded beside an artifact.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The record beside an artifact: its digest, then the identity of the file that digest was
/// checked against, when the platform has one.
fn write_digest_record(
    path: &Path,
    digest: &str,
    identity: Option<&FileIdentity>,
) -> std::io::Result<()> {
    let identity = identity
        .map(|i| format!("\n{}", i.encode()))
        .unwrap_or_default();
    write_atomically(path, format!("{digest}{identity}\n").as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Loads `path` through `cache` (or compiles it, without one).
pub fn load(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    path: &Path,
) -> Result<Loaded, LoadError> {
    let compile_error = |e: wasmtime::Error| LoadError::Compile {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let read = || {
        std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let Some(cache) = cache else {
        let wasm = read()?;
        let started = Instant::now();
        let component = Component::from_binary(engine, &wasm).map_err(compile_error)?;
        return Ok(Loaded {
            component,
            outcome: CacheOutcome::Compiled,
            compile_time: Some(started.elapsed()),
            load_time: Duration::ZERO,
            key_time: Duration::ZERO,
            verify_time: Duration::ZERO,
            deserialize_time: Duration::ZERO,
            artifact: None,
        });
    };
    let started = Instant::now();
    let (hash, wasm) = cache.component_hash(path)?;
    let mut key = ArtifactCache::key(engine, &hash);
    let key_time = started.elapsed();
    // A hit, or how the component will be obtained instead.
    let look = |key: &str| match cache.lookup(engine, key) {
        Ok((component, verify_time, deserialize_time)) => {
            cache.touch(key);
            Ok(Loaded {
                component,
                outcome: CacheOutcome::Hit,
                compile_time: None,
                load_time: started.elapsed(),
                key_time,
                verify_time,
                deserialize_time,
                artifact: Some(cache.paths(key).0),
            })
        }
        Err(None) => Err(CacheOutcome::Compiled),
        Err(Some(reason)) => {
            tracing::warn!(%key, %reason, "recompiling an untrusted cache entry");
            Err(CacheOutcome::Recompiled { reason })
        }
    };
    let mut outcome = match look(&key) {
        Ok(hit) => return Ok(hit),
        Err(outcome) => outcome,
    };
    let wasm = match wasm {
        Some(wasm) => wasm,
        // The hash came from the file's identity. The bytes to compile are read now: key
        // them by what was read, in case the remembered hash was wrong.
        None => {
            let bytes = read()?;
            let read_key = ArtifactCache::key(engine, &blake3::hash(&bytes));
            if read_key != key {
                tracing::warn!(path = %path.display(), "the remembered hash of the component was stale");
                key = read_key;
                outcome = match look(&key) {
                    Ok(hit) => return Ok(hit),
                    Err(outcome) => outcome,
                };
            }
            bytes
        }
    };
    let started = Instant::now();
    let artifact = engine.precompile_component(&wasm).map_err(compile_error)?;
    let compile_time = started.elapsed();
    if let Err(e) = cache.store(&key, &artifact) {
        tracing::warn!(dir = %cache.dir.display(), error = %e, "cannot write the compile cache");
    }
    let started = Instant::now();
    // SAFETY: `artifact` was just produced by `precompile_component` of this engine.
    let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(compile_error)?;
    let deserialize_time = started.elapsed();
    Ok(Loaded {
        component,
        outcome,
        compile_time: Some(compile_time),
        load_time: deserialize_time,
        key_time,
        verify_time: Duration::ZERO,
        deserialize_time,
        artifact: Some(cache.paths(&key).0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn prune_keeps_the_most_recently_used_entries() {
        let dir = std::env::temp_dir().join(format!("xstage-cache-prune-{}", std::process::id()));
        let cache = ArtifactCache::new(&dir).unwrap();
        let base = SystemTime::now() - Duration::from_secs(3600);
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            let (artifact, digest_path) = cache.paths(key);
            std::fs::write(&artifact, b"x").unwrap();
            std::fs::write(&digest_path, b"y").unwrap();
            // An entry's last use is its digest record's modification time.
            let file = std::fs::File::options()
                .append(true)
                .open(&digest_path)
                .unwrap();
            file.set_modified(base + Duration::from_secs(60 * i as u64))
                .unwrap();
        }
        // "a" is the oldest written but the most recently used.
        cache.touch("a");
        cache.prune(2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "wasm")
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["a.cwasm", "a.cwasm.blake3", "d.cwasm", "d.cwasm.blake3"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
