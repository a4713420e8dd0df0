//! A private, sealed copy of a cache entry to map.
//!
//! wasmtime maps a compiled artifact rather than copying it. A mapped file that is truncated
//! under a running host (by a full disk, a user, another tool) kills the whole host with
//! SIGBUS, so the host never maps the entry itself: it copies it in the kernel into a memfd,
//! seals that against every write, shrink and grow, and maps the memfd. The copy is one pass
//! through the page cache; no one can change it afterwards, this process included.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use rustix::fs::{MemfdFlags, SealFlags};

/// A sealed in-memory file and a path that opens it (for `Component::deserialize_file`).
pub struct Sealed {
    file: File,
}

impl Sealed {
    /// Copies `source` from its start into a new sealed memfd, feeding every byte to `hasher`
    /// when there is one (a first-use check then costs no second pass).
    pub fn copy(source: &mut File, hasher: Option<&mut blake3::Hasher>) -> std::io::Result<Self> {
        let fd = rustix::fs::memfd_create(
            "xstage-artifact",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        match hasher {
            // Kernel to kernel (copy_file_range or sendfile).
            None => {
                std::io::copy(source, &mut file)?;
            }
            Some(hasher) => {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    hasher.update(&buf[..n]);
                    file.write_all(&buf[..n])?;
                }
            }
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        Ok(Self { file })
    }

    /// `/proc/self/fd/N`: opening it opens this memfd, seals and all.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    #[test]
    fn the_copy_is_exact_and_cannot_be_changed() {
        let dir = std::env::temp_dir().join(format!("xstage-sealed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("entry");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();

        for hash in [false, true] {
            let mut source = File::open(&path).unwrap();
            let mut hasher = blake3::Hasher::new();
            let sealed = Sealed::copy(&mut source, hash.then_some(&mut hasher)).unwrap();
            if hash {
                assert_eq!(hasher.finalize(), blake3::hash(&bytes));
            }
            assert_eq!(std::fs::read(sealed.path()).unwrap(), bytes);

            // Neither a write nor a truncation gets through, even from this process.
            let mut again = File::options().write(true).open(sealed.path()).unwrap();
            assert!(again.write_all(b"x").is_err());
            assert!(again.set_len(10).is_err());
            again.seek(std::io::SeekFrom::End(0)).unwrap();
            assert!(again.write_all(b"x").is_err());
            assert_eq!(std::fs::read(sealed.path()).unwrap().len(), bytes.len());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
