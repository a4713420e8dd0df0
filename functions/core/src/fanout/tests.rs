//! The fan-out pipeline in one process, without Lambda: a plan split, its tasks' fragments
//! encoded, decoded, checked and run as workers would, their answers through Arrow IPC, the
//! coordinator's rest (and a tree's reduce) over them; the answer must equal the plan run
//! whole. The same pieces run end to end in `emulator/tests/fan_out.rs`.

use std::sync::Arc;

use arrow::array::{Decimal128Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::split::{Boundary, Split, reduce};
use super::{fragment, partial, tasks};
use crate::engine;
use crate::event::Stage;
use crate::stage::StageUrl;

const FILES: i64 = 4;
const ROWS: i64 = 3_000;

fn batch(file: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("g", DataType::Utf8, false),
        Field::new("v", DataType::Decimal128(12, 2), false),
    ]));
    let ks: Vec<i64> = (0..ROWS).map(|i| file * ROWS + i).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ks.clone())),
            Arc::new(StringArray::from_iter_values(
                ks.iter()
                    .map(|k| ["a", "b", "c", "d", "e"][(k % 5) as usize]),
            )),
            Arc::new(
                Decimal128Array::from_iter_values(
                    ks.iter().map(|k| i128::from((k * 7919) % 100_003)),
                )
                .with_precision_and_scale(12, 2)
                .unwrap(),
            ),
        ],
    )
    .unwrap()
}

async fn context() -> (SessionContext, Stage) {
    let stage = Stage {
        name: "s".into(),
        url: StageUrl::new("bucket", "stage/").unwrap(),
        file_format: None,
    };
    let ctx = engine::planned_session(&stage, 256 << 20).unwrap();
    let store = Arc::new(InMemory::new());
    for file in 0..FILES {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut buf = Vec::new();
        let b = batch(file);
        let mut writer = ArrowWriter::try_new(&mut buf, b.schema(), Some(props)).unwrap();
        writer.write(&b).unwrap();
        writer.close().unwrap();
        store
            .put(
                &Path::from(format!("stage/part-{file}.parquet")),
                PutPayload::from(buf),
            )
            .await
            .unwrap();
    }
    let url = url::Url::parse("s3://bucket").unwrap();
    ctx.register_object_store(&url, Arc::clone(&store) as Arc<dyn ObjectStore>);
    ctx.register_parquet("t", "s3://bucket/stage/", ParquetReadOptions::default())
        .await
        .unwrap();
    (ctx, stage)
}

async fn plan(ctx: &SessionContext, sql: &str, split: bool) -> Arc<dyn ExecutionPlan> {
    let df = ctx.sql(sql).await.unwrap().limit(0, Some(10_001)).unwrap();
    engine::physical_plan(df, split).await.unwrap()
}

/// Runs `split` as workers and a coordinator would, `per_inner` tasks reduced per inner node
/// when set.
async fn fan_out(
    ctx: &SessionContext,
    stage: &Stage,
    split: &Split,
    per_inner: Option<usize>,
) -> Vec<RecordBatch> {
    let units = tasks::units(ctx, &split.files(), None);
    let planned = tasks::plan(&units, 1, 64);
    assert!(
        planned.len() > FILES as usize,
        "row groups make more tasks than files"
    );
    let mut answers = Vec::new();
    let mut root = None;
    for task in &planned {
        let bytes = fragment::encode(split.worker(Some(task.group())).unwrap()).unwrap();
        let checked = fragment::decode(&bytes, ctx, stage, fragment::Shape::Partial).unwrap();
        root.get_or_insert(Arc::clone(&checked.plan));
        let batches = collect(checked.plan, ctx.task_ctx()).await.unwrap();
        let mut w = partial::PartialWriter::new(&split.partial_schema()).unwrap();
        for b in &batches {
            w.push(b).unwrap();
        }
        answers.push(partial::read(&w.finish().unwrap()).unwrap());
    }
    let partials: Vec<RecordBatch> = match per_inner {
        None => answers.into_iter().flatten().collect(),
        Some(n) => {
            let root = root.unwrap();
            let mut reduced = Vec::new();
            for group in answers.chunks(n) {
                let inner = reduce(&root, group.concat()).unwrap();
                reduced.extend(collect(inner, ctx.task_ctx()).await.unwrap());
            }
            reduced
        }
    };
    collect(split.coordinator(partials).unwrap(), ctx.task_ctx())
        .await
        .unwrap()
}

fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn split_plans_answer_as_the_whole_plan_does() {
    let (ctx, stage) = context().await;
    let cases = [
        (
            "SELECT g, count(*) AS n, sum(v) AS s, avg(v) AS a, min(k), max(k) FROM t GROUP BY g ORDER BY g",
            Boundary::Aggregate,
        ),
        (
            "SELECT sum(v), count(*) FROM t WHERE k % 3 = 1",
            Boundary::Aggregate,
        ),
        (
            "SELECT count(DISTINCT k % 97) AS d FROM t",
            Boundary::Aggregate,
        ),
        (
            "SELECT g, count(DISTINCT k % 13) AS d FROM t GROUP BY g ORDER BY g",
            Boundary::Aggregate,
        ),
        (
            "SELECT k, g FROM t WHERE k % 7 = 3 LIMIT 20",
            Boundary::Limit,
        ),
        (
            "SELECT k, g FROM t WHERE k % 7 = 3 LIMIT 5 OFFSET 600",
            Boundary::Limit,
        ),
        (
            "SELECT k, v FROM t ORDER BY v DESC, k LIMIT 10",
            Boundary::TopK,
        ),
    ];
    for (sql, boundary) in cases {
        let whole = collect(plan(&ctx, sql, false).await, ctx.task_ctx())
            .await
            .unwrap();
        let physical = plan(&ctx, sql, true).await;
        let split = Split::of(&physical).unwrap_or_else(|| {
            panic!(
                "{sql} splits:\n{}",
                datafusion::physical_plan::displayable(physical.as_ref()).indent(true)
            )
        });
        assert_eq!(split.boundary, boundary, "{sql}");
        let expected = pretty(&whole);
        assert!(expected.lines().count() > 4, "{sql}: {expected}");
        assert_eq!(
            pretty(&fan_out(&ctx, &stage, &split, None).await),
            expected,
            "{sql}"
        );
        assert_eq!(
            pretty(&fan_out(&ctx, &stage, &split, Some(3)).await),
            expected,
            "{sql} through a tree"
        );
    }
}

#[tokio::test]
async fn joins_unions_and_windows_do_not_split() {
    let (ctx, _) = context().await;
    for sql in [
        "SELECT a.k FROM t a JOIN t b ON a.k = b.k LIMIT 3",
        "SELECT k FROM t UNION ALL SELECT k FROM t",
        "SELECT k, row_number() OVER (ORDER BY k) FROM t LIMIT 3",
        "SELECT 1",
    ] {
        assert!(Split::of(&plan(&ctx, sql, true).await).is_none(), "{sql}");
    }
}

#[tokio::test]
async fn fragments_outside_their_stage_or_shape_are_refused() {
    let (ctx, stage) = context().await;
    let split = Split::of(&plan(&ctx, "SELECT g, count(*) FROM t GROUP BY g", true).await).unwrap();
    let bytes = fragment::encode(split.worker(None).unwrap()).unwrap();
    assert!(fragment::decode(&bytes, &ctx, &stage, fragment::Shape::Partial).is_ok());
    let narrower = Stage {
        name: "s".into(),
        url: StageUrl::new("bucket", "stage/sub/").unwrap(),
        file_format: None,
    };
    let e = fragment::decode(&bytes, &ctx, &narrower, fragment::Shape::Partial)
        .err()
        .unwrap();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent);
    assert!(e.message().contains("outside the stage"), "{e}");
    let other = Stage {
        name: "s".into(),
        url: StageUrl::new("other", "stage/").unwrap(),
        file_format: None,
    };
    let e = fragment::decode(&bytes, &ctx, &other, fragment::Shape::Partial)
        .err()
        .unwrap();
    assert!(e.message().contains("outside the stage's bucket"), "{e}");
    // The whole plan (a final aggregation on top) is not a worker's fragment.
    let whole =
        fragment::encode(plan(&ctx, "SELECT g, count(*) FROM t GROUP BY g", true).await).unwrap();
    let e = fragment::decode(&whole, &ctx, &stage, fragment::Shape::Partial)
        .err()
        .unwrap();
    assert!(e.message().contains("not a partial aggregation"), "{e}");
    let e = fragment::decode(b"\x0a\x03abc", &ctx, &stage, fragment::Shape::Partial)
        .err()
        .unwrap();
    assert!(e.message().contains("could not be decoded"), "{e}");
    // A writer's fragment is row-wise nodes over the scan, and only a writer's.
    let df = ctx
        .sql("SELECT g, v * 2 AS w FROM t WHERE v > 1")
        .await
        .unwrap();
    let rows = engine::physical_plan(df, true).await.unwrap();
    let writer = fragment::encode(Split::rows(&rows).unwrap().worker(None).unwrap()).unwrap();
    assert!(fragment::decode(&writer, &ctx, &stage, fragment::Shape::Rows).is_ok());
    let e = fragment::decode(&writer, &ctx, &stage, fragment::Shape::Partial)
        .err()
        .unwrap();
    assert!(e.message().contains("not a partial aggregation"), "{e}");
    let e = fragment::decode(&bytes, &ctx, &stage, fragment::Shape::Rows)
        .err()
        .unwrap();
    assert!(e.message().contains("row-wise"), "{e}");
    let grouped = plan(&ctx, "SELECT g, count(*) FROM t GROUP BY g", true).await;
    assert!(Split::rows(&grouped).is_none());
}

#[tokio::test]
async fn a_fragment_is_bounded_before_it_becomes_a_plan() {
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType as Node;
    use datafusion_proto::protobuf::{PhysicalPlanNode, ProjectionExecNode};

    let (ctx, stage) = context().await;
    let split = Split::of(&plan(&ctx, "SELECT g, count(*) FROM t GROUP BY g", true).await).unwrap();
    let bytes = fragment::encode(split.worker(None).unwrap()).unwrap();
    let wrapped = |times: usize| {
        let mut node = PhysicalPlanNode::try_decode(&bytes).unwrap();
        for _ in 0..times {
            node = PhysicalPlanNode {
                physical_plan_type: Some(Node::Projection(Box::new(ProjectionExecNode {
                    input: Some(Box::new(node)),
                    ..Default::default()
                }))),
            };
        }
        let mut out = Vec::new();
        node.try_encode(&mut out).unwrap();
        out
    };
    let refused = |bytes: &[u8], needle: &str| {
        let e = fragment::decode(bytes, &ctx, &stage, fragment::Shape::Partial)
            .err()
            .unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent);
        assert!(e.message().contains(needle), "{needle:?} not in {e}");
    };
    refused(&wrapped(fragment::MAX_NODES), "more than 16 nodes");
    // Deeper than prost decodes (100 levels of nesting): refused, not a stack overflow.
    // Written as bytes: a Projection (field 4) whose input (field 1) is the next, 5,000 deep.
    let mut deep = bytes.clone();
    for _ in 0..5_000 {
        for field in [0x0a, 0x22] {
            let (mut len, mut n) = (vec![field], deep.len());
            while n >= 0x80 {
                len.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            len.push(n as u8);
            deep.splice(0..0, len);
        }
    }
    refused(&deep, "could not be decoded");
    // The whole plan: its final aggregation's inputs are no worker's.
    let whole =
        fragment::encode(plan(&ctx, "SELECT g, count(*) FROM t GROUP BY g", true).await).unwrap();
    refused(&whole, "not a partial aggregation");
    // A query's own long expression still travels (200 additions).
    let deep = format!(
        "SELECT g, count(*) FROM t WHERE k{} > 5 GROUP BY g",
        " + k".repeat(200)
    );
    let split = Split::of(&plan(&ctx, &deep, true).await).unwrap();
    let bytes = fragment::encode(split.worker(None).unwrap()).unwrap();
    fragment::decode(&bytes, &ctx, &stage, fragment::Shape::Partial).unwrap();
}

#[tokio::test]
async fn shares_and_estimates_count_what_pruning_leaves() {
    let (ctx, _) = context().await;
    let groups = (FILES * ROWS / 500) as u64;
    let counted = async |sql: &str| {
        let physical = plan(&ctx, sql, true).await;
        let estimate = crate::estimate::Estimate::of(&ctx, &physical);
        let split = Split::of(&physical).unwrap();
        let scan = engine::scans::of(&split.worker(None).unwrap())
            .into_iter()
            .next();
        let units = tasks::units(&ctx, &split.files(), scan.as_ref());
        assert_eq!(tasks::total(&units), estimate.bytes, "{sql}");
        estimate
    };
    let all = counted("SELECT g, sum(v) FROM t GROUP BY g").await;
    assert_eq!(
        (all.files, all.row_groups, all.row_groups_pruned),
        (4, groups, 0)
    );
    // k rises through the files: its statistics leave one row group of 24.
    let one = counted("SELECT g, sum(v) FROM t WHERE k < 100 GROUP BY g").await;
    assert_eq!((one.row_groups, one.row_groups_pruned), (1, groups - 1));
    assert!(one.bytes * 4 < all.bytes, "{one:?} {all:?}");
    // Without a filter, a limit is filled by the first row groups (DataFusion plans only
    // the files it needs by their row counts).
    let first = counted("SELECT k, g FROM t LIMIT 700").await;
    assert_eq!((first.files, first.row_groups), (1, 2), "{first:?}");
    // A limit over a filter may need any row group the filter leaves.
    let filtered = counted("SELECT k, g FROM t WHERE v > 5 LIMIT 1").await;
    assert_eq!(filtered.row_groups, groups);
    assert!(filtered.check(Some(filtered.bytes)).is_ok());
    let e = filtered.check(Some(filtered.bytes - 1)).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::ScanLimitExceeded);
    assert!(e.message().contains("max_bytes_scanned"), "{e}");
}

#[test]
fn only_failures_of_fanning_out_fall_back_to_one_invocation() {
    use crate::ErrorKind as K;
    for (kind, falls_back) in [
        (K::ResultTooLarge, true),
        (K::Throttled, true),
        (K::ResourcesExhausted, true),
        (K::Timeout, true),
        (K::S3AccessDenied, false),
        (K::InvalidParquet, false),
        (K::InvalidQuery, false),
        (K::NotFound, false),
    ] {
        let e = crate::FunctionError::new(kind, "x");
        assert_eq!(super::falls_back(&e), falls_back, "{kind}");
    }
}
