//! A session's queries: the invoker connected at the first one, the buffered answer as a
//! table, and the streamed answer printed as it arrives.

use super::*;
use crate::sql::output::bytes;

impl Session {
    /// The function's invoker, connected at the first query; a failure to connect is kept
    /// and named again at every later query.
    async fn invoker(&mut self) -> Result<Arc<Invoker>, SqlError> {
        if self.invoker.is_none() {
            let Some(connect) = self.connect.take() else {
                return Err(SqlError::Unreachable(format!(
                    "the function could not be reached at this session's first query: {}; \
                     start the shell again once that is fixed",
                    self.unreachable.as_deref().unwrap_or("no reason was given")
                )));
            };
            match connect().await {
                Ok(invoker) => self.invoker = Some(Arc::new(invoker)),
                Err(e) => {
                    self.unreachable = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(self.invoker.clone().expect("connected"))
    }

    /// A query's buffered answer; `dry_run`: what it would read instead (EXPLAIN).
    pub(super) async fn query(&mut self, sql: &str, dry_run: bool) -> Result<Output, SqlError> {
        let mut event = self.event(sql)?;
        if dry_run {
            event["options"]["dry_run"] = json!(true);
        }
        let event = serde_json::to_vec(&event).expect("an event serializes");
        match self.invoker().await?.invoke(event).await? {
            Reply::FunctionError {
                error_type,
                error_message,
            } => Err(SqlError::Function {
                error_type,
                error_message,
            }),
            Reply::Response(body) => response(&body),
        }
    }

    /// Runs a query with its answer streamed into `printer` as the rows arrive (NDJSON, or
    /// Arrow IPC for that format), with `progress` on stderr; returns the status line. An
    /// error after the first rows is the statement's error: the output was not whole.
    pub async fn query_streaming<W: std::io::Write>(
        &mut self,
        sql: &str,
        printer: &mut answer::Printer<W>,
        progress: &mut answer::Progress,
        arrow: bool,
    ) -> Result<String, SqlError> {
        let mut event = self.event(sql)?;
        event["options"]["format"] = json!(if arrow { "arrow" } else { "ndjson" });
        let event = serde_json::to_vec(&event).expect("an event serializes");
        let invoker = self.invoker().await?;
        let mut lines = answer::Lines::default();
        let (mut received, mut end) = (0u64, None);
        let write_failed =
            |e: std::io::Error| SqlError::Invalid(format!("writing the answer failed: {e}"));
        let ended = invoker
            .invoke_streaming(event, |chunk| {
                received += chunk.len() as u64;
                if arrow {
                    printer.raw(chunk).map_err(write_failed)?;
                } else {
                    for part in lines.feed(chunk)? {
                        if let answer::Part::End(v) = &part {
                            end = Some(v.clone());
                        }
                        printer.part(part).map_err(write_failed)?;
                    }
                }
                progress.update(printer.rows(), received);
                Ok(())
            })
            .await;
        progress.finish();
        if let Ended::FunctionError {
            error_type,
            error_message,
        } = ended?
        {
            return Err(SqlError::Function {
                error_type,
                error_message,
            });
        }
        if arrow {
            return Ok(format!("{} of Arrow IPC written", bytes(received)));
        }
        let end = end.filter(|_| lines.ended()).ok_or_else(|| {
            SqlError::Unreachable(
                "the answer ended without its closing line: it is not whole".into(),
            )
        })?;
        Ok(status(
            printer.rows() as usize,
            &end["stats"],
            end["truncated"] == json!(true),
        ))
    }
}

/// The function's response as rows and a status line.
pub(super) fn response(body: &[u8]) -> Result<Output, SqlError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| SqlError::Invalid(format!("the function's response is not JSON: {e}")))?;
    let schema = v["schema"].as_array().cloned().unwrap_or_default();
    let table = Table {
        columns: schema
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect(),
        types: schema
            .iter()
            .map(|c| c["type"].as_str().unwrap_or("").to_string())
            .collect(),
        rows: v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let status = status(
        table.rows.len(),
        &v["stats"],
        v["truncated"].as_bool() == Some(true),
    );
    Ok(Output {
        table: Some(table),
        status,
    })
}

/// `7 rows read in 0.012 sec. Processed 1 file, 2.14 KiB in 2 S3 requests`.
fn status(n: usize, stats: &Value, truncated: bool) -> String {
    let plural = |k: u64| if k == 1 { "" } else { "s" };
    let files = stats["files"].as_u64().unwrap_or(0);
    let requests = stats["s3_requests"].as_u64().unwrap_or(0);
    let mut status = format!(
        "{n} row{} read in {:.3} sec. Processed {files} file{}, {} in {requests} S3 request{}",
        plural(n as u64),
        stats["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        plural(files),
        bytes(stats["bytes_read"].as_u64().unwrap_or(0)),
        plural(requests),
    );
    if truncated {
        status.push_str(&format!(
            " (truncated at {n} rows: add LIMIT, or raise options.max_rows)"
        ));
    }
    status
}
