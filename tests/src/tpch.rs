//! TPC-H data for the fan-out tests and bench: `lineitem` generated with `tpchgen` in parts
//! (one Parquet file each, several row groups), and the queries run over it.

use arrow::record_batch::{RecordBatch, RecordBatchReader};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::LineItemArrow;

/// One part of `lineitem` at `scale` (of `parts`), as Parquet with row groups of
/// `row_group_rows`, zstd, page statistics.
pub fn lineitem_part(scale: f64, part: i32, parts: i32, row_group_rows: usize) -> Bytes {
    let generator =
        LineItemArrow::new(LineItemGenerator::new(scale, part, parts)).with_batch_size(8192);
    let schema = generator.schema();
    let batches: Vec<RecordBatch> = generator
        .collect::<Result<_, _>>()
        .expect("generate lineitem");
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props)).expect("parquet writer");
    for batch in &batches {
        writer.write(batch).expect("write lineitem");
    }
    writer.close().expect("close parquet writer");
    Bytes::from(buf)
}

/// TPC-H Q1 over `table` (a stage location such as `@s/lineitem/`).
/// `lineitem` at `scale` in `parts` files (row groups of `row_group_rows`), generated once
/// per configuration under the cache (`$XSTAGE_CACHE`, else `~/.cache/xstage`): the
/// benchmarks' datasets. Returns each file's name and bytes.
pub fn cached_lineitem(
    scale: f64,
    parts: i32,
    row_group_rows: usize,
) -> anyhow::Result<Vec<(String, Bytes)>> {
    use anyhow::Context;
    use std::path::PathBuf;
    let cache = std::env::var_os("XSTAGE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/xstage")))
        .context("no cache directory")?
        .join(format!(
            "bench-fanout/sf{scale}-p{parts}-rg{row_group_rows}"
        ));
    std::fs::create_dir_all(&cache)?;
    let mut files = Vec::new();
    for part in 1..=parts {
        let name = format!("part-{part:03}.parquet");
        let path = cache.join(&name);
        let body = match std::fs::read(&path) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                eprint!("\r    generating {name} of {parts}");
                let body = lineitem_part(scale, part, parts, row_group_rows);
                let partial = path.with_extension("partial");
                std::fs::write(&partial, &body)?;
                std::fs::rename(&partial, &path)?;
                body
            }
        };
        files.push((name, body));
    }
    eprintln!();
    Ok(files)
}

pub fn q1(table: &str) -> String {
    format!(
        "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, \
         sum(l_extendedprice) AS sum_base_price, \
         sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
         sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
         avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, \
         avg(l_discount) AS avg_disc, count(*) AS count_order \
         FROM {table} WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY \
         GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
    )
}

/// TPC-H Q6 over `table`.
pub fn q6(table: &str) -> String {
    format!(
        "SELECT sum(l_extendedprice * l_discount) AS revenue FROM {table} \
         WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
         AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"
    )
}
