//! Stages: an `s3://bucket/prefix` root, and the locations inside it that `@stage/path`
//! names. Every key this crate reads is derived here and proven to lie under the root.

pub mod glob;
pub(crate) mod location;

pub use location::{Location, Selection};

use crate::error::{FunctionError, Result};
use crate::event::validate;

/// The root of a stage: a bucket and a key prefix that is empty or ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageUrl {
    bucket: String,
    prefix: String,
}

impl StageUrl {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("S3://"))
            .ok_or_else(|| {
                FunctionError::invalid_event(format!(
                    "stage url {} must start with s3://, as in s3://bucket/prefix/",
                    validate::quote(url)
                ))
            })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        validate::bucket(bucket)?;
        Self::new(bucket, prefix)
    }

    /// A stage from a bucket and a prefix (RisingWave's `s3.bucket_name` and `s3.path`).
    pub fn new(bucket: &str, prefix: &str) -> Result<Self> {
        validate::bucket(bucket)?;
        let prefix = prefix.trim_start_matches('/');
        if !prefix.is_empty() {
            location::check_relative(prefix).map_err(|why| {
                FunctionError::invalid_event(format!(
                    "stage prefix {} is invalid: {why}",
                    validate::quote(prefix)
                ))
            })?;
        }
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix: empty, or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key of a stage-relative path.
    pub fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// The stage-relative path of a key, if the key lies inside the stage.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
    }
}

impl std::fmt::Display for StageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let s = StageUrl::parse("s3://test-bucket-123/optional/prefix").unwrap();
        assert_eq!(s.bucket(), "test-bucket-123");
        assert_eq!(s.prefix(), "optional/prefix/");
        assert_eq!(s.to_string(), "s3://test-bucket-123/optional/prefix/");
        let root = StageUrl::parse("s3://test-bucket-123").unwrap();
        assert_eq!(root.prefix(), "");
        assert_eq!(StageUrl::parse("s3://b12/").unwrap().prefix(), "");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "https://bucket/x",
            "s3://",
            "s3://Bad_Bucket/x",
            "s3://bucket/../x",
            "s3://bucket/a/%2e%2e/x",
            "s3://bucket/a//b",
        ] {
            assert!(StageUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
