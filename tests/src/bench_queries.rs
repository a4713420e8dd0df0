//! The read benchmark's files and queries (`scripts/bench`, `src/bin/bench.rs`): the wide
//! table, a small file, ten parts and a CSV copy (`bench_data`), and each query with its
//! physical minimum ([`crate::minimum`]).

use anyhow::Result;
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::{Value, json};

use crate::minimum::Layout;
use crate::{bench_data, seed};

/// Rows of `wide.parquet`.
pub const WIDE_ROWS: usize = 2_000_000;
/// Rows per row group of every Parquet file.
pub const ROW_GROUP: usize = 100_000;
/// Rows of `small.parquet`.
pub const SMALL_ROWS: usize = 1_000;
/// Files under `parts/`, of [`PART_ROWS`] rows each.
pub const PARTS: usize = 10;
/// Rows of each part.
pub const PART_ROWS: usize = 100_000;
/// The first rows of `wide.parquet`'s data as `wide.csv`.
pub const CSV_ROWS: usize = 500_000;
/// About 100 rows of the sorted id.
pub const RANGE: (i64, i64) = (1_234_500, 1_234_599);

/// The writer settings of every Parquet file: snappy, page statistics and indexes, plain
/// encoding but for the dictionary-encoded `category`, pages of at most 96 KiB.
pub fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Plain encoding except for one dictionary-encoded column.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("category"), true)
        .set_data_page_size_limit(96 * 1024)
        .build()
}

/// One benchmark query.
pub struct Query {
    pub id: &'static str,
    pub label: &'static str,
    pub sql: String,
    /// Footer plus the pages the query must read.
    pub minimum: u64,
    /// The stage's `file_format`, if not Parquet.
    pub file_format: Option<Value>,
}

impl Query {
    /// The seed's event for this query, at `endpoint`.
    pub fn event(&self, endpoint: &str) -> Value {
        let mut event = seed::seed_event(endpoint, &self.sql);
        if let Some(format) = &self.file_format {
            event["stage"]["file_format"] = format.clone();
        }
        event
    }
}

/// The files to upload under the stage, and the queries over them.
pub struct Dataset {
    pub queries: Vec<Query>,
    pub files: Vec<(String, Bytes)>,
}

/// Generates every file (deterministically) and measures each query's minimum from them.
pub fn dataset() -> Result<Dataset> {
    let key = |name: &str| format!("bench/{name}");
    let wide = bench_data::write(WIDE_ROWS, 42, props())?;
    let small = bench_data::write(SMALL_ROWS, 7, props())?;
    let parts: Vec<Bytes> = (0..PARTS)
        .map(|i| bench_data::write(PART_ROWS, 100 + i as u64, props()))
        .collect::<parquet::errors::Result<_>>()?;
    let w = Layout::parse(&wide)?;
    let s = Layout::parse(&small)?;
    let csv = bench_data::write_csv(CSV_ROWS, 42)?;
    let part_footers: u64 = parts
        .iter()
        .map(|p| Layout::parse(p).map(|l| l.footer()))
        .sum::<Result<u64>>()?;
    let at = |name: &str| format!("@{}/{}", seed::STAGE, key(name));
    let queries = vec![
        Query {
            id: "limit1",
            label: "SELECT * … LIMIT 1",
            sql: format!("SELECT * FROM {} LIMIT 1", at("wide.parquet")),
            minimum: w.first_row()?,
            file_format: None,
        },
        Query {
            id: "range",
            label: "id BETWEEN (100 rows)",
            sql: format!(
                "SELECT * FROM {} WHERE id BETWEEN {} AND {}",
                at("wide.parquet"),
                RANGE.0,
                RANGE.1
            ),
            // The id is the row number (`bench_data`).
            minimum: w.int64_range("id", RANGE.0, RANGE.1, RANGE.0..RANGE.1 + 1)?,
            file_format: None,
        },
        Query {
            id: "count",
            label: "count(*)",
            sql: format!("SELECT count(*) FROM {}", at("wide.parquet")),
            minimum: w.footer(),
            file_format: None,
        },
        Query {
            id: "group",
            label: "GROUP BY category, flag",
            sql: format!(
                "SELECT category, flag, count(*) FROM {} GROUP BY category, flag \
                 ORDER BY category, flag",
                at("wide.parquet")
            ),
            minimum: w.whole_columns(&["category", "flag"])?,
            file_format: None,
        },
        Query {
            id: "small",
            label: "all of a 1,000-row file",
            sql: format!("SELECT * FROM {}", at("small.parquet")),
            minimum: s.whole_columns(&[])?,
            file_format: None,
        },
        Query {
            id: "parts",
            label: "count(*) over 10 files",
            sql: format!("SELECT count(*) FROM {}", at("parts/")),
            minimum: part_footers,
            file_format: None,
        },
        // A CSV file has no footer and no pages: every query reads all of it.
        Query {
            id: "csv_count",
            label: "CSV count(*)",
            sql: format!("SELECT count(*) FROM {}", at("wide.csv")),
            minimum: csv.len() as u64,
            file_format: Some(json!({"type": "CSV", "skip_header": 1})),
        },
        Query {
            id: "csv_group",
            label: "CSV GROUP BY category, flag",
            sql: format!(
                "SELECT category, flag, count(*) FROM {} GROUP BY category, flag \
                 ORDER BY category, flag",
                at("wide.csv")
            ),
            minimum: csv.len() as u64,
            file_format: Some(json!({"type": "CSV", "skip_header": 1})),
        },
    ];
    let mut files = vec![
        (key("wide.parquet"), wide),
        (key("small.parquet"), small),
        (key("wide.csv"), csv),
    ];
    for (i, p) in parts.into_iter().enumerate() {
        files.push((key(&format!("parts/part-{i:02}.parquet")), p));
    }
    Ok(Dataset { queries, files })
}
