//! The statement's commit, written last as Athena writes its manifest: the files, their
//! sizes, ETags and row counts. A reader that wants only committed output reads it; a file of
//! the query id that it does not list was never committed. And the answer, in Databend's
//! columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::files::FileEntry;
use crate::error::{FunctionError, Result};

/// `_xstage_manifest_<query id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub query_id: String,
    /// `PARQUET`, `CSV`, `TSV` or `NDJSON`.
    pub format: String,
    pub rows_unloaded: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Stage-relative.
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub row_count: u64,
}

impl Manifest {
    pub fn new(query_id: &str, format: &str, files: &[FileEntry]) -> Self {
        Self {
            query_id: query_id.to_string(),
            format: format.to_string(),
            rows_unloaded: files.iter().map(|f| f.rows).sum(),
            input_bytes: files.iter().map(|f| f.input_bytes).sum(),
            output_bytes: files.iter().map(|f| f.size).sum(),
            files: files
                .iter()
                .map(|f| ManifestFile {
                    name: f.name.clone(),
                    size: f.size,
                    etag: f.etag.clone(),
                    row_count: f.rows,
                })
                .collect(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Databend's answer: `rows_unloaded, input_bytes, output_bytes`, or with
    /// `DETAILED_OUTPUT = TRUE` one row per file, `file_name, file_size, row_count`.
    pub fn answer(&self, detailed: bool) -> Result<RecordBatch> {
        let u64s = |name: &str| Field::new(name, DataType::UInt64, false);
        let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = if detailed {
            (
                vec![
                    Field::new("file_name", DataType::Utf8, false),
                    u64s("file_size"),
                    u64s("row_count"),
                ],
                vec![
                    Arc::new(StringArray::from_iter_values(
                        self.files.iter().map(|f| &f.name),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        self.files.iter().map(|f| f.size),
                    )),
                    Arc::new(UInt64Array::from_iter_values(
                        self.files.iter().map(|f| f.row_count),
                    )),
                ],
            )
        } else {
            (
                vec![
                    u64s("rows_unloaded"),
                    u64s("input_bytes"),
                    u64s("output_bytes"),
                ],
                vec![
                    Arc::new(UInt64Array::from(vec![self.rows_unloaded])),
                    Arc::new(UInt64Array::from(vec![self.input_bytes])),
                    Arc::new(UInt64Array::from(vec![self.output_bytes])),
                ],
            )
        };
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| FunctionError::internal(format!("the COPY INTO answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_answers() {
        let files = [
            FileEntry {
                name: "o/a.csv".into(),
                size: 10,
                etag: "e1".into(),
                rows: 3,
                input_bytes: 90,
                adopted: false,
            },
            FileEntry {
                name: "o/b.csv".into(),
                size: 5,
                etag: "e2".into(),
                rows: 2,
                input_bytes: 9,
                adopted: false,
            },
        ];
        let m = Manifest::new("q", "CSV", &files);
        assert_eq!(
            (m.rows_unloaded, m.output_bytes, m.input_bytes),
            (5, 15, 99)
        );
        let back: Manifest = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        let a = m.answer(false).unwrap();
        assert_eq!(a.num_rows(), 1);
        assert_eq!(a.schema().field(0).name(), "rows_unloaded");
        let d = m.answer(true).unwrap();
        assert_eq!(d.num_rows(), 2);
        assert_eq!(d.schema().field(0).name(), "file_name");
    }
}
