//! Databend's stage syntax on top of DataFusion SQL.
//!
//! A query is rewritten before DataFusion parses it: every `@stage/path [(FILES => ..,
//! PATTERN => ..)]`, quoted `'@stage/path'` in a FROM list and `INFER_SCHEMA(location =>
//! '@stage/path')` becomes a generated table name, and `LIST @stage` becomes a statement of
//! its own. The engine registers one table per reference.

pub(crate) mod lexer;

use lexer::{Kind, Token, lex};

use crate::error::{FunctionError, Result};
use crate::format::FormatType;

/// The most stage references one query may make.
pub const MAX_REFERENCES: usize = 64;

/// A reference to files in a stage, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRef {
    /// The stage name after `@`.
    pub stage: String,
    /// The path after the name: empty or starting with `/`.
    pub path: String,
    /// Databend's `FILES => ('a', 'b')`.
    pub files: Option<Vec<String>>,
    /// Databend's `PATTERN => 'regex'`.
    pub pattern: Option<String>,
    /// Databend's `FILE_FORMAT => 'csv'`: a type name, whose options come from the stage's
    /// format when it has that type.
    pub file_format: Option<FormatType>,
}

/// What a generated table name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSource {
    /// The rows of the files at a location.
    Files(StageRef),
    /// `INFER_SCHEMA(location => ...)`: one row per column of the first file.
    InferSchema(StageRef),
}

/// A generated table: `name` replaces the reference in the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub source: TableSource,
}

/// A statement after rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// SQL for DataFusion, the tables it uses, and its traits.
    Query {
        sql: String,
        tables: Vec<Table>,
        traits: Traits,
        /// The query as written with each stage reference blanked to an identifier of as
        /// many characters: DataFusion's parser reports a syntax error in it at the line and
        /// column the user wrote.
        syntax: String,
    },
    /// `LIST @stage[/path] [PATTERN => '...']`.
    List(StageRef),
    /// `COPY INTO @stage[/path] FROM …`: an unload ([`crate::unload`]).
    Copy(Box<crate::unload::CopyInto>),
}

impl Statement {
    /// The stages it reads (a `COPY INTO`'s source's, not its target), each once, in the
    /// order first named, as written.
    pub fn stages_read(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let refs: Vec<&StageRef> = match self {
            Statement::List(r) => vec![r],
            Statement::Query { tables, .. } => tables
                .iter()
                .map(|t| match &t.source {
                    TableSource::Files(r) | TableSource::InferSchema(r) => r,
                })
                .collect(),
            Statement::Copy(copy) => return copy.source.stages_read(),
        };
        for r in refs {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&r.stage)) {
                names.push(&r.stage);
            }
        }
        names
    }
}

/// What the engine needs to know about a query beyond its tables, read from its tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    /// It reads Databend's `METADATA$FILENAME` pseudo-column.
    pub filename_column: bool,
    /// It has a WHERE or a join condition, whose predicates may prune pages.
    pub filters: bool,
    /// It has a LIMIT, which may stop after the first pages of a file.
    pub limit: bool,
}

fn traits(sig: &[&Token]) -> Traits {
    Traits {
        filename_column: sig.iter().any(|t| {
            t.is_word(FILENAME_COLUMN)
                || (t.kind == Kind::QuotedIdent
                    && t.text[1..t.text.len() - 1].eq_ignore_ascii_case(FILENAME_COLUMN))
        }),
        filters: sig.iter().any(|t| t.is_word("WHERE") || t.is_word("ON")),
        limit: sig.iter().any(|t| t.is_word("LIMIT")),
    }
}

/// Databend's file-name pseudo-column, as DataFusion sees it (unquoted names are lower-cased).
pub const FILENAME_COLUMN: &str = "metadata$filename";

/// The most `.` and `[` one name chain may hold (`catalog.schema.table.column`, struct fields,
/// subscripts). DataFusion 55's parser takes time exponential in them: found by fuzzing, a
/// 160-byte chain of 40 dotted parts took minutes, and so did one of 33 dots and 5 brackets
/// through `$` placeholders; chains joined by `(` took 10 s.
pub const MAX_NAME_PARTS: usize = 16;

/// Rewrites one statement.
pub fn rewrite(sql: &str) -> Result<Statement> {
    let tokens = lex(sql).map_err(|e| FunctionError::invalid_query(format!("{e} in the query")))?;
    let sig: Vec<&Token> = tokens.iter().filter(|t| t.kind != Kind::Trivia).collect();
    check_name_parts(&sig)?;
    if sig.first().is_some_and(|t| t.is_word("LIST")) {
        return parse_list(&sig);
    }
    if sig.first().is_some_and(|t| t.is_word("COPY")) {
        return crate::unload::statement::parse(sql, &sig);
    }
    rewrite_query(sql, &sig)
}

/// Refuses a name chain with more than [`MAX_NAME_PARTS`] `.` and `[`. A chain runs over
/// words, quoted names, numbers, `$`, `.`, `[` and `(` (nesting multiplies the parser's
/// backtracking); anything else (a comma, an operator, a closing bracket) ends it.
fn check_name_parts(sig: &[&Token]) -> Result<()> {
    let mut parts = 0;
    for t in sig {
        if t.is_symbol('.') || t.is_symbol('[') {
            parts += 1;
            if parts > MAX_NAME_PARTS {
                return Err(FunctionError::invalid_query(format!(
                    "the name at byte {} chains more than {MAX_NAME_PARTS} `.` and `[`",
                    t.start
                )));
            }
        } else if !(matches!(t.kind, Kind::Word | Kind::QuotedIdent)
            || t.is_symbol('$')
            || t.is_symbol('(')
            || (t.kind == Kind::Other && t.text.starts_with(|c: char| c.is_ascii_digit())))
        {
            parts = 0;
        }
    }
    Ok(())
}

fn parse_list(sig: &[&Token]) -> Result<Statement> {
    let usage = "expected LIST @stage[/path] [PATTERN => 'regex']";
    let target = sig
        .get(1)
        .filter(|t| t.kind == Kind::StageRef || string_ref(t).is_some())
        .ok_or_else(|| FunctionError::invalid_query(usage))?;
    let mut stage_ref = split_ref(&stage_ref_text(target))?;
    let mut rest = &sig[2..];
    if rest.first().is_some_and(|t| t.is_word("PATTERN")) {
        let value = match rest {
            [_, eq, value, ..] if eq.kind == Kind::Arrow || eq.is_symbol('=') => value,
            _ => return Err(FunctionError::invalid_query(usage)),
        };
        stage_ref.pattern = Some(pattern_value(value)?);
        rest = &rest[3..];
    }
    if rest.first().is_some_and(|t| t.is_symbol(';')) {
        rest = &rest[1..];
    }
    if let Some(extra) = rest.first() {
        return Err(FunctionError::invalid_query(format!(
            "unexpected {:?} at byte {} after LIST; {usage}",
            extra.text, extra.start
        )));
    }
    Ok(Statement::List(stage_ref))
}

fn rewrite_query(sql: &str, sig: &[&Token]) -> Result<Statement> {
    let mut out = String::with_capacity(sql.len());
    let mut syntax = String::with_capacity(sql.len());
    let mut copied = 0; // bytes of `sql` already handled
    let mut tables = Vec::new();
    // Per parenthesis depth: whether we are in a FROM list, where `'@stage/..'` is a table.
    let mut in_from = vec![false];
    let mut i = 0;
    while i < sig.len() {
        let t = sig[i];
        let prev = i.checked_sub(1).map(|p| sig[p]);
        let depth = in_from.len() - 1;
        let (source, end_index) = if t.kind == Kind::StageRef
            || (string_ref(t).is_some()
                && prev.is_some_and(|p| {
                    p.is_word("FROM") || p.is_word("JOIN") || (p.is_symbol(',') && in_from[depth])
                })) {
            let mut stage_ref = split_ref(&stage_ref_text(t))?;
            let end = parse_table_options(sig, i + 1, &mut stage_ref)?;
            (Some(TableSource::Files(stage_ref)), end)
        } else if t.is_word("INFER_SCHEMA") && sig.get(i + 1).is_some_and(|n| n.is_symbol('(')) {
            let (stage_ref, end) = parse_infer_schema(sig, i + 1)?;
            (Some(TableSource::InferSchema(stage_ref)), end)
        } else {
            (None, i)
        };
        if let Some(source) = source {
            if tables.len() == MAX_REFERENCES {
                return Err(FunctionError::invalid_query(format!(
                    "the query references stages more than {MAX_REFERENCES} times"
                )));
            }
            let name = format!("__xstage_{}", tables.len());
            out.push_str(&sql[copied..t.start]);
            out.push_str(&name);
            syntax.push_str(&sql[copied..t.start]);
            let written = sql[t.start..sig[end_index].end].chars().count();
            syntax.extend(std::iter::repeat_n('_', written));
            copied = sig[end_index].end;
            tables.push(Table { name, source });
            i = end_index + 1;
            continue;
        }
        if t.is_symbol('(') {
            in_from.push(false);
        } else if t.is_symbol(')') {
            if in_from.len() > 1 {
                in_from.pop();
            }
        } else if t.is_word("FROM") {
            in_from[depth] = true;
        } else if [
            "WHERE",
            "GROUP",
            "ORDER",
            "LIMIT",
            "HAVING",
            "UNION",
            "EXCEPT",
            "INTERSECT",
            "WINDOW",
            "QUALIFY",
            "OFFSET",
            "SELECT",
            "ON",
            "USING",
        ]
        .iter()
        .any(|w| t.is_word(w))
        {
            in_from[depth] = false;
        } else if t.is_word("JOIN") {
            in_from[depth] = true;
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    syntax.push_str(&sql[copied..]);
    Ok(Statement::Query {
        sql: out,
        tables,
        traits: traits(sig),
        syntax,
    })
}

/// Parses the query as DataFusion will (its generic dialect), so a syntax error is an
/// `InvalidQuery` before any credential is requested, at the line and column the user wrote.
pub fn check_syntax(statement: &Statement) -> Result<()> {
    use datafusion::sql::sqlparser::parser::ParserError;
    let Statement::Query { syntax, .. } = statement else {
        return Ok(());
    };
    let Err(e) = datafusion::sql::parser::DFParser::parse_sql(syntax) else {
        return Ok(());
    };
    let why = match e.find_root() {
        datafusion::error::DataFusionError::SQL(e, _) => match e.as_ref() {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    Err(FunctionError::invalid_query(format!("syntax error: {why}")))
}

/// `'@stage/...'` as a string literal.
fn string_ref(t: &Token) -> Option<String> {
    t.string_value().filter(|v| {
        v.starts_with('@') && v[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    })
}

fn stage_ref_text(t: &Token) -> String {
    string_ref(t).unwrap_or_else(|| t.text.to_string())
}

/// `@name/path` into its stage name and the path after it (empty or starting with `/`).
pub(crate) fn split_stage_ref(text: &str) -> Result<(String, String)> {
    split_ref(text).map(|r| (r.stage, r.path))
}

/// `@name/path` into its stage name and path.
fn split_ref(text: &str) -> Result<StageRef> {
    let body = &text[1..];
    let split = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (stage, path) = body.split_at(split);
    if !path.is_empty() && !path.starts_with('/') {
        return Err(FunctionError::invalid_query(format!(
            "{text:?} is not a stage reference: expected @stage or @stage/path"
        )));
    }
    Ok(StageRef {
        stage: stage.to_string(),
        path: path.to_string(),
        files: None,
        pattern: None,
        file_format: None,
    })
}

/// Parses `(NAME => value, ...)` after a stage reference if present; returns the index of the
/// last token consumed.
fn parse_table_options(sig: &[&Token], open: usize, stage_ref: &mut StageRef) -> Result<usize> {
    let is_options = sig.get(open).is_some_and(|t| t.is_symbol('('))
        && sig.get(open + 1).is_some_and(|t| t.kind == Kind::Word)
        && sig.get(open + 2).is_some_and(|t| t.kind == Kind::Arrow);
    if !is_options {
        return Ok(open - 1);
    }
    let mut i = open + 1;
    loop {
        let name = sig[i];
        i += 2; // name =>
        let value = sig.get(i).ok_or_else(|| unexpected_end("table options"))?;
        if name.is_word("FILES") {
            let (files, end) = parse_string_list(sig, i)?;
            stage_ref.files = Some(files);
            i = end;
        } else if name.is_word("PATTERN") {
            stage_ref.pattern = Some(pattern_value(value)?);
        } else if name.is_word("FILE_FORMAT") {
            stage_ref.file_format = Some(format_value(value)?);
        } else {
            return Err(FunctionError::invalid_query(format!(
                "unknown table option {} at byte {}; xstage accepts FILES, PATTERN and FILE_FORMAT",
                name.text, name.start
            )));
        }
        i += 1;
        match sig.get(i) {
            Some(t) if t.is_symbol(')') => return Ok(i),
            Some(t) if t.is_symbol(',') => {
                i += 1;
                if !(sig.get(i).is_some_and(|t| t.kind == Kind::Word)
                    && sig.get(i + 1).is_some_and(|t| t.kind == Kind::Arrow))
                {
                    return Err(FunctionError::invalid_query(
                        "expected NAME => value in the table options",
                    ));
                }
            }
            Some(t) => {
                return Err(FunctionError::invalid_query(format!(
                    "unexpected {:?} at byte {} in the table options",
                    t.text, t.start
                )));
            }
            None => return Err(unexpected_end("table options")),
        }
    }
}

/// `('a', 'b')` starting at `open`; returns the values and the index of `)`.
fn parse_string_list(sig: &[&Token], open: usize) -> Result<(Vec<String>, usize)> {
    if !sig[open].is_symbol('(') {
        return Err(FunctionError::invalid_query(
            "FILES takes a list of quoted names: FILES => ('a.parquet', 'b.parquet')",
        ));
    }
    let mut values = Vec::new();
    let mut i = open + 1;
    loop {
        let t = sig.get(i).ok_or_else(|| unexpected_end("FILES list"))?;
        if t.is_symbol(')') && values.is_empty() {
            return Ok((values, i));
        }
        values.push(
            t.string_value()
                .ok_or_else(|| FunctionError::invalid_query("FILES takes quoted file names"))?,
        );
        let sep = sig.get(i + 1).ok_or_else(|| unexpected_end("FILES list"))?;
        if sep.is_symbol(')') {
            return Ok((values, i + 1));
        }
        if !sep.is_symbol(',') {
            return Err(FunctionError::invalid_query(format!(
                "unexpected {:?} at byte {} in the FILES list",
                sep.text, sep.start
            )));
        }
        i += 2;
    }
}

/// The quoted regex of a `PATTERN` option.
fn pattern_value(value: &Token) -> Result<String> {
    value
        .string_value()
        .ok_or_else(|| FunctionError::invalid_query("PATTERN takes a quoted regex"))
}

/// `FILE_FORMAT => 'csv'` (or unquoted): one of the built-in type names.
fn format_value(value: &Token) -> Result<FormatType> {
    let name = value
        .string_value()
        .unwrap_or_else(|| value.text.to_string());
    FormatType::from_name(&name)
        .map_err(|why| FunctionError::invalid_query(format!("FILE_FORMAT: {why}")))
}

/// `INFER_SCHEMA(location => '@stage/path' [, pattern => '..'] [, file_format => 'parquet'])`.
fn parse_infer_schema(sig: &[&Token], open: usize) -> Result<(StageRef, usize)> {
    let usage = "expected INFER_SCHEMA(location => '@stage/file.parquet')";
    let mut location: Option<StageRef> = None;
    let mut pattern = None;
    let mut file_format = None;
    let mut i = open + 1;
    loop {
        let (name, arrow, value) = match (sig.get(i), sig.get(i + 1), sig.get(i + 2)) {
            (Some(n), Some(a), Some(v)) => (n, a, v),
            _ => return Err(FunctionError::invalid_query(usage)),
        };
        if name.kind != Kind::Word || arrow.kind != Kind::Arrow {
            return Err(FunctionError::invalid_query(usage));
        }
        if name.is_word("LOCATION") {
            let text = string_ref(value)
                .or_else(|| (value.kind == Kind::StageRef).then(|| value.text.to_string()))
                .ok_or_else(|| FunctionError::invalid_query(usage))?;
            location = Some(split_ref(&text)?);
        } else if name.is_word("PATTERN") {
            pattern = Some(pattern_value(value)?);
        } else if name.is_word("FILE_FORMAT") {
            file_format = Some(format_value(value)?);
        } else {
            return Err(FunctionError::invalid_query(format!(
                "unknown INFER_SCHEMA argument {}; {usage}",
                name.text
            )));
        }
        i += 3;
        match sig.get(i) {
            Some(t) if t.is_symbol(')') => break,
            Some(t) if t.is_symbol(',') => i += 1,
            _ => return Err(FunctionError::invalid_query(usage)),
        }
    }
    let mut location = location.ok_or_else(|| FunctionError::invalid_query(usage))?;
    location.pattern = pattern;
    location.file_format = file_format;
    Ok((location, i))
}

fn unexpected_end(what: &str) -> FunctionError {
    FunctionError::invalid_query(format!("the query ends inside the {what}"))
}

#[cfg(test)]
mod tests;
