//! The fuzz target over what a worker receives: a plan fragment's bytes (its event's
//! `fragment.plan`, base64 decoded), and the fragments a coordinator makes, as its seeds.

use std::sync::{Arc, LazyLock};

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};

use crate::error::{FunctionError, Result};
use crate::event::Stage;
use crate::fanout::fragment::{Shape, decode, encode};
use crate::fanout::split::Split;
use crate::stage::StageUrl;

/// A worker's session for the stage `s3://bucket/stage/` (two Parquet files in memory,
/// table `t`), made once.
static WORKER: LazyLock<(SessionContext, Stage)> = LazyLock::new(|| {
    futures::executor::block_on(worker()).expect("a worker's session over memory")
});

async fn worker() -> Result<(SessionContext, Stage)> {
    let stage = Stage {
        name: "s".into(),
        url: StageUrl::new("bucket", "stage/")?,
        file_format: None,
    };
    let ctx = crate::engine::planned_session(&stage, 64 << 20)?;
    let store = Arc::new(InMemory::new());
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("g", DataType::Utf8, true),
    ]));
    for file in 0..2i64 {
        let keys: Vec<i64> = (0..100).map(|i| file * 100 + i).collect();
        let groups = keys
            .iter()
            .map(|k| (k % 3 > 0).then(|| format!("g{}", k % 5)));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(keys.clone())),
                Arc::new(StringArray::from_iter(groups)),
            ],
        )
        .map_err(internal)?;
        let mut body = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut body, schema.clone(), None)
            .map_err(internal)?;
        writer
            .write(&batch)
            .and_then(|()| writer.close().map(drop))
            .map_err(internal)?;
        let path = Path::from(format!("stage/part-{file}.parquet"));
        store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(internal)?;
    }
    let url = url::Url::parse("s3://bucket").map_err(internal)?;
    ctx.register_object_store(&url, store as Arc<dyn ObjectStore>);
    ctx.register_parquet("t", "s3://bucket/stage/", ParquetReadOptions::default())
        .await
        .map_err(internal)?;
    Ok((ctx, stage))
}

fn internal(e: impl std::fmt::Display) -> FunctionError {
    FunctionError::internal(e.to_string())
}

/// A fragment's bytes through the check every worker runs ([`decode`]), for a reader's and
/// a writer's shape: refused or accepted, never a panic; an accepted fragment reads only
/// files inside the stage, with no dot segment.
pub fn fragment(data: &[u8]) {
    let (ctx, stage) = &*WORKER;
    for shape in [Shape::Partial, Shape::Rows] {
        let Ok(checked) = decode(data, ctx, stage, shape) else {
            continue;
        };
        for meta in &checked.files {
            let key = meta.location.as_ref();
            assert!(
                key.starts_with("stage/") && !key.split('/').any(|s| s == "." || s == ".."),
                "an accepted fragment reads {key}, outside s3://bucket/stage/"
            );
        }
    }
}

/// Fragments as a coordinator encodes them: a partial aggregation, a top k, a limit, and a
/// writer's rows.
pub fn fragment_seeds() -> Vec<Vec<u8>> {
    let (ctx, _) = &*WORKER;
    let plan = |sql: &str| {
        futures::executor::block_on(async {
            let df = ctx.sql(sql).await.ok()?;
            crate::engine::physical_plan(df, true).await.ok()
        })
    };
    let mut seeds = Vec::new();
    for sql in [
        "SELECT g, count(*), sum(k) FROM t GROUP BY g",
        "SELECT k, g FROM t WHERE k > 10 ORDER BY k DESC LIMIT 5",
        "SELECT * FROM t LIMIT 3",
    ] {
        let split = plan(sql).as_ref().and_then(Split::of);
        if let Some(bytes) = split.and_then(|s| encode(s.worker(None).ok()?).ok()) {
            seeds.push(bytes);
        }
    }
    let rows = plan("SELECT g, k * 2 AS w FROM t WHERE k > 1")
        .as_ref()
        .and_then(Split::rows);
    if let Some(bytes) = rows.and_then(|s| encode(s.worker(None).ok()?).ok()) {
        seeds.push(bytes);
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input a fuzz run reported, replayed (and refused: `InvalidEvent`, no panic).
    #[test]
    fn fragments_that_once_failed() {
        let inputs: &[&[u8]] = &[
            // 2026-12-08, fragment: a Parquet scan's options with writer_version "0.0";
            // datafusion-proto-common unwraps their conversion (a panic).
            b"\x0a\xf6\x04\x0a\xe3\x03\x0a\x93\x02\x0a\x86\x01\x0a\x14\x73\x74\x61\x67\x65\x2f\x70\x61\
              \x72\x74\x2d\x30\x2e\x70\x61\x72\x71\x75\x65\x74\x10\x9d\x0d\x18\xfb\xf2\xd1\xe7\xd8\xa3\
              \xc7\xf7\x18\x32\x61\x0a\x04\x12\x02\x58\x64\x12\x04\x08\x02\x12\x00\x1a\x25\x0a\x04\x12\
              \x02\x38\x00\x12\x04\x12\x02\x38\x63\x1a\x04\x12\x02\x58\x00\x22\x04\x08\x02\x12\x00\x2a\
              \x04\x08\x02\x12\x00\x32\x05\x12\x03\x58\xa0\x06\x1a\x2c\x0a\x07\x12\x05\xba\x01\x02\x67\
              \x30\x12\x07\x12\x05\xba\x01\x02\x67\x34\x1a\x04\x12\x02\x58\x22\x22\x04\x08\x02\x12\x00\
              \x2a\x04\x08\x02\x12\x00\x32\x06\x08\x01\x12\x02\x58\x6d\x0a\x87\x01\x0a\x14\x73\x74\x61\
              \x67\x65\x2f\x70\x61\x72\x74\x2d\x31\x2e\x70\x61\x72\x71\x75\x65\x74\x10\x9d\x0d\x18\xaf\
              \xd5\xda\xe7\xd8\xa3\xc7\xf7\x18\x32\x62\x0a\x04\x12\x02\x58\x64\x12\x04\x08\x02\x12\x00\
              \x1a\x26\x0a\x04\x12\x02\x38\x64\x12\x05\x12\x03\x38\xc7\x01\x1a\x04\x12\x02\x58\x00\x22\
              \x04\x08\x02\x12\x00\x2a\x04\x08\x02\x12\x00\x32\x05\x12\x03\x58\xa0\x06\x1a\x2c\x0a\x07\
              \x12\x05\xba\x01\x02\x67\x30\x12\x07\x12\x05\xba\x01\x02\x67\x34\x1a\x04\x12\x02\x58\x21\
              \x22\x04\x08\x02\x12\x00\x2a\x04\x08\x02\x12\x00\x32\x06\x08\x01\x12\x02\x58\x6d\x12\x15\
              \x0a\x07\x0a\x01\x6b\x12\x02\x52\x00\x0a\x0a\x0a\x01\x67\x12\x03\x9a\x02\x00\x18\x01\x32\
              \x74\x0a\x07\x08\x01\x12\x03\x58\xc8\x01\x12\x04\x08\x02\x12\x00\x1a\x2e\x0a\x06\x08\x01\
              \x12\x02\x38\x00\x12\x07\x08\x01\x12\x03\x38\xc7\x01\x1a\x06\x08\x01\x12\x02\x58\x00\x22\
              \x04\x08\x02\x12\x00\x2a\x04\x08\x02\x12\x00\x32\x07\x08\x01\x12\x03\x58\xc0\x0c\x1a\x33\
              \x0a\x09\x08\x21\x12\x05\xba\x01\x02\x67\x30\x12\x09\x08\x01\x12\x05\xba\x01\x02\x67\x34\
              \x1a\x06\x08\x01\x12\x02\x58\x43\x22\x04\x08\x02\x12\x00\x2a\x04\x08\x02\x12\x00\x32\x07\
              \x08\x01\x12\x03\x58\xda\x01\x42\x0c\x73\x33\x3a\x2f\x2f\x62\x75\x63\x6b\x65\x74\x2f\x5a\
              \x00\x6a\x2e\x0a\x0c\x0a\x01\x67\x12\x07\x0a\x05\x0a\x01\x67\x10\x01\x0a\x1e\x0a\x01\x77\
              \x12\x19\x1a\x17\x1a\x08\x4d\x75\x6c\x74\x69\x70\x6c\x79\x22\x05\x0a\x03\x0a\x01\x6b\x22\
              \x04\x12\x02\x38\x02\x1a\x13\x1a\x11\x1a\x02\x47\x74\x22\x05\x0a\x03\x0a\x01\x6b\x22\x04\
              \x12\x02\x38\x01\x22\x79\x0a\x77\x08\x01\x10\x01\x18\x01\x20\x80\x80\x04\x28\x01\x30\x01\
              \x38\x80\x80\x40\x40\x80\x08\x4a\x03\x30\x2e\x30\x52\x07\x7a\x73\x74\x64\x28\x33\x29\x58\
              \x01\x60\x80\x80\x40\x6a\x04\x70\x61\x67\x65\x78\x80\x80\x40\x82\x01\x19\x64\x61\x74\x61\
              \x66\x75\x73\x69\x6f\x6e\x20\x76\x65\x72\x73\x69\x6f\x6e\x20\x35\x35\x2e\x32\x2e\x30\x88\
              \x01\x40\x90\x01\xa0\x9c\x01\xb8\x01\x01\xc0\x01\x01\xc8\x01\x02\xd0\x01\x01\xe0\x01\x01\
              \xf8\x01\x40\x9a\x02\x08\x10\x80\x80\x10\x18\x80\x80\x40\xb0\x02\x14",
        ];
        let (ctx, stage) = &*WORKER;
        for input in inputs {
            fragment(input);
            let e = decode(input, ctx, stage, Shape::Partial).err().unwrap();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent, "{e}");
            // Refused by the checks before datafusion-proto, not by catching its panic
            // (which a WASI guest, compiled to abort, cannot).
            assert!(e.message().contains("Parquet options"), "{e}");
        }
    }

    /// The seeds are accepted as they are, and every cut and every flipped byte of them is
    /// refused or accepted without a panic.
    #[test]
    fn fragments_cut_or_flipped_never_panic() {
        let seeds = fragment_seeds();
        assert_eq!(seeds.len(), 4, "every seed query splits");
        let (ctx, stage) = &*WORKER;
        for (i, seed) in seeds.iter().enumerate() {
            let shape = if i == 3 { Shape::Rows } else { Shape::Partial };
            decode(seed, ctx, stage, shape).expect("a coordinator's own fragment");
            for cut in (0..seed.len()).step_by(7) {
                fragment(&seed[..cut]);
            }
            for at in (0..seed.len()).step_by(5) {
                let mut flipped = seed.clone();
                flipped[at] ^= 0x5a;
                fragment(&flipped);
            }
        }
    }
}
