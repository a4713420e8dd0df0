//! Executing statements: DDL against the catalog, queries as events for the function.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Value, json};
use xstage_core::Event;

use super::SqlError;
use super::answer;
use super::catalog::{Catalog, Connection, Stage, Store};
use super::invoker::{Ended, Invoker, Reply};
use super::output::Table;
use super::statement::{CreateMode, StageConnection, Statement};

mod query;

/// What a statement printed: rows for stdout, and a status line for stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub table: Option<Table>,
    pub status: String,
}

type Connect = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<Invoker, SqlError>>>>>;

/// A shell's state: the catalog, and how to reach the function (connected on the first
/// query, since loading the component in-process takes a while).
pub struct Session {
    store: Store,
    connect: Option<Connect>,
    invoker: Option<Arc<Invoker>>,
    /// Why connecting failed, repeated for every later query (it is tried once).
    unreachable: Option<String>,
    /// `AWS_ENDPOINT_URL`: the STS and S3 endpoint for connections that name none.
    pub default_endpoint: Option<String>,
}

impl Session {
    pub fn new(
        store: Store,
        connect: impl FnOnce() -> Pin<Box<dyn Future<Output = Result<Invoker, SqlError>>>> + 'static,
    ) -> Self {
        Self {
            store,
            connect: Some(Box::new(connect)),
            invoker: None,
            unreachable: None,
            default_endpoint: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn execute(&mut self, statement: Statement) -> Result<Output, SqlError> {
        match statement {
            Statement::CreateConnection {
                name,
                mode,
                options,
            } => {
                let connection = connection(&options)?;
                check_connection(&name, &connection)?;
                let key = name.clone();
                self.create("connection", &name, mode, move |c| {
                    (c.connections.contains_key(&key), move |c: &mut Catalog| {
                        c.connections.insert(key, connection);
                    })
                })
            }
            Statement::CreateStage {
                name,
                mode,
                url,
                connection,
                file_format,
                comment,
            } => {
                let stage = Stage {
                    file_format,
                    url,
                    connection_name: match &connection {
                        StageConnection::Named(n) => Some(n.clone()),
                        StageConnection::Inline(_) => None,
                    },
                    inline: match &connection {
                        StageConnection::Named(_) => None,
                        StageConnection::Inline(options) => Some(self::connection(options)?),
                    },
                    comment,
                };
                let catalog = self.store.read()?;
                let conn = resolve_connection(&catalog, &name, &stage)?;
                probe(&name, &stage.url, &conn)?;
                let key = name.clone();
                self.create("stage", &name, mode, move |c| {
                    (c.stages.contains_key(&key), move |c: &mut Catalog| {
                        c.stages.insert(key, stage);
                    })
                })
            }
            Statement::ShowConnections => {
                let catalog = self.store.read()?;
                let mut t = Table::new(CONNECTION_COLUMNS);
                for (name, c) in &catalog.connections {
                    t.push(connection_row(name, c));
                }
                Ok(rows(t))
            }
            Statement::ShowStages => {
                let catalog = self.store.read()?;
                let mut t = Table::new(&["name", "url", "connection_name", "comment"]);
                for (name, s) in &catalog.stages {
                    t.push(vec![
                        json!(name),
                        json!(s.url),
                        json!(s.connection_name),
                        json!(s.comment),
                    ]);
                }
                Ok(rows(t))
            }
            Statement::DescStage(name) => {
                let catalog = self.store.read()?;
                let stage = find(&catalog.stages, &name)
                    .ok_or_else(|| unknown("stage", &name, catalog.stages.keys()))?;
                let conn = resolve_connection(&catalog, &name, stage)?;
                let mut t = Table::new(&[
                    "name",
                    "url",
                    "connection_name",
                    "role_arn",
                    "external_id",
                    "region",
                    "endpoint_url",
                    "file_format",
                    "comment",
                ]);
                t.push(vec![
                    json!(name),
                    json!(stage.url),
                    json!(stage.connection_name),
                    json!(conn.role_arn),
                    json!(conn.external_id),
                    json!(conn.region),
                    json!(conn.endpoint_url),
                    json!(describe_format(stage)),
                    json!(stage.comment),
                ]);
                Ok(rows(t))
            }
            Statement::DescConnection(name) => {
                let catalog = self.store.read()?;
                let c = find(&catalog.connections, &name)
                    .ok_or_else(|| unknown("connection", &name, catalog.connections.keys()))?;
                let mut t = Table::new(CONNECTION_COLUMNS);
                t.push(connection_row(&name, c));
                Ok(rows(t))
            }
            Statement::DropConnection { name, if_exists } => {
                self.store.update(|c: &mut Catalog| {
                    if !c.connections.contains_key(&name) {
                        return if if_exists {
                            Ok(done(format!("connection {name} does not exist; nothing dropped")))
                        } else {
                            Err(unknown("connection", &name, c.connections.keys()))
                        };
                    }
                    let users: Vec<&String> = c
                        .stages
                        .iter()
                        .filter(|(_, s)| s.connection_name.as_deref() == Some(name.as_str()))
                        .map(|(n, _)| n)
                        .collect();
                    if !users.is_empty() {
                        return Err(SqlError::Invalid(format!(
                            "connection {name} is used by stage(s) {}; drop or re-create them first",
                            join(users)
                        )));
                    }
                    c.connections.remove(&name);
                    Ok(done(format!("connection {name} dropped")))
                })
            }
            Statement::DropStage { name, if_exists } => self.store.update(|c: &mut Catalog| {
                if c.stages.remove(&name).is_some() {
                    Ok(done(format!("stage {name} dropped")))
                } else if if_exists {
                    Ok(done(format!("stage {name} does not exist; nothing dropped")))
                } else {
                    Err(unknown("stage", &name, c.stages.keys()))
                }
            }),
            Statement::Query(sql) => self.query(&sql).await,
        }
    }

    fn create<F: FnOnce(&mut Catalog)>(
        &self,
        what: &str,
        name: &str,
        mode: CreateMode,
        change: impl FnOnce(&Catalog) -> (bool, F),
    ) -> Result<Output, SqlError> {
        self.store.update(|c: &mut Catalog| {
            let (exists, insert) = change(c);
            match (exists, mode) {
                (true, CreateMode::Create) => Err(SqlError::Invalid(format!(
                    "{what} {name} already exists; use CREATE OR REPLACE {} or IF NOT EXISTS",
                    what.to_ascii_uppercase()
                ))),
                (true, CreateMode::IfNotExists) => {
                    Ok(done(format!("{what} {name} already exists; unchanged")))
                }
                (true, CreateMode::OrReplace) => {
                    insert(c);
                    Ok(done(format!("{what} {name} replaced")))
                }
                (false, _) => {
                    insert(c);
                    Ok(done(format!("{what} {name} created")))
                }
            }
        })
    }

    /// The event a query becomes.
    pub fn event(&self, sql: &str) -> Result<Value, SqlError> {
        let catalog = self.store.read()?;
        let stages = referenced_stages(sql)?;
        let name = match stages.as_slice() {
            [one] => one,
            [] => {
                return Err(SqlError::Invalid(
                    "the query reads no stage; xstage reads Parquet files through a stage, e.g. \
                     SELECT * FROM @my_stage/file.parquet LIMIT 10"
                        .into(),
                ));
            }
            many => {
                return Err(SqlError::Invalid(format!(
                    "the query reads stages {}; one query reads one stage",
                    join(many.iter())
                )));
            }
        };
        let (stage_name, stage) = catalog
            .stages
            .get_key_value(name.as_str())
            .or_else(|| catalog.stages.get_key_value(&name.to_ascii_lowercase()))
            .ok_or_else(|| unknown("stage", name, catalog.stages.keys()))?;
        let conn = resolve_connection(&catalog, stage_name, stage)?;
        let connection_name = stage
            .connection_name
            .clone()
            .unwrap_or_else(|| stage_name.clone());
        let mut connection = json!({
            "name": connection_name,
            "storage_type": "s3",
            "role_arn": conn.role_arn,
        });
        let endpoint = conn.endpoint_url.clone().or(self.default_endpoint.clone());
        for (key, value) in [
            ("external_id", &conn.external_id),
            ("region", &conn.region),
            ("endpoint_url", &endpoint),
        ] {
            if let Some(v) = value {
                connection[key] = json!(v);
            }
        }
        // The query names the stage as written; the event names it the same way.
        let mut event_stage =
            json!({"name": name, "url": stage.url, "connection_name": connection_name});
        if let Some(format) = &stage.file_format {
            event_stage["file_format"] = json!(format);
        }
        let event = json!({
            "connection": connection,
            "stage": event_stage,
            "query": sql,
        });
        check(&event)?;
        Ok(event)
    }
}

const CONNECTION_COLUMNS: &[&str] = &[
    "name",
    "storage_type",
    "role_arn",
    "external_id",
    "region",
    "endpoint_url",
];

fn connection_row(name: &str, c: &Connection) -> Vec<Value> {
    vec![
        json!(name),
        json!("s3"),
        json!(c.role_arn),
        json!(c.external_id),
        json!(c.region),
        json!(c.endpoint_url),
    ]
}

fn rows(table: Table) -> Output {
    let n = table.rows.len();
    Output {
        table: Some(table),
        status: format!("{n} row{}", if n == 1 { "" } else { "s" }),
    }
}

fn done(status: String) -> Output {
    Output {
        table: None,
        status,
    }
}

fn join<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names.into_iter().cloned().collect::<Vec<_>>().join(", ")
}

fn unknown<'a>(what: &str, name: &str, known: impl Iterator<Item = &'a String>) -> SqlError {
    let known: Vec<&String> = known.collect();
    SqlError::Invalid(format!(
        "{what} {name} does not exist; {}",
        if known.is_empty() {
            format!("create it with CREATE {}", what.to_ascii_uppercase())
        } else {
            format!("the catalog has {}", join(known))
        }
    ))
}

fn find<'a, T>(map: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    map.get(name)
        .or_else(|| map.get(&name.to_ascii_lowercase()))
}

/// A connection from statement options (already checked for known keys).
fn connection(options: &BTreeMap<String, String>) -> Result<Connection, SqlError> {
    let get = |k: &str| options.get(k).cloned();
    Ok(Connection {
        role_arn: get("ROLE_ARN")
            .ok_or_else(|| SqlError::Invalid("ROLE_ARN is required".into()))?,
        external_id: get("EXTERNAL_ID"),
        region: get("REGION"),
        endpoint_url: get("ENDPOINT_URL"),
    })
}

/// DESC STAGE's `file_format`: Databend's spelling with every option, or how files are read
/// without one.
fn describe_format(stage: &Stage) -> String {
    match &stage.file_format {
        None => "by extension (.csv, .tsv, .ndjson, .parquet), else PARQUET".to_string(),
        Some(options) => xstage_core::format::FileFormat::parse(options)
            .map_or_else(|why| format!("invalid: {why}"), |f| f.to_string()),
    }
}

fn resolve_connection(catalog: &Catalog, stage: &str, s: &Stage) -> Result<Connection, SqlError> {
    if let Some(inline) = &s.inline {
        return Ok(inline.clone());
    }
    let name = s.connection_name.as_deref().unwrap_or_default();
    find(&catalog.connections, name).cloned().ok_or_else(|| {
        SqlError::Invalid(format!(
            "stage {stage} uses connection {name}, which does not exist; \
             CREATE CONNECTION {name} STORAGE_TYPE='s3' ROLE_ARN='...' EXTERNAL_ID='...' first"
        ))
    })
}

/// The function's own checks that need no I/O (the event, the stage paths, the SQL's
/// syntax), so a bad query fails before the function is reached or loaded.
fn check(event: &Value) -> Result<(), SqlError> {
    let failed = |e: xstage_core::FunctionError| SqlError::Function {
        error_type: e.kind().as_str().to_string(),
        error_message: e.message().to_string(),
    };
    let event = Event::from_json(event.clone()).map_err(failed)?;
    let statement = xstage_core::sql::rewrite(&event.query).map_err(failed)?;
    xstage_core::engine::Plan::new(statement, &event.stage).map_err(failed)?;
    Ok(())
}

/// The stage names a query reads, as the function's SQL layer finds them.
fn referenced_stages(sql: &str) -> Result<Vec<String>, SqlError> {
    use xstage_core::sql::{Statement as Rewritten, TableSource, rewrite};
    let rewritten = rewrite(sql).map_err(|e| SqlError::Invalid(e.to_string()))?;
    let mut names: Vec<String> = match rewritten {
        Rewritten::List(r) => vec![r.stage],
        Rewritten::Query { tables, .. } => tables
            .into_iter()
            .map(|t| match t.source {
                TableSource::Files(r) | TableSource::InferSchema(r) => r.stage,
            })
            .collect(),
    };
    names.sort();
    names.dedup();
    Ok(names)
}

/// Validates a connection with the function's own rules, so a bad ARN or ExternalId is
/// refused at CREATE time rather than at the first query.
fn check_connection(name: &str, c: &Connection) -> Result<(), SqlError> {
    probe(name, "s3://xstage-probe/", c)
}

fn probe(name: &str, url: &str, c: &Connection) -> Result<(), SqlError> {
    let mut connection = json!({"name": name, "storage_type": "s3", "role_arn": c.role_arn});
    for (key, value) in [
        ("external_id", &c.external_id),
        ("region", &c.region),
        ("endpoint_url", &c.endpoint_url),
    ] {
        if let Some(v) = value {
            connection[key] = json!(v);
        }
    }
    let event = json!({
        "connection": connection,
        "stage": {"name": name, "url": url, "connection_name": name},
        "query": "SELECT 1",
    });
    Event::from_json(event)
        .map(|_| ())
        .map_err(|e| SqlError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::query::response;
    use super::*;
    use crate::sql::statement::parse;

    fn session(dir: &std::path::Path) -> Session {
        let mut s = Session::new(Store::new(dir.join("catalog.json")), || {
            Box::pin(async { Err(SqlError::Unreachable("no function in unit tests".into())) })
        });
        s.default_endpoint = Some("http://127.0.0.1:4566".into());
        s
    }

    fn run(s: &mut Session, sql: &str) -> Result<Output, SqlError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(s.execute(parse(sql).unwrap()))
    }

    const CONNECTION: &str = "CREATE CONNECTION databend_test STORAGE_TYPE='s3' \
        ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123'";
    const STAGE: &str = "CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/' \
        CONNECTION=(CONNECTION_NAME='databend_test')";

    #[test]
    fn the_seed_statements_become_the_seed_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        assert_eq!(
            run(&mut s, CONNECTION).unwrap().status,
            "connection databend_test created"
        );
        assert_eq!(
            run(&mut s, STAGE).unwrap().status,
            "stage databend_test created"
        );
        let event = s
            .event("SELECT * FROM @databend_test/test.parquet LIMIT 1")
            .unwrap();
        assert_eq!(
            event,
            json!({
                "connection": {
                    "name": "databend_test", "storage_type": "s3",
                    "role_arn": "arn:aws:iam::987654321987:role/databend-test",
                    "external_id": "my-external-id-123",
                    "endpoint_url": "http://127.0.0.1:4566"
                },
                "stage": {
                    "name": "databend_test",
                    "url": "s3://test-bucket-123/optional/prefix/",
                    "connection_name": "databend_test"
                },
                "query": "SELECT * FROM @databend_test/test.parquet LIMIT 1"
            })
        );
        Event::from_json(event).expect("the function accepts it");
    }

    /// A stage's FILE_FORMAT goes to the function as `stage.file_format`, which it accepts,
    /// and DESC STAGE shows it with every option.
    #[test]
    fn a_stage_file_format_reaches_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        run(&mut s, CONNECTION).unwrap();
        let csv = STAGE.replace("databend_test URL", "csv_stage URL")
            + " FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '|' SKIP_HEADER = 1)";
        run(&mut s, &csv).unwrap();
        let event = s.event("SELECT * FROM @csv_stage/a.csv").unwrap();
        assert_eq!(
            event["stage"]["file_format"],
            json!({"TYPE": "CSV", "FIELD_DELIMITER": "|", "SKIP_HEADER": "1"})
        );
        let parsed = Event::from_json(event).expect("the function accepts it");
        let format = parsed.stage.file_format.expect("a format");
        assert_eq!((format.field_delimiter, format.skip_header), (b'|', true));
        let desc = run(&mut s, "DESC STAGE csv_stage").unwrap();
        let shown = format!("{:?}", desc.table.expect("a table").rows);
        assert!(
            shown.contains(
                "TYPE = CSV FIELD_DELIMITER = '|' RECORD_DELIMITER = '\\\\n' SKIP_HEADER = 1"
            ),
            "{shown}"
        );
    }

    /// README: a syntax error is reported before the function is reached or loaded.
    #[test]
    fn a_syntax_error_is_reported_before_the_function_is_reached() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        run(&mut s, CONNECTION).unwrap();
        run(&mut s, STAGE).unwrap();
        let e = run(
            &mut s,
            "SELECT * FROM @databend_test/x.parquet WHERE LIMIT 1",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("InvalidQuery: syntax error: "), "{e}");
        assert!(e.contains("Line: 1, Column: 52"), "{e}");
        assert!(!e.contains("no function in unit tests"), "{e}");
        let e = run(&mut s, "SELECT * FROM @databend_test/../x.parquet")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("InvalidQuery: "), "{e}");
        // The function was never reached: a valid query still meets the unit tests' stub.
        let e = run(&mut s, "SELECT 1 FROM @databend_test/x.parquet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no function in unit tests"), "{e}");
    }

    #[test]
    fn a_function_that_cannot_be_reached_says_why_at_every_query() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        run(&mut s, CONNECTION).unwrap();
        run(&mut s, STAGE).unwrap();
        let query = "SELECT count(*) FROM @databend_test/test.parquet";
        let first = run(&mut s, query).unwrap_err().to_string();
        assert!(first.contains("no function in unit tests"), "{first}");
        let second = run(&mut s, query).unwrap_err().to_string();
        assert!(second.contains("no function in unit tests"), "{second}");
        assert!(second.contains("first query"), "{second}");
    }

    #[test]
    fn create_modes_drop_and_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        run(&mut s, CONNECTION).unwrap();
        let err = run(&mut s, CONNECTION).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let replaced = CONNECTION
            .replace("CREATE", "CREATE OR REPLACE")
            .replace("123'", "456'");
        assert_eq!(
            run(&mut s, &replaced).unwrap().status,
            "connection databend_test replaced"
        );
        let again = CONNECTION.replace(
            "CONNECTION databend_test",
            "CONNECTION IF NOT EXISTS databend_test",
        );
        assert!(run(&mut s, &again).unwrap().status.contains("unchanged"));
        assert_eq!(
            s.store().read().unwrap().connections["databend_test"]
                .external_id
                .as_deref(),
            Some("my-external-id-456")
        );
        run(&mut s, STAGE).unwrap();
        let err = run(&mut s, "DROP CONNECTION databend_test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("used by stage(s) databend_test"), "{err}");
        let shown = run(&mut s, "SHOW STAGES").unwrap().table.unwrap();
        assert_eq!(
            shown.rows[0][1],
            json!("s3://test-bucket-123/optional/prefix/")
        );
        let desc = run(&mut s, "DESC STAGE databend_test")
            .unwrap()
            .table
            .unwrap();
        assert_eq!(desc.rows[0][4], json!("my-external-id-456"));
        run(&mut s, "DROP STAGE databend_test").unwrap();
        run(&mut s, "DROP CONNECTION databend_test").unwrap();
        assert!(
            run(&mut s, "DROP STAGE IF EXISTS databend_test")
                .unwrap()
                .status
                .contains("nothing")
        );
        let err = run(&mut s, "DROP STAGE databend_test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert_eq!(s.store().read().unwrap(), Catalog::default());
    }

    #[test]
    fn bad_values_are_refused_at_create_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        let err = run(
            &mut s,
            &CONNECTION.replace("arn:aws:iam::987654321987:role/", "arn:aws:s3:::"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an IAM role ARN"), "{err}");
        let err = run(&mut s, STAGE).unwrap_err().to_string();
        assert!(
            err.contains("connection databend_test, which does not exist"),
            "{err}"
        );
        run(&mut s, CONNECTION).unwrap();
        let err = run(&mut s, &STAGE.replace("optional/prefix/", "../escape/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(".."), "{err}");
        assert!(s.store().read().unwrap().stages.is_empty());
    }

    #[test]
    fn queries_must_name_one_known_stage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = session(dir.path());
        run(&mut s, CONNECTION).unwrap();
        run(&mut s, STAGE).unwrap();
        let err = s.event("SELECT 1").unwrap_err().to_string();
        assert!(err.contains("reads no stage"), "{err}");
        let err = s
            .event("SELECT * FROM @nope/x.parquet")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stage nope does not exist") && err.contains("databend_test"),
            "{err}"
        );
        let err = s
            .event("SELECT * FROM @databend_test/a.parquet, @other/b.parquet")
            .unwrap_err()
            .to_string();
        assert!(err.contains("one query reads one stage"), "{err}");
        let list = s.event("LIST @databend_test").unwrap();
        assert_eq!(list["stage"]["name"], json!("databend_test"));
    }

    #[test]
    fn responses_become_rows_and_a_status() {
        let body = br#"{"schema":[{"name":"n","type":"BIGINT","nullable":false}],"rows":[[3]],
            "row_count":1,"truncated":false,
            "stats":{"files":1,"s3_requests":2,"bytes_read":2048,"sts_calls":1,"elapsed_ms":12}}"#;
        let out = response(body).unwrap();
        assert_eq!(out.table.unwrap().rows, vec![vec![json!(3)]]);
        assert_eq!(
            out.status,
            "1 row read in 0.012 sec. Processed 1 file, 2.00 KiB in 2 S3 requests"
        );
    }
}
