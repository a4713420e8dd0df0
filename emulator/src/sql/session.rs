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
    /// `SET max_bytes_scanned`: sent with every query.
    max_bytes_scanned: Option<u64>,
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
            max_bytes_scanned: None,
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
            Statement::Query(sql) => self.query(&sql, false).await,
            Statement::Explain(sql) => self.query(&sql, true).await,
            Statement::SetMaxBytesScanned(limit) => {
                self.max_bytes_scanned = limit;
                Ok(done(match limit {
                    Some(n) => format!("queries read at most {n} bytes (max_bytes_scanned)"),
                    None => "max_bytes_scanned unset".into(),
                }))
            }
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

    /// The event a query becomes: the stage it reads as `stage`, and a `COPY INTO`'s
    /// target, when it is another stage of the same connection, under `stages`.
    pub fn event(&self, sql: &str) -> Result<Value, SqlError> {
        let catalog = self.store.read()?;
        let (read, target) = referenced_stages(sql)?;
        let first = match (read.as_slice(), &target) {
            ([one], _) => one.clone(),
            ([], Some(target)) => target.clone(),
            ([], None) => {
                return Err(SqlError::Invalid(
                    "the query reads no stage; xstage reads Parquet files through a stage, e.g. \
                     SELECT * FROM @my_stage/file.parquet LIMIT 10"
                        .into(),
                ));
            }
            (many, _) => {
                return Err(SqlError::Invalid(format!(
                    "the query reads stages {}; one query reads one stage",
                    join(many.iter())
                )));
            }
        };
        let mut names = vec![first];
        if let Some(target) = target
            && !target.eq_ignore_ascii_case(&names[0])
        {
            names.push(target);
        }
        // Each stage as the statement names it, with its connection.
        let mut stages = Vec::new();
        for name in &names {
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
            stages.push((name, stage, conn, connection_name));
        }
        let (_, _, conn, connection_name) = &stages[0];
        if let Some((name, _, _, other)) = stages.iter().find(|s| &s.2 != conn) {
            return Err(SqlError::Invalid(format!(
                "COPY INTO @{name} writes through connection {other}, and the statement reads @{} \
                 through connection {connection_name}; a statement uses one connection",
                stages[0].0
            )));
        }
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
        // The query names each stage as written; the event names it the same way.
        let event_stage = |(name, stage, _, _): &(&String, &Stage, Connection, String)| {
            let mut s = json!({"name": name, "url": stage.url, "connection_name": connection_name});
            if let Some(format) = &stage.file_format {
                s["file_format"] = json!(format);
            }
            s
        };
        let mut event = json!({
            "connection": connection,
            "stage": event_stage(&stages[0]),
            "query": sql,
        });
        if stages.len() > 1 {
            event["stages"] = stages[1..].iter().map(event_stage).collect();
        }
        if let Some(limit) = self.max_bytes_scanned {
            event["options"] = json!({ "max_bytes_scanned": limit });
        }
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
    let event = event.reading(&statement.stages_read()).map_err(failed)?;
    if let xstage_core::sql::Statement::Copy(copy) = &statement {
        xstage_core::unload::check(copy, &event).map_err(failed)?;
    }
    xstage_core::engine::Plan::new(statement, &event.stage).map_err(failed)?;
    Ok(())
}

/// The stage names a statement reads, as the function's SQL layer finds them, and a
/// `COPY INTO`'s target's.
fn referenced_stages(sql: &str) -> Result<(Vec<String>, Option<String>), SqlError> {
    use xstage_core::sql::{Statement as Rewritten, rewrite};
    let rewritten = rewrite(sql).map_err(|e| SqlError::Invalid(e.to_string()))?;
    let read = rewritten
        .stages_read()
        .into_iter()
        .map(str::to_string)
        .collect();
    let target = match &rewritten {
        Rewritten::Copy(copy) => Some(copy.stage.clone()),
        _ => None,
    };
    Ok((read, target))
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
mod tests;
