//! A query's answer as it streams in: the function's NDJSON split into its schema, rows and
//! closing line ([`Lines`]), rows printed as they arrive ([`Printer`]: an aligned table in
//! blocks, JSON, CSV, or the Arrow IPC bytes as they are), and a progress line on stderr for
//! answers that take longer than a second ([`Progress`]).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::SqlError;
use super::output::{self, Format, Table};

/// Rows the table format gathers before it prints them as one aligned block.
pub const TABLE_BLOCK: usize = 1000;

/// What the answer's lines carry, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Schema {
        columns: Vec<String>,
        types: Vec<String>,
    },
    Row(Vec<Value>),
    /// The closing line: `row_count`, `truncated`, `stats`.
    End(Value),
}

/// Splits NDJSON chunks at newlines into [`Part`]s.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
    seen_schema: bool,
    ended: bool,
}

impl Lines {
    /// The parts whose lines `chunk` completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Part>, SqlError> {
        self.pending.extend_from_slice(chunk);
        let pending = std::mem::take(&mut self.pending);
        let mut parts = Vec::new();
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            parts.push(self.part(line)?);
        }
        self.pending = pending[start..].to_vec();
        Ok(parts)
    }

    /// Whether the closing line was read: only then is the answer whole.
    pub fn ended(&self) -> bool {
        self.ended && self.pending.is_empty()
    }

    fn part(&mut self, line: &[u8]) -> Result<Part, SqlError> {
        let bad =
            |why: String| SqlError::Invalid(format!("the function's answer is not NDJSON: {why}"));
        let value: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        if self.ended {
            return Err(bad("a line after the closing line".into()));
        }
        if !self.seen_schema {
            self.seen_schema = true;
            let schema = value["schema"]
                .as_array()
                .ok_or_else(|| bad("the first line has no schema".into()))?;
            let field = |c: &Value, k: &str| c[k].as_str().unwrap_or("").to_string();
            return Ok(Part::Schema {
                columns: schema.iter().map(|c| field(c, "name")).collect(),
                types: schema.iter().map(|c| field(c, "type")).collect(),
            });
        }
        match value {
            Value::Array(row) => Ok(Part::Row(row)),
            Value::Object(_) => {
                self.ended = true;
                Ok(Part::End(value))
            }
            other => Err(bad(format!("unexpected line {other}"))),
        }
    }
}

/// Prints rows as they arrive in a text format, or passes Arrow IPC bytes through.
pub struct Printer<W: Write> {
    out: W,
    format: Format,
    table: Table,
    rows: u64,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: Format) -> Self {
        Self {
            out,
            format,
            table: Table::default(),
            rows: 0,
        }
    }

    pub fn part(&mut self, part: Part) -> io::Result<()> {
        match part {
            Part::Schema { columns, types } => {
                self.table.columns = columns;
                self.table.types = types;
                match self.format {
                    Format::Csv => self
                        .out
                        .write_all(output::csv_header(&self.table).as_bytes()),
                    Format::Json => self.out.write_all(b"["),
                    _ => Ok(()),
                }
            }
            Part::Row(row) => {
                self.rows += 1;
                match self.format {
                    Format::Csv => self.out.write_all(output::csv_row(&row).as_bytes()),
                    Format::Json => {
                        let sep: &[u8] = if self.rows == 1 { b"\n  " } else { b",\n  " };
                        self.out.write_all(sep)?;
                        self.out
                            .write_all(output::json_object(&self.table.columns, &row).as_bytes())
                    }
                    _ => {
                        self.table.rows.push(row);
                        if self.table.rows.len() >= TABLE_BLOCK {
                            self.flush_block()?;
                        }
                        Ok(())
                    }
                }
            }
            Part::End(_) => {
                match self.format {
                    Format::Json if self.rows == 0 => self.out.write_all(b"]\n")?,
                    Format::Json => self.out.write_all(b"\n]\n")?,
                    Format::Table if self.rows == 0 || !self.table.rows.is_empty() => {
                        self.flush_block()?
                    }
                    _ => {}
                }
                self.out.flush()
            }
        }
    }

    /// Bytes of an Arrow answer, written as they come.
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    /// Rows printed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn flush_block(&mut self) -> io::Result<()> {
        self.out
            .write_all(output::render(&self.table, Format::Table).as_bytes())?;
        self.table.rows.clear();
        self.out.flush()
    }
}

/// A progress line on stderr (`12,345 rows, 1.20 MiB so far`), shown once an answer has
/// taken a second, updated at most four times a second, and wiped when it ends. Only on a
/// terminal: a redirected stderr gets the final status line alone.
pub struct Progress {
    started: Instant,
    last: Option<Instant>,
    shown: bool,
    enabled: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Self {
            started: Instant::now(),
            last: None,
            shown: false,
            enabled,
        }
    }

    /// The line to show now for `rows` and `bytes`, if one is due.
    pub fn due(&mut self, rows: u64, bytes: u64, now: Instant) -> Option<String> {
        if !self.enabled || now.duration_since(self.started) < Duration::from_secs(1) {
            return None;
        }
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_millis(250))
        {
            return None;
        }
        self.last = Some(now);
        self.shown = true;
        Some(format!(
            "\r{rows} rows, {} so far ({:.1} s)\x1b[K",
            output::bytes(bytes),
            now.duration_since(self.started).as_secs_f64()
        ))
    }

    pub fn update(&mut self, rows: u64, bytes: u64) {
        if let Some(line) = self.due(rows, bytes, Instant::now()) {
            let mut err = io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
    }

    /// Wipes the line before the status is printed.
    pub fn finish(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ANSWER: &[u8] = b"{\"schema\":[{\"name\":\"id\",\"type\":\"BIGINT\",\"nullable\":false},{\"name\":\"s\",\"type\":\"VARCHAR\",\"nullable\":true}]}\n[1,\"a, b\"]\n[2,null]\n{\"row_count\":2,\"truncated\":false,\"stats\":{}}\n";

    fn parts(chunks: &[&[u8]]) -> (Vec<Part>, bool) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(lines.feed(c).unwrap());
        }
        (out, lines.ended())
    }

    #[test]
    fn lines_split_across_chunks() {
        let (whole, ended) = parts(&[ANSWER]);
        assert!(ended);
        let (split, _) = parts(&[&ANSWER[..7], &ANSWER[7..100], &ANSWER[100..]]);
        assert_eq!(whole, split);
        assert_eq!(whole[1], Part::Row(vec![json!(1), json!("a, b")]));
        assert!(matches!(&whole[3], Part::End(v) if v["row_count"] == 2));
        let (cut, ended) = parts(&[&ANSWER[..ANSWER.len() - 20]]);
        assert!(!ended, "{cut:?}");
    }

    fn printed(format: Format) -> String {
        let mut p = Printer::new(Vec::new(), format);
        for part in parts(&[ANSWER]).0 {
            p.part(part).unwrap();
        }
        String::from_utf8(p.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn rows_print_as_the_buffered_output_does() {
        let table = Table {
            columns: vec!["id".into(), "s".into()],
            types: vec!["BIGINT".into(), "VARCHAR".into()],
            rows: vec![vec![json!(1), json!("a, b")], vec![json!(2), Value::Null]],
        };
        for format in [Format::Csv, Format::Json, Format::Table] {
            assert_eq!(
                printed(format),
                output::render(&table, format),
                "{format:?}"
            );
        }
    }

    #[test]
    fn progress_waits_a_second_and_updates_four_times_a_second() {
        let mut p = Progress::new(true);
        let t0 = p.started;
        assert_eq!(p.due(5, 10, t0 + Duration::from_millis(900)), None);
        let line = p
            .due(12_345, 3 << 20, t0 + Duration::from_millis(1200))
            .unwrap();
        assert!(line.contains("12345 rows, 3.00 MiB so far"), "{line}");
        assert_eq!(p.due(1, 1, t0 + Duration::from_millis(1300)), None);
        assert!(p.due(1, 1, t0 + Duration::from_millis(1500)).is_some());
        let mut off = Progress::new(false);
        assert_eq!(off.due(1, 1, t0 + Duration::from_secs(5)), None);
    }
}
