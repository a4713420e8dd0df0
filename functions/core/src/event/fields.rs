//! A JSON object read with case-insensitive keys, where every key must be consumed.
//!
//! Databend writes `ROLE_ARN`, RisingWave writes `s3.region_name`, the event schema writes
//! `role_arn`; all are accepted, and a key nobody asked for is an error naming it.

use serde_json::{Map, Value};

use crate::error::{FunctionError, Result};

/// The fields of one JSON object, keyed by lower-cased name.
pub(crate) struct Fields {
    /// Dotted path of this object in the event, for messages (`connection`, `stage`, ...).
    at: &'static str,
    entries: Vec<(String, String, Value)>, // (lower-cased key, key as written, value)
}

impl Fields {
    /// Reads `value` as an object. Two keys that differ only in case are an error.
    pub(crate) fn new(at: &'static str, value: Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(FunctionError::invalid_event(format!(
                "`{at}` must be a JSON object, got {}",
                kind_of(&value)
            )));
        };
        Self::from_map(at, map)
    }

    fn from_map(at: &'static str, map: Map<String, Value>) -> Result<Self> {
        let mut entries: Vec<(String, String, Value)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            let lower = key.to_ascii_lowercase();
            if let Some((_, first, _)) = entries.iter().find(|(l, _, _)| *l == lower) {
                return Err(FunctionError::invalid_event(format!(
                    "`{at}` has both `{first}` and `{key}`; keys are case-insensitive, give it once"
                )));
            }
            entries.push((lower, key, value));
        }
        Ok(Self { at, entries })
    }

    /// Removes the value under any of `names` (the first is the canonical name, the rest are
    /// synonyms). Giving two synonyms at once is an error. JSON `null` counts as absent.
    pub(crate) fn take(&mut self, names: &[&str]) -> Result<Option<(String, Value)>> {
        let mut found: Option<(String, Value)> = None;
        for name in names {
            if let Some(i) = self.entries.iter().position(|(l, _, _)| l == name) {
                let (_, key, value) = self.entries.swap_remove(i);
                if let Some((first, _)) = &found {
                    return Err(FunctionError::invalid_event(format!(
                        "`{}` has both `{first}` and `{key}`, which mean the same; give one",
                        self.at
                    )));
                }
                if !value.is_null() {
                    found = Some((key, value));
                }
            }
        }
        Ok(found)
    }

    /// Like [`take`](Self::take), for a string value.
    pub(crate) fn take_str(&mut self, names: &[&str]) -> Result<Option<String>> {
        match self.take(names)? {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s)),
            Some((key, other)) => Err(FunctionError::invalid_event(format!(
                "`{}.{key}` must be a string, got {}",
                self.at,
                kind_of(&other)
            ))),
        }
    }

    /// Like [`take`](Self::take), for a boolean; `false` when absent.
    pub(crate) fn take_bool(&mut self, names: &[&str]) -> Result<bool> {
        match self.take(names)? {
            None => Ok(false),
            Some((_, Value::Bool(b))) => Ok(b),
            Some((key, other)) => Err(FunctionError::invalid_event(format!(
                "`{}.{key}` must be a boolean, got {}",
                self.at,
                kind_of(&other)
            ))),
        }
    }

    /// Like [`take`](Self::take), for a non-negative integer (a numeric string is accepted too,
    /// as Databend and RisingWave options are strings).
    pub(crate) fn take_u64(&mut self, names: &[&str]) -> Result<Option<u64>> {
        match self.take(names)? {
            None => Ok(None),
            Some((key, value)) => {
                let parsed = match &value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                parsed.map(Some).ok_or_else(|| {
                    FunctionError::invalid_event(format!(
                        "`{}.{key}` must be a non-negative integer, got {value}",
                        self.at
                    ))
                })
            }
        }
    }

    /// Errors if any key was not consumed, naming each.
    pub(crate) fn finish(self, allowed: &[&str]) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .entries
            .iter()
            .map(|(_, key, _)| format!("`{}.{key}`", self.at))
            .collect();
        Err(FunctionError::invalid_event(format!(
            "unknown key {}; `{}` accepts {}",
            unknown.join(", "),
            self.at,
            allowed.join(", ")
        )))
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
