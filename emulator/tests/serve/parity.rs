//! One truth on four paths: every case of one table runs through
//!
//! 1. `xstage_core::handle`, in this process (the library the bootstrap calls);
//! 2. the WASI component on the wasmtime host, in this process;
//! 3. `xstage serve` over HTTP, with boto3's `invoke` as the client;
//! 4. the `xstage-query` bootstrap under `cargo lambda watch`, through its Invoke API;
//!
//! and each path's whole response must be path 1's: schema, rows, counts, truncation, `stats`
//! (`files`, `s3_requests`, `bytes_read`), or the error's type and message. Only the fields
//! in [`MAY_DIFFER`] are set aside, each with its reason.
//!
//! Each path starts from the same state (a newly loaded function, a new server, a new
//! bootstrap; path 1 in a process where no other test reads the files under `parity/`) and
//! runs the cases in the same order, so the metadata lengths each remembers are the same.

use std::sync::LazyLock;

use bytes::Bytes;
use tokio::sync::OnceCell;
use xstage_host::Function;
use xstage_tests::invoke::{agent, invoke};
use xstage_tests::lambda_watch::LambdaWatch;
use xstage_tests::run::{self, Reply};

use super::*;

/// The fields that may differ between paths, and why; nothing else is set aside.
const MAY_DIFFER: &[(&str, &str)] = &[
    ("elapsed_ms", "time"),
    (
        "sts_calls",
        "each path caches credentials in its own environment, and path 1's cache is this \
         test process's, which other tests of this binary fill",
    ),
    (
        "query_id",
        "a COPY INTO makes a new UUID for each statement",
    ),
];

const PEOPLE: usize = 200;

/// The files under `parity/`, uploaded once.
static UPLOADED: LazyLock<()> = LazyLock::new(|| {
    let world = &*WORLD;
    let people = fixtures::people(PEOPLE);
    let sales = fixtures::sales(3, 100);
    let (types, _) = fixtures::types_batch();
    let mut csv = String::from("id,name,age,score,active\n");
    for p in &people {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            p.id, p.name, p.age, p.score, p.active
        ));
    }
    let mut files: Vec<(String, Bytes)> = vec![
        (
            "people.parquet".into(),
            fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 50),
        ),
        (
            "types.parquet".into(),
            fixtures::write_parquet(&[types], Compression::ZSTD(Default::default()), 10),
        ),
        ("people.csv".into(), Bytes::from(csv.clone())),
        (
            "bad/ragged.csv".into(),
            Bytes::from(csv.replacen("\n1001,", "\n1001,extra,", 1)),
        ),
        (
            "bad/not.parquet".into(),
            Bytes::from_static(b"not a parquet file at all, only text\n"),
        ),
    ];
    let mut ndjson = String::new();
    for p in &people {
        ndjson.push_str(&format!(
            "{}\n",
            json!({"id": p.id, "name": p.name, "age": p.age})
        ));
    }
    files.push(("people.ndjson.gz".into(), fixtures::gzip(ndjson.as_bytes())));
    for (name, codec) in fixtures::codecs() {
        let body = fixtures::write_parquet(&[fixtures::people_batch(&people[..60])], codec, 16);
        files.push((format!("codecs/{name}.parquet"), body));
    }
    for (i, part) in sales.iter().enumerate() {
        files.push((
            format!("sales/part-{i}.parquet"),
            fixtures::write_parquet(&[fixtures::sales_batch(part)], Compression::SNAPPY, 40),
        ));
    }
    xstage_tests::runtime().block_on(async {
        let admin = seed::Admin::new(&world.endpoint, seed::CUSTOMER_ACCOUNT, seed::REGION).await;
        for (key, body) in files {
            let key = format!("{}parity/{key}", seed::PREFIX);
            admin.put(seed::BUCKET, &key, body).await.expect("upload");
        }
    });
});

/// The table: a name and an event, in the order every path runs them. A case named
/// `Kind: …` must fail with that error kind.
fn cases() -> Vec<(&'static str, Value)> {
    let q = |sql: &str| seed_event(sql);
    let with = |sql: &str, options: Value| {
        let mut e = seed_event(sql);
        e["options"] = options;
        e
    };
    let mut risingwave = json!({
        "connection": {
            "s3.assume_role": seed::role_arn(),
            "external_id": seed::EXTERNAL_ID,
            "s3.region_name": seed::REGION,
            "s3.endpoint_url": WORLD.endpoint,
            "s3.bucket_name": seed::BUCKET,
            "s3.path": seed::PREFIX
        },
        "query": "SELECT id, name FROM @s3/parity/people.parquet WHERE id >= 1100 ORDER BY id LIMIT 3"
    });
    let mut other_bucket = seed_event("SELECT * FROM @databend_test/x.parquet");
    other_bucket["stage"]["url"] = json!("s3://xstage-parity-no-such-bucket/p/");
    let mut not_allowed = seed_event("SELECT 1 FROM @databend_test/parity/people.parquet");
    not_allowed["connection"]["role_arn"] = json!("arn:aws:iam::111122223333:role/elsewhere");
    let mut csv =
        seed_event("SELECT count(*), sum(age), max(name) FROM @databend_test/parity/people.csv");
    csv["stage"]["file_format"] = json!({"type": "CSV", "skip_header": 1});
    let mut no_external_id = seed_event("SELECT 1 FROM @databend_test/parity/people.parquet");
    no_external_id["connection"]
        .as_object_mut()
        .unwrap()
        .remove("external_id");
    let mut unknown_key = seed_event("SELECT 1");
    unknown_key["connection"]["secret_access_key"] = json!("never accepted");
    risingwave["options"] = json!({"max_rows": 10});
    vec![
        (
            "seed flow",
            q("SELECT * FROM @databend_test/test.parquet LIMIT 1"),
        ),
        (
            "projection, filter, order",
            q(
                "SELECT id, name, score FROM @databend_test/parity/people.parquet WHERE age > 40 ORDER BY id",
            ),
        ),
        (
            "count(*)",
            q("SELECT count(*) FROM @databend_test/parity/people.parquet"),
        ),
        (
            "LIMIT on a whole file",
            q("SELECT * FROM @databend_test/parity/people.parquet LIMIT 5"),
        ),
        (
            "glob, GROUP BY",
            q(
                "SELECT region, sum(quantity) AS qty, count(*) AS n FROM @databend_test/parity/sales/part-*.parquet \
               WHERE price_cents >= 300 GROUP BY region ORDER BY region",
            ),
        ),
        (
            "FILES and METADATA$FILENAME",
            q(
                "SELECT METADATA$FILENAME AS f, count(*) AS n FROM @databend_test/parity/sales/ \
               (FILES => ('part-0.parquet', 'part-2.parquet')) GROUP BY f ORDER BY f",
            ),
        ),
        (
            "OFFSET and max_rows",
            with(
                "SELECT id FROM @databend_test/parity/people.parquet ORDER BY id OFFSET 10",
                json!({"max_rows": 25}),
            ),
        ),
        (
            "every type",
            q("SELECT * FROM @databend_test/parity/types.parquet"),
        ),
        (
            "LIST",
            q("LIST @databend_test/parity/ PATTERN => '.*[.]parquet'"),
        ),
        (
            "INFER_SCHEMA",
            q("SELECT * FROM INFER_SCHEMA(location => '@databend_test/parity/people.parquet')"),
        ),
        ("CSV", csv),
        (
            "NDJSON, gzip",
            q("SELECT count(*), sum(age), min(name) FROM @databend_test/parity/people.ndjson.gz"),
        ),
        (
            "every Parquet codec",
            q(
                "SELECT METADATA$FILENAME AS f, count(*), sum(age), max(score) \
               FROM @databend_test/parity/codecs/ GROUP BY f ORDER BY f",
            ),
        ),
        ("RisingWave event", risingwave),
        // Writes: each path writes its own files (its own query id) under parity-out/.
        (
            "COPY INTO, Parquet",
            q("COPY INTO @databend_test/parity-out/parquet/ FROM \
               (SELECT * FROM @databend_test/parity/people.parquet WHERE age > 30)"),
        ),
        (
            "COPY INTO, CSV gzip, PARTITION BY",
            q(
                "COPY INTO @databend_test/parity-out/csv/ FROM @databend_test/parity/people.parquet \
               PARTITION BY (CAST(age % 3 AS VARCHAR)) FILE_FORMAT = (TYPE = CSV COMPRESSION = GZIP)",
            ),
        ),
        // Errors.
        ("InvalidEvent: no connection", json!({"query": "SELECT 1"})),
        ("InvalidEvent: a secret in the event", unknown_key),
        (
            "InvalidQuery: syntax",
            q("SELECT * FROM @databend_test/parity/people.parquet WHERE LIMIT 1"),
        ),
        (
            "InvalidQuery: unknown column",
            q("SELECT nope FROM @databend_test/parity/people.parquet"),
        ),
        ("InvalidQuery: DML", q("INSERT INTO t VALUES (1)")),
        (
            "InvalidQuery: COPY INTO, OVERWRITE on a directory",
            q(
                "COPY INTO @databend_test/parity-out/x/ FROM @databend_test/parity/people.parquet OVERWRITE = TRUE",
            ),
        ),
        (
            "InvalidQuery: SET",
            q("SET datafusion.execution.batch_size = 1"),
        ),
        (
            "InvalidQuery: escaping the stage",
            q("SELECT * FROM @databend_test/../secret/outside.parquet"),
        ),
        ("RoleNotAllowed: another account", not_allowed),
        ("ExternalIdRequired: none given", no_external_id),
        ("NoSuchBucket: another bucket", other_bucket),
        (
            "NotFound: a missing file",
            q("SELECT * FROM @databend_test/parity/missing.parquet"),
        ),
        (
            "InvalidParquet: text",
            q("SELECT * FROM @databend_test/parity/bad/not.parquet"),
        ),
        (
            "InvalidFormat: a ragged row",
            q("SELECT * FROM @databend_test/parity/bad/ragged.csv"),
        ),
    ]
}

/// `reply` without the fields of [`MAY_DIFFER`].
fn comparable(reply: &Reply) -> Reply {
    let mut reply = reply.clone();
    if let Ok(Value::Object(response)) = &mut reply
        && let Some(Value::Object(stats)) = response.get_mut("stats")
    {
        for (field, _) in MAY_DIFFER {
            stats.remove(*field);
        }
    }
    reply
}

/// An Invoke API answer as a [`Reply`]: a function error's `{errorType, errorMessage}`, or
/// the response.
fn reply_of(function_error: bool, body: &str) -> Reply {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    if function_error {
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {body}"))
                .to_string()
        };
        Err((field("errorType"), field("errorMessage")))
    } else {
        Ok(v)
    }
}

async fn native_replies(cases: &[(&str, Value)]) -> Vec<Reply> {
    let mut out = Vec::new();
    for (_, event) in cases {
        out.push(run::native(event.clone()).await);
    }
    out
}

async fn wasi_replies(cases: &[(&str, Value)]) -> Vec<Reply> {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    let function = run::stage_query(&FUNCTION, |c| {
        c.environment
            .insert("XSTAGE_ALLOW_WRITES".into(), "true".into());
    })
    .await;
    let mut out = Vec::new();
    for (_, event) in cases {
        out.push(run::wasi(function, event).await.0);
    }
    out
}

/// Path 3: a server of its own (so that no other test's call warms another instance), boto3.
fn serve_replies(cases: &[(&str, Value)]) -> Vec<Reply> {
    const INVOKE: &str = r#"
import json, sys
import boto3
from botocore.config import Config
url, events = sys.argv[1], json.load(open(sys.argv[2]))
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      config=Config(read_timeout=300, retries={"total_max_attempts": 1}))
out = []
for event in events:
    r = client.invoke(FunctionName="StageQuery", Payload=json.dumps(event))
    out.append({"error": "FunctionError" in r, "body": r["Payload"].read().decode()})
print(json.dumps(out))
"#;
    let server = start("xstage-serve-parity");
    let events: Vec<&Value> = cases.iter().map(|(_, e)| e).collect();
    let file = write_json(server.dir.path(), "events.json", &json!(events));
    let out = clients::python_script(INVOKE, &[&server.url, file.to_str().unwrap()]).unwrap();
    server.process.stop();
    let answers: Vec<Value> = serde_json::from_str(&out).unwrap();
    answers
        .iter()
        .map(|a| reply_of(a["error"] == true, a["body"].as_str().unwrap()))
        .collect()
}

/// Path 4: the bootstrap this build made, beside the `xstage` binary.
fn lambda_replies(cases: &[(&str, Value)]) -> Vec<Reply> {
    let bootstrap = Path::new(XSTAGE).with_file_name("xstage-query");
    assert!(
        bootstrap.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        bootstrap.display()
    );
    let lambda = LambdaWatch::start(&bootstrap).unwrap();
    let agent = agent(Duration::from_secs(120));
    let replies = cases
        .iter()
        .map(|(name, event)| {
            let payload = serde_json::to_vec(event).unwrap();
            let i = invoke(&agent, &lambda.url(), "_", &payload).unwrap_or_else(|e| {
                panic!(
                    "{name}: {e:#}\n--- bootstrap log ---\n{}",
                    log_tail(lambda.function.log_file(), 30)
                )
            });
            reply_of(i.function_error.is_some() || i.status != 200, &i.body)
        })
        .collect();
    lambda.stop();
    replies
}

#[test]
fn every_case_gives_the_same_answer_on_every_path() {
    LazyLock::force(&UPLOADED);
    let cases = cases();
    let runtime = xstage_tests::runtime();
    let native = runtime.block_on(native_replies(&cases));
    let wasi = runtime.block_on(wasi_replies(&cases));
    let serve = serve_replies(&cases);
    let lambda = lambda_replies(&cases);
    let paths = [
        ("WASI host", &wasi),
        ("xstage serve", &serve),
        ("Lambda bootstrap", &lambda),
    ];

    let mut table = String::from(
        "| case | outcome | WASI host | xstage serve | Lambda bootstrap |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut differ = Vec::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let want = comparable(&native[i]);
        let outcome = match &native[i] {
            Ok(v) => format!("{} rows", v["row_count"]),
            Err((kind, _)) => kind.clone(),
        };
        let marks: Vec<&str> = paths
            .iter()
            .map(|(path, replies)| {
                if comparable(&replies[i]) == want {
                    "same"
                } else {
                    differ.push(format!(
                        "{name} · {path}:\n  native {:?}\n  {path} {:?}",
                        want,
                        comparable(&replies[i])
                    ));
                    "**differs**"
                }
            })
            .collect();
        table.push_str(&format!("| {name} | {outcome} | {} |\n", marks.join(" | ")));
    }
    eprintln!(
        "{table}\n{} cases × 4 paths; set aside: {}",
        cases.len(),
        MAY_DIFFER
            .iter()
            .map(|(f, why)| format!("{f} ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The table exercises what it says: a case named `Kind: …` fails with that kind, every
    // other case answers.
    for ((name, _), reply) in cases.iter().zip(&native) {
        let kind = name.split_once(": ").map(|(kind, _)| kind);
        assert_eq!(
            reply.as_ref().err().map(|(k, _)| k.as_str()),
            kind,
            "{name}: {reply:?}"
        );
    }
}
