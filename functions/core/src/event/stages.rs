//! The stages an event defines: its `stage`, and under `stages` the other stages of the same
//! connection a statement may name, such as a `COPY INTO`'s target beside the stage it reads:
//!
//! ```json
//! {"connection": {...},
//!  "stage": {"name": "raw", "url": "s3://bucket/raw/", "file_format": {"type": "csv"}},
//!  "stages": [{"name": "curated", "url": "s3://bucket/curated/"}],
//!  "query": "COPY INTO @curated/events/ FROM @raw/2026/ FILE_FORMAT = (TYPE = PARQUET)"}
//! ```
//!
//! A statement reads one stage. [`Event::reading`] makes that stage the event's `stage`, so
//! everything that reads (the store and its root, the read session policy, fan-out's
//! fragment checks) sees one stage as before; a `COPY INTO` finds its target among all of
//! them ([`Event::stage_named`]). Every stage is reached with the connection's one role.

use serde_json::Value;

use super::{Connection, Event, Fields, Stage, parse_stage};
use crate::error::{FunctionError, Result};

/// The most stages one event may define (its `stage` and `stages`).
pub const MAX_STAGES: usize = 8;

impl Event {
    /// Every stage the event defines, its `stage` first.
    pub fn all_stages(&self) -> impl Iterator<Item = &Stage> {
        std::iter::once(&self.stage).chain(&self.stages)
    }

    /// The stage a statement names as `@name`.
    pub fn stage_named(&self, name: &str) -> Result<&Stage> {
        self.all_stages()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                FunctionError::invalid_query(format!(
                    "unknown stage @{name}; this event defines {}",
                    self.defined()
                ))
            })
    }

    /// The event with the one stage its statement reads (`read`, as
    /// [`crate::sql::Statement::stages_read`] finds them) as its `stage`, the others under
    /// `stages`. A statement that reads no stage keeps the event as it is.
    pub fn reading(mut self, read: &[&str]) -> Result<Self> {
        let Some(first) = read.first() else {
            return Ok(self);
        };
        if read.len() > 1 {
            let named: Vec<String> = read.iter().map(|n| format!("@{n}")).collect();
            return Err(FunctionError::invalid_query(format!(
                "the statement reads stages {}; a statement reads one stage (a COPY INTO may \
                 write to another stage of the connection)",
                named.join(" and ")
            )));
        }
        self.stage_named(first)?;
        if let Some(at) = self
            .stages
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(first))
        {
            std::mem::swap(&mut self.stage, &mut self.stages[at]);
        }
        Ok(self)
    }

    fn defined(&self) -> String {
        let stages: Vec<String> = self
            .all_stages()
            .map(|s| format!("@{} ({})", s.name, s.url))
            .collect();
        match stages.len() {
            1 => format!("stage {}", stages[0]),
            _ => format!("stages {}", stages.join(", ")),
        }
    }
}

/// `stages`: the event's other stages, each an object like `stage`, all of `connection`.
pub(super) fn parse(value: Value, first: &Stage, connection: &Connection) -> Result<Vec<Stage>> {
    let Value::Array(items) = value else {
        return Err(FunctionError::invalid_event(
            "`stages` must be an array of stages such as [{\"name\": \"out\", \"url\": \
             \"s3://bucket/out/\"}]",
        ));
    };
    if items.len() + 1 > MAX_STAGES {
        return Err(FunctionError::invalid_event(format!(
            "`stages` has {} stages; an event defines at most {MAX_STAGES} with its `stage`",
            items.len()
        )));
    }
    let mut stages: Vec<Stage> = Vec::with_capacity(items.len());
    for item in items {
        let stage = parse_stage(Fields::new("stages[]", item)?, connection)?;
        let taken = std::iter::once(first)
            .chain(&stages)
            .any(|s| s.name.eq_ignore_ascii_case(&stage.name));
        if taken {
            return Err(FunctionError::invalid_event(format!(
                "stage {} is defined twice; give each stage of the event its own name",
                stage.name
            )));
        }
        stages.push(stage);
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(stages: Value, query: &str) -> Result<Event> {
        Event::from_json(json!({
            "connection": {"name": "c", "role_arn": "arn:aws:iam::123456789012:role/r"},
            "stage": {"name": "raw", "url": "s3://bkt/raw/", "file_format": "csv"},
            "stages": stages,
            "query": query,
        }))
    }

    #[test]
    fn the_stage_a_statement_reads_becomes_the_events_stage() {
        let e = event(
            json!([{"name": "curated", "url": "s3://other/cur/", "connection_name": "c"}]),
            "q",
        )
        .unwrap();
        assert_eq!(e.stage_named("CURATED").unwrap().url.bucket(), "other");
        // Reading the target's stage: it becomes `stage`, the first one goes to `stages`.
        let swapped = e.clone().reading(&["curated"]).unwrap();
        assert_eq!(swapped.stage.name, "curated");
        assert_eq!(swapped.stages.len(), 1);
        assert_eq!(swapped.stages[0].name, "raw");
        assert!(swapped.stages[0].file_format.is_some());
        // Reading `stage`, or nothing: unchanged.
        assert_eq!(e.clone().reading(&["RAW"]).unwrap().stage.name, "raw");
        assert_eq!(e.clone().reading(&[]).unwrap().stage.name, "raw");
        let unknown = e.clone().reading(&["nope"]).unwrap_err();
        assert_eq!(unknown.kind(), crate::ErrorKind::InvalidQuery);
        assert!(
            unknown.message().contains(
                "unknown stage @nope; this event defines stages @raw (s3://bkt/raw/), @curated (s3://other/cur/)"
            ),
            "{unknown}"
        );
        let two = e.reading(&["raw", "curated"]).unwrap_err();
        assert!(
            two.message()
                .contains("reads stages @raw and @curated; a statement reads one stage"),
            "{two}"
        );
    }

    #[test]
    fn bad_stages_are_refused() {
        let refused = |stages: Value, says: &str| {
            let e = event(stages, "q").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent, "{e}");
            assert!(e.message().contains(says), "{e}");
        };
        refused(json!({"name": "x"}), "must be an array");
        refused(
            json!([{"name": "Raw", "url": "s3://bkt/x/"}]),
            "stage Raw is defined twice",
        );
        refused(
            json!([{"name": "x", "url": "s3://bkt/../x/"}]),
            "is invalid",
        );
        refused(
            json!([{"name": "x", "url": "s3://bkt/x/", "connection_name": "other"}]),
            "stage x uses connection",
        );
        refused(
            json!([{"name": "x", "url": "s3://bkt/x/", "role_arn": "arn:aws:iam::1:role/o"}]),
            "role_arn",
        );
        let many: Vec<Value> = (0..MAX_STAGES)
            .map(|i| json!({"name": format!("s{i}"), "url": "s3://bkt/x/"}))
            .collect();
        refused(Value::Array(many), "at most 8");
    }
}
