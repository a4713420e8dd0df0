//! `xstage sql`: Databend's connection and stage statements over a local catalog, and queries
//! on stages sent to the stage query function as events.
//!
//! - [`script`] splits input into statements; [`statement`] parses the DDL;
//! - [`catalog`] keeps connections and stages in a private JSON file;
//! - [`session`] executes statements: DDL against the catalog, queries as events through an
//!   [`invoker`] (the emulator's Invoke API, or the host in this process);
//! - [`output`] prints results as a table, JSON or CSV; [`answer`] prints a query's rows as
//!   they stream in, with a progress line;
//! - [`shell`] reads statements from `-e`, a file, standard input or a prompt with history.

pub mod answer;
pub mod catalog;
pub mod invoker;
pub mod output;
pub mod script;
pub mod session;
pub mod shell;
pub mod statement;

pub use session::Session;

/// A statement that failed. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A statement that does not parse: where, and why.
    #[error("line {line}, column {column}: {message}\n  {snippet}\n  {caret}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
        snippet: String,
        caret: String,
    },
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    /// A statement that parses but cannot be done (an unknown stage, a name taken, ...).
    #[error("{0}")]
    Invalid(String),
    /// The function ran and returned an error.
    #[error("{error_type}: {error_message}")]
    Function {
        error_type: String,
        error_message: String,
    },
    /// The Invoke API refused the invocation.
    #[error("{code}: {message}")]
    Service { code: String, message: String },
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Load(#[from] crate::error::EmulatorError),
}

impl SqlError {
    /// A parse error at byte `offset` of `script`.
    pub fn parse(script: &str, offset: usize, message: String) -> Self {
        let (line, column) = script::line_column(script, offset);
        let snippet = script.lines().nth(line - 1).unwrap_or("").to_string();
        let caret = format!("{}^", " ".repeat(column.saturating_sub(1)));
        Self::Parse {
            line,
            column,
            message,
            snippet,
            caret,
        }
    }
}
