//! Scale-out: one query spread over many invocations of this same function, as Lambada and
//! Starling do on Lambda. Lambda's own concurrency is the cluster; nothing runs between
//! queries.
//!
//! The invocation that receives the query (the coordinator) plans it as always
//! ([`crate::engine`]), with each aggregation's partial and final phases kept apart. If the
//! plan splits ([`split`]) and its scan is larger than one worker's share
//! (`options.fan_out.bytes_per_worker`), the scan's files are cut at row groups into byte
//! ranges ([`tasks`]), and each share's fragment (the plan from the scan up to the partial
//! aggregation, top k or limit) is encoded with `datafusion-proto` ([`fragment`]) and sent
//! to a worker through the Lambda Invoke API ([`invoke`], [`gather`]), as many at once as
//! the function's concurrency admits ([`window`]). Workers answer with
//! Arrow IPC ([`partial`]); the coordinator runs the rest of the plan (the final
//! aggregation, the merge) over their answers.
//!
//! No credentials travel: a worker's event is the query's own event plus its fragment, and
//! the worker assumes the role itself, with the same ExternalId and session policy, through
//! the same credential cache. A fragment is checked before it runs ([`fragment::decode`]).
//!
//! Neighbours: [`crate::engine`] plans and runs; `functions/stage-query` and
//! `functions/component` carry the same handler to Lambda and to the WASI host, where
//! `xstage serve` answers the workers' invocations.

pub mod fragment;
pub mod gather;
pub mod invoke;
pub mod partial;
pub mod split;
pub mod tasks;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use aws_smithy_async::rt::sleep::SharedAsyncSleep;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use serde_json::Value;

use crate::engine::{self, Prepared};
use crate::error::{FunctionError, Result};
use crate::event::{Event, Fragment};
use crate::result::{QueryPath, Response, Stats};
use crate::s3::IoStats;
pub use gather::{Gathered, Job, Runner};
pub use invoke::Invoker;
use split::Split;

/// A query the workers ran: the coordinator's rest of the plan over their answers.
pub struct FannedOut {
    pub plan: Arc<dyn ExecutionPlan>,
    pub gathered: Gathered,
    /// From the first invocation to the last answer.
    pub last_worker: Duration,
}

/// Runs `prepared`'s query over workers if it splits and its scan is larger than one
/// worker's share; `None` when it should run in this invocation.
pub async fn coordinate(
    event: &Event,
    prepared: &Prepared,
    io: &IoStats,
    runner: &Runner,
) -> Result<Option<FannedOut>> {
    let options = &event.options.fan_out;
    let physical = prepared.physical(io, event.options.max_rows, true).await?;
    let Some(split) = Split::of(&physical) else {
        return Ok(None);
    };
    let Some((units, planned)) = shares(prepared.context(), &split, options)? else {
        return Ok(None);
    };
    let units = Arc::new(units);
    let split = Arc::new(split);
    let page_indexes = prepared.page_indexes();
    let jobs = planned
        .into_iter()
        .map(|task| job(&split, &units, task, page_indexes, event))
        .collect::<Result<Vec<_>>>()?;
    tracing::info!(
        tasks = jobs.len(),
        planned_bytes = tasks::total(&units),
        function = runner.invoker.function(),
        "fan-out: invoking workers"
    );
    let started = Instant::now();
    let mut gathered = runner.gather(jobs).await?;
    let last_worker = started.elapsed();
    tracing::info!(
        workers = gathered.workers,
        retried = gathered.retried,
        speculated = gathered.speculated,
        ms = last_worker.as_millis() as u64,
        "fan-out: every worker answered"
    );
    let plan = split.coordinator(std::mem::take(&mut gathered.batches))?;
    Ok(Some(FannedOut {
        plan,
        gathered,
        last_worker,
    }))
}

/// Whether a fanned-out query that failed with `e` should run in the coordinator instead:
/// failures of fanning out itself, which one invocation does not meet (workers' partial
/// states too large to return, a fragment too large to send, the function's concurrency
/// taken, workers that timed out or could not be reached, the coordinator's memory). A
/// failure the query would meet anywhere (access denied, a bad file) fails it.
pub fn falls_back(e: &FunctionError) -> bool {
    use crate::ErrorKind as K;
    matches!(
        e.kind(),
        K::ResultTooLarge
            | K::Throttled
            | K::ResourcesExhausted
            | K::Timeout
            | K::EndpointUnreachable
            | K::ServiceUnavailable
    )
}

/// The workers `prepared`'s query would use: 0 when it runs in one invocation.
pub async fn workers(event: &Event, prepared: &Prepared, io: &IoStats) -> Result<u64> {
    let physical = prepared.physical(io, event.options.max_rows, true).await?;
    let Some(split) = Split::of(&physical) else {
        return Ok(0);
    };
    let shares = shares(prepared.context(), &split, &event.options.fan_out)?;
    Ok(shares.map_or(0, |(_, tasks)| tasks.len() as u64))
}

/// `split`'s scan cut into tasks of about `bytes_per_worker` each, counted as the scan reads
/// (its columns, in the row groups its filter and limit leave); `None` when that is one
/// task's worth, which runs in one invocation.
pub(crate) fn shares(
    ctx: &datafusion::prelude::SessionContext,
    split: &Split,
    options: &crate::event::FanOut,
) -> Result<Option<(Vec<tasks::Unit>, Vec<tasks::Task>)>> {
    let scan = engine::scans::of(&split.worker(None)?).into_iter().next();
    let units = tasks::units(ctx, &split.files(), scan.as_ref());
    if tasks::total(&units) <= options.bytes_per_worker {
        return Ok(None);
    }
    let planned = tasks::plan(&units, options.bytes_per_worker, options.max_workers);
    Ok((planned.len() >= 2).then_some((units, planned)))
}

/// The job of one task, and how to halve it.
fn job(
    split: &Arc<Split>,
    units: &Arc<Vec<tasks::Unit>>,
    task: tasks::Task,
    page_indexes: engine::PageIndexes,
    event: &Event,
) -> Result<Job> {
    let plan = fragment::encode(split.worker(Some(task.group()))?)?;
    let label = label(&task, event);
    let halves = {
        let (split, units, task, event) = (
            Arc::clone(split),
            Arc::clone(units),
            task.clone(),
            event.clone(),
        );
        Arc::new(move || {
            let (a, b) = task.split(&units).ok_or_else(|| {
                FunctionError::new(
                    crate::ErrorKind::ResultTooLarge,
                    "a share of one row group cannot be split",
                )
            })?;
            Ok((
                job(&split, &units, a, page_indexes, &event)?,
                job(&split, &units, b, page_indexes, &event)?,
            ))
        }) as gather::Halves
    };
    let splittable = task.split(units).is_some();
    Ok(Job {
        fragment: Fragment {
            plan,
            page_indexes,
            children: Vec::new(),
            part: None,
            versions: task.versions(),
        },
        label,
        halves: splittable.then_some(halves),
    })
}

/// `s3://bucket/key` of a task's first file, and how many more.
pub(crate) fn label(task: &tasks::Task, event: &Event) -> String {
    let first = task
        .files
        .first()
        .and_then(|f| crate::s3::key_of(&f.object_meta.location).ok())
        .map(|k| {
            let range = task.files[0]
                .range
                .as_ref()
                .map(|r| format!(" (bytes {}..{})", r.start, r.end))
                .unwrap_or_default();
            format!("s3://{}/{k}{range}", event.stage.url.bucket())
        })
        .unwrap_or_else(|| "no file".into());
    match task.files.len() {
        0 | 1 => first,
        n => format!("{first} and {} more files", n - 1),
    }
}

/// Handles a worker's event: its fragment checked, then run (a leaf over its files, an
/// inner node over its children's answers) into a partial result.
pub async fn work(
    event: &Event,
    raw: &Value,
    fragment: &Fragment,
    started: Instant,
    memory_limit: usize,
) -> Result<Response> {
    if let (Some(part), true) = (fragment.part, fragment.children.is_empty()) {
        return crate::unload::spread::work(event, fragment, part, started, memory_limit).await;
    }
    if !fragment.children.is_empty() {
        let ctx = engine::planned_session(&event.stage, memory_limit)?;
        return inner(event, raw, fragment, started, &ctx).await;
    }
    let leaf = Leaf::ready(
        event,
        fragment,
        fragment::Shape::Partial,
        None,
        memory_limit,
    )
    .await?;
    let mut out = partial::PartialWriter::new(&leaf.checked.plan.schema())?;
    let stats = leaf
        .run(started, async |batch| out.push(batch).map(|()| true))
        .await?;
    answer(out, stats)
}

/// A leaf fragment ready to run: checked, the role assumed (with `session_policy`, if
/// given), its files' footers read, and decoded again over the stage's own store.
pub(crate) struct Leaf {
    ctx: datafusion::prelude::SessionContext,
    pub checked: fragment::Checked,
    pub connected: crate::Connected,
    deferred: engine::footer::Deferred,
    memory_limit: usize,
}

impl Leaf {
    pub(crate) async fn ready(
        event: &Event,
        fragment: &Fragment,
        shape: fragment::Shape,
        session_policy: Option<String>,
        memory_limit: usize,
    ) -> Result<Self> {
        let ctx = engine::planned_session(&event.stage, memory_limit)?;
        // Checked before any credential is asked for.
        let files = fragment::decode(&fragment.plan, &ctx, &event.stage, shape)?.files;
        let connected = crate::connect_with(event, session_policy).await?;
        // What the coordinator listed: every read asks for the versions it planned with.
        for meta in &files {
            connected.store.remember(meta);
        }
        connected.store.plan_versions(&fragment.versions);
        let deferred = engine::prime_planned(
            &ctx,
            &event.stage,
            &connected.store,
            &connected.io,
            &files,
            fragment.page_indexes,
            memory_limit,
        )
        .await?;
        // Decoded again, now over the stage's own store.
        let checked = fragment::decode(&fragment.plan, &ctx, &event.stage, shape)?;
        Ok(Self {
            ctx,
            checked,
            connected,
            deferred,
            memory_limit,
        })
    }

    /// Runs the fragment into `sink` (until it returns `false`); the worker's stats.
    pub(crate) async fn run(
        self,
        started: Instant,
        sink: impl AsyncFnMut(&RecordBatch) -> Result<bool>,
    ) -> Result<Stats> {
        let Leaf {
            ctx,
            checked,
            connected,
            deferred,
            memory_limit,
        } = self;
        let io = &connected.io;
        let fail = |e: datafusion::error::DataFusionError| engine::failure(io, &checked.names, e);
        engine::execute(
            &ctx,
            checked.plan,
            &connected.store,
            io,
            deferred,
            memory_limit,
            &fail,
            sink,
        )
        .await?;
        let mut stats = engine::stats(
            io,
            checked.files.len() as u64,
            connected.sts_calls,
            started.elapsed().as_millis() as u64,
        );
        stats.path = QueryPath::Worker;
        Ok(stats)
    }
}

/// A tree's inner node: its children invoked, their answers reduced into one.
async fn inner(
    event: &Event,
    raw: &Value,
    fragment: &Fragment,
    started: Instant,
    ctx: &datafusion::prelude::SessionContext,
) -> Result<Response> {
    // Counted before any child is decoded or invoked: a forged event starts no more workers
    // than its own query may (`fragment.children` has no inner nodes; see `Fragment::parse`).
    let most = event.options.fan_out.max_workers;
    if fragment.children.len() as u64 > most {
        return Err(FunctionError::invalid_event(format!(
            "`fragment.children` holds {} worker fragments, above options.fan_out.max_workers \
             ({most}): an inner node starts no more workers than its query may use",
            fragment.children.len()
        )));
    }
    // A COPY INTO's writers answer with their files' lists, which are concatenated.
    let writers = fragment.children.iter().any(|c| c.part.is_some());
    let mut root = None;
    for child in &fragment.children {
        if !writers {
            let shape = fragment::Shape::Partial;
            let checked = fragment::decode(&child.plan, ctx, &event.stage, shape)?;
            root.get_or_insert(checked.plan);
        }
    }
    if fragment.children.is_empty() {
        return Err(FunctionError::invalid_event("`fragment.children` is empty"));
    }
    let base = crate::platform::base_config().await;
    let mut runner = runner(&base, event, raw)?;
    if writers {
        runner = runner.settling();
    }
    let jobs = fragment
        .children
        .iter()
        .map(|child| Job {
            fragment: child.clone(),
            label: "a share of the stage".into(),
            halves: None,
        })
        .collect();
    let mut gathered = runner.gather(jobs).await?;
    let batches = std::mem::take(&mut gathered.batches);
    let out = match root {
        Some(root) => reduced(&root, batches, ctx).await?,
        None => {
            let schema = crate::unload::spread::entries_schema();
            let mut out = partial::PartialWriter::new(&schema)?;
            for batch in &batches {
                out.push(batch)?;
            }
            out
        }
    };
    let stats = Stats {
        files: 0,
        s3_requests: gathered.s3_requests,
        bytes_read: gathered.bytes_read,
        sts_calls: gathered.sts_calls,
        elapsed_ms: started.elapsed().as_millis() as u64,
        path: QueryPath::Worker,
        workers: Some(gathered.workers),
        invocations: Some(gathered.invocations),
        tasks_retried: Some(gathered.retried),
        tasks_speculated: Some(gathered.speculated),
        last_worker_ms: None,
        bytes_written: writers.then_some(gathered.bytes_written),
        files_written: writers.then_some(gathered.files_written),
        put_requests: writers.then_some(gathered.put_requests),
        ..Stats::default()
    };
    answer(out, stats)
}

/// The children's partial results reduced as the fragment's `root` would.
async fn reduced(
    root: &Arc<dyn ExecutionPlan>,
    batches: Vec<RecordBatch>,
    ctx: &datafusion::prelude::SessionContext,
) -> Result<partial::PartialWriter> {
    let plan = split::reduce(root, batches)?;
    let mut out = partial::PartialWriter::new(&plan.schema())?;
    let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx())
        .map_err(|e| FunctionError::internal(format!("reducing the workers' answers: {e}")))?;
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch
            .map_err(|e| FunctionError::internal(format!("reducing the workers' answers: {e}")))?;
        out.push(&batch)?;
    }
    Ok(out)
}

/// A worker's response.
pub(crate) fn answer(out: partial::PartialWriter, stats: Stats) -> Result<Response> {
    Ok(Response {
        schema: Vec::new(),
        rows: Vec::new(),
        row_count: out.rows(),
        truncated: false,
        stats,
        partial: Some(out.finish()?),
    })
}

/// The runner for this function's workers, sending them `raw` (the event as received)
/// without its own fragment; `InvalidConfiguration` when the environment names no function
/// to invoke.
pub fn runner(base: &aws_types::SdkConfig, event: &Event, raw: &Value) -> Result<Runner> {
    let invoker = Invoker::from_env(base).ok_or_else(|| {
        FunctionError::new(
            crate::ErrorKind::InvalidConfiguration,
            format!(
                "fan-out needs {} (the function's own name) in the function's environment",
                invoke::FUNCTION_VARIABLE
            ),
        )
    })?;
    let sleep: SharedAsyncSleep = base.sleep_impl().ok_or_else(|| {
        FunctionError::internal("the AWS configuration has no sleep implementation")
    })?;
    let mut forwarded = raw.clone();
    if let Some(top) = forwarded.as_object_mut() {
        top.retain(|k, _| !k.eq_ignore_ascii_case("fragment"));
    }
    Ok(Runner::new(
        invoker,
        event.options.fan_out.clone(),
        sleep,
        forwarded,
    ))
}
