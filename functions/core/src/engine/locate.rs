//! An NDJSON reader's error, given the line it refused ([`crate::format::locate`]).

use arrow::datatypes::{Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt};

use crate::error::FunctionError;
use crate::format::{Compression, FileFormat, listing};
use crate::s3::{IoStats, S3Store, key_of};
use crate::sql::FILENAME_COLUMN;

/// One NDJSON file of a query: its key, compression and the schema it is read with.
#[derive(Debug)]
pub struct Ndjson {
    key: String,
    compression: Compression,
    schema: SchemaRef,
}

impl Ndjson {
    /// The files of one table read as `format` with `schema` (its file-name column aside).
    pub fn of(format: &FileFormat, schema: &SchemaRef, files: &[ObjectMeta]) -> Vec<Ndjson> {
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != FILENAME_COLUMN)
            .cloned()
            .collect();
        let schema = SchemaRef::new(Schema::new(fields));
        files
            .iter()
            .filter_map(|m| key_of(&m.location).ok())
            .map(|key| Ndjson {
                compression: format.compression.for_key(&key),
                schema: schema.clone(),
                key,
            })
            .collect()
    }
}

/// `error` with the line of the NDJSON file last read that the reader refuses, when it is
/// one of `files` and a second read finds the line; else `error` as it was.
pub async fn line(
    error: FunctionError,
    store: &S3Store,
    stats: &IoStats,
    files: &[Ndjson],
) -> FunctionError {
    let Some(key) = stats.last_streamed() else {
        return error;
    };
    let Some(file) = files.iter().find(|f| f.key == key) else {
        return error;
    };
    let Ok(got) = store.get(&S3Store::path(&key)).await else {
        return error;
    };
    let body = got
        .into_stream()
        .map_err(datafusion::error::DataFusionError::from)
        .boxed();
    let Ok(body) = listing::compression_type(file.compression).convert_stream(body) else {
        return error;
    };
    match crate::format::locate::ndjson_line(body, file.schema.clone()).await {
        Some(n) => FunctionError::new(
            error.kind(),
            without_record_position(error.message()).replacen(
                "does not match its file format",
                &format!("does not match its file format at line {n}"),
                1,
            ),
        ),
        None => error,
    }
}

/// `message` without serde_json's ` at line L column C`, which counts within one record.
fn without_record_position(message: &str) -> String {
    let mut out = message.to_string();
    if let Some(at) = out.find(" at line ") {
        let rest = &out[at + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let line = digits(rest);
        if line > 0 && rest[line..].starts_with(" column ") {
            let after = &rest[line + " column ".len()..];
            let column = digits(after);
            if column > 0 {
                let end = at + " at line ".len() + line + " column ".len() + column;
                out.replace_range(at..end, "");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_positions_within_a_record_are_dropped() {
        assert_eq!(
            super::without_record_position("Not valid JSON: EOF at line 1 column 17. Check"),
            "Not valid JSON: EOF. Check"
        );
        assert_eq!(
            super::without_record_position("fields for line 3, expected 2"),
            "fields for line 3, expected 2"
        );
    }
}
