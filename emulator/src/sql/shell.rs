//! Reading statements and printing what they return: rows on stdout, status and errors on
//! stderr. A script stops at its first failing statement; the prompt reports it and goes on.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::answer;
use super::output::{self, Format};
use super::script;
use super::statement;
use super::{Session, SqlError};

pub struct Shell {
    pub session: Session,
    pub format: Format,
    /// `--output FILE`: query results go there instead of stdout (written beside it and
    /// renamed once whole, so a failed query leaves no partial file).
    pub output: Option<PathBuf>,
}

impl Shell {
    /// Runs every statement of `script`, stopping at the first that fails.
    pub async fn run_script(&mut self, text: &str) -> Result<usize, SqlError> {
        let (pieces, _) = script::split(text);
        let mut ran = 0;
        for piece in pieces {
            let statement = statement::parse(&piece.text)
                .map_err(|e| SqlError::parse(text, piece.offset + e.offset, e.message))?;
            if let statement::Statement::Query(sql) = &statement {
                let status = self.stream_query(sql).await?;
                eprintln!("{status}");
            } else {
                let out = self.session.execute(statement).await?;
                self.print(out);
            }
            ran += 1;
        }
        Ok(ran)
    }

    /// A query, its rows printed as they arrive, to stdout or `--output`.
    async fn stream_query(&mut self, sql: &str) -> Result<String, SqlError> {
        let arrow = self.format == Format::Arrow;
        let mut progress = answer::Progress::new(std::io::stderr().is_terminal());
        let Some(path) = self.output.clone() else {
            if arrow && std::io::stdout().is_terminal() {
                return Err(SqlError::Invalid(
                    "--format arrow writes binary: give --output FILE or redirect stdout".into(),
                ));
            }
            let mut printer = answer::Printer::new(std::io::stdout().lock(), self.format);
            return self
                .session
                .query_streaming(sql, &mut printer, &mut progress, arrow)
                .await;
        };
        let partial = path.with_extension("partial");
        let file = std::fs::File::create(&partial)
            .map_err(|e| SqlError::Invalid(format!("cannot create {}: {e}", partial.display())))?;
        let mut printer = answer::Printer::new(std::io::BufWriter::new(file), self.format);
        let result = self
            .session
            .query_streaming(sql, &mut printer, &mut progress, arrow)
            .await;
        let written = printer.into_inner().and_then(|w| {
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
        });
        match (result, written) {
            (Ok(status), Ok(())) => {
                std::fs::rename(&partial, &path).map_err(|e| {
                    SqlError::Invalid(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(format!("{status}; written to {}", path.display()))
            }
            (result, written) => {
                let _ = std::fs::remove_file(&partial);
                result?;
                Err(SqlError::Invalid(format!(
                    "writing {} failed: {}",
                    path.display(),
                    written.err().map(|e| e.to_string()).unwrap_or_default()
                )))
            }
        }
    }

    fn print(&self, out: super::session::Output) {
        if let Some(table) = &out.table {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(output::render(table, self.format).as_bytes());
            let _ = stdout.flush();
        }
        eprintln!("{}", out.status);
    }

    /// The prompt: statements end at `;`, history is kept in `history`.
    pub async fn interactive(&mut self, history: Option<PathBuf>) -> Result<(), ReadlineError> {
        let mut editor = DefaultEditor::new()?;
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        eprintln!(
            "xstage sql: Databend-style connections and stages; statements end with ';', exit with Ctrl-D"
        );
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                "xstage> "
            } else {
                "     -> "
            };
            let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e),
            };
            if buffer.is_empty() && matches!(line.trim(), "exit" | "quit" | "\\q") {
                break;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if !script::split(&buffer).1 {
                continue;
            }
            let _ = editor.add_history_entry(buffer.trim_end());
            let text = std::mem::take(&mut buffer);
            if let Err(e) = self.run_script(&text).await {
                eprintln!("error: {e}");
            }
        }
        if let Some(path) = &history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.save_history(path);
        }
        Ok(())
    }
}
