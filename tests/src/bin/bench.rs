//! Benchmark of what the stage query function asks of S3: requests and bytes per query
//! over a 2,000,000-row, 20-row-group Parquet file (~190 MB, page index) in LocalStack.
//!
//! Prints figures; asserts nothing about time. Bytes and requests are stable across runs,
//! wall time is not. Usage: `scripts/bench` (or `cargo run -p xstage-tests --bin bench`).

use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use xstage_tests::bench_data;
use xstage_tests::{localstack, seed};

const ROWS: usize = 2_000_000;
const ROW_GROUP: usize = 100_000;
const KEY: &str = "bench/wide.parquet";

fn write_file() -> Result<Bytes> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Plain encoding except for one dictionary-encoded column, as in the benchmark spec.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("category"), true)
        // ~100 KB pages, so a LIMIT's physical minimum (footer + first pages) is ~1.2 MB.
        .set_data_page_size_limit(96 * 1024)
        .build();
    Ok(bench_data::write(ROWS, 42, props)?)
}

fn main() -> Result<()> {
    seed::platform_identity();
    xstage_tests::runtime().block_on(async {
        eprintln!("==> starting LocalStack ...");
        let endpoint = localstack::localstack().endpoint().to_string();
        eprintln!("==> writing {ROWS} rows in row groups of {ROW_GROUP} ...");
        let t = Instant::now();
        let file = write_file()?;
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required)
            .parse_and_finish(&file)
            .context("reading back the footer")?;
        let footer_len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into()?) as u64 + 8;
        // From the start of every column chunk of row group 0 (its dictionary page, if any)
        // to the end of its first data page, by the offset index.
        let first_pages: i64 = meta
            .offset_index()
            .map(|oi| {
                oi[0].iter()
                    .zip(meta.row_group(0).columns())
                    .map(|(c, chunk)| {
                        let first = &c.page_locations()[0];
                        first.offset + first.compressed_page_size as i64 - chunk.byte_range().0 as i64
                    })
                    .sum()
            })
            .unwrap_or(0);
        eprintln!(
            "    {:.1} MB, {} row groups, footer {} B, dictionary + first data pages of row group 0: {} B ({:.1}s)",
            file.len() as f64 / 1e6,
            meta.num_row_groups(),
            footer_len,
            first_pages,
            t.elapsed().as_secs_f64()
        );
        let admin = seed::seed(&endpoint, Bytes::from_static(b"PAR1")).await?;
        let t = Instant::now();
        admin.put(seed::BUCKET, &format!("{}{KEY}", seed::PREFIX), file.clone()).await?;
        eprintln!("    uploaded in {:.1}s", t.elapsed().as_secs_f64());

        println!("| query | S3 requests | bytes read | target | elapsed ms |");
        println!("| --- | ---: | ---: | --- | ---: |");
        let queries = [
            ("SELECT * ... LIMIT 1", format!("SELECT * FROM @databend_test/{KEY} LIMIT 1"), "≤ 1.5 MB"),
            ("SELECT count(*)", format!("SELECT count(*) FROM @databend_test/{KEY}"), "≤ 64 KB"),
            (
                "id range (~100 rows)",
                format!("SELECT * FROM @databend_test/{KEY} WHERE id BETWEEN 1234500 AND 1234599"),
                "-",
            ),
        ];
        for (label, sql, target) in queries {
            let response = xstage_core::handle(seed::seed_event(&endpoint, &sql))
                .await
                .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            let s = &response.stats;
            println!(
                "| {label} | {} | {} | {target} | {} |",
                s.s3_requests, s.bytes_read, s.elapsed_ms
            );
        }
        println!(
            "\nfile: {} bytes; footer {} bytes; physical minimum of LIMIT 1 (footer + dictionary and first data page of every column) = {} bytes",
            file.len(),
            footer_len,
            footer_len as i64 + first_pages
        );
        Ok(())
    })
}
