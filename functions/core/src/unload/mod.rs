//! Writing to the stage: Databend's `COPY INTO @stage[/path] FROM { @stage[/path] | (SELECT …) }`.
//!
//! The source runs like any query ([`crate::engine`]); its batches are encoded
//! ([`encode`]) into files ([`files`]) streamed to S3 as they are produced ([`upload`]), each
//! created only if its name does not exist (`If-None-Match: *`). Names are deterministic for
//! (query id, part, sequence) ([`names`]), so a retried or duplicated writer writes the same
//! ones and cannot duplicate or replace a file. The statement commits by writing its
//! manifest last ([`manifest`]); a statement that fails deletes the files it created (or
//! names those it could not). Its credentials come from an `AssumeRole` whose session policy
//! lets them create only this statement's names ([`target`],
//! [`crate::access::documents::write_session_policy`]).
//!
//! Writes are off unless the function's configuration turns them on:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `XSTAGE_ALLOW_WRITES` | `true`: `COPY INTO` may run | `false`: `WritesNotAllowed` |
//! | `XSTAGE_WRITE_REQUIRE_IF_NONE_MATCH` | the write session policy denies an object creation without `If-None-Match` | `true` |
//!
//! Neighbours: [`crate::sql`] hands `COPY` statements to [`statement`]; the handler
//! ([`crate::handle`]) runs them through [`run`].

pub mod encode;
pub mod error;
pub mod files;
pub mod format;
pub mod manifest;
pub mod names;
pub mod overlap;
pub mod properties;
pub mod reconcile;
mod share;
pub mod spread;
pub mod statement;
pub mod stats;
pub mod target;
pub mod upload;

use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;

pub use statement::CopyInto;

use crate::access::documents;
use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::{Event, Stage};
use crate::result::Stats;
use crate::stage::StageUrl;
use files::Files;
use manifest::Manifest;
use stats::WriteStats;
use target::Target;
use upload::Upload;

pub const ALLOW_WRITES: &str = "XSTAGE_ALLOW_WRITES";
pub const REQUIRE_IF_NONE_MATCH: &str = "XSTAGE_WRITE_REQUIRE_IF_NONE_MATCH";

/// The deployment's write settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteConfig {
    pub allow_writes: bool,
    pub require_if_none_match: bool,
}

impl WriteConfig {
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Ok(Self {
            allow_writes: crate::access::flag(&var, ALLOW_WRITES, false)?,
            require_if_none_match: crate::access::flag(&var, REQUIRE_IF_NONE_MATCH, true)?,
        })
    }
}

/// Checks a `COPY INTO` against the event without I/O: the target stage and path.
pub fn check(copy: &CopyInto, event: &Event) -> Result<()> {
    target_stage(copy, event)?;
    Target::new(copy, String::new(), 0).map(|_| ())
}

/// The stage a `COPY INTO` writes to: the event's stage its target names (the one it reads,
/// or another of the connection, [`crate::event::stages`]).
pub fn target_stage<'e>(copy: &CopyInto, event: &'e Event) -> Result<&'e Stage> {
    event
        .stage_named(&copy.stage)
        .map_err(|e| FunctionError::invalid_query(format!("COPY INTO: {}", e.message())))
}

/// Where a statement writes: its target stage, through the connection's client.
pub(crate) struct Out {
    client: aws_sdk_s3::Client,
    pub url: StageUrl,
    /// What the statement sent, counted as it goes.
    pub writes: Arc<WriteStats>,
}

impl Out {
    fn new(connected: &crate::Connected, stage: &Stage) -> Self {
        Self {
            client: connected.store.client().clone(),
            url: stage.url.clone(),
            writes: Arc::default(),
        }
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        self.url.bucket()
    }

    pub fn prefix(&self) -> &str {
        self.url.prefix()
    }
}

/// `WritesNotAllowed` unless the function's configuration allows writes; its settings.
pub fn allowed() -> Result<WriteConfig> {
    let config = WriteConfig::from_env()?;
    if !config.allow_writes {
        return Err(FunctionError::new(
            ErrorKind::WritesNotAllowed,
            format!(
                "COPY INTO writes to the stage, and this function does not allow writes: set \
                 {ALLOW_WRITES}=true in its environment (the template's AllowWrites parameter) to turn \
                 them on; nothing was called"
            ),
        ));
    }
    Ok(config)
}

/// Runs one `COPY INTO`: the answer (Databend's columns) and the stats. `raw` is the event as
/// received, which workers get if the statement spreads ([`spread`]).
pub async fn run(
    event: &Event,
    raw: &serde_json::Value,
    copy: CopyInto,
    started: Instant,
) -> Result<(RecordBatch, Stats)> {
    let config = allowed()?;
    let stage = target_stage(&copy, event)?;
    let query_id = match &event.options.query_id {
        Some(id) => id.clone(),
        None => names::new_query_id()?,
    };
    let target = Target::new(&copy, query_id.clone(), 0)?;
    let plan = crate::engine::Plan::new(*copy.source.clone(), &event.stage)?;
    let policy = documents::write_session_policy(
        &event.connection.role_arn,
        &event.stage.url,
        &stage.url,
        &target.grant(config.require_if_none_match),
    )?;
    let connected = crate::connect_with(event, Some(policy)).await?;
    let out = Out::new(&connected, stage);
    let writes = &out.writes;
    // A retry of a statement that committed answers from its manifest and writes nothing.
    let done = match event.options.query_id.is_some() {
        true => committed(&out, &target).await,
        false => None,
    };
    let memory_limit = crate::memory_limit();
    let (manifest, files_read, gathered) = match done {
        Some(manifest) => (manifest, 0, None),
        None => {
            let prepared = connected.prepare(plan, &event.stage, memory_limit);
            let prepared = Box::pin(prepared).await?;
            let files_read = prepared.file_count();
            if let Some(limit) = event.options.max_bytes_scanned {
                let planned = prepared.physical(&connected.io, u64::MAX, false).await?;
                crate::estimate::Estimate::of(prepared.context(), &planned).check(Some(limit))?;
            }
            let spread = spread::coordinate(event, raw, &target, &prepared, &connected, &out);
            match Box::pin(spread).await? {
                Some(s) => (s.manifest, files_read, Some(s.gathered)),
                None => {
                    let m = here(&target, prepared, &connected, &out, memory_limit);
                    (Box::pin(m).await?, files_read, None)
                }
            }
        }
    };
    let answer = manifest.answer(copy.options.detailed_output)?;
    let mut stats = crate::engine::stats(
        &connected.io,
        files_read,
        connected.sts_calls,
        started.elapsed().as_millis() as u64,
    );
    stats.query_id = Some(query_id);
    stats.bytes_written = Some(writes.bytes());
    stats.files_written = Some(writes.objects());
    stats.put_requests = Some(writes.requests());
    if let Some(g) = gathered {
        g.add_to(&mut stats);
        stats.bytes_written = Some(writes.bytes() + g.bytes_written);
        stats.files_written = Some(writes.objects() + g.files_written);
        stats.put_requests = Some(writes.requests() + g.put_requests);
    }
    Ok((answer, stats))
}

/// `make`'s future on the heap, built in a frame of its own. A debug build builds a future
/// in the frame of the function that awaits it, so the AWS SDK's large request futures,
/// awaited at the bottom of the writer's chain (source, files, encoder, upload), would
/// otherwise take their size again in every frame above them: past a 2 MiB thread stack.
#[inline(never)]
pub(crate) fn boxed<'a, F>(make: impl FnOnce() -> F) -> futures::future::BoxFuture<'a, F::Output>
where
    F: Future + Send + 'a,
{
    Box::pin(make())
}

/// Writes the statement from this invocation, and commits it; a failed statement's files are
/// deleted (or named in the error).
async fn here(
    target: &Target,
    prepared: crate::engine::Prepared,
    connected: &crate::Connected,
    out: &Out,
    memory_limit: usize,
) -> Result<Manifest> {
    let (store, io) = (&connected.store, &connected.io);
    let physical = prepared.physical(io, u64::MAX, false).await?;
    let (mut files, uploads) = Files::new(
        out.client().clone(),
        out.bucket(),
        out.prefix(),
        target.clone(),
        physical.schema(),
        Arc::clone(&out.writes),
    );
    let run = prepared.execute(physical, store, io, memory_limit, async |batch| {
        files.take(batch).await
    });
    let ran = uploads.beside(run).await;
    let outcome = match files.end(ran).await {
        Ok(()) => commit(out, target, files.created()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(m) => Ok(m),
        Err(e) => {
            let left = files.discard().await;
            Err(not_deleted(e, &left, &out.url))
        }
    }
}

/// Writes the manifest, the statement's commit (conditionally, like every file).
async fn commit(out: &Out, target: &Target, files: &[files::FileEntry]) -> Result<Manifest> {
    let manifest = Manifest::new(&target.query_id, target.format.file.kind.as_str(), files);
    let mut upload = Upload::new(
        out.client().clone(),
        out.bucket(),
        format!("{}{}", out.prefix(), target.manifest()),
        false,
        Arc::clone(&out.writes),
        overlap::Overlap::none(),
    );
    let written = async {
        upload.write(&manifest.to_bytes()).await?;
        upload.complete().await
    }
    .await;
    written.map_err(|e| e.into_function_error())?;
    Ok(manifest)
}

/// The manifest of a statement that already committed under this query id, if any.
async fn committed(out: &Out, target: &Target) -> Option<Manifest> {
    let got = out
        .client()
        .get_object()
        .bucket(out.bucket())
        .key(format!("{}{}", out.prefix(), target.manifest()))
        .send()
        .await
        .ok()?;
    let body = got.body.collect().await.ok()?.into_bytes();
    serde_json::from_slice::<Manifest>(&body)
        .ok()
        .filter(|m| m.query_id == target.query_id)
}

/// A failed statement's error, naming the files it wrote that could not be deleted.
fn not_deleted(e: FunctionError, left: &[String], stage: &StageUrl) -> FunctionError {
    if left.is_empty() {
        return e;
    }
    let names: Vec<String> = left.iter().map(|n| format!("{stage}{n}")).collect();
    FunctionError::new(
        e.kind(),
        format!(
            "{}. The statement did not commit (no manifest), and these files it wrote could not be \
             deleted: {}",
            e.message(),
            names.join(", ")
        ),
    )
}
