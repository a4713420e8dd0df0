//! The invocation event: a connection (how to get credentials), a stage (where the data is)
//! and a query. Parsed from JSON with case-insensitive keys, Databend's and RisingWave's
//! spellings, and no silently ignored key; every value is validated before any network call.

mod fan_out;
mod fields;
pub mod stages;
pub mod validate;

use serde_json::Value;

use crate::error::{FunctionError, Result};
use crate::format::FileFormat;
use crate::result::stream::Format;
use crate::stage::StageUrl;
pub use fan_out::{FanOut, Fragment};
use fields::Fields;

/// Rows returned when `options.max_rows` is not given.
pub const DEFAULT_MAX_ROWS: u64 = 10_000;
/// The AssumeRole duration when `duration_seconds` is not given: STS's minimum.
pub const DEFAULT_DURATION_SECONDS: u32 = 900;
/// The longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 256 * 1024;

/// One invocation's input.
#[derive(Debug, Clone)]
pub struct Event {
    pub connection: Connection,
    /// The stage the statement reads (see [`stages`]).
    pub stage: Stage,
    /// The connection's other stages the statement may name ([`stages`]).
    pub stages: Vec<Stage>,
    pub query: String,
    pub options: Options,
    /// Set on the events a fan-out coordinator sends its workers.
    pub fragment: Option<Fragment>,
}

/// How to obtain credentials for the customer's bucket: Databend's `CREATE CONNECTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub name: Option<String>,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub region: Option<String>,
    /// STS and S3 endpoint override (LocalStack, MinIO); implies path-style addressing.
    pub endpoint_url: Option<String>,
    pub role_session_name: Option<String>,
    pub duration_seconds: u32,
}

/// Where the data lives: Databend's `CREATE STAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub url: StageUrl,
    /// `FILE_FORMAT = (TYPE = ...)`; `None`: each file's extension decides, else Parquet.
    pub file_format: Option<FileFormat>,
}

/// Per-invocation limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The buffered answer's row limit ([`DEFAULT_MAX_ROWS`] unless given).
    pub max_rows: u64,
    /// `max_rows` as the event gave it: a streamed answer has no row limit otherwise.
    pub max_rows_given: Option<u64>,
    /// How a streamed answer is encoded (`json`, `ndjson`, `arrow`).
    pub format: Format,
    pub fan_out: FanOut,
    /// A `COPY INTO`'s query id, for a caller that names its own (a retry then writes the
    /// same names); else the function makes a UUID.
    pub query_id: Option<String>,
    /// Answer with what the query would read ([`crate::estimate`]) instead of running it.
    pub dry_run: bool,
    /// Refuse a query that would read more bytes than this (`ScanLimitExceeded`).
    pub max_bytes_scanned: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
            max_rows_given: None,
            format: Format::Json,
            fan_out: FanOut::default(),
            query_id: None,
            dry_run: false,
            max_bytes_scanned: None,
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "connection",
    "stage",
    "stages",
    "query",
    "options",
    "fragment",
];
const CONNECTION_KEYS: &[&str] = &[
    "name",
    "storage_type",
    "role_arn (s3.assume_role, s3.iam_role_arn)",
    "external_id (s3.external_id)",
    "region (s3.region_name)",
    "endpoint_url (s3.endpoint_url)",
    "role_session_name",
    "duration_seconds",
    "s3.bucket_name",
    "s3.path",
];
const STAGE_KEYS: &[&str] = &["name", "url", "connection_name", "file_format"];
const OPTION_KEYS: &[&str] = &[
    "max_rows",
    "format",
    "fan_out",
    "query_id",
    "dry_run",
    "max_bytes_scanned",
];

impl Event {
    /// Parses and validates an event.
    pub fn from_json(value: Value) -> Result<Self> {
        let mut top = Fields::new("event", value)?;
        let connection = top
            .take(&["connection"])?
            .ok_or_else(|| FunctionError::invalid_event("the event has no `connection` object"))?
            .1;
        let stage = top.take(&["stage"])?.map(|(_, v)| v);
        let stages = top.take(&["stages"])?.map(|(_, v)| v);
        let query = top.take_str(&["query"])?.ok_or_else(|| {
            FunctionError::invalid_event(
                "the event has no `query`; give SQL such as SELECT * FROM @stage/file.parquet LIMIT 10",
            )
        })?;
        let options = top.take(&["options"])?.map(|(_, v)| v);
        let fragment = top
            .take(&["fragment"])?
            .map(|(_, v)| Fragment::parse(v))
            .transpose()?;
        top.finish(TOP_KEYS)?;

        let (connection, rw_stage) = parse_connection(Fields::new("connection", connection)?)?;
        let stage = match (stage, rw_stage) {
            (Some(stage), None) => parse_stage(Fields::new("stage", stage)?, &connection)?,
            (None, Some((bucket, path))) => Stage {
                name: connection.name.clone().unwrap_or_else(|| "s3".to_string()),
                url: StageUrl::new(&bucket, &path)?,
                file_format: None,
            },
            (Some(_), Some(_)) => {
                return Err(FunctionError::invalid_event(
                    "the event has both `stage` and `connection.s3.bucket_name`; give one",
                ));
            }
            (None, None) => {
                return Err(FunctionError::invalid_event(
                    "the event has no `stage`; give {\"stage\": {\"name\": ..., \"url\": \"s3://bucket/prefix/\"}} \
                     or `connection.s3.bucket_name`",
                ));
            }
        };
        let stages = match stages {
            Some(v) => stages::parse(v, &stage, &connection)?,
            None => Vec::new(),
        };
        if query.trim().is_empty() {
            return Err(FunctionError::invalid_event("`query` is empty"));
        }
        if query.len() > MAX_QUERY_BYTES {
            return Err(FunctionError::invalid_event(format!(
                "`query` is {} bytes; the limit is {MAX_QUERY_BYTES}",
                query.len()
            )));
        }
        let options = match options {
            None => Options::default(),
            Some(v) => parse_options(Fields::new("options", v)?)?,
        };
        Ok(Self {
            connection,
            stage,
            stages,
            query,
            options,
            fragment,
        })
    }
}

type RisingWaveStage = Option<(String, String)>;

fn parse_connection(mut f: Fields) -> Result<(Connection, RisingWaveStage)> {
    let name = f.take_str(&["name"])?;
    if let Some(t) = f.take_str(&["storage_type"])?
        && !t.eq_ignore_ascii_case("s3")
    {
        return Err(FunctionError::invalid_event(format!(
            "`connection.storage_type` {} is not supported; xstage reads STORAGE_TYPE='s3'",
            validate::quote(&t)
        )));
    }
    let role_arn = f
        .take_str(&["role_arn", "s3.assume_role", "s3.iam_role_arn"])?
        .ok_or_else(|| {
            FunctionError::invalid_event(
                "`connection.role_arn` is missing: give the ARN of the role to assume, \
                 e.g. arn:aws:iam::123456789012:role/databend-test",
            )
        })?;
    validate::role_arn(&role_arn)?;
    let external_id = f.take_str(&["external_id", "s3.external_id"])?;
    if let Some(id) = &external_id {
        validate::external_id(id)?;
    }
    let region = f.take_str(&["region", "s3.region_name"])?;
    if let Some(r) = &region {
        validate::region(r)?;
    }
    let endpoint_url = f
        .take_str(&["endpoint_url", "s3.endpoint_url"])?
        .map(|e| validate::endpoint_url(&e))
        .transpose()?;
    let role_session_name = f.take_str(&["role_session_name"])?;
    if let Some(s) = &role_session_name {
        validate::session_name(s)?;
    }
    let duration = f
        .take_u64(&["duration_seconds"])?
        .unwrap_or(u64::from(DEFAULT_DURATION_SECONDS));
    validate::duration_seconds(duration)?;
    let bucket = f.take_str(&["s3.bucket_name"])?;
    let path = f.take_str(&["s3.path"])?;
    f.finish(CONNECTION_KEYS)?;
    let rw_stage = match (bucket, path) {
        (Some(b), p) => Some((b, p.unwrap_or_default())),
        (None, Some(_)) => {
            return Err(FunctionError::invalid_event(
                "`connection.s3.path` needs `connection.s3.bucket_name`",
            ));
        }
        (None, None) => None,
    };
    let connection = Connection {
        name,
        role_arn,
        external_id,
        region,
        endpoint_url,
        role_session_name,
        duration_seconds: duration as u32,
    };
    Ok((connection, rw_stage))
}

fn parse_stage(mut f: Fields, connection: &Connection) -> Result<Stage> {
    let name = f
        .take_str(&["name"])?
        .ok_or_else(|| FunctionError::invalid_event("`stage.name` is missing"))?;
    let url = f.take_str(&["url"])?.ok_or_else(|| {
        FunctionError::invalid_event("`stage.url` is missing: give s3://bucket/prefix/")
    })?;
    let connection_name = f.take_str(&["connection_name"])?;
    let file_format = f
        .take(&["file_format"])?
        .map(|(_, v)| parse_file_format(v))
        .transpose()?;
    f.finish(STAGE_KEYS)?;
    if !is_identifier(&name) {
        return Err(FunctionError::invalid_event(format!(
            "`stage.name` {} is not a stage name: use letters, digits and _, not starting with a digit",
            validate::quote(&name)
        )));
    }
    if let Some(wanted) = connection_name {
        match &connection.name {
            Some(have) if have.eq_ignore_ascii_case(&wanted) => {}
            Some(have) => {
                return Err(FunctionError::invalid_event(format!(
                    "stage {name} uses connection {} but the event's connection is named {}",
                    validate::quote(&wanted),
                    validate::quote(have)
                )));
            }
            None => {
                return Err(FunctionError::invalid_event(format!(
                    "stage {name} uses connection {} but the event's connection has no `name`",
                    validate::quote(&wanted)
                )));
            }
        }
    }
    Ok(Stage {
        name,
        url: StageUrl::parse(&url)?,
        file_format,
    })
}

/// `stage.file_format`: Databend's options as an object (`{"type": "csv", "skip_header": 1}`),
/// or a type name alone (`"csv"`).
fn parse_file_format(value: Value) -> Result<FileFormat> {
    let fail = |why: String| FunctionError::invalid_event(format!("`stage.file_format`: {why}"));
    let pairs: Vec<(String, String)> = match value {
        Value::String(kind) => vec![("TYPE".into(), kind)],
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                other => Err(fail(format!(
                    "`{k}` must be a string or a number, got {}",
                    fields::kind_of(&other)
                ))),
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(fail(format!(
                "must be an object such as {{\"type\": \"csv\", \"skip_header\": 1}}, got {}",
                fields::kind_of(&other)
            )));
        }
    };
    FileFormat::parse(pairs).map_err(fail)
}

fn parse_options(mut f: Fields) -> Result<Options> {
    let max_rows_given = f.take_u64(&["max_rows"])?;
    let max_rows = max_rows_given.unwrap_or(DEFAULT_MAX_ROWS);
    let format = match f.take_str(&["format"])? {
        None => Format::Json,
        Some(name) => Format::from_name(&name).ok_or_else(|| {
            FunctionError::invalid_event(format!(
                "`options.format` {} is not a format; give json, ndjson or arrow",
                validate::quote(&name)
            ))
        })?,
    };
    let fan_out = match f.take(&["fan_out"])? {
        None => FanOut::default(),
        Some((_, v)) => FanOut::parse(v)?,
    };
    let query_id = f.take_str(&["query_id"])?;
    if let Some(id) = &query_id {
        crate::unload::names::check_query_id(id)?;
    }
    let dry_run = f.take_bool(&["dry_run"])?;
    let max_bytes_scanned = f.take_u64(&["max_bytes_scanned"])?;
    f.finish(OPTION_KEYS)?;
    if max_rows > 1_000_000 {
        return Err(FunctionError::invalid_event(format!(
            "`options.max_rows` {max_rows} is above the limit of 1000000; results are capped at 5 MB anyway"
        )));
    }
    Ok(Options {
        max_rows,
        max_rows_given,
        format,
        fan_out,
        query_id,
        dry_run,
        max_bytes_scanned,
    })
}

/// A Databend-style unquoted identifier.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed() -> Value {
        json!({
          "connection": {
            "name": "databend_test",
            "storage_type": "s3",
            "role_arn": "arn:aws:iam::987654321987:role/databend-test",
            "external_id": "my-external-id-123",
            "region": "us-east-2",
            "endpoint_url": "http://127.0.0.1:4566",
            "role_session_name": "optional",
            "duration_seconds": 900
          },
          "stage": { "name": "databend_test", "url": "s3://test-bucket-123/optional/prefix/", "connection_name": "databend_test" },
          "query": "SELECT * FROM @databend_test/test.parquet LIMIT 1",
          "options": { "max_rows": 10000 }
        })
    }

    fn err(v: Value) -> String {
        let e = Event::from_json(v).expect_err("should fail");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent, "{e}");
        e.message().to_string()
    }

    #[test]
    fn parses_the_seed_event() {
        let e = Event::from_json(seed()).unwrap();
        assert_eq!(
            e.connection.role_arn,
            "arn:aws:iam::987654321987:role/databend-test"
        );
        assert_eq!(
            e.connection.external_id.as_deref(),
            Some("my-external-id-123")
        );
        assert_eq!(
            e.connection.endpoint_url.as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(e.stage.url.bucket(), "test-bucket-123");
        assert_eq!(e.stage.url.prefix(), "optional/prefix/");
        assert_eq!(e.options.max_rows, 10_000);
    }

    #[test]
    fn keys_are_case_insensitive() {
        let e = Event::from_json(json!({
            "CONNECTION": {"NAME": "c", "STORAGE_TYPE": "S3", "ROLE_ARN": "arn:aws:iam::123456789012:role/r", "EXTERNAL_ID": "ext-1"},
            "Stage": {"Name": "s", "URL": "s3://bucket-1/p", "Connection_Name": "c"},
            "Query": "LIST @s"
        }))
        .unwrap();
        assert_eq!(e.connection.external_id.as_deref(), Some("ext-1"));
        assert_eq!(e.stage.name, "s");
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut v = seed();
        v["connection"]["secret_access_key"] = json!("x");
        assert!(err(v).contains("`connection.secret_access_key`"));
        let mut v = seed();
        v["extra"] = json!(1);
        assert!(err(v).contains("`event.extra`"));
        let mut v = seed();
        v["options"]["max_row"] = json!(1);
        assert!(err(v).contains("`options.max_row`"));
    }

    #[test]
    fn risingwave_synonyms() {
        let e = Event::from_json(json!({
            "connection": {
                "s3.assume_role": "arn:aws:iam::123456789012:role/rw",
                "s3.region_name": "eu-west-1",
                "s3.endpoint_url": "http://localhost:4566",
                "s3.bucket_name": "rw-bucket",
                "s3.path": "events/2024/",
                "external_id": "rw-ext"
            },
            "query": "SELECT 1"
        }))
        .unwrap();
        assert_eq!(e.connection.role_arn, "arn:aws:iam::123456789012:role/rw");
        assert_eq!(e.connection.region.as_deref(), Some("eu-west-1"));
        assert_eq!(e.stage.url.to_string(), "s3://rw-bucket/events/2024/");
        assert_eq!(e.stage.name, "s3");
        let both = json!({
            "connection": {"role_arn": "arn:aws:iam::123456789012:role/rw", "s3.iam_role_arn": "arn:aws:iam::123456789012:role/rw", "s3.bucket_name": "b-1"},
            "query": "SELECT 1"
        });
        assert!(err(both).contains("mean the same"));
    }

    /// README: `s3.external_id` and `s3.endpoint_url` are RisingWave's spellings, and a
    /// RisingWave event's stage is named after its connection.
    #[test]
    fn risingwave_external_id_endpoint_and_stage_name() {
        let e = Event::from_json(json!({
            "connection": {
                "name": "rw_conn",
                "s3.iam_role_arn": "arn:aws:iam::123456789012:role/rw",
                "s3.external_id": "rw-ext-2",
                "s3.endpoint_url": "http://127.0.0.1:4566",
                "s3.bucket_name": "rw-bucket"
            },
            "query": "SELECT * FROM @rw_conn/x.parquet"
        }))
        .unwrap();
        assert_eq!(e.connection.external_id.as_deref(), Some("rw-ext-2"));
        assert_eq!(
            e.connection.endpoint_url.as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(e.stage.name, "rw_conn");
        assert_eq!(e.stage.url.to_string(), "s3://rw-bucket/");
        let mut bad = json!({
            "connection": {"s3.iam_role_arn": "arn:aws:iam::123456789012:role/rw", "s3.bucket_name": "b-1"},
            "query": "SELECT 1"
        });
        bad["connection"]["s3.external_id"] = json!("bad id");
        assert!(err(bad).contains("`external_id` \"bad id\" is invalid"));
    }

    /// README: `options.max_rows` defaults to 10,000 and may not pass 1,000,000.
    #[test]
    fn max_rows_has_a_default_and_a_ceiling() {
        assert_eq!(Event::from_json(seed()).unwrap().options.max_rows, 10_000);
        let mut v = seed();
        v["options"]["max_rows"] = json!(1_000_000);
        assert_eq!(Event::from_json(v).unwrap().options.max_rows, 1_000_000);
        let mut v = seed();
        v["options"]["max_rows"] = json!(1_000_001);
        assert!(err(v).contains("above the limit of 1000000"));
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases: &[(&str, &str, Value)] = &[
            ("connection", "role_arn", json!("arn:aws:iam::1:role/x")),
            ("connection", "external_id", json!("a")),
            ("connection", "external_id", json!("bad id")),
            ("connection", "role_session_name", json!("x")),
            ("connection", "duration_seconds", json!(60)),
            ("connection", "duration_seconds", json!(50_000)),
            ("connection", "duration_seconds", json!(-1)),
            ("connection", "storage_type", json!("gcs")),
            ("connection", "region", json!("Mars")),
            ("connection", "endpoint_url", json!("not a url")),
            ("stage", "url", json!("s3://UPPER/x")),
            ("stage", "url", json!("s3://bucket/../up")),
            ("stage", "connection_name", json!("other")),
            ("stage", "name", json!("bad-name")),
            ("options", "max_rows", json!("many")),
        ];
        for (obj, key, value) in cases {
            let mut v = seed();
            v[obj][key] = value.clone();
            let e = Event::from_json(v).expect_err(&format!("{obj}.{key}={value}"));
            assert_eq!(e.kind(), crate::ErrorKind::InvalidEvent);
        }
        let mut v = seed();
        v["connection"].as_object_mut().unwrap().remove("role_arn");
        assert!(err(v).contains("role_arn"));
        let mut v = seed();
        v["query"] = json!("  ");
        assert!(err(v).contains("empty"));
        assert!(err(json!([1, 2])).contains("must be a JSON object"));
    }
}
