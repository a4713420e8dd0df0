//! InvokeWithResponseStream on `xstage serve`, with boto3's `invoke_with_response_stream`
//! and the AWS SDK for Rust's, unmodified (the AWS CLI has no such command): the stage query's
//! answer in each format (Arrow read back with pyarrow), an error after the first chunks,
//! an error before any, and the buffered call refusing a streamed format; `xstage sql`
//! streaming through it, and `xstage sql --local` from any directory.

use super::*;

const STREAM: &str = r#"
import base64, io, json, sys
import boto3
import pyarrow.ipc

url, cases = sys.argv[1], json.loads(sys.argv[2])
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1")
results = []
for name, payload, tail in cases:
    r = client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps(payload), LogType="Tail" if tail else "None")
    chunks, complete = [], None
    for event in r["EventStream"]:
        if "PayloadChunk" in event:
            chunks.append(event["PayloadChunk"]["Payload"])
        elif "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    body = b"".join(chunks)
    result = {"status": r["StatusCode"], "version": r.get("ExecutedVersion"),
              "chunks": len(chunks), "bytes": len(body), "complete": complete}
    if isinstance(payload.get("options"), dict) and payload["options"].get("format") == "arrow":
        table = pyarrow.ipc.open_stream(io.BytesIO(body)).read_all()
        result["arrow"] = {"rows": table.num_rows, "columns": table.column_names,
                           "ids": table.column("id").to_pylist()}
    else:
        result["text"] = body.decode("utf-8", "replace")
    if complete and complete.get("LogResult"):
        result["log"] = base64.b64decode(complete["LogResult"]).decode("utf-8", "replace")
    results.append(result)
print(json.dumps(results))
"#;

fn with_format(format: &str) -> Value {
    let mut event = seed_event("SELECT * FROM @databend_test/test.parquet ORDER BY id");
    event["options"] = json!({ "format": format });
    event
}

/// The AWS CLI removes `lambda invoke-with-response-stream` from its command table, v1 and v2
/// alike (`awscli/customizations/removals.py`; checked in CLI 1.46.3 and in Debian's 2.23.6
/// and 2.38.1), so boto3 and the AWS SDK for Rust are this call's clients. When the CLI gains
/// the command, this fails, and the CLI joins them.
#[test]
fn the_aws_cli_has_no_invoke_with_response_stream() {
    let server = &*SERVER;
    let out = clients::aws_cli(&[
        "lambda",
        "invoke-with-response-stream",
        "--endpoint-url",
        &server.url,
        "--function-name",
        "StageQuery",
        "/dev/null",
    ])
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Invalid choice"), "{stderr}");
}

#[test]
fn boto3_streams_every_format_and_errors_after_rows() {
    let server = &*SERVER;
    let mut bad = seed_event("SELEC * FROM @databend_test/test.parquet");
    bad["options"] = json!({"format": "ndjson"});
    let cases = json!([
        ["StageQuery", with_format("json"), false],
        ["StageQuery", with_format("ndjson"), false],
        ["StageQuery", with_format("arrow"), false],
        ["xstage-sandbox", {"chunks": 3, "chunk_bytes": 100_000, "fail": "stopped after the rows"}, true],
        ["StageQuery", bad, false],
    ]);
    let out = clients::python_script(STREAM, &[&server.url, &cases.to_string()]).unwrap();
    let r: Vec<Value> = serde_json::from_str(&out).unwrap();
    for result in &r {
        assert_eq!(result["status"], 200, "{result}");
        assert_eq!(result["version"], "$LATEST", "{result}");
    }
    let rows = people_rows(ROWS);

    // json: the buffered answer's document.
    assert_eq!(r[0]["complete"], json!({}), "{}", r[0]);
    let answer: Value = serde_json::from_str(r[0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(answer["rows"], json!(rows));
    assert_eq!(answer["row_count"], ROWS);
    assert_eq!(answer["truncated"], false);

    // ndjson: the schema line, a line per row, the closing line.
    let lines: Vec<Value> = r[1]["text"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ROWS + 2, "{}", r[1]);
    assert_eq!(lines[0]["schema"][0]["name"], "id");
    assert_eq!(&lines[1..=ROWS], &rows[..]);
    assert_eq!(lines[ROWS + 1]["row_count"], ROWS);

    // arrow: read back with pyarrow.
    let ids: Vec<i64> = WORLD.people.iter().map(|p| p.id).collect();
    assert_eq!(r[2]["arrow"]["rows"], ROWS, "{}", r[2]);
    assert_eq!(r[2]["arrow"]["ids"], json!(ids));
    assert_eq!(
        r[2]["arrow"]["columns"],
        json!(["id", "name", "age", "score", "active"])
    );

    // An error after the first chunks: every chunk, then the error, and the log's tail.
    let failed = &r[3];
    assert_eq!(failed["bytes"], 300_000, "{failed}");
    assert!(failed["chunks"].as_u64().unwrap() >= 3, "{failed}");
    assert_eq!(failed["complete"]["ErrorCode"], "Failed", "{failed}");
    assert_eq!(failed["complete"]["ErrorDetails"], "stopped after the rows");
    assert!(
        failed["log"].as_str().unwrap().contains("START RequestId:"),
        "{failed}"
    );

    // An error before any row: no chunk, the typed error.
    assert_eq!(r[4]["chunks"], 0, "{}", r[4]);
    assert_eq!(r[4]["complete"]["ErrorCode"], "InvalidQuery", "{}", r[4]);
}

/// The AWS SDK for Rust's `invoke_with_response_stream`, a second client no one here wrote
/// (the AWS CLI has none: [`the_aws_cli_has_no_invoke_with_response_stream`]).
#[test]
fn the_rust_sdk_streams_the_seed_query() {
    let server = &*SERVER;
    let event = serde_json::to_vec(&with_format("ndjson")).unwrap();
    let (body, complete) = xstage_tests::runtime().block_on(async {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .endpoint_url(&server.url)
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build();
        let client = aws_sdk_lambda::Client::from_conf(config);
        let mut out = client
            .invoke_with_response_stream()
            .function_name("StageQuery")
            .payload(aws_sdk_lambda::primitives::Blob::new(event))
            .send()
            .await
            .expect("InvokeWithResponseStream");
        assert_eq!(out.executed_version(), Some("$LATEST"));
        let mut body = Vec::new();
        let mut complete = None;
        while let Some(event) = out.event_stream.recv().await.expect("an event") {
            use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as E;
            match event {
                E::PayloadChunk(chunk) => {
                    body.extend_from_slice(chunk.payload().map(|b| b.as_ref()).unwrap_or_default())
                }
                E::InvokeComplete(done) => complete = Some(done),
                other => panic!("unexpected event {other:?}"),
            }
        }
        (body, complete)
    });
    let complete = complete.expect("InvokeComplete");
    assert_eq!(complete.error_code(), None, "{complete:?}");
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines[1..=ROWS], &people_rows(ROWS)[..], "{text}");
}

#[test]
fn a_buffered_invoke_refuses_a_streamed_format() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let event = write_json(dir.path(), "event.json", &with_format("arrow"));
    let outfile = dir.path().join("out.json");
    let out = clients::aws_cli(&[
        "lambda",
        "invoke",
        "--endpoint-url",
        &server.url,
        "--region",
        "us-east-1",
        "--function-name",
        "StageQuery",
        "--payload",
        &format!("fileb://{}", event.display()),
        outfile.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&std::fs::read(&outfile).unwrap()).unwrap();
    assert_eq!(body["errorType"], "InvalidEvent", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("InvokeWithResponseStream"),
        "{body}"
    );
}

const ARROW_FILE: &str = r#"
import json, sys
import pyarrow.ipc
table = pyarrow.ipc.open_stream(open(sys.argv[1], "rb")).read_all()
print(json.dumps({"rows": table.num_rows, "ids": table.column("id").to_pylist()}))
"#;

/// `xstage sql` streams its queries through `xstage serve`: CSV rows on stdout, an Arrow IPC
/// file with `--format arrow --output FILE` (read back with pyarrow), and a failed query
/// leaves no output file behind.
#[test]
fn xstage_sql_streams_rows_and_writes_arrow_files() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    let sql = |format: &str, output: Option<&Path>, query: &str| {
        let mut args = vec![
            "sql".to_string(),
            "--endpoint".into(),
            server.url.clone(),
            "--catalog".into(),
            catalog.to_str().unwrap().into(),
            "--format".into(),
            format.into(),
        ];
        if let Some(path) = output {
            args.extend(["--output".into(), path.to_str().unwrap().into()]);
        }
        for s in SEED_SQL.split_inclusive(';').map(str::trim) {
            if s.starts_with("CREATE") {
                args.extend(["-e".into(), s.replacen("CREATE", "CREATE OR REPLACE", 1)]);
            }
        }
        args.extend(["-e".into(), query.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xstage(&args, &[("AWS_ENDPOINT_URL", &WORLD.endpoint)])
    };
    let query = "SELECT id, name FROM @databend_test/test.parquet ORDER BY id";

    let out = sql("csv", None, query);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut want = String::from("id,name\r\n");
    for p in &WORLD.people {
        want.push_str(&format!("{},{}\r\n", p.id, p.name));
    }
    assert_eq!(text, want);
    assert!(
        stderr(&out).contains(&format!("{ROWS} rows read in")),
        "{}",
        stderr(&out)
    );

    let file = dir.path().join("people.arrow");
    let out = sql("arrow", Some(&file), query);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("written to"), "{}", stderr(&out));
    let read = clients::python_script(ARROW_FILE, &[file.to_str().unwrap()]).unwrap();
    let read: Value = serde_json::from_str(&read).unwrap();
    let ids: Vec<i64> = WORLD.people.iter().map(|p| p.id).collect();
    assert_eq!(read, json!({"rows": ROWS, "ids": ids}));

    let failed = dir.path().join("failed.csv");
    let out = sql(
        "csv",
        Some(&failed),
        "SELECT 1 / (id - id) FROM @databend_test/test.parquet",
    );
    fails_with(&out, 1, "Divide by zero");
    assert!(!failed.exists() && !failed.with_extension("partial").exists());

    let out = sql("arrow", None, query);
    assert!(
        out.status.success(),
        "arrow to a pipe is allowed: {}",
        stderr(&out)
    );
    assert!(out.stdout.starts_with(b"\xff\xff\xff\xff"), "an IPC stream");
}

/// `xstage sql --local` from any directory, in a shell without `scripts/env.sh`: it finds
/// the checkout's template and the components the scripts built, runs the seed query, and
/// without platform credentials says so (`InvalidConfiguration`, naming the variables).
#[test]
fn xstage_sql_local_works_from_any_directory() {
    let _ = &*WORLD;
    let cwd = tempfile::tempdir().unwrap();
    let catalog = cwd.path().join("catalog.json");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_default();
    let run = |extra_env: &[(&str, &str)], remove: &[&str]| {
        let mut command = Command::new(XSTAGE);
        command
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .env("AWS_ENDPOINT_URL", &WORLD.endpoint)
            .env("AWS_REGION", seed::REGION)
            .args(["sql", "--local", "--format", "csv", "--catalog"])
            .arg(&catalog)
            .args([
                "--parameter-overrides",
                "AllowedRoleArns=arn:aws:iam::987654321987:role/*",
            ]);
        // The scripts' target directory, found without CARGO_TARGET_DIR when it is theirs.
        if let Some(cache) = target.strip_suffix("/target") {
            command
                .env_remove("CARGO_TARGET_DIR")
                .env("XSTAGE_CACHE", cache);
        }
        for (k, v) in extra_env {
            command.env(k, v);
        }
        for k in remove {
            command.env_remove(k);
        }
        for s in SEED_SQL.split_inclusive(';').map(str::trim) {
            command.args(["-e", &s.replacen("CREATE", "CREATE OR REPLACE", 1)]);
        }
        command.output().expect("run xstage")
    };
    let out = run(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = &WORLD.people[0];
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("\r\n{},", p.id)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(
        &[
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ],
    );
    fails_with(&out, 1, "InvalidConfiguration");
    fails_with(&out, 1, "AWS_ACCESS_KEY_ID");
}
