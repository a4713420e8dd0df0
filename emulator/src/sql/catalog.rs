//! The local catalog of connections and stages: one JSON file, private to the user (0600),
//! changed under an exclusive lock and replaced atomically, so two shells never lose each
//! other's changes and a crash never leaves half a file. A connection holds a role ARN and
//! an ExternalId, never credentials.
//!
//! Where: `--catalog PATH`, else `$XSTAGE_CATALOG`, else `$XDG_DATA_HOME/xstage/catalog.json`,
//! else `~/.local/share/xstage/catalog.json`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `CREATE CONNECTION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub role_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// `CREATE STAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub url: String,
    /// The named connection, or `None` with `inline` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Connection>,
    /// `FILE_FORMAT = (...)` as written, names upper-cased: it goes to the function as
    /// `stage.file_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_format: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default)]
    pub connections: BTreeMap<String, Connection>,
    #[serde(default)]
    pub stages: BTreeMap<String, Stage>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the catalog {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the catalog {path} is not a valid catalog ({message}); fix or move it, or pass --catalog PATH"
    )]
    Corrupt { path: PathBuf, message: String },
}

/// The catalog file.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `$XSTAGE_CATALOG`, `$XDG_DATA_HOME/xstage/catalog.json` or
    /// `~/.local/share/xstage/catalog.json`.
    pub fn default_path() -> PathBuf {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(path) = var("XSTAGE_CATALOG") {
            return path;
        }
        let data = var("XDG_DATA_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        data.join("xstage").join("catalog.json")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> CatalogError {
        CatalogError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The catalog as it is now (empty when the file does not exist yet).
    pub fn read(&self) -> Result<Catalog, CatalogError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Applies `change` to the catalog under an exclusive lock and writes the result
    /// atomically. `change` may refuse (its error is returned and nothing is written).
    pub fn update<T, E: From<CatalogError>>(
        &self,
        change: impl FnOnce(&mut Catalog) -> Result<T, E>,
    ) -> Result<T, E> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| self.io(e))?;
        let lock = lock_path(&self.path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        let mut catalog = self.read()?;
        let result = change(&mut catalog)?;
        self.write(&catalog)?;
        drop(lock);
        Ok(result)
    }

    fn write(&self, catalog: &Catalog) -> Result<(), CatalogError> {
        let mut text = serde_json::to_vec_pretty(catalog).expect("a catalog serializes");
        text.push(b'\n');
        let tmp = self
            .path
            .with_extension(format!("json.tmp{}", std::process::id()));
        let mut file = private_file(&tmp).map_err(|e| self.io(e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.io(e)
        })
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some("e".into()),
            region: None,
            endpoint_url: None,
        }
    }

    #[test]
    fn updates_persist_and_refusals_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("sub/catalog.json"));
        assert_eq!(store.read().unwrap(), Catalog::default());
        store
            .update(|c| {
                c.connections.insert("c".into(), connection());
                Ok::<_, CatalogError>(())
            })
            .unwrap();
        assert_eq!(store.read().unwrap().connections["c"], connection());
        let refused: Result<(), String> = store.update(|c| {
            c.connections.clear();
            Err("no".to_string())
        });
        assert!(refused.is_err());
        assert_eq!(store.read().unwrap().connections.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    impl From<CatalogError> for String {
        fn from(e: CatalogError) -> Self {
            e.to_string()
        }
    }

    #[test]
    fn a_corrupt_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.json");
        std::fs::write(&path, "{not json").unwrap();
        let store = Store::new(&path);
        let err = store.read().unwrap_err().to_string();
        assert!(err.contains("not a valid catalog"), "{err}");
        let r: Result<(), CatalogError> = store.update(|_| Ok(()));
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
