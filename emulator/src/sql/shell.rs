//! Reading statements and printing what they return: rows on stdout, status and errors on
//! stderr. A script stops at its first failing statement; the prompt reports it and goes on.

use std::io::Write;
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::output::{self, Format};
use super::script;
use super::statement;
use super::{Session, SqlError};

pub struct Shell {
    pub session: Session,
    pub format: Format,
}

impl Shell {
    /// Runs every statement of `script`, stopping at the first that fails.
    pub async fn run_script(&mut self, text: &str) -> Result<usize, SqlError> {
        let (pieces, _) = script::split(text);
        let mut ran = 0;
        for piece in pieces {
            let statement = statement::parse(&piece.text)
                .map_err(|e| SqlError::parse(text, piece.offset + e.offset, e.message))?;
            let out = self.session.execute(statement).await?;
            self.print(out);
            ran += 1;
        }
        Ok(ran)
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
