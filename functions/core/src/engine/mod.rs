//! The query engine: Apache DataFusion over the stage's [`S3Store`], reading Parquet, CSV,
//! TSV and NDJSON ([`crate::format`]).
//!
//! [`Plan::new`] checks the statement against the stage without I/O (its paths, and its
//! syntax as DataFusion parses it), so a bad query is rejected before any credential is
//! requested. [`prepare`] then resolves files, registers one
//! table per reference and streams the result into a [`RowWriter`]. DataFusion runs with one
//! target partition: deterministic output, and no `tokio::spawn`, so the same code runs
//! under a WASI executor. I/O concurrency lives in the store instead.

pub(crate) mod column_index;
mod error;
mod files;
pub mod footer;
mod hints;
mod kept;
mod locate;
mod prefetch;
pub(crate) mod prune;
pub(crate) mod scans;
mod serial;
mod tables;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use futures::future::Either;
use object_store::ObjectMeta;

use crate::error::{FunctionError, Result};
use crate::event::Stage;
use crate::format::{FileFormat, FormatType};
use crate::result::Stats;
use crate::s3::{IoStats, S3Store, key_of};
use crate::sql::{StageRef, Statement, TableSource};
use crate::stage::Location;

pub use error::store_error;
pub use hints::PageIndexes;

/// Bytes read from the end of a file nothing is known about ([`hints`] for the others).
pub const METADATA_SIZE_HINT: usize = hints::DEFAULT as usize;

/// A statement checked against the stage, before any I/O.
#[derive(Debug)]
pub struct Plan {
    sql: String,
    /// Each table's generated name, what it reads, and the format the query or the stage
    /// names for it (`None`: the files' extensions decide).
    tables: Vec<(String, Source, Option<FileFormat>)>,
    with_filename: bool,
    /// The page indexes worth fetching for this query.
    page_indexes: PageIndexes,
}

#[derive(Debug)]
enum Source {
    Files(Location),
    InferSchema(Location),
    List(Location),
}

impl Source {
    fn location(&self) -> &Location {
        match self {
            Source::Files(l) | Source::InferSchema(l) | Source::List(l) => l,
        }
    }
}

impl Plan {
    pub fn new(statement: Statement, stage: &Stage) -> Result<Self> {
        crate::sql::check_syntax(&statement)?;
        let resolve = |r: &StageRef| -> Result<Location> {
            if !r.stage.eq_ignore_ascii_case(&stage.name) {
                return Err(FunctionError::invalid_query(format!(
                    "unknown stage @{}; this event defines stage @{} ({})",
                    r.stage, stage.name, stage.url
                )));
            }
            Location::resolve(
                &stage.url,
                &stage.name,
                &r.path,
                r.files.clone(),
                r.pattern.as_deref(),
            )
        };
        // FILE_FORMAT => 'csv' takes the stage's CSV options, if the stage is CSV.
        let format_of = |r: &StageRef| match (r.file_format, &stage.file_format) {
            (Some(kind), Some(f)) if f.kind == kind => Some(f.clone()),
            (Some(kind), _) => Some(FileFormat::new(kind)),
            (None, f) => f.clone(),
        };
        Ok(match statement {
            // Checked by `unload::check`; planned here is its source.
            Statement::Copy(copy) => return Plan::new(*copy.source, stage),
            Statement::List(r) => Plan {
                sql: "SELECT * FROM __xstage_list ORDER BY name".into(),
                tables: vec![("__xstage_list".into(), Source::List(resolve(&r)?), None)],
                with_filename: false,
                page_indexes: PageIndexes {
                    offset_index: false,
                    column_index: false,
                },
            },
            Statement::Query {
                sql,
                tables,
                traits,
                ..
            } => Plan {
                tables: tables
                    .iter()
                    .map(|t| {
                        Ok(match &t.source {
                            TableSource::Files(r) => {
                                (t.name.clone(), Source::Files(resolve(r)?), format_of(r))
                            }
                            TableSource::InferSchema(r) => (
                                t.name.clone(),
                                Source::InferSchema(resolve(r)?),
                                format_of(r),
                            ),
                        })
                    })
                    .collect::<Result<_>>()?,
                with_filename: traits.filename_column,
                page_indexes: PageIndexes {
                    offset_index: traits.filters || traits.limit,
                    column_index: traits.filters,
                },
                sql,
            },
        })
    }
}

/// DataFusion's session for one invocation.
fn session(memory_limit: usize) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_information_schema(false);
    let parquet = &mut config.options_mut().execution.parquet;
    parquet.metadata_size_hint = Some(METADATA_SIZE_HINT);
    parquet.pushdown_filters = true;
    parquet.reorder_filters = true;
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(memory_limit, 1.0);
    // A WASI guest has no filesystem to spill to (DataFusion would panic trying): a query
    // past the memory limit is `ResourcesExhausted` there. Natively (on Lambda, /tmp) it
    // spills, DataFusion's default.
    #[cfg(target_arch = "wasm32")]
    let runtime = runtime.with_disk_manager_builder(
        datafusion::execution::disk_manager::DiskManagerBuilder::default()
            .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
    );
    let runtime = runtime
        .build_arc()
        .map_err(|e| FunctionError::internal(format!("building the query runtime: {e}")))?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(serial::SerialMerge))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// A query's DataFusion session with its tables registered and their footers read: what
/// planning needs, before anything runs.
pub struct Prepared {
    ctx: SessionContext,
    sql: String,
    /// The files the query's tables read, as `s3://bucket/key`.
    files: Vec<String>,
    /// Each table's name and its location as the query wrote it, for messages.
    written: Vec<(String, String)>,
    deferred: footer::Deferred,
    page_indexes: PageIndexes,
    /// The NDJSON files read, for [`locate`] to name a refused line.
    ndjson: Vec<locate::Ndjson>,
}

/// Resolves the plan's files, reads their footers and registers its tables.
pub async fn prepare(
    plan: Plan,
    stage: &Stage,
    store: &S3Store,
    stats: &Arc<IoStats>,
    memory_limit: usize,
) -> Result<Prepared> {
    let ctx = session(memory_limit)?;
    ctx.register_object_store(&bucket_url(stage)?, Arc::new(store.clone()));

    let written: Vec<(String, String)> = plan
        .tables
        .iter()
        .map(|(name, source, _)| (name.clone(), source.location().written.clone()))
        .collect();
    let mut read: BTreeSet<String> = BTreeSet::new();
    let mut deferred = footer::Deferred::default();
    let mut ndjson = Vec::new();
    for (name, source, format) in &plan.tables {
        let location = source.location();
        let listing_only = matches!(source, Source::List(_));
        let metas: Vec<ObjectMeta> = files::resolve(
            store,
            stats,
            &stage.url,
            location,
            listing_only,
            format.as_ref().map(|f| f.kind),
            plan.page_indexes,
        )
        .await?;
        let format = match format {
            Some(f) => f.clone(),
            None if listing_only => FileFormat::new(FormatType::Parquet),
            None => files::format_of(&stage.url, location, &metas)?,
        };
        let names: Vec<String> = metas
            .iter()
            .filter_map(|m| key_of(&m.location).ok())
            .map(|k| format!("s3://{}/{k}", stage.url.bucket()))
            .collect();
        if !listing_only && format.kind == FormatType::Parquet {
            footer::prime(
                &ctx,
                store,
                stats,
                &metas,
                hints::DEFAULT,
                plan.page_indexes,
                crate::checks::max_page_bytes(memory_limit),
                &mut deferred,
            )
            .await?;
        }
        let table = match source {
            Source::Files(_) if plan.with_filename => {
                let bucket = stage.url.bucket();
                tables::file_table_with_filename(&ctx, bucket, &stage.url, &format, &metas).await
            }
            Source::Files(_) => tables::file_table(&ctx, stage.url.bucket(), &format, &metas).await,
            Source::InferSchema(_) => {
                tables::infer_schema_table(&ctx, store, &stage.url, &format, &metas).await
            }
            Source::List(_) => tables::list_table(&stage.url, &metas),
        };
        let table = match table {
            Ok(table) => table,
            Err(e) => {
                let e = error::map(e, stats, &names, &written);
                if e.kind() != crate::ErrorKind::InvalidFormat || format.kind != FormatType::Ndjson
                {
                    return Err(e);
                }
                // Inference refused a line: find it, checking the JSON alone.
                let schema = Arc::new(arrow::datatypes::Schema::empty());
                let files = locate::Ndjson::of(&format, &schema, &metas);
                return Err(locate::line(e, store, stats, &files).await);
            }
        };
        if !matches!(source, Source::List(_)) {
            read.extend(names);
        }
        if matches!(source, Source::Files(_)) && format.kind == FormatType::Ndjson {
            ndjson.extend(locate::Ndjson::of(&format, &table.schema(), &metas));
        }
        ctx.register_table(name.as_str(), table)
            .map_err(|e| FunctionError::internal(format!("registering {name}: {e}")))?;
    }
    Ok(Prepared {
        ctx,
        page_indexes: plan.page_indexes,
        sql: plan.sql,
        files: read.into_iter().collect(),
        written,
        deferred,
        ndjson,
    })
}

impl Prepared {
    /// The session the tables are registered in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The page indexes worth fetching for this query.
    pub fn page_indexes(&self) -> PageIndexes {
        self.page_indexes
    }

    /// The number of files the query's tables read.
    pub fn file_count(&self) -> u64 {
        self.files.len() as u64
    }

    /// A DataFusion failure as the function's typed error, naming the files.
    pub fn fail(&self, stats: &IoStats, e: datafusion::error::DataFusionError) -> FunctionError {
        error::map(e, stats, &self.files, &self.written)
    }

    /// The physical plan of the query, stopping one row past `max_rows` (which tells whether
    /// the result was truncated). `split`: planned for [`crate::fanout`], with each
    /// aggregation's partial and final phases kept apart instead of combined into one.
    pub async fn physical(
        &self,
        stats: &IoStats,
        max_rows: u64,
        split: bool,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let fail = |e| self.fail(stats, e);
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(&self.sql, options)
            .await
            .map_err(fail)?;
        // One row past `max_rows` tells whether the answer was truncated; `u64::MAX`: no limit
        // (a streamed answer).
        let df = match usize::try_from(max_rows.saturating_add(1)) {
            Ok(fetch) if max_rows < u64::MAX => df.limit(0, Some(fetch)).map_err(fail)?,
            _ => df,
        };
        physical_plan(df, split).await.map_err(fail)
    }

    /// Runs `physical` into `sink` (see [`execute`]).
    pub async fn execute(
        self,
        physical: Arc<dyn ExecutionPlan>,
        store: &S3Store,
        stats: &Arc<IoStats>,
        memory_limit: usize,
        sink: impl AsyncFnMut(&RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        let fail = |e: datafusion::error::DataFusionError| {
            error::map(e, stats, &self.files, &self.written)
        };
        let result = execute(
            &self.ctx,
            physical,
            store,
            stats,
            self.deferred,
            memory_limit,
            &fail,
            sink,
        )
        .await;
        match result {
            Err(e) if e.kind() == crate::ErrorKind::InvalidFormat => {
                Err(locate::line(e, store, stats, &self.ndjson).await)
            }
            done => done,
        }
    }
}

/// `df`'s physical plan. `split`: with each aggregation's partial and final phases kept
/// apart (DataFusion's optimizer without `CombinePartialFinalAggregate`), as
/// [`crate::fanout`] cuts plans between them.
pub async fn physical_plan(
    df: datafusion::dataframe::DataFrame,
    split: bool,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    if !split {
        return df.create_physical_plan().await;
    }
    let (state, logical) = df.into_parts();
    let rules = state
        .physical_optimizers()
        .iter()
        .filter(|rule| rule.name() != "CombinePartialFinalAggregate")
        .cloned()
        .collect();
    SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build()
        .create_physical_plan(&logical)
        .await
}

/// The session a plan that arrives planned (a fan-out worker's fragment) is decoded in. Its
/// store for the stage's bucket holds nothing until [`prime_planned`] registers the stage's
/// own: a fragment is decoded and checked before any credential exists, and decoded again
/// to run (a decoded scan keeps the store it was decoded with).
pub fn planned_session(stage: &Stage, memory_limit: usize) -> Result<SessionContext> {
    let ctx = session(memory_limit)?;
    ctx.register_object_store(
        &bucket_url(stage)?,
        Arc::new(object_store::memory::InMemory::new()),
    );
    Ok(ctx)
}

fn bucket_url(stage: &Stage) -> Result<url::Url> {
    url::Url::parse(&format!("s3://{}", stage.url.bucket()))
        .map_err(|e| FunctionError::internal(format!("bucket URL: {e}")))
}

/// Readies `ctx` to run a planned fragment over `files` of the stage: registers the stage's
/// store and reads and checks their footers as [`prepare`] does a table's.
pub async fn prime_planned(
    ctx: &SessionContext,
    stage: &Stage,
    store: &S3Store,
    stats: &Arc<IoStats>,
    files: &[ObjectMeta],
    want: PageIndexes,
    memory_limit: usize,
) -> Result<footer::Deferred> {
    ctx.register_object_store(&bucket_url(stage)?, Arc::new(store.clone()));
    let mut deferred = footer::Deferred::default();
    footer::prime(
        ctx,
        store,
        stats,
        files,
        hints::DEFAULT,
        want,
        crate::checks::max_page_bytes(memory_limit),
        &mut deferred,
    )
    .await?;
    Ok(deferred)
}

/// A DataFusion failure of a plan over `files` (`s3://bucket/key`), as the typed error.
pub fn failure(
    stats: &IoStats,
    files: &[String],
    e: datafusion::error::DataFusionError,
) -> FunctionError {
    error::map(e, stats, files, &[])
}

/// Runs `physical`: reads the column index entries its filters can use and starts the
/// prefetch of the column chunks it reads whole, then streams its batches into `sink` until
/// the plan ends or `sink` returns `false`. The plan waits on `sink`: a slow reader of a
/// streamed answer slows the query instead of filling memory.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    ctx: &SessionContext,
    physical: Arc<dyn ExecutionPlan>,
    store: &S3Store,
    stats: &Arc<IoStats>,
    deferred: footer::Deferred,
    memory_limit: usize,
    fail: &(dyn Fn(datafusion::error::DataFusionError) -> FunctionError + Sync),
    mut sink: impl AsyncFnMut(&RecordBatch) -> Result<bool>,
) -> Result<()> {
    // A plan left with several partitions (a UNION ALL without a LIMIT above it) is read
    // one partition after another: DataFusion's own merge would spawn a tokio task each.
    let physical: Arc<dyn ExecutionPlan> = if physical.output_partitioning().partition_count() > 1 {
        Arc::new(serial::SerialCoalesceExec::new(physical))
    } else {
        physical
    };
    column_index::fetch(ctx, &physical, store, stats, deferred).await?;
    prefetch::start(ctx, &physical, store, stats)?;
    let mut stream =
        datafusion::physical_plan::execute_stream(physical, ctx.task_ctx()).map_err(fail)?;
    let run = async {
        while let Some(batch) = stream.next().await {
            if !sink(&batch.map_err(fail)?).await? {
                break;
            }
        }
        Ok::<_, FunctionError>(())
    };
    // The prefetched GETs go out while the plan runs (one task: no spawn, as under WASI),
    // and stop once it is done.
    futures::pin_mut!(run);
    match futures::future::select(run, store.drive_prefetch(prefetch_budget(memory_limit))).await {
        Either::Left((done, _)) => done,
        Either::Right(((), run)) => run.await,
    }
}

/// The most bytes a query fetches ahead of DataFusion's reads ([`prefetch`]): an eighth of
/// its memory, at most 64 MiB.
fn prefetch_budget(memory_limit: usize) -> u64 {
    (memory_limit / 8).min(64 << 20) as u64
}

/// Stats of a finished run.
pub fn stats(io: &IoStats, files: u64, sts_calls: u64, elapsed_ms: u64) -> Stats {
    let counts = io.counts();
    Stats {
        files,
        s3_requests: counts.requests,
        bytes_read: counts.bytes,
        sts_calls,
        elapsed_ms,
        ..Stats::default()
    }
}
