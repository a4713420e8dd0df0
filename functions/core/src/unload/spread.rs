//! A `COPY INTO` written by many invocations at once: each worker writes its own share's
//! files and answers with their list; the coordinator commits the manifest over all of
//! them.
//!
//! A COPY spreads when its source is row-wise over one file scan (filters, projections,
//! per-file conversions, PARTITION BY) and larger than one worker's share
//! (`options.fan_out`), and its names carry the query id. An aggregate, an ORDER BY or
//! `SINGLE = TRUE` writes from the coordinator. The shares are the read fan-out's
//! ([`crate::fanout::tasks`]): row groups of Parquet, whole files of CSV, TSV and NDJSON;
//! task `i` writes `data_<query id>_<i>_<seq>`. A worker's fragment is checked as any
//! ([`crate::fanout::fragment`], `Shape::Rows`; a text share, [`super::share`]); it assumes
//! the role itself, with the statement's write session policy (no credentials travel), and
//! takes the statement's query id from the event.
//!
//! A retried or speculative worker writes the same names, and adopts a file that is
//! already there byte for byte ([`super::upload`]); no name is ever written twice. Workers
//! never delete: the coordinator does, once every worker has ended ([`super::reconcile`]).
//!
//! Neighbours: [`super::run`] tries [`coordinate`] before writing from one invocation;
//! [`crate::fanout::work`] hands a writer's fragment to [`work`].

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use serde_json::Value;

use super::files::{FileEntry, Files};
use super::manifest::Manifest;
use super::share::Share;
use super::stats::WriteStats;
use super::target::Target;
use super::{reconcile, statement::CopyInto};
use crate::access::documents;
use crate::engine::Prepared;
use crate::error::{FunctionError, Result};
use crate::event::{Event, Fragment};
use crate::fanout::fragment;
use crate::fanout::split::Split;
use crate::fanout::{Gathered, Job};
use crate::result::Response;

/// A statement the workers wrote and the coordinator committed.
pub struct Spread {
    pub manifest: Manifest,
    pub gathered: Gathered,
}

/// Writes `copy` through workers if it spreads; `None` when one invocation should write it.
pub(crate) async fn coordinate(
    event: &Event,
    raw: &Value,
    target: &Target,
    prepared: &Prepared,
    connected: &crate::Connected,
    out: &super::Out,
) -> Result<Option<Spread>> {
    let options = &event.options.fan_out;
    if !options.enabled() || target.max_file_size.is_none() || !target.include_query_id {
        return Ok(None);
    }
    let Ok(runner) = crate::fanout::runner(&connected.base, event, raw) else {
        return Ok(None);
    };
    let physical = prepared.physical(&connected.io, u64::MAX, true).await?;
    let Some(split) = Split::rows(&physical) else {
        tracing::debug!(
            plan = %datafusion::physical_plan::displayable(physical.as_ref()).one_line(),
            "COPY INTO writes from one invocation: its source is not row-wise over one file scan"
        );
        return Ok(None);
    };
    let Some((_, planned)) = crate::fanout::shares(prepared.context(), &split, options)? else {
        return Ok(None);
    };
    let jobs = planned
        .iter()
        .enumerate()
        .map(|(part, task)| {
            Ok(Job {
                fragment: Fragment {
                    plan: fragment::encode(split.worker(Some(task.group()))?)?,
                    page_indexes: prepared.page_indexes(),
                    children: Vec::new(),
                    part: Some(part as u32),
                    versions: task.versions(),
                },
                label: crate::fanout::label(task, event),
                halves: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut runner = runner.settling();
    with_query_id(&mut runner.event, &target.query_id);
    tracing::info!(
        tasks = jobs.len(),
        query_id = %target.query_id,
        "COPY INTO: invoking writers"
    );
    let written = async {
        let mut gathered = runner.gather(jobs).await?;
        let files = entries(&std::mem::take(&mut gathered.batches))?;
        // A task that ran more than once may have left a file or an upload of its own.
        if gathered.retried + gathered.speculated > 0 {
            reconcile::strays(out, target, &files).await?;
        }
        let manifest = super::commit(out, target, &files).await?;
        Ok::<_, FunctionError>(Spread { manifest, gathered })
    }
    .await;
    match written {
        Ok(spread) => Ok(Some(spread)),
        Err(e) => {
            let left = reconcile::remove(out, target).await;
            Err(super::not_deleted(e, &left, &out.url))
        }
    }
}

/// `options.query_id` set in a worker's event (the statement's, which the coordinator may
/// have made), whatever case the caller spelled `options` in.
fn with_query_id(event: &mut Value, query_id: &str) {
    let Some(top) = event.as_object_mut() else {
        return;
    };
    let key = top
        .keys()
        .find(|k| k.eq_ignore_ascii_case("options"))
        .cloned()
        .unwrap_or_else(|| "options".into());
    let options = top
        .entry(key)
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(options) = options.as_object_mut() {
        options.retain(|k, _| !k.eq_ignore_ascii_case("query_id"));
        options.insert("query_id".into(), query_id.into());
    }
}

/// Handles a writer's event: its share of the source written to its files, answered with
/// their list.
pub async fn work(
    event: &Event,
    fragment: &Fragment,
    part: u32,
    started: Instant,
    memory_limit: usize,
) -> Result<Response> {
    let config = super::allowed()?;
    let copy = writers_copy(event)?;
    let query_id = event.options.query_id.clone().ok_or_else(|| {
        FunctionError::invalid_event(
            "a COPY INTO writer's event carries the statement's `options.query_id`",
        )
    })?;
    let target = Target::new(&copy, query_id, part)?;
    if target.max_file_size.is_none() || !target.include_query_id {
        return Err(FunctionError::invalid_event(
            "this COPY INTO writes one file, or names without the query id: it is written from \
             one invocation, not by workers",
        ));
    }
    let stage = super::target_stage(&copy, event)?;
    let policy = documents::write_session_policy(
        &event.connection.role_arn,
        &event.stage.url,
        &stage.url,
        &target.grant(config.require_if_none_match),
    )?;
    let share = Share::ready(event, &copy, fragment, policy, memory_limit).await?;
    let writes = Arc::new(WriteStats::default());
    let (mut out, uploads) = Files::new(
        share.client().clone(),
        stage.url.bucket(),
        stage.url.prefix(),
        target,
        share.schema(),
        Arc::clone(&writes),
    );
    let ran = uploads
        .beside(share.run(started, async |batch| out.take(batch).await))
        .await;
    let mut stats = match out.end(ran).await {
        Ok(stats) => stats,
        Err(e) => {
            // What it created stays: a retry or a duplicate adopts it, and the coordinator
            // removes whatever the statement does not commit.
            out.abort().await;
            return Err(e);
        }
    };
    let mut answer = crate::fanout::partial::PartialWriter::new(&entries_schema())?;
    answer.push(&entries_batch(out.created())?)?;
    stats.bytes_written = Some(writes.bytes());
    stats.files_written = Some(writes.objects());
    stats.put_requests = Some(writes.requests());
    crate::fanout::answer(answer, stats)
}

/// The writer event's statement: a `COPY INTO` of its stage.
fn writers_copy(event: &Event) -> Result<CopyInto> {
    match crate::sql::rewrite(&event.query)? {
        crate::sql::Statement::Copy(copy) => {
            super::check(&copy, event)?;
            Ok(*copy)
        }
        _ => Err(FunctionError::invalid_event(
            "`fragment.part` makes a COPY INTO's writer, and the event's query is not a COPY INTO",
        )),
    }
}

/// The schema of a writer's answer: one row per file.
pub fn entries_schema() -> SchemaRef {
    let u64s = |name: &str| Field::new(name, DataType::UInt64, false);
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        u64s("size"),
        Field::new("etag", DataType::Utf8, false),
        u64s("rows"),
        u64s("input_bytes"),
    ]))
}

fn entries_batch(files: &[FileEntry]) -> Result<RecordBatch> {
    let u64s =
        |f: fn(&FileEntry) -> u64| Arc::new(UInt64Array::from_iter_values(files.iter().map(f)));
    RecordBatch::try_new(
        entries_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(files.iter().map(|f| &f.name))),
            u64s(|f| f.size),
            Arc::new(StringArray::from_iter_values(files.iter().map(|f| &f.etag))),
            u64s(|f| f.rows),
            u64s(|f| f.input_bytes),
        ],
    )
    .map_err(|e| FunctionError::internal(format!("a writer's file list: {e}")))
}

/// The files the writers' answers list, in task order.
pub fn entries(batches: &[RecordBatch]) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    for batch in batches {
        if batch.schema().fields() != entries_schema().fields() {
            return Err(FunctionError::internal(
                "a COPY INTO writer answered with something other than its file list; is the \
                 fan-out function the same version as the coordinator?",
            ));
        }
        let text = |i: usize| batch.column(i).as_string::<i32>();
        let number = |i: usize| batch.column(i).as_primitive::<UInt64Type>();
        let (name, etag) = (text(0), text(2));
        let (size, rows, input) = (number(1), number(3), number(4));
        for row in 0..batch.num_rows() {
            if name.is_null(row) {
                continue;
            }
            out.push(FileEntry {
                name: name.value(row).to_string(),
                size: size.value(row),
                etag: etag.value(row).to_string(),
                rows: rows.value(row),
                input_bytes: input.value(row),
                adopted: false,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_file_list_round_trips_and_a_foreign_answer_is_refused() {
        let files = vec![FileEntry {
            name: "out/data_q_0003_00000000.parquet".into(),
            size: 10,
            etag: "e".into(),
            rows: 3,
            input_bytes: 40,
            adopted: false,
        }];
        let batch = entries_batch(&files).unwrap();
        assert_eq!(entries(&[batch]).unwrap(), files);
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, false)])),
            vec![Arc::new(UInt64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(entries(&[other]).is_err());
    }

    #[test]
    fn the_query_id_reaches_the_workers_in_any_spelling_of_options() {
        let mut e = json!({"query": "q", "Options": {"QUERY_ID": "old", "max_rows": 5}});
        with_query_id(&mut e, "new");
        assert_eq!(e["Options"], json!({"query_id": "new", "max_rows": 5}));
        let mut e = json!({"query": "q"});
        with_query_id(&mut e, "new");
        assert_eq!(e["options"], json!({"query_id": "new"}));
    }
}
