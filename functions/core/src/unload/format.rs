//! What a `COPY INTO` writes: `FILE_FORMAT = (TYPE = … …)` with the options a stage takes,
//! plus those only an unload takes (`OUTPUT_HEADER`, Parquet's `COMPRESSION`).

use super::statement::{Cursor, boolean, invalid};
use crate::error::Result;
use crate::format::{Compression, FileFormat, FormatType};
use crate::sql::lexer::{self, Kind, Token};

/// What the unloaded files hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFormat {
    /// The type and, for text, its options (delimiters, quote, escape, NULL_DISPLAY) and
    /// compression (`AUTO` is none).
    pub file: FileFormat,
    /// CSV and TSV: `OUTPUT_HEADER = TRUE` writes the column names first (Databend's
    /// default: false).
    pub output_header: bool,
    /// Parquet: `COMPRESSION = ZSTD` (Databend's default) `| SNAPPY | GZIP | LZ4 | NONE`.
    pub parquet_compression: ParquetCompression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    Zstd,
    Snappy,
    Gzip,
    Lz4,
    None,
}

/// `(TYPE = CSV COMPRESSION = GZIP …)`, after `FILE_FORMAT =`.
pub(super) fn file_format(sql_text: &str, c: &mut Cursor) -> Result<OutputFormat> {
    let (open, close) = c.parenthesised()?;
    let tokens = lexer::lex(&sql_text[open..close]).map_err(invalid)?;
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.kind != Kind::Trivia).collect();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < sig.len() {
        let key = sig[i];
        if key.kind != Kind::Word || !sig.get(i + 1).is_some_and(|t| t.is_symbol('=')) {
            return Err(invalid(format!(
                "FILE_FORMAT expects NAME = value pairs, found {:?}",
                key.text
            )));
        }
        let value = sig
            .get(i + 2)
            .ok_or_else(|| invalid(format!("FILE_FORMAT: {} has no value", key.text)))?;
        let mut text = value
            .string_value()
            .unwrap_or_else(|| value.text.to_string());
        i += 3;
        // A number lexes one character at a time: join what touches.
        while value.kind == Kind::Other
            && sig
                .get(i)
                .is_some_and(|t| t.start == sig[i - 1].end && t.kind != Kind::Trivia)
            && !sig.get(i + 1).is_some_and(|t| t.is_symbol('='))
        {
            text.push_str(sig[i].text);
            i += 1;
        }
        if sig.get(i).is_some_and(|t| t.is_symbol(',')) {
            i += 1;
        }
        pairs.push((key.text.to_ascii_uppercase(), text));
    }
    output_format(pairs)
}

/// Splits off the options only an unload takes (`OUTPUT_HEADER`, Parquet's `COMPRESSION`)
/// and reads the rest as a stage's file format.
pub fn output_format(mut pairs: Vec<(String, String)>) -> Result<OutputFormat> {
    let take = |pairs: &mut Vec<(String, String)>, key: &str| {
        pairs
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| pairs.remove(i).1)
    };
    let kind = pairs
        .iter()
        .find(|(k, _)| k == "TYPE")
        .map(|(_, v)| FormatType::from_name(v))
        .transpose()
        .map_err(invalid)?;
    let mut output_header = false;
    if let Some(v) = take(&mut pairs, "OUTPUT_HEADER") {
        if !kind.is_some_and(FormatType::is_delimited) {
            return Err(invalid("OUTPUT_HEADER applies to TYPE = CSV or TSV"));
        }
        output_header = boolean("OUTPUT_HEADER", &v)?;
    }
    let mut parquet_compression = ParquetCompression::Zstd;
    if kind == Some(FormatType::Parquet)
        && let Some(v) = take(&mut pairs, "COMPRESSION")
    {
        parquet_compression = match v.to_ascii_uppercase().as_str() {
            "ZSTD" => ParquetCompression::Zstd,
            "SNAPPY" => ParquetCompression::Snappy,
            "GZIP" => ParquetCompression::Gzip,
            "LZ4" | "LZ4_RAW" => ParquetCompression::Lz4,
            "NONE" => ParquetCompression::None,
            other => {
                return Err(invalid(format!(
                    "Parquet COMPRESSION {other:?} is not supported; give ZSTD, SNAPPY, GZIP, LZ4 or NONE"
                )));
            }
        };
    }
    let mut file =
        FileFormat::parse(pairs).map_err(|why| invalid(format!("FILE_FORMAT: {why}")))?;
    if file.compression == Compression::Auto {
        file.compression = Compression::None;
    }
    if file.skip_header {
        return Err(invalid(
            "SKIP_HEADER is a reading option; to write the column names give OUTPUT_HEADER = TRUE",
        ));
    }
    Ok(OutputFormat {
        file,
        output_header,
        parquet_compression,
    })
}
