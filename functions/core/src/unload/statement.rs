//! Databend's `COPY INTO @stage[/path] FROM { @stage[/path] | (SELECT …) } [options]`, read
//! from the statement's tokens: the target, the source (rewritten like any query), and the
//! copy options with Databend's defaults and the combinations it refuses.

use super::format::{self, OutputFormat, ParquetCompression};
use crate::error::{FunctionError, Result};
use crate::format::{FileFormat, FormatType};
use crate::sql::lexer::{Kind, Token};
use crate::sql::{self, Statement};

/// Databend's default `MAX_FILE_SIZE`: 64 MB, an upper bound on each file.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// The column PARTITION BY's value is computed into (and removed from what is written).
pub const PARTITION_COLUMN: &str = "__xstage_partition";
/// The smallest `MAX_FILE_SIZE` taken: below it a file is mostly its own metadata.
pub const MIN_MAX_FILE_SIZE: u64 = 1024;

/// A parsed `COPY INTO <location>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInto {
    /// The target's stage name (after `@`).
    pub stage: String,
    /// The target's path after the stage name: empty or starting with `/`.
    pub path: String,
    /// The source as a query of its own (a `@stage/path` source is `SELECT * FROM` it), with
    /// PARTITION BY's value as its last column ([`PARTITION_COLUMN`]).
    pub source: Box<Statement>,
    /// The source's SQL text, before rewriting, for messages and PARTITION BY.
    pub source_sql: String,
    /// `PARTITION BY ( <expr> )`: the expression's text.
    pub partition_by: Option<String>,
    pub format: OutputFormat,
    pub options: CopyOptions,
}

/// Databend's copy options, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    pub single: bool,
    pub max_file_size: u64,
    pub include_query_id: bool,
    pub use_raw_path: bool,
    pub overwrite: bool,
    pub detailed_output: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            single: false,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            include_query_id: true,
            use_raw_path: false,
            overwrite: false,
            detailed_output: false,
        }
    }
}

const USAGE: &str = "expected COPY INTO @stage[/path/] FROM { @stage[/path] | (SELECT ...) } \
     [PARTITION BY (<expr>)] [FILE_FORMAT = (TYPE = PARQUET | CSV | TSV | NDJSON ...)] \
     [SINGLE = TRUE|FALSE] [MAX_FILE_SIZE = <bytes>] [INCLUDE_QUERY_ID = TRUE|FALSE] \
     [USE_RAW_PATH = TRUE|FALSE] [OVERWRITE = TRUE|FALSE] [DETAILED_OUTPUT = TRUE|FALSE]";

pub(super) fn invalid(why: impl std::fmt::Display) -> FunctionError {
    FunctionError::invalid_query(format!("COPY INTO: {why}"))
}

/// Parses a statement whose first token is `COPY`. `sig` is its tokens without trivia.
pub fn parse(sql_text: &str, sig: &[&Token]) -> Result<Statement> {
    let mut c = Cursor { sig, i: 1 };
    if !c.peek().is_some_and(|t| t.is_word("INTO")) {
        return Err(invalid(format!(
            "xstage unloads with COPY INTO <location> only (loading into a table needs a table); {USAGE}"
        )));
    }
    c.i += 1;
    let target = c
        .next()
        .and_then(stage_ref_text)
        .ok_or_else(|| invalid(format!("the target must be a stage location; {USAGE}")))?;
    let (stage, path) = sql::split_stage_ref(&target)?;
    if !c.next().is_some_and(|t| t.is_word("FROM")) {
        return Err(invalid(USAGE));
    }
    let source_sql = source(sql_text, &mut c)?;
    let mut copy = CopyInto {
        stage,
        path,
        source: Box::new(Statement::List(sql::StageRef {
            stage: String::new(),
            path: String::new(),
            files: None,
            pattern: None,
            file_format: None,
        })),
        source_sql,
        partition_by: None,
        format: OutputFormat {
            file: FileFormat::new(FormatType::Parquet),
            output_header: false,
            parquet_compression: ParquetCompression::Zstd,
        },
        options: CopyOptions::default(),
    };
    let mut seen: Vec<String> = Vec::new();
    while let Some(t) = c.next() {
        if t.is_symbol(';') && c.peek().is_none() {
            break;
        }
        let name = t.text.to_ascii_uppercase();
        if t.kind != Kind::Word {
            return Err(invalid(format!(
                "unexpected {:?} at byte {}; {USAGE}",
                t.text, t.start
            )));
        }
        if seen.contains(&name) {
            return Err(invalid(format!("{name} is given twice")));
        }
        seen.push(name.clone());
        match name.as_str() {
            "PARTITION" => {
                if !c.next().is_some_and(|t| t.is_word("BY")) {
                    return Err(invalid("expected PARTITION BY ( <expression> )"));
                }
                let (open, close) = c.parenthesised()?;
                let expr = sql_text[open..close].trim();
                if expr.is_empty() {
                    return Err(invalid("PARTITION BY () has no expression"));
                }
                copy.partition_by = Some(expr.to_string());
            }
            "FILE_FORMAT" => {
                c.equals(&name)?;
                copy.format = format::file_format(sql_text, &mut c)?;
            }
            "SINGLE" => copy.options.single = c.boolean(&name)?,
            "INCLUDE_QUERY_ID" => copy.options.include_query_id = c.boolean(&name)?,
            "USE_RAW_PATH" => copy.options.use_raw_path = c.boolean(&name)?,
            "OVERWRITE" => copy.options.overwrite = c.boolean(&name)?,
            "DETAILED_OUTPUT" => copy.options.detailed_output = c.boolean(&name)?,
            "MAX_FILE_SIZE" => {
                c.equals(&name)?;
                let n = c.number(&name)?;
                if n < MIN_MAX_FILE_SIZE {
                    return Err(invalid(format!(
                        "MAX_FILE_SIZE {n} is below {MIN_MAX_FILE_SIZE} bytes"
                    )));
                }
                copy.options.max_file_size = n;
            }
            "VALIDATION_MODE" => {
                return Err(invalid(
                    "VALIDATION_MODE is not supported; run the SELECT instead",
                ));
            }
            _ => {
                return Err(invalid(format!(
                    "unknown option {} at byte {}; {USAGE}",
                    t.text, t.start
                )));
            }
        }
    }
    check_combinations(&copy)?;
    // PARTITION BY's value rides along as the source's last column, as text.
    let sql = match &copy.partition_by {
        Some(expr) => format!(
            "SELECT *, CAST(({expr}) AS VARCHAR) AS {PARTITION_COLUMN} FROM ({}) AS __xstage_source",
            copy.source_sql
        ),
        None => copy.source_sql.clone(),
    };
    copy.source = match sql::rewrite(&sql)? {
        q @ Statement::Query { .. } => Box::new(q),
        _ => return Err(invalid("the source must be a query or a stage location")),
    };
    Ok(Statement::Copy(Box::new(copy)))
}

/// Databend's refusals, with its words where it has them.
fn check_combinations(copy: &CopyInto) -> Result<()> {
    let o = &copy.options;
    if o.overwrite && (!o.use_raw_path || o.include_query_id) {
        return Err(invalid(
            "OVERWRITE = TRUE requires USE_RAW_PATH = TRUE and INCLUDE_QUERY_ID = FALSE",
        ));
    }
    if copy.partition_by.is_some() {
        if o.single {
            return Err(invalid("PARTITION BY is not supported with SINGLE = TRUE"));
        }
        if o.overwrite {
            return Err(invalid(
                "PARTITION BY is not supported with OVERWRITE = TRUE",
            ));
        }
        if !o.include_query_id {
            return Err(invalid(
                "PARTITION BY is not supported with INCLUDE_QUERY_ID = FALSE",
            ));
        }
        if o.use_raw_path {
            return Err(invalid(
                "PARTITION BY is not supported with USE_RAW_PATH = TRUE",
            ));
        }
    }
    if o.use_raw_path && (copy.path.is_empty() || copy.path.ends_with('/')) {
        return Err(invalid(format!(
            "USE_RAW_PATH = TRUE writes exactly the path given, so it must name a file: @{}{} is a \
             directory",
            copy.stage, copy.path
        )));
    }
    Ok(())
}

/// The source: `@stage/path [(FILES => ..)]` as `SELECT * FROM` it, or the text inside `( … )`.
fn source(sql_text: &str, c: &mut Cursor) -> Result<String> {
    let t = c
        .peek()
        .ok_or_else(|| invalid(format!("the statement ends after FROM; {USAGE}")))?;
    if stage_ref_text(t).is_some() {
        let start = t.start;
        c.i += 1;
        let mut end = t.end;
        // Table options after the location: `(FILES => ..., PATTERN => ...)`.
        if c.peek().is_some_and(|t| t.is_symbol('('))
            && c.sig.get(c.i + 2).is_some_and(|t| t.kind == Kind::Arrow)
        {
            end = c.parenthesised()?.1 + 1;
        }
        return Ok(format!("SELECT * FROM {}", &sql_text[start..end]));
    }
    if t.is_symbol('(') {
        let (open, close) = c.parenthesised()?;
        let inner = sql_text[open..close].trim();
        if inner.is_empty() {
            return Err(invalid("the source query `()` is empty"));
        }
        return Ok(inner.to_string());
    }
    Err(invalid(format!(
        "the source at byte {} must be a stage location (@stage/path) or a query in parentheses; \
         xstage has no tables",
        t.start
    )))
}

pub(super) fn boolean(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRUE" => Ok(true),
        "FALSE" => Ok(false),
        other => Err(invalid(format!(
            "{name} takes TRUE or FALSE, not {other:?}"
        ))),
    }
}

/// A stage reference token, bare or quoted.
fn stage_ref_text(t: &Token) -> Option<String> {
    match t.kind {
        Kind::StageRef => Some(t.text.to_string()),
        Kind::String => t.string_value().filter(|v| v.starts_with('@')),
        _ => None,
    }
}

pub(super) struct Cursor<'a, 'b> {
    sig: &'a [&'a Token<'b>],
    i: usize,
}

impl<'a, 'b> Cursor<'a, 'b> {
    fn peek(&self) -> Option<&'a Token<'b>> {
        self.sig.get(self.i).copied()
    }

    fn next(&mut self) -> Option<&'a Token<'b>> {
        let t = self.peek();
        self.i += usize::from(t.is_some());
        t
    }

    fn equals(&mut self, name: &str) -> Result<()> {
        match self.next() {
            Some(t) if t.is_symbol('=') => Ok(()),
            _ => Err(invalid(format!("expected `=` after {name}"))),
        }
    }

    fn boolean(&mut self, name: &str) -> Result<bool> {
        self.equals(name)?;
        let t = self
            .next()
            .ok_or_else(|| invalid(format!("{name} has no value")))?;
        boolean(
            name,
            &t.string_value().unwrap_or_else(|| t.text.to_string()),
        )
    }

    /// Digits, which lex one character at a time, joined while they touch (with any word
    /// that touches them, so `1x` is refused whole).
    fn number(&mut self, name: &str) -> Result<u64> {
        let first = self
            .next()
            .ok_or_else(|| invalid(format!("{name} has no value")))?;
        let mut text = first.text.to_string();
        let mut end = first.end;
        while let Some(t) = self
            .peek()
            .filter(|t| t.start == end && matches!(t.kind, Kind::Other | Kind::Word))
        {
            text.push_str(t.text);
            end = t.end;
            self.i += 1;
        }
        text.parse::<u64>()
            .map_err(|_| invalid(format!("{name} takes a number of bytes, not {text:?}")))
    }

    /// `( … )` at the cursor, balanced; returns the byte range inside the parentheses and
    /// leaves the cursor after `)`.
    pub(super) fn parenthesised(&mut self) -> Result<(usize, usize)> {
        let open = self
            .next()
            .filter(|t| t.is_symbol('('))
            .ok_or_else(|| invalid(format!("expected `(`; {USAGE}")))?;
        let mut depth = 1;
        while let Some(t) = self.next() {
            if t.is_symbol('(') {
                depth += 1;
            } else if t.is_symbol(')') {
                depth -= 1;
                if depth == 0 {
                    return Ok((open.end, t.start));
                }
            }
        }
        Err(invalid(format!(
            "the `(` at byte {} is never closed",
            open.start
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::Compression;

    fn copy(sql: &str) -> CopyInto {
        match sql::rewrite(sql).unwrap_or_else(|e| panic!("{sql}: {e}")) {
            Statement::Copy(c) => *c,
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn refused(sql: &str) -> String {
        let e = sql::rewrite(sql).expect_err(sql);
        assert_eq!(e.kind(), ErrorKind::InvalidQuery, "{sql}");
        e.message().to_string()
    }

    #[test]
    fn databends_statement_and_defaults() {
        let c = copy("COPY INTO @s/out/ FROM (SELECT a, b FROM @s/in/ WHERE a > 1)");
        assert_eq!((c.stage.as_str(), c.path.as_str()), ("s", "/out/"));
        assert_eq!(c.source_sql, "SELECT a, b FROM @s/in/ WHERE a > 1");
        assert_eq!(c.options, CopyOptions::default());
        assert_eq!(c.options.max_file_size, 64 * 1024 * 1024);
        assert!(c.options.include_query_id && !c.options.single);
        assert_eq!(c.format.file.kind, FormatType::Parquet);
        assert_eq!(c.format.parquet_compression, ParquetCompression::Zstd);
        match *c.source {
            Statement::Query { sql, tables, .. } => {
                assert_eq!(tables.len(), 1);
                assert!(sql.contains("__xstage_0"), "{sql}");
            }
            other => panic!("{other:?}"),
        }

        let c = copy(
            "copy into '@s/out' from @s/in/a.csv partition by ('x/' || b) \
             file_format = (type = csv compression = gzip field_delimiter = '|' output_header = true) \
             max_file_size = 1048576 detailed_output = true;",
        );
        assert_eq!(c.source_sql, "SELECT * FROM @s/in/a.csv");
        assert_eq!(c.partition_by.as_deref(), Some("'x/' || b"));
        assert_eq!(c.options.max_file_size, 1_048_576);
        assert!(c.options.detailed_output);
        assert_eq!(c.format.file.kind, FormatType::Csv);
        assert_eq!(c.format.file.compression, Compression::Gzip);
        assert_eq!(c.format.file.field_delimiter, b'|');
        assert!(c.format.output_header);

        let c = copy(
            "COPY INTO @s/x FROM @s/in/ (PATTERN => '.*[.]csv') FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY)",
        );
        assert_eq!(c.source_sql, "SELECT * FROM @s/in/ (PATTERN => '.*[.]csv')");
        assert_eq!(c.format.parquet_compression, ParquetCompression::Snappy);

        let c = copy(
            "COPY INTO @s/r.ndjson FROM (SELECT 1 AS one FROM @s/a.parquet) FILE_FORMAT = (TYPE = NDJSON) USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE OVERWRITE = TRUE SINGLE = TRUE",
        );
        assert!(c.options.overwrite && c.options.use_raw_path && c.options.single);
    }

    #[test]
    fn refused_combinations_use_databends_words() {
        for (sql, needle) in [
            (
                "COPY INTO @s/o/ FROM @s/i OVERWRITE = TRUE",
                "OVERWRITE = TRUE requires USE_RAW_PATH = TRUE and INCLUDE_QUERY_ID = FALSE",
            ),
            (
                "COPY INTO @s/o FROM @s/i OVERWRITE = TRUE USE_RAW_PATH = TRUE",
                "requires USE_RAW_PATH = TRUE and INCLUDE_QUERY_ID = FALSE",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i PARTITION BY (a) SINGLE = TRUE",
                "PARTITION BY is not supported with SINGLE = TRUE",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i PARTITION BY (a) INCLUDE_QUERY_ID = FALSE",
                "INCLUDE_QUERY_ID = FALSE",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i USE_RAW_PATH = TRUE",
                "must name a file",
            ),
            ("COPY INTO @s/o/ FROM @s/i SINGLE = maybe", "TRUE or FALSE"),
            ("COPY INTO @s/o/ FROM @s/i MAX_FILE_SIZE = 10", "below 1024"),
            (
                "COPY INTO @s/o/ FROM @s/i MAX_FILE_SIZE = 1x",
                "number of bytes",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i SINGLE = TRUE SINGLE = FALSE",
                "given twice",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i COLOUR = 1",
                "unknown option COLOUR",
            ),
            ("COPY INTO @s/o/ FROM my_table", "xstage has no tables"),
            ("COPY INTO t FROM @s/i", "target must be a stage location"),
            ("COPY t FROM @s/i", "COPY INTO <location> only"),
            ("COPY INTO @s/o/ FROM (SELECT 1", "never closed"),
            ("COPY INTO @s/o/ FROM () ", "empty"),
            (
                "COPY INTO @s/o/ FROM @s/i FILE_FORMAT = (TYPE = ORC)",
                "not supported",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)",
                "OUTPUT_HEADER",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i FILE_FORMAT = (TYPE = NDJSON OUTPUT_HEADER = TRUE)",
                "CSV or TSV",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i FILE_FORMAT = (TYPE = PARQUET COMPRESSION = BROTLI2)",
                "ZSTD, SNAPPY",
            ),
            (
                "COPY INTO @s/o/ FROM @s/i PARTITION BY () ",
                "no expression",
            ),
        ] {
            let m = refused(sql);
            assert!(m.contains(needle), "{sql}: {m}");
            assert!(m.starts_with("COPY INTO: "), "{sql}: {m}");
        }
    }

    #[test]
    fn partition_by_rides_as_the_last_column() {
        let c = copy("COPY INTO @s/o/ FROM (SELECT a FROM @s/i) PARTITION BY (upper(a))");
        match *c.source {
            Statement::Query { sql, .. } => assert!(
                sql.starts_with("SELECT *, CAST((upper(a)) AS VARCHAR) AS __xstage_partition FROM (SELECT a FROM __xstage_0)"),
                "{sql}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
