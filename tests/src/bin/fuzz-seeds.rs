//! Writes the fuzz corpus seeds (`fuzz/corpus/<target>/`), generated rather than committed:
//! the seed scenario's events, the queries the tests and the README run, and the tails of
//! Parquet files written here (every codec, page indexes, nested types, a hand-forged file),
//! CSV, TSV and NDJSON files, and worker fragments as a coordinator encodes them.
//!
//! `scripts/fuzz` runs it: `cargo build --workspace --bins && $CARGO_TARGET_DIR/debug/fuzz-seeds fuzz/corpus`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use parquet::basic::Compression;
use xstage_tests::forge::Forge;
use xstage_tests::{fixtures, seed};

const QUERIES: &[&str] = &[
    "SELECT * FROM @databend_test/test.parquet LIMIT 1",
    "SELECT count(*) FROM @databend_test/test.parquet",
    "SELECT name, age FROM @databend_test/test.parquet WHERE age > 30 ORDER BY age DESC LIMIT 5",
    "SELECT region, sum(price) FROM @databend_test/sales/ (PATTERN => '.*[.]parquet') GROUP BY region",
    "SELECT metadata$filename, count(*) FROM @s/sales/2024/ (FILES => ('part-0.parquet', 'part-1.parquet')) GROUP BY 1",
    "SELECT * FROM @s/sales/*/part-?.parquet",
    "SELECT * FROM INFER_SCHEMA(location => '@s/types.parquet')",
    "LIST @s/sales/ PATTERN => '.*2024.*'",
    "SELECT a.id FROM @s/a.parquet a JOIN @s/b.parquet b ON a.id = b.id",
    "SELECT * FROM '@s/quoted path/x.parquet'",
    "SELECT * FROM @s/../outside.parquet",
    "WITH t AS (SELECT * FROM @s/x.parquet) SELECT count(*) FROM t; ",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))
}

fn main() -> Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for (i, query) in QUERIES.iter().enumerate() {
        write(
            &root.join("sql_stage"),
            &format!("query-{i}"),
            query.as_bytes(),
        )?;
        let event = seed::seed_event(
            "http://127.0.0.1:4566",
            &query.replace("@s/", "@databend_test/"),
        );
        write(
            &root.join("event"),
            &format!("seed-{i}"),
            event.to_string().as_bytes(),
        )?;
    }
    let risingwave = serde_json::json!({
        "connection": {
            "s3.assume_role": seed::role_arn(), "s3.region_name": "us-east-1", "external_id": "ext-1",
            "s3.bucket_name": "b", "s3.path": "p/",
        },
        "query": "SELECT 1",
    });
    write(
        &root.join("event"),
        "risingwave",
        risingwave.to_string().as_bytes(),
    )?;

    let people = fixtures::people(300);
    let (types, _) = fixtures::types_batch();
    let mut files = vec![
        ("forge".to_string(), Forge::valid(100).bytes()),
        (
            "types".to_string(),
            fixtures::write_parquet(&[types], Compression::SNAPPY, 10),
        ),
    ];
    for (name, codec) in fixtures::codecs() {
        files.push((
            format!("people-{name}"),
            fixtures::write_parquet(&[fixtures::people_batch(&people)], codec, 100),
        ));
    }
    for (name, file) in files {
        // The whole file (size = its length), and its last 4 KiB of a file 1 MiB larger.
        let mut whole = 0u64.to_le_bytes().to_vec();
        whole.extend_from_slice(&file);
        write(
            &root.join("parquet_footer"),
            &format!("{name}-whole"),
            &whole,
        )?;
        let tail = &file[file.len().saturating_sub(4096)..];
        let mut cut = ((file.len() - tail.len()) as u64 + (1 << 20))
            .to_le_bytes()
            .to_vec();
        cut.extend_from_slice(tail);
        write(&root.join("parquet_footer"), &format!("{name}-tail"), &cut)?;
    }
    println!("fuzz seeds written under {}", root.display());
    // Text files: the first byte picks TSV (bit 0), a header line (0x40) and gzip (0x80)
    // (xstage_core::fuzz::csv_file and ndjson_file).
    let people = fixtures::people(20);
    let mut csv = String::from("id,name,age,score,active\n");
    let mut ndjson = String::new();
    for p in &people {
        csv.push_str(&format!(
            "{},\"{}\",{},{},{}\n",
            p.id, p.name, p.age, p.score, p.active
        ));
        ndjson.push_str(&format!(
            "{{\"id\":{},\"name\":\"{}\",\"tags\":[1,2],\"nested\":{{\"x\":null}}}}\n",
            p.id, p.name
        ));
    }
    let tsv = csv.replace(',', "\t").replace("\"", "");
    let gzip = |text: &str| -> std::io::Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes())?;
        gz.finish()
    };
    for (target, name, pick, body) in [
        ("csv_file", "csv", 0x40u8, csv.clone().into_bytes()),
        ("csv_file", "tsv", 0x41, tsv.into_bytes()),
        ("csv_file", "csv-gz", 0xc0, gzip(&csv)?),
        ("ndjson_file", "ndjson", 0x00, ndjson.clone().into_bytes()),
        ("ndjson_file", "ndjson-gz", 0x80, gzip(&ndjson)?),
    ] {
        let mut seed = vec![pick];
        seed.extend_from_slice(&body);
        write(&root.join(target), name, &seed)?;
    }
    // Fragments as a coordinator encodes them (xstage_core::fuzz::fragment).
    for (i, seed) in xstage_core::fuzz::fragment_seeds().iter().enumerate() {
        write(&root.join("fragment"), &format!("coordinator-{i}"), seed)?;
    }
    Ok(())
}
