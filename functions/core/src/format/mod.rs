//! What a stage's files hold: Databend's `FILE_FORMAT = (TYPE = CSV | TSV | NDJSON | PARQUET
//! ...)`, with its option names and defaults, and the choice by extension when none is given.
//!
//! Neighbours: [`crate::event`] reads `stage.file_format` with [`FileFormat::parse`], as the
//! emulator's `CREATE STAGE` does; [`crate::sql`] reads `FILE_FORMAT => 'csv'` in a query;
//! [`crate::engine`] turns the format into a DataFusion table ([`listing`]).
//!
//! ```
//! use xstage_core::format::{Compression, FileFormat, FormatType};
//! let f = FileFormat::parse([("TYPE", "CSV"), ("FIELD_DELIMITER", "|"), ("SKIP_HEADER", "1")])?;
//! assert_eq!((f.kind, f.field_delimiter, f.skip_header), (FormatType::Csv, b'|', true));
//! assert_eq!(f.compression, Compression::Auto);
//! assert_eq!(FileFormat::detect("logs/day.ndjson.gz"), Some((FormatType::Ndjson, Compression::Gzip)));
//! # Ok::<(), String>(())
//! ```

pub mod listing;
pub mod locate;

use std::fmt;

/// Databend's `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatType {
    Parquet,
    Csv,
    Tsv,
    Ndjson,
}

impl FormatType {
    /// Databend's name of the type (`CSV`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FormatType::Parquet => "PARQUET",
            FormatType::Csv => "CSV",
            FormatType::Tsv => "TSV",
            FormatType::Ndjson => "NDJSON",
        }
    }

    /// The type a name (any case) stands for.
    pub fn from_name(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PARQUET" => Ok(FormatType::Parquet),
            "CSV" => Ok(FormatType::Csv),
            "TSV" => Ok(FormatType::Tsv),
            "NDJSON" | "JSONL" => Ok(FormatType::Ndjson),
            _ => Err(format!(
                "file format {name:?} is not supported; xstage reads CSV, TSV, NDJSON and PARQUET"
            )),
        }
    }

    /// Whether the type is text split into fields (CSV, TSV).
    pub fn is_delimited(self) -> bool {
        matches!(self, FormatType::Csv | FormatType::Tsv)
    }
}

/// Databend's `COMPRESSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// By each file's extension: `.gz`, `.zst`, `.bz2`, `.xz`, else none.
    Auto,
    Gzip,
    Zstd,
    Bz2,
    Xz,
    None,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Auto => "AUTO",
            Compression::Gzip => "GZIP",
            Compression::Zstd => "ZSTD",
            Compression::Bz2 => "BZ2",
            Compression::Xz => "XZ",
            Compression::None => "NONE",
        }
    }

    fn from_name(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_uppercase().as_str() {
            "AUTO" => Ok(Compression::Auto),
            "GZIP" => Ok(Compression::Gzip),
            "ZSTD" => Ok(Compression::Zstd),
            "BZ2" => Ok(Compression::Bz2),
            "XZ" => Ok(Compression::Xz),
            "NONE" => Ok(Compression::None),
            _ => Err(format!(
                "COMPRESSION {name:?} is not supported; give AUTO, GZIP, ZSTD, BZ2, XZ or NONE"
            )),
        }
    }

    /// The compression a key's last extension names (`None` when it names none).
    pub fn of_key(key: &str) -> Compression {
        match extension(key).as_deref() {
            Some("gz" | "gzip") => Compression::Gzip,
            Some("zst" | "zstd") => Compression::Zstd,
            Some("bz2") => Compression::Bz2,
            Some("xz") => Compression::Xz,
            _ => Compression::None,
        }
    }

    /// `Auto` resolved for one file.
    pub fn for_key(self, key: &str) -> Compression {
        match self {
            Compression::Auto => Compression::of_key(key),
            other => other,
        }
    }
}

/// A stage's or a query's file format, with Databend's option names.
#[derive(Clone, PartialEq, Eq)]
pub struct FileFormat {
    pub kind: FormatType,
    /// `FIELD_DELIMITER`: `,` for CSV, tab for TSV.
    pub field_delimiter: u8,
    /// `RECORD_DELIMITER`: `None` is `\n` or `\r\n`, as Databend's default reads both.
    pub record_delimiter: Option<u8>,
    /// `SKIP_HEADER = 1`: the first line names the columns. With 0, columns are `column_1`,
    /// `column_2`, ...
    pub skip_header: bool,
    /// `QUOTE`: `"` for CSV; TSV does not quote.
    pub quote: u8,
    /// `ESCAPE`: none for CSV (a quote is doubled), `\` for TSV.
    pub escape: Option<u8>,
    /// `NULL_DISPLAY`: the text of a NULL field, `\N` by default. An empty field is NULL too.
    pub null_display: String,
    pub compression: Compression,
}

/// Options each type accepts besides `TYPE`.
const DELIMITED: &[&str] = &[
    "FIELD_DELIMITER",
    "RECORD_DELIMITER",
    "SKIP_HEADER",
    "QUOTE",
    "ESCAPE",
    "NULL_DISPLAY",
    "COMPRESSION",
];
const NDJSON: &[&str] = &["COMPRESSION"];

/// A byte that no UTF-8 text holds: TSV's quote, so that TSV fields are never quoted.
const NO_QUOTE: u8 = 0xff;

impl FileFormat {
    /// Databend's defaults for `kind`.
    pub fn new(kind: FormatType) -> Self {
        let tsv = kind == FormatType::Tsv;
        Self {
            kind,
            field_delimiter: if tsv { b'\t' } else { b',' },
            record_delimiter: None,
            skip_header: false,
            quote: if tsv { NO_QUOTE } else { b'"' },
            escape: tsv.then_some(b'\\'),
            null_display: "\\N".into(),
            compression: Compression::Auto,
        }
    }

    /// Reads Databend's options (`TYPE` required, names in any case). An option the type
    /// does not take, or one xstage does not read, is an error naming it.
    pub fn parse<K: AsRef<str>, V: AsRef<str>>(
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in options {
            let key = k.as_ref().trim().to_ascii_uppercase();
            if pairs.iter().any(|(seen, _)| *seen == key) {
                return Err(format!("{key} is given twice"));
            }
            pairs.push((key, v.as_ref().to_string()));
        }
        let kind = match pairs.iter().position(|(k, _)| k == "TYPE") {
            Some(i) => FormatType::from_name(&pairs.remove(i).1)?,
            None => {
                return Err("a file format needs TYPE = CSV, TSV, NDJSON or PARQUET".to_string());
            }
        };
        let allowed: &[&str] = match kind {
            FormatType::Csv | FormatType::Tsv => DELIMITED,
            FormatType::Ndjson => NDJSON,
            FormatType::Parquet => &[],
        };
        let mut format = Self::new(kind);
        for (key, value) in pairs {
            if !allowed.contains(&key.as_str()) {
                let takes = if allowed.is_empty() {
                    "no other option".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(format!(
                    "TYPE = {} does not take {key}; it takes {takes}",
                    kind.as_str()
                ));
            }
            format.set(&key, &value)?;
        }
        if format.escape == Some(format.quote) {
            // csv-core reads a doubled quote as a quote anyway.
            format.escape = None;
        }
        if [Some(format.quote), format.escape, format.record_delimiter]
            .contains(&Some(format.field_delimiter))
        {
            return Err(format!(
                "FIELD_DELIMITER {:?} is also the quote, the escape or the record delimiter",
                char::from(format.field_delimiter)
            ));
        }
        Ok(format)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "FIELD_DELIMITER" => self.field_delimiter = one_byte(key, value)?,
            "RECORD_DELIMITER" => {
                self.record_delimiter = match unescape(value).as_str() {
                    "\n" | "\r\n" => None,
                    _ => Some(one_byte(key, value)?),
                }
            }
            "SKIP_HEADER" => {
                self.skip_header = match value.trim() {
                    "0" => false,
                    "1" => true,
                    other => {
                        return Err(format!(
                            "SKIP_HEADER {other:?} is not supported; xstage reads 0 (no header) or 1 \
                             (the first line names the columns)"
                        ));
                    }
                }
            }
            "QUOTE" => self.quote = one_byte(key, value)?,
            "ESCAPE" => {
                self.escape = match value {
                    "" => None,
                    _ => Some(one_byte(key, value)?),
                }
            }
            "NULL_DISPLAY" => {
                if value.len() > 64 {
                    return Err("NULL_DISPLAY is longer than 64 bytes".to_string());
                }
                self.null_display = value.to_string();
            }
            "COMPRESSION" => self.compression = Compression::from_name(value)?,
            _ => return Err(format!("unknown file format option {key}")),
        }
        Ok(())
    }

    /// The type and compression a key's extensions name: `.csv`, `.tsv`, `.ndjson`, `.jsonl`,
    /// `.parquet`, each optionally followed by `.gz`, `.zst`, `.bz2` or `.xz`.
    pub fn detect(key: &str) -> Option<(FormatType, Compression)> {
        let compression = Compression::of_key(key);
        let stem = match compression {
            Compression::None => key,
            _ => key.rsplit_once('.').map_or(key, |(stem, _)| stem),
        };
        let kind = match extension(stem).as_deref() {
            Some("csv") => FormatType::Csv,
            Some("tsv") => FormatType::Tsv,
            Some("ndjson" | "jsonl") => FormatType::Ndjson,
            Some("parquet" | "parq") => FormatType::Parquet,
            _ => return None,
        };
        Some((kind, compression))
    }

    /// The format of a file nothing was said about: by its extensions, else Parquet.
    pub fn of_key(key: &str) -> FileFormat {
        match Self::detect(key) {
            Some((kind, compression)) => FileFormat {
                compression,
                ..FileFormat::new(kind)
            },
            None => FileFormat::new(FormatType::Parquet),
        }
    }

    /// The NULL test arrow-csv applies to a field: empty or `NULL_DISPLAY`.
    pub fn null_regex(&self) -> String {
        format!("^(?:{})?$", regex_escape(&self.null_display))
    }
}

/// `FIELD_DELIMITER = ','`-style one-character values; `\t`, `\r`, `\n`, `\\` and `\'` may be
/// written escaped.
fn one_byte(key: &str, value: &str) -> Result<u8, String> {
    let raw = unescape(value);
    match raw.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(format!(
            "{key} {value:?} must be one ASCII character (\\t for a tab)"
        )),
    }
}

fn unescape(value: &str) -> String {
    match value {
        "\\t" => "\t".into(),
        "\\n" => "\n".into(),
        "\\r" => "\r".into(),
        "\\r\\n" => "\r\n".into(),
        "\\\\" => "\\".into(),
        "\\'" => "'".into(),
        other => other.into(),
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A key's last extension, lower-cased, from its last path segment.
fn extension(key: &str) -> Option<String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('.')
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

fn show_byte(b: u8) -> String {
    match b {
        b'\t' => "\\t".into(),
        b'\n' => "\\n".into(),
        b'\r' => "\\r".into(),
        b'\'' => "\\'".into(),
        b'\\' => "\\\\".into(),
        other => char::from(other).to_string(),
    }
}

/// Databend's spelling: `TYPE = CSV FIELD_DELIMITER = ',' ...`, with only what the type
/// takes.
impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TYPE = {}", self.kind.as_str())?;
        if self.kind.is_delimited() {
            write!(
                f,
                " FIELD_DELIMITER = '{}' RECORD_DELIMITER = '{}' SKIP_HEADER = {}",
                show_byte(self.field_delimiter),
                self.record_delimiter.map_or("\\n".into(), show_byte),
                u8::from(self.skip_header)
            )?;
            if self.quote != NO_QUOTE {
                write!(f, " QUOTE = '{}'", show_byte(self.quote))?;
            }
            write!(
                f,
                " ESCAPE = '{}' NULL_DISPLAY = '{}'",
                self.escape.map(show_byte).unwrap_or_default(),
                self.null_display.replace('\'', "\\'")
            )?;
        }
        if self.kind != FormatType::Parquet {
            write!(f, " COMPRESSION = {}", self.compression.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileFormat({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<FileFormat, String> {
        FileFormat::parse(pairs.iter().copied())
    }

    #[test]
    fn defaults_follow_databend() {
        let csv = parse(&[("type", "csv")]).unwrap();
        assert_eq!(
            (csv.field_delimiter, csv.quote, csv.escape, csv.skip_header),
            (b',', b'"', None, false)
        );
        assert_eq!(csv.null_display, "\\N");
        let tsv = parse(&[("TYPE", "TSV")]).unwrap();
        assert_eq!((tsv.field_delimiter, tsv.escape), (b'\t', Some(b'\\')));
        assert_eq!(
            tsv.to_string(),
            "TYPE = TSV FIELD_DELIMITER = '\\t' RECORD_DELIMITER = '\\n' SKIP_HEADER = 0 \
             ESCAPE = '\\\\' NULL_DISPLAY = '\\N' COMPRESSION = AUTO"
        );
        assert_eq!(
            parse(&[("TYPE", "parquet")]).unwrap().to_string(),
            "TYPE = PARQUET"
        );
    }

    #[test]
    fn options_are_read_and_checked() {
        let f = parse(&[
            ("TYPE", "CSV"),
            ("field_delimiter", "\\t"),
            ("RECORD_DELIMITER", "\\r\\n"),
            ("SKIP_HEADER", "1"),
            ("QUOTE", "'"),
            ("ESCAPE", "\\\\"),
            ("NULL_DISPLAY", "NULL"),
            ("COMPRESSION", "gzip"),
        ])
        .unwrap();
        assert_eq!(f.field_delimiter, b'\t');
        assert_eq!(f.record_delimiter, None);
        assert!(f.skip_header);
        assert_eq!((f.quote, f.escape), (b'\'', Some(b'\\')));
        assert_eq!(f.compression, Compression::Gzip);
        assert_eq!(
            parse(&[("TYPE", "CSV"), ("RECORD_DELIMITER", "|")])
                .unwrap()
                .record_delimiter,
            Some(b'|')
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("FIELD_DELIMITER", ",")], "needs TYPE"),
            (&[("TYPE", "ORC")], "not supported"),
            (
                &[("TYPE", "CSV"), ("FIELD_DELIMITER", "ab")],
                "one ASCII character",
            ),
            (
                &[("TYPE", "CSV"), ("FIELD_DELIMITER", "é")],
                "one ASCII character",
            ),
            (
                &[("TYPE", "CSV"), ("SKIP_HEADER", "2")],
                "0 (no header) or 1",
            ),
            (&[("TYPE", "CSV"), ("COMPRESSION", "BROTLI")], "AUTO, GZIP"),
            (&[("TYPE", "NDJSON"), ("QUOTE", "'")], "does not take QUOTE"),
            (
                &[("TYPE", "PARQUET"), ("COMPRESSION", "GZIP")],
                "no other option",
            ),
            (
                &[("TYPE", "CSV"), ("BINARY_FORMAT", "HEX")],
                "does not take",
            ),
            (&[("TYPE", "CSV"), ("QUOTE", ",")], "also the quote"),
            (&[("TYPE", "CSV"), ("type", "TSV")], "given twice"),
        ];
        for (pairs, why) in cases {
            let e = parse(pairs).expect_err(&format!("{pairs:?}"));
            assert!(e.contains(why), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn extensions_name_the_type_and_compression() {
        use Compression as C;
        use FormatType as T;
        let cases = [
            ("a/b.csv", Some((T::Csv, C::None))),
            ("b.CSV.GZ", Some((T::Csv, C::Gzip))),
            ("x.tsv.zst", Some((T::Tsv, C::Zstd))),
            ("x.jsonl", Some((T::Ndjson, C::None))),
            ("x.ndjson.bz2", Some((T::Ndjson, C::Bz2))),
            ("x.parquet", Some((T::Parquet, C::None))),
            ("part-0000", None),
            ("x.gz", None),
            ("dir.csv/part-0", None),
            (".csv", None),
        ];
        for (key, want) in cases {
            assert_eq!(FileFormat::detect(key), want, "{key}");
        }
        assert_eq!(FileFormat::of_key("part-0000").kind, T::Parquet);
        assert_eq!(C::Auto.for_key("a.csv.xz"), C::Xz);
        assert_eq!(C::Gzip.for_key("a.csv"), C::Gzip);
    }

    #[test]
    fn null_display_is_matched_literally() {
        let f = parse(&[("TYPE", "CSV"), ("NULL_DISPLAY", "n/a (.)")]).unwrap();
        let re = regex::Regex::new(&f.null_regex()).unwrap();
        assert!(re.is_match("n/a (.)") && re.is_match(""));
        assert!(!re.is_match("n/a (x)") && !re.is_match("\\N"));
        let d = regex::Regex::new(&FileFormat::new(FormatType::Csv).null_regex()).unwrap();
        assert!(d.is_match("\\N") && !d.is_match("N"));
    }
}
