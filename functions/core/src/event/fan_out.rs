//! The event's fan-out parts: `options.fan_out` (how far one query may spread), and the
//! `fragment` a coordinator sends each worker (see [`crate::fanout`]).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use super::fields::{Fields, kind_of};
use crate::engine::PageIndexes;
use crate::error::{FunctionError, Result};
use crate::fanout::fragment::MAX_FRAGMENT_BYTES;

/// `options.fan_out`: one query spread over invocations of this function.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    /// The most workers one query uses; 1 turns fan-out off.
    pub max_workers: u64,
    /// The planned scan bytes (the columns the query reads) each worker should get. A query
    /// whose scan is no larger runs in one invocation.
    pub bytes_per_worker: u64,
    /// The most workers one invocation starts itself; above it, a tree: each first-level
    /// invocation starts its own share and merges what they return.
    pub direct_invokes: u64,
    /// Attempts per task on a transient failure (throttling, a crashed or timed-out worker).
    pub max_attempts: u64,
    /// A task still running this many times the median finished task's time gets a
    /// speculative duplicate; the first answer wins. 0 turns speculation off.
    pub speculate_after: f64,
}

impl Default for FanOut {
    fn default() -> Self {
        Self {
            max_workers: 64,
            bytes_per_worker: 256 << 20,
            direct_invokes: 64,
            max_attempts: 3,
            speculate_after: 3.0,
        }
    }
}

/// The most workers a query may ask for.
pub const MAX_WORKERS: u64 = 4096;
const KEYS: &[&str] = &[
    "max_workers",
    "bytes_per_worker",
    "direct_invokes",
    "max_attempts",
    "speculate_after",
];

impl FanOut {
    pub(super) fn parse(value: Value) -> Result<Self> {
        let mut f = Fields::new("options.fan_out", value)?;
        let default = Self::default();
        let fan_out = Self {
            max_workers: f.take_u64(&["max_workers"])?.unwrap_or(default.max_workers),
            bytes_per_worker: f
                .take_u64(&["bytes_per_worker"])?
                .unwrap_or(default.bytes_per_worker),
            direct_invokes: f
                .take_u64(&["direct_invokes"])?
                .unwrap_or(default.direct_invokes),
            max_attempts: f
                .take_u64(&["max_attempts"])?
                .unwrap_or(default.max_attempts),
            speculate_after: match f.take(&["speculate_after"])? {
                None => default.speculate_after,
                Some((_, Value::Number(n))) if n.as_f64().is_some_and(|x| x >= 0.0) => {
                    n.as_f64().unwrap_or(default.speculate_after)
                }
                Some((_, other)) => {
                    return Err(FunctionError::invalid_event(format!(
                        "`options.fan_out.speculate_after` must be a non-negative number (a multiple \
                         of the median task time; 0 turns speculation off), got {other}"
                    )));
                }
            },
        };
        f.finish(KEYS)?;
        let range = |name: &str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(FunctionError::invalid_event(format!(
                    "`options.fan_out.{name}` is {value}; give {low} to {high}"
                )))
            }
        };
        range("max_workers", fan_out.max_workers, 1, MAX_WORKERS)?;
        range(
            "bytes_per_worker",
            fan_out.bytes_per_worker,
            64 << 10,
            1 << 40,
        )?;
        range("direct_invokes", fan_out.direct_invokes, 2, MAX_WORKERS)?;
        range("max_attempts", fan_out.max_attempts, 1, 10)?;
        Ok(fan_out)
    }

    /// Whether the query may fan out at all.
    pub fn enabled(&self) -> bool {
        self.max_workers > 1
    }
}

/// What a coordinator asks of one worker: a plan fragment over its share of the stage's
/// files. Checked like any event before it runs ([`crate::fanout::fragment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The physical plan, encoded with `datafusion-proto`; empty for a tree's inner node.
    pub plan: Vec<u8>,
    /// The page indexes the query can use (as the coordinator planned it).
    pub page_indexes: PageIndexes,
    /// Further fragments this invocation starts itself and merges (a tree's inner node);
    /// empty for a leaf.
    pub children: Vec<Fragment>,
    /// A `COPY INTO`'s worker: the `<part>` of the names it writes (its task's number); its
    /// plan's rows go to files, and it answers with their list ([`crate::unload::spread`]).
    pub part: Option<u32>,
    /// The ETag the coordinator planned each of the plan's files with, by key: the worker
    /// reads those versions only (`If-Match`). `datafusion-proto` carries no ETag.
    pub versions: BTreeMap<String, String>,
}

impl Fragment {
    pub(super) fn parse(value: Value) -> Result<Self> {
        let mut f = Fields::new("fragment", value)?;
        let plan = f.take_str(&["plan"])?.unwrap_or_default();
        // Bounded before it is decoded: base64 holds 3 bytes in 4 characters.
        if plan.len() / 4 * 3 > MAX_FRAGMENT_BYTES {
            return Err(FunctionError::invalid_event(format!(
                "`fragment.plan` is {} characters of base64, above the {MAX_FRAGMENT_BYTES} bytes a \
                 coordinator sends",
                plan.len()
            )));
        }
        let plan = base64::engine::general_purpose::STANDARD
            .decode(plan.as_bytes())
            .map_err(|e| {
                FunctionError::invalid_event(format!("`fragment.plan` is not base64: {e}"))
            })?;
        let page_indexes = PageIndexes {
            offset_index: f.take_bool(&["offset_index"])?,
            column_index: f.take_bool(&["column_index"])?,
        };
        let children = match f.take(&["children"])? {
            None => Vec::new(),
            // Counted before any is decoded: one event never starts more than a query may.
            Some((_, Value::Array(items))) if items.len() as u64 > MAX_WORKERS => {
                return Err(FunctionError::invalid_event(format!(
                    "`fragment.children` holds {} fragments; a query has at most {MAX_WORKERS} \
                     workers",
                    items.len()
                )));
            }
            Some((_, Value::Array(items))) => items
                .into_iter()
                .map(|item| {
                    let child = Fragment::parse(item)?;
                    if child.children.is_empty() {
                        Ok(child)
                    } else {
                        Err(FunctionError::invalid_event(
                            "`fragment.children` holds worker fragments, not inner nodes",
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?,
            Some((_, other)) => {
                return Err(FunctionError::invalid_event(format!(
                    "`fragment.children` must be an array, got {}",
                    kind_of(&other)
                )));
            }
        };
        let part = match f.take_u64(&["part"])? {
            Some(p) if p < MAX_WORKERS => Some(p as u32),
            Some(p) => {
                return Err(FunctionError::invalid_event(format!(
                    "`fragment.part` is {p}; a part is a task's number, below {MAX_WORKERS}"
                )));
            }
            None => None,
        };
        let versions = match f.take(&["versions"])? {
            None => BTreeMap::new(),
            Some((_, Value::Object(map))) => map
                .into_iter()
                .map(|(key, e_tag)| match e_tag {
                    Value::String(e_tag) => Ok((key, e_tag)),
                    other => Err(FunctionError::invalid_event(format!(
                        "`fragment.versions` maps keys to ETags (strings), got {}",
                        kind_of(&other)
                    ))),
                })
                .collect::<Result<_>>()?,
            Some((_, other)) => {
                return Err(FunctionError::invalid_event(format!(
                    "`fragment.versions` must be an object, got {}",
                    kind_of(&other)
                )));
            }
        };
        f.finish(&[
            "plan",
            "offset_index",
            "column_index",
            "children",
            "part",
            "versions",
        ])?;
        if plan.is_empty() == children.is_empty() {
            return Err(FunctionError::invalid_event(
                "a `fragment` has either a `plan` (a worker's) or `children` (a tree's inner node)",
            ));
        }
        Ok(Self {
            plan,
            page_indexes,
            children,
            part,
            versions,
        })
    }

    /// The JSON a worker's event carries.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "offset_index": self.page_indexes.offset_index,
            "column_index": self.page_indexes.column_index,
        });
        if !self.plan.is_empty() {
            v["plan"] = base64::engine::general_purpose::STANDARD
                .encode(&self.plan)
                .into();
        }
        if !self.children.is_empty() {
            v["children"] = Value::Array(self.children.iter().map(Fragment::to_json).collect());
        }
        if let Some(part) = self.part {
            v["part"] = part.into();
        }
        if !self.versions.is_empty() {
            v["versions"] = serde_json::json!(self.versions);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(FanOut::parse(json!({})).unwrap(), FanOut::default());
        let f = FanOut::parse(json!({"max_workers": 1})).unwrap();
        assert!(!f.enabled());
        for bad in [
            json!({"max_workers": 0}),
            json!({"max_workers": 5000}),
            json!({"bytes_per_worker": 1000}),
            json!({"direct_invokes": 1}),
            json!({"speculate_after": -1}),
            json!({"speculate_after": "x"}),
            json!({"workers": 2}),
        ] {
            let e = FanOut::parse(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent);
            assert!(e.message().contains("options.fan_out"), "{e}");
        }
    }

    #[test]
    fn a_fragment_round_trips() {
        let leaf = Fragment {
            plan: vec![1, 2, 3],
            page_indexes: PageIndexes {
                offset_index: true,
                column_index: false,
            },
            children: Vec::new(),
            part: None,
            versions: BTreeMap::from([("p/a.parquet".into(), "\"e1\"".into())]),
        };
        let writer = Fragment {
            part: Some(7),
            ..leaf.clone()
        };
        assert_eq!(Fragment::parse(writer.to_json()).unwrap(), writer);
        let e = Fragment::parse(json!({"plan": "AQ==", "part": 5000})).unwrap_err();
        assert!(e.message().contains("fragment.part"), "{e}");
        let inner = Fragment {
            plan: Vec::new(),
            children: vec![leaf.clone(), leaf.clone()],
            ..leaf.clone()
        };
        assert_eq!(Fragment::parse(leaf.to_json()).unwrap(), leaf);
        assert_eq!(Fragment::parse(inner.to_json()).unwrap(), inner);
        let e = Fragment::parse(json!({"plan": "!!"})).unwrap_err();
        assert!(e.message().contains("base64"), "{e}");
        let e = Fragment::parse(json!({})).unwrap_err();
        assert!(e.message().contains("either"), "{e}");
    }
}
