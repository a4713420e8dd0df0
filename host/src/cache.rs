//! Compile once: the compiled form of a component is cached on disk, keyed by the
//! component's BLAKE3 hash, the wasmtime version and the engine's settings
//! (`Engine::precompile_compatibility_hash`). Each artifact is written with its own BLAKE3
//! digest beside it, and is loaded only if its bytes still match that digest; a missing,
//! stale or corrupt entry is compiled again and replaced, never trusted.
//!
//! Entries are written to a temporary file and renamed into place, so a reader never sees a
//! half-written artifact, and concurrent writers of one key agree on its content.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

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
    /// Verifying and deserializing a cache entry: `verify_time` plus `deserialize_time`.
    pub load_time: Duration,
    /// Reading the cache entry and checking it against its recorded BLAKE3 digest.
    pub verify_time: Duration,
    /// `Component::deserialize` of the verified bytes.
    pub deserialize_time: Duration,
    /// The cache entry, when there is a cache.
    pub artifact: Option<PathBuf>,
}

/// Entries kept at most; the least recently used go first. A stage query entry is ~320 MB.
pub const MAX_ENTRIES: usize = 6;

/// A directory of compiled components, bounded to [`MAX_ENTRIES`].
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// Uses (and creates, private to this user) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
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

    /// The entry for this component under this engine.
    pub fn key(engine: &Engine, wasm: &[u8]) -> String {
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
        let component = blake3::hash(wasm).to_hex();
        let settings = settings.0.finalize().to_hex();
        format!("{}-{}", &component[..32], &settings[..16])
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.cwasm")),
            self.dir.join(format!("{key}.cwasm.blake3")),
        )
    }

    /// The verified entry and the time its check and its deserialization took, or why there
    /// is none to trust.
    ///
    /// The entry is read into memory, not mapped with `Component::deserialize_file`: a mapped
    /// file that is truncated or rewritten in place under a running host (by anything: a
    /// full disk, a user, another tool) takes the whole host down with SIGBUS, which the
    /// tests of corrupt entries provoked. Reading costs a copy at load, once per function.
    fn lookup(
        &self,
        engine: &Engine,
        key: &str,
    ) -> Result<(Component, Duration, Duration), Option<String>> {
        let (artifact, digest_path) = self.paths(key);
        let started = Instant::now();
        let bytes = match std::fs::read(&artifact) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
            Err(e) => return Err(Some(format!("cannot read {}: {e}", artifact.display()))),
        };
        let expected = std::fs::read_to_string(&digest_path)
            .map_err(|e| Some(format!("no digest beside the artifact ({e})")))?;
        if expected.trim() != digest(&bytes) {
            return Err(Some("the artifact does not match its digest".to_string()));
        }
        let verify_time = started.elapsed();
        let started = Instant::now();
        // SAFETY: these bytes are exactly what `precompile_component` wrote for an engine with
        // this version and these settings (both are in the key), as the digest we recorded
        // when writing them shows; they were read into memory before the check, so they
        // cannot change after it.
        let component = unsafe { Component::deserialize(engine, &bytes) }
            .map_err(|e| Some(format!("wasmtime refused the artifact: {e}")))?;
        Ok((component, verify_time, started.elapsed()))
    }

    fn store(&self, key: &str, artifact_bytes: &[u8]) -> std::io::Result<()> {
        let (artifact, digest_path) = self.paths(key);
        write_atomically(&artifact, artifact_bytes)?;
        write_atomically(&digest_path, digest(artifact_bytes).as_bytes())?;
        self.prune(MAX_ENTRIES);
        Ok(())
    }

    /// Marks an entry as just used, for [`ArtifactCache::prune`]; best effort.
    fn touch(&self, key: &str) {
        let (artifact, _) = self.paths(key);
        if let Ok(file) = std::fs::File::options().append(true).open(&artifact) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes all but the `keep` most recently used entries (and their digests); best
    /// effort, as another host may be pruning too.
    pub fn prune(&self, keep: usize) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, path) in entries.into_iter().skip(keep) {
            let _ = std::fs::remove_file(path.with_extension("cwasm.blake3"));
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The hex BLAKE3 digest recorded beside an artifact.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
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
    let wasm = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let compile_error = |e: wasmtime::Error| LoadError::Compile {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let Some(cache) = cache else {
        let started = Instant::now();
        let component = Component::from_binary(engine, &wasm).map_err(compile_error)?;
        return Ok(Loaded {
            component,
            outcome: CacheOutcome::Compiled,
            compile_time: Some(started.elapsed()),
            load_time: Duration::ZERO,
            verify_time: Duration::ZERO,
            deserialize_time: Duration::ZERO,
            artifact: None,
        });
    };
    let key = ArtifactCache::key(engine, &wasm);
    let started = Instant::now();
    let outcome = match cache.lookup(engine, &key) {
        Ok((component, verify_time, deserialize_time)) => {
            cache.touch(&key);
            return Ok(Loaded {
                component,
                outcome: CacheOutcome::Hit,
                compile_time: None,
                load_time: started.elapsed(),
                verify_time,
                deserialize_time,
                artifact: Some(cache.paths(&key).0),
            });
        }
        Err(None) => CacheOutcome::Compiled,
        Err(Some(reason)) => {
            tracing::warn!(%key, %reason, "recompiling an untrusted cache entry");
            CacheOutcome::Recompiled { reason }
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
            let file = std::fs::File::options()
                .append(true)
                .open(&artifact)
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
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["a.cwasm", "a.cwasm.blake3", "d.cwasm", "d.cwasm.blake3"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
