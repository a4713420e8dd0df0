//! Results on stdout: an aligned table (the default), JSON (an array of objects, columns in
//! order), CSV (RFC 4180, a header line, NULL as an empty field), or Arrow IPC (the
//! function's own stream, for `--output FILE` or a pipe).

use std::fmt::Write as _;

use comfy_table::{CellAlignment, ContentArrangement, presets};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
    Arrow,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "arrow" => Ok(Self::Arrow),
            other => Err(format!(
                "unknown format {other:?}: use table, json, csv or arrow"
            )),
        }
    }
}

/// Rows to print: column names, their SQL types (shown in the table header) and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub types: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            types: vec!["VARCHAR".to_string(); columns.len()],
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        self.rows.push(row);
    }
}

pub fn render(table: &Table, format: Format) -> String {
    match format {
        // Statements other than queries (SHOW, DESC) have no Arrow form: a table.
        Format::Table | Format::Arrow => text(table),
        Format::Json => json(table),
        Format::Csv => csv(table),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text(table: &Table) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(
        table
            .columns
            .iter()
            .zip(&table.types)
            .map(|(name, ty)| format!("{name}\n{ty}")),
    );
    for row in &table.rows {
        t.add_row(row.iter().map(|v| {
            let c = comfy_table::Cell::new(cell(v));
            if v.is_number() {
                c.set_alignment(CellAlignment::Right)
            } else {
                c
            }
        }));
    }
    format!("{t}\n")
}

fn json(table: &Table) -> String {
    let mut out = String::from("[");
    for (i, row) in table.rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        out.push_str(&json_object(&table.columns, row));
    }
    out.push_str(if table.rows.is_empty() {
        "]\n"
    } else {
        "\n]\n"
    });
    out
}

/// One row as a JSON object, its keys in column order.
pub fn json_object(columns: &[String], row: &[Value]) -> String {
    let mut out = String::from("{");
    for (j, (name, value)) in columns.iter().zip(row).enumerate() {
        if j > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", Value::String(name.clone()), value);
    }
    out.push('}');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(table: &Table) -> String {
    let mut out = csv_header(table);
    for row in &table.rows {
        out.push_str(&csv_row(row));
    }
    out
}

/// The CSV header line.
pub fn csv_header(table: &Table) -> String {
    let fields: Vec<String> = table.columns.iter().map(|c| csv_field(c)).collect();
    fields.join(",") + "\r\n"
}

/// One row as a CSV line.
pub fn csv_row(row: &[Value]) -> String {
    let fields: Vec<String> = row
        .iter()
        .map(|v| match v {
            Value::Null => String::new(),
            v => csv_field(&cell(v)),
        })
        .collect();
    fields.join(",") + "\r\n"
}

/// A byte count for people: `512 B`, `1.50 KiB`, `2.00 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        Table {
            columns: vec!["id".into(), "name".into()],
            types: vec!["BIGINT".into(), "VARCHAR".into()],
            rows: vec![
                vec![json!(1), json!("a, \"b\"")],
                vec![json!(22), Value::Null],
            ],
        }
    }

    #[test]
    fn csv_quotes_and_nulls() {
        assert_eq!(
            render(&table(), Format::Csv),
            "id,name\r\n1,\"a, \"\"b\"\"\"\r\n22,\r\n"
        );
    }

    #[test]
    fn json_keeps_column_order_and_types() {
        let out = render(&table(), Format::Json);
        assert_eq!(
            out,
            "[\n  {\"id\": 1, \"name\": \"a, \\\"b\\\"\"},\n  {\"id\": 22, \"name\": null}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[1]["id"], json!(22));
        assert_eq!(render(&Table::new(&["x"]), Format::Json), "[]\n");
    }

    #[test]
    fn the_table_aligns_columns() {
        let out = render(&table(), Format::Table);
        let lines: Vec<&str> = out.lines().collect();
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{out}");
        assert!(out.contains("BIGINT") && out.contains("NULL"), "{out}");
        assert!(out.parse::<Format>().is_err());
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
    }
}
