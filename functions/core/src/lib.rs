//! # xstage-core
//!
//! The stage query handler. One stateless call takes an event with a connection (a role ARN
//! and its ExternalId), a stage (`s3://bucket/prefix`) and a query; it assumes the role with
//! `sts:AssumeRole`, reads the stage's files (Parquet with ranged GETs; CSV, TSV and NDJSON,
//! [`format`], with one streamed GET each) through an [`object_store::ObjectStore`] built on
//! `aws-sdk-s3`, runs the query with Apache DataFusion and returns rows as JSON
//! ([`handle`]), or streams them as JSON, NDJSON or Arrow IPC ([`handle_streaming`]). A
//! `COPY INTO @stage` writes the query's result back to the stage instead ([`unload`]),
//! exactly once, with credentials scoped to that statement's files.
//!
//! Neighbours: `functions/stage-query` wraps [`handle`] and [`handle_streaming`] as a command
//! and the Lambda bootstrap; `functions/component` as the WASI component; `tests/` drives it
//! against LocalStack and moto. Everything that differs per target lives in [`platform`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), xstage_core::FunctionError> {
//! let event = serde_json::json!({
//!     "connection": {"name": "c", "role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "ext-1"},
//!     "stage": {"name": "s", "url": "s3://bucket/prefix/", "connection_name": "c"},
//!     "query": "SELECT * FROM @s/test.parquet LIMIT 1"
//! });
//! let response = xstage_core::handle(event).await?;
//! println!("{}", serde_json::to_string(&response).unwrap());
//! # Ok(()) }
//! ```

pub mod access;
mod aws_error;
pub mod checks;
pub mod credentials;
pub mod egress;
pub mod engine;
pub mod error;
pub mod estimate;
pub mod event;
pub mod fanout;
pub mod format;
pub mod fuzz;
pub mod platform;
pub mod result;
pub mod s3;
pub mod sql;
pub mod stage;
pub mod types;
pub mod unload;

use std::sync::Arc;
use std::time::Instant;

pub use error::{ErrorKind, FunctionError};
pub use event::Event;
pub use result::Response;

/// The memory DataFusion may use when the Lambda memory size is unknown.
pub const DEFAULT_MEMORY_LIMIT: usize = 1024 * 1024 * 1024;

/// Handles one event given as JSON: the buffered answer (JSON, at most `max_rows` rows and
/// [`result::MAX_RESPONSE_BYTES`], with `truncated` saying whether rows were left out).
pub async fn handle(raw: serde_json::Value) -> Result<Response, FunctionError> {
    let started = Instant::now();
    let event = Event::from_json(raw.clone())?;
    access::Access::from_env()?.check(&event.connection)?;
    let event = reading(event)?;
    if let Some(fragment) = &event.fragment {
        return fanout::work(&event, &raw, fragment, started, memory_limit()).await;
    }
    if event.options.format != result::stream::Format::Json {
        return Err(FunctionError::invalid_event(format!(
            "`options.format` {} answers are streamed: invoke with InvokeWithResponseStream \
             (aws lambda invoke-with-response-stream), or ask for json",
            event.options.format.as_str()
        )));
    }
    let max_rows = event.options.max_rows;
    let (writer, stats) = answer(
        &event,
        &raw,
        started,
        async |schema| Ok(result::RowWriter::new(schema, max_rows)),
        async |writer, batch| writer.push(batch),
    )
    .await?;
    Ok(writer.finish(stats))
}

/// Handles one event whose answer is streamed into `sink` as it is produced, in
/// `options.format` ([`result::stream`]), up to [`result::stream::MAX_STREAM_BYTES`]: no row
/// limit unless `options.max_rows` gives one. Returns the rows written. An error after the
/// first bytes were sent is the stream's error: the transport must report it as such.
pub async fn handle_streaming<S: result::stream::Sink>(
    raw: serde_json::Value,
    sink: S,
) -> Result<u64, FunctionError> {
    let started = Instant::now();
    let event = Event::from_json(raw.clone())?;
    access::Access::from_env()?.check(&event.connection)?;
    let mut event = reading(event)?;
    if event.fragment.is_some() {
        return Err(FunctionError::invalid_event(
            "a fan-out worker's event is invoked with Invoke, not streamed",
        ));
    }
    let limit = event.options.max_rows_given;
    event.options.max_rows = limit.unwrap_or(u64::MAX);
    let format = event.options.format;
    let (writer, stats) = answer(
        &event,
        &raw,
        started,
        async |schema| result::stream::AnswerWriter::new(format, schema, limit, sink).await,
        async |writer, batch| writer.push(batch).await,
    )
    .await?;
    writer.finish(&stats).await
}

/// The event with the stage its statement reads as its `stage` ([`event::stages`]).
fn reading(event: Event) -> Result<Event, FunctionError> {
    let statement = sql::rewrite(&event.query)?;
    event.reading(&statement.stages_read())
}

/// Plans and runs the event's query (fanned out if it asks and it pays), starting the answer
/// with `start` once the result's schema is known and feeding it each batch with `push`
/// until that returns `false`.
async fn answer<W>(
    event: &Event,
    raw: &serde_json::Value,
    started: Instant,
    start: impl AsyncFnOnce(&arrow::datatypes::Schema) -> Result<W, FunctionError>,
    mut push: impl AsyncFnMut(&mut W, &arrow::record_batch::RecordBatch) -> Result<bool, FunctionError>,
) -> Result<(W, result::Stats), FunctionError> {
    let statement = sql::rewrite(&event.query)?;
    if let sql::Statement::Copy(copy) = statement {
        if event.options.dry_run {
            return Err(FunctionError::invalid_event(
                "`options.dry_run` previews a query, not a COPY INTO (which would write): send \
                 the COPY's source as a SELECT with dry_run to see what it reads",
            ));
        }
        // Boxed: a COPY's future is large, and a caller's stack (a test thread's 2 MiB, in a
        // debug build) need not hold it.
        let (batch, stats) = Box::pin(unload::run(event, raw, *copy, started)).await?;
        let mut writer = start(&batch.schema()).await?;
        push(&mut writer, &batch).await?;
        return Ok((writer, stats));
    }
    let plan = engine::Plan::new(statement, &event.stage)?;
    let connected = connect(event).await?;
    let (store, io) = (connected.store, connected.io);
    let memory_limit = memory_limit();
    let prepared = engine::prepare(plan, &event.stage, &store, &io, memory_limit).await?;
    let files = prepared.file_count();
    let max_rows = event.options.max_rows;
    let runner = event
        .options
        .fan_out
        .enabled()
        .then(|| fanout::runner(&connected.base, event, raw).ok())
        .flatten();
    // The single path's plan, made early when its reads are to be previewed or bounded (and
    // then run as it is, not planned again).
    let mut planned = None;
    if event.options.dry_run || event.options.max_bytes_scanned.is_some() {
        let physical = prepared.physical(&io, max_rows, false).await?;
        let estimate = estimate::Estimate::of(prepared.context(), &physical);
        planned = Some(physical);
        if event.options.dry_run {
            let workers = match runner {
                Some(_) => fanout::workers(event, &prepared, &io).await?,
                None => 0,
            };
            let path = if workers > 0 { "fan_out" } else { "single" };
            let batch = estimate.answer(path, workers)?;
            let mut writer = start(&batch.schema()).await?;
            push(&mut writer, &batch).await?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let mut stats = engine::stats(&io, files, connected.sts_calls, elapsed_ms);
            stats.path = result::QueryPath::DryRun;
            return Ok((writer, stats));
        }
        estimate.check(event.options.max_bytes_scanned)?;
    }
    let mut fell_back = None;
    let fanned = match &runner {
        Some(runner) => match fanout::coordinate(event, &prepared, &io, runner).await {
            Ok(fanned) => fanned,
            // A failure of fanning out itself: this invocation runs the query.
            Err(e) if fanout::falls_back(&e) => {
                tracing::warn!(error = %e, "fan-out failed; running the query in this invocation");
                fell_back = Some(e.to_string());
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let (physical, gathered) = match (fanned, planned) {
        (Some(f), _) => (f.plan, Some((f.gathered, f.last_worker))),
        (None, Some(physical)) => (physical, None),
        (None, None) => (prepared.physical(&io, max_rows, false).await?, None),
    };
    let mut writer = start(&physical.schema()).await?;
    prepared
        .execute(physical, &store, &io, memory_limit, async |b| {
            push(&mut writer, b).await
        })
        .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut stats = engine::stats(&io, files, connected.sts_calls, elapsed_ms);
    if let Some((g, last)) = gathered {
        g.add_to(&mut stats);
        stats.last_worker_ms = Some(last.as_millis() as u64);
    }
    if let Some(why) = fell_back {
        stats.path = result::QueryPath::SingleAfterFanOut;
        stats.fan_out_failure = Some(why);
    }
    Ok((writer, stats))
}

/// The event's AWS side: the function's base configuration, the role's credentials (from
/// the cache or one `sts:AssumeRole`) and the stage's store.
pub(crate) struct Connected {
    pub base: aws_types::SdkConfig,
    pub store: s3::S3Store,
    pub io: Arc<s3::IoStats>,
    /// 1 when STS was called, 0 when the cache answered.
    pub sts_calls: u64,
}

impl Connected {
    /// `plan`'s files resolved in `stage` through this connection, their footers read.
    pub(crate) async fn prepare(
        &self,
        plan: engine::Plan,
        stage: &event::Stage,
        memory_limit: usize,
    ) -> Result<engine::Prepared, FunctionError> {
        engine::prepare(plan, stage, &self.store, &self.io, memory_limit).await
    }
}

pub(crate) async fn connect(event: &Event) -> Result<Connected, FunctionError> {
    connect_with(event, None).await
}

/// [`connect`] with the session policy a `COPY INTO` asks for ([`unload`]).
pub(crate) async fn connect_with(
    event: &Event,
    session_policy: Option<String>,
) -> Result<Connected, FunctionError> {
    let base = platform::base_config().await;
    let region = event
        .connection
        .region
        .clone()
        .or_else(|| base.region().map(|r| r.to_string()))
        .unwrap_or_else(|| platform::DEFAULT_REGION.to_string());
    let (credentials, called_sts) = credentials::assume_role(
        &base,
        &event.connection,
        &event.stage,
        &region,
        session_policy,
    )
    .await?;
    let client = s3::client(
        &base,
        credentials,
        &region,
        event.connection.endpoint_url.as_deref(),
    );
    let io = Arc::new(s3::IoStats::default());
    let store = s3::S3Store::new(
        client,
        event.connection.endpoint_url.as_deref(),
        event.stage.url.bucket(),
        event.stage.url.prefix(),
        Arc::clone(&io),
    );
    Ok(Connected {
        base,
        store,
        io,
        sts_calls: u64::from(called_sts),
    })
}

/// Handles one event given as JSON bytes; malformed JSON is an `InvalidEvent`.
pub async fn handle_bytes(event: &[u8]) -> Result<Response, FunctionError> {
    let value: serde_json::Value = serde_json::from_slice(event)
        .map_err(|e| FunctionError::invalid_event(format!("the event is not valid JSON: {e}")))?;
    handle(value).await
}

/// [`handle_streaming`] for an event given as JSON bytes.
pub async fn handle_streaming_bytes<S: result::stream::Sink>(
    event: &[u8],
    sink: S,
) -> Result<u64, FunctionError> {
    let value: serde_json::Value = serde_json::from_slice(event)
        .map_err(|e| FunctionError::invalid_event(format!("the event is not valid JSON: {e}")))?;
    handle_streaming(value, sink).await
}

/// 60% of the Lambda memory size, leaving room for the runtime, buffers and the response.
pub(crate) fn memory_limit() -> usize {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|mb| mb.parse::<usize>().ok())
        .map_or(DEFAULT_MEMORY_LIMIT, |mb| mb * 1024 * 1024 / 10 * 6)
}
