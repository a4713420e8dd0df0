//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so the regression tests of
//! this crate replay every input that ever failed through exactly the same code.
//!
//! Each takes arbitrary bytes and must return without panicking, whatever they hold; where a
//! result must hold a property (a stage path never leaves its stage), it asserts it.

mod fragment;

use bytes::Bytes;
use parquet::file::metadata::PageIndexPolicy;

pub use fragment::{fragment, fragment_seeds};

use crate::engine::footer::{Tail, parse_tail, with_page_indexes};
use crate::event::Event;
use crate::sql::{StageRef, Statement, TableSource, rewrite};
use crate::stage::{Location, Selection, StageUrl};

/// The event parser and validator, then the query and stage path resolution it leads to.
pub fn event(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(event) = Event::from_json(value) else {
        return;
    };
    if let Ok(statement) = rewrite(&event.query) {
        for r in refs(&statement) {
            resolve_inside(&event.stage.url, &event.stage.name, r);
        }
        let _ = crate::engine::Plan::new(statement, &event.stage);
    }
}

/// A query (with its stage references, FILES and PATTERN) against the stage
/// `@s = s3://bucket/stage/prefix/`; every resolved location must stay inside the stage.
/// The rewritten SQL then goes through DataFusion's parser, as the engine would send it.
pub fn sql_stage(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(statement) = rewrite(sql) else {
        return;
    };
    let stage = StageUrl::new("bucket", "stage/prefix/").expect("a valid stage");
    for r in refs(&statement) {
        resolve_inside(&stage, "s", r);
    }
    if let Statement::Query { sql, .. } = &statement {
        let _ = datafusion::sql::parser::DFParser::parse_sql(sql);
    }
}

/// The last bytes of a Parquet file through our footer reader: the trailer and footer
/// checks, parquet-rs's decoding, the row count checks, the page indexes, the page header
/// checks over the same bytes, then the statistics DataFusion plans with. The first 8 bytes
/// of `data` give the file's size.
pub fn parquet_footer(data: &[u8]) {
    let Some((size, tail)) = data.split_first_chunk::<8>() else {
        return;
    };
    let tail = Bytes::copy_from_slice(tail);
    // The file is at least its tail; at most a few GiB more.
    let size = (tail.len() as u64).saturating_add(u64::from_le_bytes(*size) % (4 << 30));
    let Ok(Tail::Footer(footer)) = parse_tail(&tail, size) else {
        return;
    };
    let metadata = with_page_indexes(
        &footer,
        &tail,
        size,
        PageIndexPolicy::Optional,
        PageIndexPolicy::Optional,
    )
    .unwrap_or_else(|_| footer.clone());
    column_indexes_read_after_planning(&footer, &tail, size);
    let pages = crate::checks::PageMap::new(&metadata, 64 << 20);
    let _ = pages.check(size - tail.len() as u64, &tail);
    let _ = pages.check(0, &tail);
    statistics(&metadata);
}

/// A CSV or TSV file through DataFusion's reader as xstage configures it
/// ([`crate::format::listing`]): schema inference and a whole read ([`read_text`]). The first
/// byte picks the type (bit 0: TSV), a header line (0x40) and gzip (0x80).
pub fn csv_file(data: &[u8]) {
    use crate::format::{FileFormat, FormatType};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kind = if pick & 1 == 0 {
        FormatType::Csv
    } else {
        FormatType::Tsv
    };
    let mut format = FileFormat::new(kind);
    format.skip_header = pick & 0x40 != 0;
    format.compression = compression(pick);
    futures::executor::block_on(read_text(format, Bytes::copy_from_slice(body)));
}

/// An NDJSON file through DataFusion's reader as xstage configures it, then, uncompressed,
/// the line locator that names a bad line ([`crate::format::locate`]). The first byte picks
/// gzip (0x80).
pub fn ndjson_file(data: &[u8]) {
    use crate::format::{FileFormat, FormatType};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let mut format = FileFormat::new(FormatType::Ndjson);
    format.compression = compression(pick);
    futures::executor::block_on(read_text(format, Bytes::copy_from_slice(body)));
}

fn compression(pick: u8) -> crate::format::Compression {
    if pick & 0x80 != 0 {
        crate::format::Compression::Gzip
    } else {
        crate::format::Compression::None
    }
}

/// Schema inference and a whole read of one text file, on one task without a runtime, as
/// under WASI.
async fn read_text(format: crate::format::FileFormat, body: Bytes) {
    use std::sync::Arc;

    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use datafusion::prelude::{SessionConfig, SessionContext};
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt, path::Path};

    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let store = Arc::new(InMemory::new());
    let path = Path::from("f");
    if store.put(&path, body.clone().into()).await.is_err() {
        return;
    }
    let Ok(url) = url::Url::parse("memory://") else {
        return;
    };
    ctx.register_object_store(&url, store.clone());
    let reader = crate::format::listing::reader(&ctx, &format, format.compression);
    let Ok(meta) = store.head(&path).await else {
        return;
    };
    let dyn_store: Arc<dyn ObjectStore> = store;
    let Ok(schema) = reader
        .infer_schema(&ctx.state(), &dyn_store, std::slice::from_ref(&meta))
        .await
    else {
        return;
    };
    if format.kind == crate::format::FormatType::Ndjson
        && format.compression == crate::format::Compression::None
    {
        let once = futures::stream::once(async { Ok::<_, std::io::Error>(body) });
        let _ = crate::format::locate::ndjson_line(once, schema.clone()).await;
    }
    let Ok(table_url) = ListingTableUrl::parse("memory:///f") else {
        return;
    };
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(ListingOptions::new(reader).with_file_extension(""))
        .with_schema(schema);
    let Ok(table) = ListingTable::try_new(config) else {
        return;
    };
    if let Ok(df) = ctx.read_table(Arc::new(table)) {
        let _ = df.collect().await;
    }
}

/// The column index entries a filter reads after planning, decoded from the tail beside the
/// offset index, as [`crate::engine::column_index`] does.
fn column_indexes_read_after_planning(
    footer: &parquet::file::metadata::ParquetMetaData,
    tail: &Bytes,
    size: u64,
) {
    use crate::engine::column_index::{covering, merge};
    let Ok(metadata) = with_page_indexes(
        footer,
        tail,
        size,
        PageIndexPolicy::Optional,
        PageIndexPolicy::Skip,
    ) else {
        return;
    };
    let entries: std::collections::BTreeSet<(usize, usize)> = metadata
        .row_groups()
        .iter()
        .enumerate()
        .flat_map(|(rg, g)| (0..g.num_columns()).map(move |leaf| (rg, leaf)))
        .collect();
    let start = size - tail.len() as u64;
    let Some(range) = covering(&metadata, &entries) else {
        return;
    };
    if range.start < start || range.end > size {
        return;
    }
    let bytes = tail.slice((range.start - start) as usize..(range.end - start) as usize);
    let _ = merge(&metadata, &entries, range, bytes, size);
}

/// What DataFusion derives from a footer while planning: the Arrow schema, and per column
/// the row group and page statistics it prunes with.
fn statistics(metadata: &parquet::file::metadata::ParquetMetaData) {
    use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
    let parquet_schema = metadata.file_metadata().schema_descr();
    let Ok(schema) = parquet::arrow::parquet_to_arrow_schema(
        parquet_schema,
        metadata.file_metadata().key_value_metadata(),
    ) else {
        return;
    };
    let row_groups = metadata.row_groups();
    let all: Vec<usize> = (0..row_groups.len()).collect();
    for field in schema.fields() {
        let Ok(converter) = StatisticsConverter::try_new(field.name(), &schema, parquet_schema)
        else {
            continue;
        };
        let _ = converter.row_group_mins(row_groups);
        let _ = converter.row_group_maxes(row_groups);
        let _ = converter.row_group_null_counts(row_groups);
        let _ = converter.row_group_row_counts(row_groups);
        if let (Some(columns), Some(offsets)) = (metadata.column_index(), metadata.offset_index()) {
            let _ = converter.data_page_mins(columns, offsets, &all);
            let _ = converter.data_page_maxes(columns, offsets, &all);
            let _ = converter.data_page_null_counts(columns, offsets, &all);
            let _ = converter.data_page_row_counts(offsets, row_groups, &all);
        }
    }
}

fn refs(statement: &Statement) -> Vec<&StageRef> {
    match statement {
        Statement::List(r) => vec![r],
        Statement::Copy(copy) => {
            copy_target_inside(copy);
            refs(&copy.source)
        }
        Statement::Query { tables, .. } => tables
            .iter()
            .map(|t| match &t.source {
                TableSource::Files(r) | TableSource::InferSchema(r) => r,
            })
            .collect(),
    }
}

/// A `COPY INTO`'s target, if it resolves, names keys inside the stage: no dot segment in
/// its directory, its raw path or its manifest.
fn copy_target_inside(copy: &crate::unload::CopyInto) {
    let Ok(target) = crate::unload::target::Target::new(copy, "q".into(), 0) else {
        return;
    };
    for relative in [
        target.dir.clone(),
        target.manifest(),
        target.file_name("", 0),
    ] {
        assert!(
            !relative.starts_with('/') && !relative.split('/').any(|s| s == ".." || s == "."),
            "{copy:?} writes {relative:?}, outside its stage"
        );
    }
}

/// Resolves a reference; if it resolves, every key it can name lies under the stage prefix
/// with no `.` or `..` segment.
fn resolve_inside(stage: &StageUrl, name: &str, r: &StageRef) {
    let Ok(location) =
        Location::resolve(stage, name, &r.path, r.files.clone(), r.pattern.as_deref())
    else {
        return;
    };
    let relatives: Vec<&str> = match &location.selection {
        Selection::Path(p) | Selection::Prefix(p) => vec![p],
        Selection::Glob { list_prefix, .. } => vec![list_prefix],
        Selection::Files(files) => files.iter().map(String::as_str).collect(),
    };
    for relative in relatives {
        let key = stage.key(relative);
        assert!(
            key.starts_with(stage.prefix()),
            "{r:?} resolved to {key}, outside {stage}"
        );
        assert!(
            !relative.split('/').any(|s| s == ".." || s == "."),
            "{r:?} resolved to {relative:?}, which has a dot segment"
        );
    }
}

#[cfg(test)]
mod tests {
    //! Regression inputs, as bytes: hostile inputs written by hand, and every input a fuzz
    //! run reports (with the date and target in a comment).

    use super::*;

    #[test]
    fn events_that_once_failed() {
        let inputs: &[&[u8]] = &[
            br#"{"connection":{"role_arn":"arn:aws:iam::123456789012:role/r","external_id":"e"},"stage":{"name":"s","url":"s3://b/p/"},"query":"SELECT * FROM @s/../x"}"#,
        ];
        for input in inputs {
            event(input);
        }
    }

    #[test]
    fn queries_that_once_failed() {
        let inputs: &[&[u8]] = &[
            b"SELECT * FROM @s/a/../../b",
            b"LIST @s/./x PATTERN => '.*'",
            b"SELECT * FROM @s/ (FILES => ('../x'))",
            // 2026-11-24, sql_stage: DataFusion's parser took minutes on these name chains.
            b"SELECT(VVV[VVVVVVVVVV.p[VV[VVVVVVVVVVVVe.p.$arquemRe.p.par.ueFe.$arVVV.$arquemRe.p.par.ueFe.$arqueFRe.pVVe.p.$arquemRe.p.par.ueFe.$arVVVVVVe.p[VV[VVVVVVVVVVVVe.p.$arquemRe.p.par.ueFe.$arVVV.$arquemRe.p.par.ueFe.$arqueFRe.parq./ousuet",
            // ... and 10 s on this one, chains joined by `(`.
            b"SELECT metadata$.ilta.ilt$.ilta.ilta$.ilta[ata$.ilen (s.data$.ilta.ilt$lta.ilt$.ilta.ilta$.ilta[ata$.ilen (s.data$.ilta.ilt$.ilta.ilta$.ilta[ata$.ilen (s.....ilta.ilta$.ilta[ata$.ilen (s....,...,Fs.!..,F",
            b"SELECT OMst.parqOMOMst.parqOMsv.uOMt.sst.qu.queOMstst.parqOMsv.uOMst.stOMstst.parqOMsv.uOMst.st.qu.queOMst.uOMst.st.queOMs.qu.queOMst.uOMst.st.queOMst.uOMst.st.que[~",
        ];
        // Refused before DataFusion's parser sees them (which would take minutes).
        for input in &inputs[inputs.len() - 3..] {
            let sql = std::str::from_utf8(input).unwrap();
            assert!(rewrite(sql).is_err(), "{sql}");
        }
        for input in inputs {
            sql_stage(input);
        }
    }

    #[test]
    fn long_dotted_names_are_refused_before_datafusion_parses_them() {
        let chain = vec!["a"; crate::sql::MAX_NAME_PARTS + 1].join(".");
        let err = rewrite(&format!("SELECT {chain}[1] FROM @s/x.parquet")).unwrap_err();
        assert!(
            err.message().contains("chains more than"),
            "{}",
            err.message()
        );
        let ok = vec!["a"; crate::sql::MAX_NAME_PARTS + 1].join(".");
        rewrite(&format!("SELECT {ok} FROM @s/x.parquet")).unwrap();
        // Many qualified names, each short: fine.
        let columns = vec!["t.a"; 100].join(", ");
        rewrite(&format!(
            "SELECT {columns} FROM @s/x.parquet t WHERE t.a.b[1] = 1.5"
        ))
        .unwrap();
    }

    /// Text files of every type, well-formed and not, through the fuzz targets' paths.
    #[test]
    fn text_files_never_panic() {
        let inputs: &[&[u8]] = &[
            b"\x40a,b\n1,2\n3,4\n",
            b"\x40a,b\n1,2,3\n\xff\xfe\n",
            b"\x41a\tb\n1\t\\N\n",
            b"\x80\x1f\x8b\x08\x00garbage",
            b"\xc1\x1f\x8b",
            b"\x00",
            b"",
        ];
        for input in inputs {
            csv_file(input);
        }
        let inputs: &[&[u8]] = &[
            b"\x00{\"a\":1}\n{\"a\":\"x\"}\n{\n",
            b"\x00{\"a\":[1,{\"b\":2}]}\n\xff\n",
            b"\x80\x1f\x8b\x08\x00garbage",
            b"\x00",
            b"",
        ];
        for input in inputs {
            ndjson_file(input);
        }
    }

    #[test]
    fn footers_that_once_failed() {
        let inputs: &[&[u8]] = &[b"\x10\0\0\0\0\0\0\0PAR1\0\0\0\0PAR1"];
        for input in inputs {
            parquet_footer(input);
        }
        // 2026-11-24, parquet_footer: an embedded Arrow schema with an Int 0 bits wide made
        // arrow-ipc panic. The same hint in a file written here:
        parquet_footer(
            &[0u8; 8]
                .iter()
                .chain(&file_with_broken_arrow_hint())
                .copied()
                .collect::<Vec<u8>>(),
        );
    }

    fn file_with_broken_arrow_hint() -> Vec<u8> {
        use std::sync::Arc;

        use arrow::array::Int32Array;
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_writer::ArrowWriterOptions;
        use parquet::file::metadata::KeyValue;
        use parquet::file::properties::WriterProperties;

        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2]))])
                .unwrap();
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                crate::checks::arrow_hint::KEY.to_string(),
                crate::checks::arrow_hint::broken::hint(),
            )]))
            .build();
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new_with_options(&mut out, schema, options).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    }

    #[test]
    fn a_file_with_a_broken_arrow_hint_is_read_without_it() {
        let file = Bytes::from(file_with_broken_arrow_hint());
        let Ok(Tail::Footer(footer)) = parse_tail(&file, file.len() as u64) else {
            panic!("the footer decodes");
        };
        let kv = footer.file_metadata().key_value_metadata();
        assert!(
            kv.is_none_or(|kv| kv.iter().all(|e| e.key != crate::checks::arrow_hint::KEY)),
            "{kv:?}"
        );
    }
}
