//! How a Parquet file is laid out: its codec, its pages, and which columns get a dictionary.
//!
//! Two choices differ from parquet-rs's defaults, each measured against DuckDB's files of
//! the same rows (BENCHMARKS.md, "Writes"):
//! - A data page ends at 1 MiB of values and at most [`PAGE_ROWS`] rows, not 20,000: zstd
//!   compresses each page alone, and small pages of narrow columns cost 10%.
//! - A column whose values in the file's first chunk are mostly distinct is written PLAIN.
//!   Its dictionary would outgrow its page and fall back to PLAIN anyway, after pages of
//!   dictionary indexes (DuckDB makes the same choice per column).

use std::collections::HashSet;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use parquet::basic::{Compression as ParquetCodec, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::format::ParquetCompression;

/// The most rows in one data page.
pub const PAGE_ROWS: usize = 100_000;
/// The fewest rows a first chunk needs for its distinct count to decide.
const SAMPLE_ROWS: usize = 1024;

/// The writer properties of a file whose first chunk is `first`.
pub fn of(compression: ParquetCompression, first: &RecordBatch) -> WriterProperties {
    let codec = match compression {
        // Level 3, zstd's own default (parquet-rs defaults to 1).
        ParquetCompression::Zstd => ParquetCodec::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()),
        ParquetCompression::Snappy => ParquetCodec::SNAPPY,
        ParquetCompression::Gzip => ParquetCodec::GZIP(GzipLevel::default()),
        ParquetCompression::Lz4 => ParquetCodec::LZ4_RAW,
        ParquetCompression::None => ParquetCodec::UNCOMPRESSED,
    };
    let mut props = WriterProperties::builder()
        .set_compression(codec)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_created_by("xstage".to_string());
    for name in mostly_distinct(first) {
        props = props.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    props.build()
}

/// The top-level flat columns of `batch` more than half of whose values are distinct.
fn mostly_distinct(batch: &RecordBatch) -> Vec<String> {
    if batch.num_rows() < SAMPLE_ROWS {
        return Vec::new();
    }
    let schema = batch.schema();
    let mut out = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let flat = !field.data_type().is_nested()
            && !matches!(
                field.data_type(),
                DataType::Dictionary(..) | DataType::Boolean
            );
        if !flat {
            continue;
        }
        let Ok(converter) = RowConverter::new(vec![SortField::new(field.data_type().clone())])
        else {
            continue;
        };
        let Ok(rows) = converter.convert_columns(std::slice::from_ref(column)) else {
            continue;
        };
        let distinct: HashSet<arrow::row::Row<'_>> = rows.iter().collect();
        if distinct.len() * 2 > batch.num_rows() {
            out.push(field.name().clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn mostly_distinct_columns_go_without_a_dictionary() {
        let n = 4096;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("country", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["fr", "de", "jp"][i as usize % 3]),
                )),
            ],
        )
        .unwrap();
        assert_eq!(mostly_distinct(&batch), ["id"]);
        let props = of(ParquetCompression::Zstd, &batch);
        assert!(!props.dictionary_enabled(&ColumnPath::from("id")));
        assert!(props.dictionary_enabled(&ColumnPath::from("country")));
        assert_eq!(props.data_page_row_count_limit(), PAGE_ROWS);
        // Too few rows to tell: parquet's defaults.
        assert!(mostly_distinct(&batch.slice(0, 100)).is_empty());
    }
}
