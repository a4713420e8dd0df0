//! A `COPY INTO` writer's share of the source, ready to run.
//!
//! A Parquet share runs the fragment the coordinator sent ([`crate::fanout::Leaf`]). A text
//! share (whole CSV, TSV or NDJSON files) cannot: `datafusion-proto` does not carry a CSV
//! scan's record delimiter, NULL pattern or compression. So the writer takes only the file
//! list from the checked fragment, plans the statement's source itself from the event (its
//! stage's format, as the coordinator planned it), and runs that plan over those files. A
//! fragment naming a file the source does not read is refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::physical_plan::ExecutionPlan;

use super::statement::CopyInto;
use crate::engine::{self, Prepared};
use crate::error::{FunctionError, Result};
use crate::event::{Event, Fragment};
use crate::fanout::Leaf;
use crate::fanout::fragment::{self, Shape};
use crate::fanout::split::{Split, file_scan, is_text};
use crate::result::{QueryPath, Stats};

pub(super) enum Share {
    Parquet(Box<Leaf>),
    Text(Box<Text>),
}

pub(super) struct Text {
    prepared: Prepared,
    plan: Arc<dyn ExecutionPlan>,
    connected: crate::Connected,
    files: u64,
    memory_limit: usize,
}

impl Share {
    /// Checks the fragment, assumes the role with `session_policy`, and readies the share.
    pub async fn ready(
        event: &Event,
        copy: &CopyInto,
        fragment: &Fragment,
        session_policy: String,
        memory_limit: usize,
    ) -> Result<Self> {
        let ctx = engine::planned_session(&event.stage, memory_limit)?;
        // Checked before any credential is asked for.
        let checked = fragment::decode(&fragment.plan, &ctx, &event.stage, Shape::Rows)?;
        let text = crate::fanout::split::row_wise_chain(&checked.plan)
            .and_then(|chain| chain.last().and_then(|l| file_scan(l, true)).map(is_text))
            .unwrap_or(false);
        if !text {
            let leaf = Leaf::ready(
                event,
                fragment,
                Shape::Rows,
                Some(session_policy),
                memory_limit,
            );
            return Ok(Share::Parquet(Box::new(leaf.await?)));
        }
        let connected = crate::connect_with(event, Some(session_policy)).await?;
        let plan = engine::Plan::new(*copy.source.clone(), &event.stage)?;
        let prepared = connected.prepare(plan, &event.stage, memory_limit).await?;
        connected.store.plan_versions(&fragment.versions);
        let physical = prepared.physical(&connected.io, u64::MAX, true).await?;
        let split = Split::rows(&physical).ok_or_else(|| {
            FunctionError::invalid_event(
                "a text writer's statement is not row-wise over one scan here; its fragment \
                 was not made for this statement",
            )
        })?;
        let wanted: HashSet<&object_store::path::Path> =
            checked.files.iter().map(|m| &m.location).collect();
        let files: Vec<_> = split
            .files()
            .into_iter()
            .filter(|f| wanted.contains(&f.object_meta.location))
            .collect();
        if files.len() != wanted.len() {
            return Err(FunctionError::invalid_event(format!(
                "the fragment names {} files, of which the statement's source reads {}: it was \
                 not made for this statement",
                wanted.len(),
                files.len()
            )));
        }
        let count = files.len() as u64;
        let plan = split.worker(Some(FileGroup::new(files)))?;
        Ok(Share::Text(Box::new(Text {
            prepared,
            plan,
            connected,
            files: count,
            memory_limit,
        })))
    }

    /// The client of the role's credentials (the statement's write session).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        match self {
            Share::Parquet(leaf) => leaf.connected.store.client(),
            Share::Text(t) => t.connected.store.client(),
        }
    }

    /// The schema of the rows it writes.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Share::Parquet(leaf) => leaf.checked.plan.schema(),
            Share::Text(t) => t.plan.schema(),
        }
    }

    /// Runs the share into `sink` (until it returns `false`); the worker's stats.
    pub async fn run(
        self,
        started: Instant,
        sink: impl AsyncFnMut(&RecordBatch) -> Result<bool>,
    ) -> Result<Stats> {
        let t = match self {
            Share::Parquet(leaf) => return (*leaf).run(started, sink).await,
            Share::Text(t) => *t,
        };
        let (store, io) = (&t.connected.store, &t.connected.io);
        t.prepared
            .execute(t.plan, store, io, t.memory_limit, sink)
            .await?;
        let elapsed = started.elapsed().as_millis() as u64;
        let mut stats = engine::stats(io, t.files, t.connected.sts_calls, elapsed);
        stats.path = QueryPath::Worker;
        Ok(stats)
    }
}
