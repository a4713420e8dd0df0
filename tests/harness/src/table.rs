//! A response rendered as an aligned text table, the way Databend's shell prints results.

use serde_json::Value;

/// Renders `{"schema": [...], "rows": [[...]]}` as a boxed table.
pub fn render(response: &Value) -> String {
    let headers: Vec<String> = response["schema"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| c["name"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let types: Vec<String> = response["schema"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| c["type"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = response["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|cells| cells.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = headers
        .iter()
        .zip(&types)
        .map(|(h, t)| h.chars().count().max(t.chars().count()))
        .collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |l: char, m: char, r: char| {
        let mut s = String::from(l);
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&"─".repeat(w + 2));
            s.push(if i + 1 == widths.len() { r } else { m });
        }
        s.push('\n');
        s
    };
    let fmt_row = |cells: &[String]| {
        let mut s = String::from("│");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            s.push_str(&format!(" {c:<w$} │"));
        }
        s.push('\n');
        s
    };
    let mut out = line('┌', '┬', '┐');
    out.push_str(&fmt_row(&headers));
    out.push_str(&fmt_row(&types));
    out.push_str(&line('├', '┼', '┤'));
    for row in &rows {
        out.push_str(&fmt_row(row));
    }
    out.push_str(&line('└', '┴', '┘'));
    let count = response["row_count"].as_u64().unwrap_or(rows.len() as u64);
    let truncated = if response["truncated"] == Value::Bool(true) {
        " (truncated)"
    } else {
        ""
    };
    out.push_str(&format!(
        "{count} row{}{truncated}\n",
        if count == 1 { "" } else { "s" }
    ));
    out
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns() {
        let t = render(&json!({
            "schema": [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR"}],
            "rows": [[1, "alice"], [1000, null]],
            "row_count": 2
        }));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "│ id     │ name    │");
        assert_eq!(lines[4], "│ 1      │ alice   │");
        assert_eq!(lines[5], "│ 1000   │ NULL    │");
        assert_eq!(lines.last().unwrap(), &"2 rows");
    }
}
