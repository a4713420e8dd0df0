//! `@stage/path` resolved to a [`Location`]: which keys under the stage a query reads.
//!
//! Containment is decided on the text, before any request: a relative path may not be
//! absolute, may not contain `.` or `..` segments, empty segments, backslashes, control
//! characters or percent-escapes (S3 keys are literal, so `%2e%2e` can only be a trick).

use regex::{Regex, RegexBuilder};

use super::{StageUrl, glob};
use crate::error::{FunctionError, Result};
use crate::event::validate::quote;

/// What a location selects inside the stage. All paths are stage-relative.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One key, or, if no such object exists, the "directory" of that name.
    Path(String),
    /// Every object under a stage-relative prefix (empty or ending in `/`).
    Prefix(String),
    /// Objects under `list_prefix` whose stage-relative path matches a glob.
    Glob {
        list_prefix: String,
        glob: String,
        regex: Regex,
    },
    /// Databend's `FILES => (...)`: exact stage-relative paths.
    Files(Vec<String>),
}

/// A resolved `@stage/path [(FILES => ..., PATTERN => ...)]`.
#[derive(Debug, Clone)]
pub struct Location {
    pub selection: Selection,
    /// Databend's `PATTERN => 'regex'`, matched (unanchored) against stage-relative paths.
    pub pattern: Option<Regex>,
    /// The path as written, for messages.
    pub written: String,
}

impl Location {
    /// Resolves the text after `@name` (empty, or starting with `/`).
    pub fn resolve(
        stage: &StageUrl,
        stage_name: &str,
        path: &str,
        files: Option<Vec<String>>,
        pattern: Option<&str>,
    ) -> Result<Self> {
        let written = format!("@{stage_name}{path}");
        let invalid = |why: String| {
            FunctionError::invalid_query(format!(
                "{} is not a path inside stage @{stage_name} ({stage}): {why}",
                quote(&written)
            ))
        };
        let relative = after_stage_name(path).map_err(invalid)?;
        let is_dir = relative.is_empty() || relative.ends_with('/');
        let selection = if let Some(files) = files {
            if !is_dir {
                return Err(invalid(
                    "FILES => (...) needs a stage or a directory ending in `/` before it".into(),
                ));
            }
            if files.is_empty() {
                return Err(invalid("FILES => () names no file".into()));
            }
            let mut out = Vec::with_capacity(files.len());
            for file in files {
                check_relative(&file)
                    .map_err(|why| invalid(format!("file {}: {why}", quote(&file))))?;
                if file.ends_with('/') {
                    return Err(invalid(format!("file {} is a directory", quote(&file))));
                }
                out.push(format!("{relative}{file}"));
            }
            Selection::Files(out)
        } else if glob::is_glob(relative) {
            let first = relative.find(['*', '?', '[']).unwrap_or(0);
            let list_prefix = relative[..first]
                .rfind('/')
                .map_or(String::new(), |slash| relative[..=slash].to_string());
            Selection::Glob {
                list_prefix,
                glob: relative.to_string(),
                regex: glob::compile(relative)?,
            }
        } else if is_dir {
            Selection::Prefix(relative.to_string())
        } else {
            Selection::Path(relative.to_string())
        };
        let pattern = pattern
            .map(|p| {
                RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        FunctionError::invalid_query(format!(
                            "PATTERN {} of {} is not a valid regex: {e}",
                            quote(p),
                            quote(&written)
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            selection,
            pattern,
            written,
        })
    }

    /// Whether a listed stage-relative path belongs to this location.
    pub fn matches(&self, relative: &str) -> bool {
        if relative.is_empty() || relative.ends_with('/') {
            return false; // the prefix itself, or a "directory" marker object
        }
        let selected = match &self.selection {
            Selection::Path(p) => relative == p || relative.starts_with(&format!("{p}/")),
            Selection::Prefix(p) => relative.starts_with(p.as_str()),
            Selection::Glob { regex, .. } => regex.is_match(relative),
            Selection::Files(files) => files.iter().any(|f| f == relative),
        };
        selected && self.pattern.as_ref().is_none_or(|re| re.is_match(relative))
    }
}

/// The stage-relative path in the text after `@name` (empty, or `/` and a path), checked
/// with [`check_relative`].
pub(crate) fn after_stage_name(path: &str) -> std::result::Result<&str, String> {
    let relative = match path.strip_prefix('/') {
        Some(rest) => rest,
        None if path.is_empty() => "",
        None => return Err("expected `/` after the stage name".into()),
    };
    if !relative.is_empty() {
        check_relative(relative)?;
    }
    Ok(relative)
}

/// Checks a stage-relative path; the error says why it could leave the stage.
pub(crate) fn check_relative(path: &str) -> std::result::Result<(), String> {
    if path.starts_with('/') {
        return Err("absolute paths are not allowed".into());
    }
    if path.len() > 1024 {
        return Err("it is longer than S3's 1024-byte key limit".into());
    }
    if path.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    if path.contains('\\') {
        return Err("backslashes are not allowed".into());
    }
    let bytes = path.as_bytes();
    if bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    {
        return Err("percent-escapes are not allowed; write the key literally".into());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err("empty path segments (`//`) are not allowed".into()),
            "." | ".." => return Err("`.` and `..` segments are not allowed".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> StageUrl {
        StageUrl::parse("s3://test-bucket-123/optional/prefix/").unwrap()
    }

    fn resolve(path: &str) -> Result<Location> {
        Location::resolve(&stage(), "s", path, None, None)
    }

    #[test]
    fn plain_paths() {
        match resolve("/test.parquet").unwrap().selection {
            Selection::Path(p) => assert_eq!(p, "test.parquet"),
            other => panic!("{other:?}"),
        }
        match resolve("/dir/").unwrap().selection {
            Selection::Prefix(p) => assert_eq!(p, "dir/"),
            other => panic!("{other:?}"),
        }
        match resolve("").unwrap().selection {
            Selection::Prefix(p) => assert_eq!(p, ""),
            other => panic!("{other:?}"),
        }
        match resolve("/").unwrap().selection {
            Selection::Prefix(p) => assert_eq!(p, ""),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escapes_are_rejected() {
        for bad in [
            "/../x.parquet",
            "/a/../../x",
            "/..",
            "/./x",
            "//etc/passwd",
            "/a//b",
            "/%2e%2e/x",
            "/%2E%2E%2Fx",
            "/a%2fb",
            "/a\\..\\b",
            "/a\0b",
            "/a\nb",
            "x.parquet",
        ] {
            let err = resolve(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidQuery, "{bad}");
        }
    }

    #[test]
    fn files_may_not_escape() {
        let files = |f: &[&str]| Some(f.iter().map(|s| s.to_string()).collect());
        assert!(Location::resolve(&stage(), "s", "/d/", files(&["../x"]), None).is_err());
        assert!(Location::resolve(&stage(), "s", "/d/", files(&["/x"]), None).is_err());
        let ok = Location::resolve(&stage(), "s", "/d/", files(&["a.parquet"]), None).unwrap();
        assert!(ok.matches("d/a.parquet"));
        assert!(!ok.matches("a.parquet"));
    }

    #[test]
    fn globs_list_their_fixed_prefix() {
        let loc = resolve("/data/2024-*/part-?.parquet").unwrap();
        match &loc.selection {
            Selection::Glob { list_prefix, .. } => assert_eq!(list_prefix, "data/"),
            other => panic!("{other:?}"),
        }
        assert!(loc.matches("data/2024-01/part-1.parquet"));
        assert!(!loc.matches("data/2023-01/part-1.parquet"));
    }

    #[test]
    fn pattern_filters() {
        let loc = Location::resolve(&stage(), "s", "", None, Some(r".*\.parquet$")).unwrap();
        assert!(loc.matches("a/b.parquet"));
        assert!(!loc.matches("a/b.csv"));
        assert!(!loc.matches("dir/"));
        // README: PATTERN is unanchored, as Databend's: it matches anywhere in the path.
        let loc = Location::resolve(&stage(), "s", "", None, Some("part-[0-9]")).unwrap();
        assert!(loc.matches("2024/part-7.parquet"));
        assert!(loc.matches("part-7.parquet.bak"));
        assert!(!loc.matches("2024/summary.parquet"));
    }

    /// README: `@s/file.parquet` names the object, or the directory `file.parquet/` written
    /// by engines that store one table as parts.
    #[test]
    fn a_file_path_also_selects_the_directory_of_that_name() {
        let loc = Location::resolve(&stage(), "s", "/t.parquet", None, None).unwrap();
        assert!(loc.matches("t.parquet"));
        assert!(loc.matches("t.parquet/part-0.parquet"));
        assert!(!loc.matches("t.parquet.bak"));
        assert!(!loc.matches("t.parquets/part-0.parquet"));
    }
}
