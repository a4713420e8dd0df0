//! A file's identity: what changes whenever its bytes may have, read without reading them.
//!
//! A rewrite in place changes the modification and change times (no unprivileged process
//! can set the change time back), a replacement by rename changes the inode. So bytes that
//! were hashed once under an identity need not be hashed again while the identity holds.

use std::fs::Metadata;

/// Device, inode, size, and modification and change times (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    /// The identity in `meta`; `None` where the platform has none (then every check hashes).
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> Option<Self> {
        None
    }

    /// The identity of an open file; `None` where there is none or `fstat` fails.
    pub fn of_file(file: &std::fs::File) -> Option<Self> {
        Self::of(&file.metadata().ok()?)
    }

    /// One line: `dev ino size mtime_ns ctime_ns`.
    pub fn encode(&self) -> String {
        let Self {
            dev,
            ino,
            size,
            mtime_ns,
            ctime_ns,
        } = self;
        format!("{dev} {ino} {size} {mtime_ns} {ctime_ns}")
    }

    /// The inverse of [`FileIdentity::encode`]; `None` for anything else.
    pub fn decode(line: &str) -> Option<Self> {
        let mut it = line.split_ascii_whitespace();
        let identity = Self {
            dev: it.next()?.parse().ok()?,
            ino: it.next()?.parse().ok()?,
            size: it.next()?.parse().ok()?,
            mtime_ns: it.next()?.parse().ok()?,
            ctime_ns: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(identity)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_in_place_or_a_replacement_changes_the_identity() {
        let dir = tempfile_dir();
        let path = dir.join("f");
        std::fs::write(&path, b"one").unwrap();
        let first = FileIdentity::of(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_eq!(FileIdentity::decode(&first.encode()), Some(first));
        assert_eq!(
            FileIdentity::of(&std::fs::metadata(&path).unwrap()),
            Some(first),
            "unchanged"
        );

        // Same size, same inode, new bytes: the times move.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"two").unwrap();
        let rewritten = FileIdentity::of(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_ne!(rewritten, first);

        // Setting the modification time back does not restore the identity: ctime moved.
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        file.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(first.mtime_ns as u64),
        )
        .unwrap();
        let restored = FileIdentity::of(&std::fs::metadata(&path).unwrap()).unwrap();
        assert_eq!(restored.mtime_ns, first.mtime_ns);
        assert_ne!(restored, first);

        assert_eq!(FileIdentity::decode("1 2 3 4"), None);
        assert_eq!(FileIdentity::decode("1 2 3 4 5 6"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xstage-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
