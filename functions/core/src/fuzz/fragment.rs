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
