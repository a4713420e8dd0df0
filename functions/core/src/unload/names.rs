//! The names an unload writes: Databend's `data_<query id>_<part>_<seq>.<ext>[.<compression>]`,
//! deterministic for (query id, part, sequence) so a retried or duplicated writer writes the
//! same names; the commit marker `_xstage_manifest_<query id>.json`; and partition
//! directories, checked like any stage path.

use crate::error::{FunctionError, Result};
use crate::event::validate::quote;
use crate::format::{Compression, FormatType};
use crate::stage::location::{after_stage_name, check_relative};

use super::format::OutputFormat;

/// The directory a NULL partition value is written under, as Databend does.
pub const NULL_PARTITION: &str = "_NULL_";

/// A new query id: a random (version 4) UUID.
pub fn new_query_id() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| FunctionError::internal(format!("no randomness for a query id: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A caller's `options.query_id`: 1–64 of `[A-Za-z0-9-]`, so it is safe in a key and in an
/// IAM resource pattern (no `*`, `?`, `$`).
pub fn check_query_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(FunctionError::invalid_event(format!(
            "`options.query_id` {} must be 1 to 64 letters, digits and `-` (a UUID, for example)",
            quote(id)
        )));
    }
    Ok(())
}

/// The extension of a file of `format`: `.parquet`, `.csv[.gz]`, …
pub fn extension(format: &OutputFormat) -> String {
    let base = match format.file.kind {
        // Parquet compresses inside the file.
        FormatType::Parquet => return "parquet".into(),
        FormatType::Csv => "csv",
        FormatType::Tsv => "tsv",
        FormatType::Ndjson => "ndjson",
    };
    match format.file.compression {
        Compression::Gzip => format!("{base}.gz"),
        Compression::Zstd => format!("{base}.zst"),
        Compression::Bz2 => format!("{base}.bz2"),
        Compression::Xz => format!("{base}.xz"),
        Compression::None | Compression::Auto => base.into(),
    }
}

/// The stage-relative name of one data file: `<dir>data_<query id>_<part:04>_<seq:08>.<ext>`,
/// or without the query id when `query_id` is `None` (`INCLUDE_QUERY_ID = FALSE`).
pub fn data_file(dir: &str, query_id: Option<&str>, part: u32, seq: u32, ext: &str) -> String {
    match query_id {
        Some(id) => format!("{dir}data_{id}_{part:04}_{seq:08}.{ext}"),
        None => format!("{dir}data_{part:04}_{seq:08}.{ext}"),
    }
}

/// The stage-relative name of the manifest, written last: the statement's commit.
pub fn manifest(dir: &str, query_id: &str) -> String {
    format!("{dir}_xstage_manifest_{query_id}.json")
}

/// Whether a stage-relative path is an unload's manifest, which a query over the directory
/// skips (LIST shows it).
pub fn is_manifest(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    name.starts_with("_xstage_manifest_") && name.ends_with(".json")
}

/// The target directory of `@stage<path>`: stage-relative, empty or ending in `/`. Without
/// `USE_RAW_PATH` a path is a directory whether or not it ends in `/`.
pub fn target_dir(stage: &str, path: &str) -> Result<String> {
    let relative = relative(stage, path)?;
    Ok(match relative {
        "" => String::new(),
        r if r.ends_with('/') => r.to_string(),
        r => format!("{r}/"),
    })
}

/// The stage-relative key `@stage<path>` names, checked like any stage path.
pub fn relative<'p>(stage: &str, path: &'p str) -> Result<&'p str> {
    let invalid = |why: String| {
        FunctionError::invalid_query(format!(
            "COPY INTO: {} is not a path inside stage @{stage}: {why}",
            quote(&format!("@{stage}{path}"))
        ))
    };
    after_stage_name(path).map_err(invalid)
}

/// The directory of one partition value (`None`: NULL), ending in `/`. A value that would
/// leave the target or name a path the stage refuses (`..`, an absolute path, a control
/// character, an escape) is an error naming it.
pub fn partition_dir(value: Option<&str>) -> Result<String> {
    let Some(value) = value else {
        return Ok(format!("{NULL_PARTITION}/"));
    };
    let trimmed = value.trim_end_matches('/');
    let refused = |why: String| {
        FunctionError::invalid_query(format!(
            "COPY INTO: the PARTITION BY value {} is not a usable path: {why}; fix the expression \
             (for example with replace() or a CASE)",
            quote(value)
        ))
    };
    if trimmed.is_empty() {
        return Err(refused("it is empty".into()));
    }
    check_relative(trimmed).map_err(refused)?;
    if trimmed.len() > 512 {
        return Err(refused("it is longer than 512 bytes".into()));
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_are_uuids_and_checked() {
        let id = new_query_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_query_id().unwrap());
        check_query_id(&id).unwrap();
        for bad in ["", "a*b", "a/b", "x".repeat(65).as_str(), "a$b", "a b"] {
            assert!(check_query_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_databends() {
        assert_eq!(
            data_file("out/", Some("q-1"), 0, 3, "csv.gz"),
            "out/data_q-1_0000_00000003.csv.gz"
        );
        assert_eq!(
            data_file("", None, 2, 0, "parquet"),
            "data_0002_00000000.parquet"
        );
        assert_eq!(manifest("out/", "q-1"), "out/_xstage_manifest_q-1.json");
        assert_eq!(target_dir("s", "/out").unwrap(), "out/");
        assert_eq!(target_dir("s", "/out/").unwrap(), "out/");
        assert_eq!(target_dir("s", "").unwrap(), "");
        for bad in ["/../x/", "/a//b/", "/a/%2e%2e/", "x"] {
            let e = target_dir("s", bad).unwrap_err();
            assert!(
                e.message().contains("not a path inside stage @s"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn partition_values_stay_inside() {
        assert_eq!(partition_dir(None).unwrap(), "_NULL_/");
        assert_eq!(partition_dir(Some("2024/01")).unwrap(), "2024/01/");
        assert_eq!(partition_dir(Some("a/")).unwrap(), "a/");
        for bad in ["..", "a/../b", "/etc", "a\u{1}b", "", "%2e%2e", "a//b"] {
            let e = partition_dir(Some(bad)).unwrap_err();
            assert!(e.message().contains("PARTITION BY value"), "{bad:?}: {e}");
        }
    }
}
