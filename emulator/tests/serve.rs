//! `xstage serve`, `xstage invoke` and `xstage sql` as users run them: the real binary, the
//! repository's `template.yaml`, the WASI components, LocalStack's data, and clients written
//! by no one here (the AWS CLI and boto3 from PyPI).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parquet::basic::Compression;
use serde_json::{Value, json};
use xstage_tests::fixtures::{self, Person};
use xstage_tests::invoke::serve;
use xstage_tests::process::{ServerProcess, free_port, http_get, log_tail, wait_ready};
use xstage_tests::{clients, localstack, seed, wasm};

#[path = "serve/claims.rs"]
mod claims;
#[path = "serve/parity.rs"]
mod parity;
#[path = "serve/readme.rs"]
mod readme;
#[path = "serve/streaming.rs"]
mod streaming;

const XSTAGE: &str = env!("CARGO_BIN_EXE_xstage");
const ROWS: usize = 7;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// LocalStack with the seed's bucket, role and `test.parquet`.
struct World {
    endpoint: String,
    people: Vec<Person>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    seed::platform_identity();
    // The parity suite's path 1 (this process) and path 4 (the bootstrap it starts) write,
    // as the test template's function does.
    seed::allow_writes();
    let endpoint = localstack::localstack().endpoint().to_string();
    let people = fixtures::people(ROWS);
    let body = fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 3);
    xstage_tests::runtime()
        .block_on(seed::seed(&endpoint, body))
        .expect("seed LocalStack");
    World { endpoint, people }
});

/// A test template: the stage query function (the repository's settings), the sandbox probe,
/// and the probe again with a reserved concurrency of 2 (for the throttling test alone).
fn template(dir: &Path) -> PathBuf {
    let text = format!(
        r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  StageQuery:
    Type: AWS::Serverless::Function
    Metadata:
      XstageComponent: {query}
    Properties:
      Handler: bootstrap
      Runtime: provided.al2023
      MemorySize: 1024
      Timeout: 60
      Environment:
        Variables:
          XSTAGE_ALLOWED_ROLE_ARNS: {allowed}
          XSTAGE_ALLOW_WRITES: 'true'
  Sandbox:
    Type: AWS::Serverless::Function
    Metadata:
      XstageComponent: {sandbox}
    Properties:
      FunctionName: xstage-sandbox
      MemorySize: 128
      Timeout: 10
      Environment:
        Variables:
          GREETING: hello
  Limited:
    Type: AWS::Serverless::Function
    Metadata:
      XstageComponent: {sandbox}
    Properties:
      MemorySize: 128
      Timeout: 10
      ReservedConcurrentExecutions: 2
"#,
        query = wasm::stage_query_component().display(),
        sandbox = wasm::sandbox_component().display(),
        allowed = seed::allowed_roles(),
    );
    let path = dir.join("template.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `xstage serve`; `dir` holds its template, and room for a test's files.
struct Server {
    url: String,
    process: ServerProcess,
    dir: tempfile::TempDir,
}

/// The server most tests share.
static SERVER: LazyLock<Server> = LazyLock::new(|| start("xstage-serve"));

/// `xstage serve` with the test template, as a process named `name`: a test that must not
/// share its functions' environments with the others starts one of its own.
fn start(name: &str) -> Server {
    let world = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = template(dir.path());
    let (process, url) =
        serve(XSTAGE, name, &template, &world.endpoint).expect("start xstage serve");
    Server { url, process, dir }
}

fn seed_event(query: &str) -> Value {
    seed::seed_event(&WORLD.endpoint, query)
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
    path
}

fn people_rows(n: usize) -> Vec<Value> {
    WORLD.people[..n].iter().map(|p| p.json()).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command exited with `code` and said `why` on stderr.
fn fails_with(out: &Output, code: i32, why: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(why), "expected {why:?} in:\n{err}");
}

#[test]
fn the_aws_cli_invokes_the_seed_query() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let event = write_json(
        dir.path(),
        "event.json",
        &seed_event("SELECT * FROM @databend_test/test.parquet LIMIT 1"),
    );
    let out_file = dir.path().join("out.json");
    let out = clients::aws_cli(&[
        "lambda",
        "invoke",
        "--endpoint-url",
        &server.url,
        "--function-name",
        "StageQuery",
        "--payload",
        &format!("fileb://{}", event.display()),
        out_file.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.status.success(), "aws lambda invoke: {}", stderr(&out));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("CLI output is JSON");
    assert_eq!(meta["StatusCode"], json!(200), "{meta}");
    assert_eq!(meta["ExecutedVersion"], json!("$LATEST"), "{meta}");
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    let body: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(body["rows"], json!(people_rows(1)), "{body}");
    assert_eq!(body["stats"]["files"], json!(1), "{body}");
}

#[test]
fn the_aws_cli_tails_the_log() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let event = write_json(dir.path(), "event.json", &json!({"print": "tail me"}));
    let out_file = dir.path().join("out.json");
    let out = clients::aws_cli(&[
        "lambda",
        "invoke",
        "--endpoint-url",
        &server.url,
        "--function-name",
        "arn:aws:lambda:us-east-2:123456789012:function:xstage-sandbox:$LATEST",
        "--log-type",
        "Tail",
        "--payload",
        &format!("fileb://{}", event.display()),
        out_file.to_str().unwrap(),
    ])
    .unwrap();
    assert!(out.status.success(), "aws lambda invoke: {}", stderr(&out));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = base64::engine::general_purpose::STANDARD
        .decode(meta["LogResult"].as_str().expect("LogResult"))
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(log.starts_with("START RequestId: "), "{log}");
    assert!(
        log.contains("stdout: tail me") && log.contains("stderr: tail me"),
        "{log}"
    );
    assert!(
        log.contains("END RequestId: ") && log.contains("REPORT RequestId: "),
        "{log}"
    );
    let body: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(body, json!({"printed": "tail me"}));
}

const BOTO3: &str = r#"
import json, sys
import boto3, botocore
from botocore.config import Config

url = sys.argv[1]
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      config=Config(retries={"max_attempts": 1, "mode": "standard"}))
results = {}

def invoke(name, **kw):
    try:
        r = client.invoke(FunctionName=name, **kw)
        return {"status": r["StatusCode"], "function_error": r.get("FunctionError"),
                "payload": json.loads(r["Payload"].read() or b"null")}
    except botocore.exceptions.ClientError as e:
        return {"code": e.response["Error"]["Code"],
                "message": e.response["Error"].get("Message", ""),
                "http": e.response["ResponseMetadata"]["HTTPStatusCode"]}

results["success"] = invoke("xstage-sandbox", Payload=json.dumps({"echo": 1}))
results["function_error"] = invoke("StageQuery", Payload=json.dumps({"query": "SELECT 1"}))
results["crash"] = invoke("xstage-sandbox", Payload=json.dumps({"panic": "boom"}))
results["unknown"] = invoke("no-such-function", Payload=b"{}")
results["too_large"] = invoke("xstage-sandbox", Payload=json.dumps({"pad": "x" * (7 * 1024 * 1024)}))
results["not_json"] = invoke("xstage-sandbox", Payload=b"{not json")
results["dry_run"] = invoke("xstage-sandbox", InvocationType="DryRun", Payload=b"{}")
# 2 MB: inside the 6 MB synchronous limit, above the 1 MB one of `Event`.
results["event_too_large"] = invoke("xstage-sandbox", InvocationType="Event",
                                    Payload=json.dumps({"pad": "x" * (2 * 1024 * 1024)}))
results["event"] = invoke("xstage-sandbox", InvocationType="Event", Payload=json.dumps({"echo": 2}))
results["qualifier"] = invoke("xstage-sandbox", Qualifier="7", Payload=b"{}")
print(json.dumps(results))
"#;

#[test]
fn boto3_sees_lambdas_statuses_and_errors() {
    let server = &*SERVER;
    let out = clients::python_script(BOTO3, &[&server.url]).unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["success"],
        json!({"status": 200, "function_error": null, "payload": {"echo": 1}})
    );
    let fe = &r["function_error"];
    assert_eq!(fe["status"], json!(200), "{fe}");
    assert_eq!(fe["function_error"], json!("Unhandled"), "{fe}");
    assert_eq!(fe["payload"]["errorType"], json!("InvalidEvent"), "{fe}");
    assert!(
        fe["payload"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{fe}"
    );
    assert_eq!(r["crash"]["function_error"], json!("Unhandled"));
    assert_eq!(r["crash"]["payload"]["errorType"], json!("Crashed"));
    assert!(
        r["crash"]["payload"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
    assert_eq!(r["unknown"]["code"], json!("ResourceNotFoundException"));
    assert_eq!(r["unknown"]["http"], json!(404));
    assert!(
        r["unknown"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-function")
    );
    assert_eq!(
        r["too_large"]["code"],
        json!("RequestTooLargeException"),
        "{r}"
    );
    assert_eq!(r["too_large"]["http"], json!(413));
    assert_eq!(
        r["not_json"]["code"],
        json!("InvalidRequestContentException")
    );
    assert_eq!(r["not_json"]["http"], json!(400));
    assert_eq!(r["dry_run"]["status"], json!(204), "{r}");
    assert_eq!(
        r["event_too_large"]["code"],
        json!("RequestTooLargeException"),
        "{r}"
    );
    assert_eq!(r["event_too_large"]["http"], json!(413));
    assert_eq!(r["event"]["status"], json!(202), "{r}");
    assert_eq!(r["qualifier"]["code"], json!("ResourceNotFoundException"));
}

const CONCURRENT: &str = r#"
import json, sys, threading
import boto3, botocore
from botocore.config import Config

url, n = sys.argv[1], int(sys.argv[2])
client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                      config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                    max_pool_connections=n, read_timeout=60))
barrier = threading.Barrier(n)
outcomes = []
def run():
    barrier.wait()
    try:
        r = client.invoke(FunctionName="Limited", Payload=json.dumps({"sleep_ms": 3000}))
        outcomes.append("error:" + r["FunctionError"] if r.get("FunctionError") else "ok")
    except botocore.exceptions.ClientError as e:
        outcomes.append(e.response["Error"]["Code"])
threads = [threading.Thread(target=run) for _ in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(outcomes))
"#;

#[test]
fn invocations_above_reserved_concurrency_get_429() {
    let server = &*SERVER;
    let out = clients::python_script(CONCURRENT, &[&server.url, "8"]).unwrap();
    let outcomes: Vec<String> = serde_json::from_str(&out).unwrap();
    let ok = outcomes.iter().filter(|o| *o == "ok").count();
    let throttled = outcomes
        .iter()
        .filter(|o| *o == "TooManyRequestsException")
        .count();
    assert_eq!(
        (ok, throttled),
        (2, 6),
        "ReservedConcurrentExecutions is 2: {outcomes:?}"
    );
}

fn xstage(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(XSTAGE);
    command.args(args).stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run xstage")
}

const SEED_SQL: &str = "CREATE CONNECTION databend_test STORAGE_TYPE='s3' ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123';
CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/' CONNECTION=(CONNECTION_NAME='databend_test');
SELECT * FROM @databend_test/test.parquet LIMIT 1;";

/// `xstage sql` through `server`, with `catalog`, answering in JSON.
fn sql_args<'a>(server: &'a Server, catalog: &'a Path) -> Vec<&'a str> {
    vec![
        "sql",
        "--endpoint",
        &server.url,
        "--catalog",
        catalog.to_str().unwrap(),
        "--format",
        "json",
    ]
}

#[test]
fn xstage_sql_runs_the_seed_statements_through_the_emulator() {
    let server = &*SERVER;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    let mut args = sql_args(server, &catalog);
    let statements: Vec<&str> = SEED_SQL.split_inclusive(';').map(str::trim).collect();
    for s in &statements {
        args.extend(["-e", s]);
    }
    let out = xstage(&args, &[("AWS_ENDPOINT_URL", &WORLD.endpoint)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON rows on stdout");
    let p = &WORLD.people[0];
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["id"], json!(p.id), "{rows}");
    let err = stderr(&out);
    assert!(err.contains("connection databend_test created"), "{err}");
    assert!(err.contains("stage databend_test created"), "{err}");
    assert!(err.contains("1 row read in"), "{err}");

    // The catalog keeps the role and the ExternalId, nothing secret.
    let saved = std::fs::read_to_string(&catalog).unwrap();
    assert!(saved.contains("my-external-id-123"), "{saved}");
    assert!(!saved.to_lowercase().contains("secret"), "{saved}");

    // A second run of the same CREATEs fails at the first, and says why.
    let out = xstage(&args, &[("AWS_ENDPOINT_URL", &WORLD.endpoint)]);
    fails_with(&out, 1, "connection databend_test already exists");
}

#[test]
fn xstage_sql_runs_a_script_file_in_process() {
    let _ = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = template(dir.path());
    let script = dir.path().join("seed.sql");
    std::fs::write(
        &script,
        format!(
            "-- the seed, verbatim\n{SEED_SQL}\nSELECT count(*) AS n FROM @databend_test/test.parquet;\nSHOW STAGES;\n\
             LIST @databend_test;\nSELECT * FROM INFER_SCHEMA(location => '@databend_test/test.parquet');\n"
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.json");
    let out = xstage(
        &[
            "sql",
            "--local",
            "--template",
            template.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--format",
            "csv",
            script.to_str().unwrap(),
        ],
        &[
            ("AWS_ENDPOINT_URL", &WORLD.endpoint),
            ("AWS_REGION", seed::REGION),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let p = &WORLD.people[0];
    assert!(stdout.contains(&format!("\r\n{},", p.id)), "{stdout}");
    assert!(stdout.contains(&format!("n\r\n{ROWS}\r\n")), "{stdout}");
    assert!(
        stdout.contains("databend_test,s3://test-bucket-123/optional/prefix/,databend_test,"),
        "{stdout}"
    );
    // LIST and INFER_SCHEMA run through the function too.
    assert!(stdout.contains("\r\ntest.parquet,"), "{stdout}");
    assert!(stdout.contains("\r\nid,BIGINT,"), "{stdout}");
}

#[test]
fn xstage_sql_points_at_a_bad_statement() {
    let dir = tempfile::tempdir().unwrap();
    let out = xstage(
        &[
            "sql",
            "--catalog",
            dir.path().join("c.json").to_str().unwrap(),
            "-e",
            "SHOW STAGES;\nCREATE CONNECTION c STORAGE_TYPE='s3' ROLE_ARN 'arn:aws:iam::123456789012:role/r'",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("line 2, column 48: expected '=' after ROLE_ARN"),
        "{err}"
    );
    assert!(err.contains("^"), "{err}");
}

#[test]
fn xstage_invoke_exits_non_zero_on_a_function_error() {
    let _ = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = template(dir.path());
    let ok = write_json(dir.path(), "ok.json", &json!({"environment": true}));
    let out = xstage(
        &[
            "invoke",
            "Sandbox",
            "--template",
            template.to_str().unwrap(),
            "--event",
            ok.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["GREETING"], json!("hello"), "{body}");
    assert_eq!(
        body["AWS_LAMBDA_FUNCTION_NAME"],
        json!("xstage-sandbox"),
        "{body}"
    );
    assert_eq!(
        body["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
        json!("128"),
        "{body}"
    );
    assert!(
        stderr(&out).contains("REPORT RequestId:"),
        "{}",
        stderr(&out)
    );

    let bad = write_json(dir.path(), "bad.json", &json!({"panic": "no"}));
    let out = xstage(
        &[
            "invoke",
            "xstage-sandbox",
            "--template",
            template.to_str().unwrap(),
            "--event",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["errorType"], json!("Crashed"), "{body}");

    let out = xstage(
        &["invoke", "Nope", "--template", template.to_str().unwrap()],
        &[],
    );
    fails_with(&out, 2, "no function named Nope");

    // `--event -` reads the event from stdin.
    let mut child = Command::new(XSTAGE)
        .args([
            "invoke",
            "Sandbox",
            "--template",
            template.to_str().unwrap(),
            "--event",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xstage");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"echo": "from stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body, json!({"echo": "from stdin"}), "{}", stderr(&out));
}

#[test]
fn sigterm_lets_in_flight_invocations_finish() {
    let _ = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = template(dir.path());
    let port = free_port().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(XSTAGE)
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--template",
            template.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(
        "xstage serve",
        Duration::from_secs(600),
        None,
        Some(&log),
        || http_get(&format!("{url}/")).map(|_| ()),
    )
    .unwrap();
    let script = r#"
import json, sys, boto3
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1")
r = c.invoke(FunctionName="xstage-sandbox", InvocationType="Event", Payload=json.dumps({"sleep_ms": 1500}))
print(r["StatusCode"], r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])
"#;
    let out = clients::python_script(script, &[&url]).unwrap();
    let (status, request_id) = out.trim().split_once(' ').unwrap();
    assert_eq!(status, "202");
    let started = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let log = log_tail(&log, 50);
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains(&format!("REPORT RequestId: {request_id}")),
        "the Event invocation must finish before exit:\n{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn the_repository_template_runs_the_seed_query() {
    // The repository's own template.yaml; its component is found where the build puts it.
    let _ = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let event = write_json(
        dir.path(),
        "event.json",
        &seed_event("SELECT count(*) AS n FROM @databend_test/test.parquet"),
    );
    let component = wasm::stage_query_component();
    let out = xstage(
        &[
            "invoke",
            "StageQuery",
            "--template",
            repo().join("template.yaml").to_str().unwrap(),
            "--components-dir",
            component.parent().unwrap().to_str().unwrap(),
            "--parameter-overrides",
            &format!("AllowedRoleArns={}", seed::role_arn()),
            "--event",
            event.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["rows"], json!([[ROWS]]), "{body}");
}

#[test]
fn xstage_policy_documents_are_accepted_by_iam_and_grant_the_stage() {
    let world = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let out = xstage(
        &[
            "policy",
            "--stage-url",
            "s3://test-bucket-123/optional/prefix/",
            "--workload-role",
            "arn:aws:iam::123456789012:role/xstage-workload",
            "--external-id",
            "generated-external-id",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trust = dir.path().join("trust-policy.json");
    let permissions = dir.path().join("permission-policy.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&permissions).unwrap()).unwrap();
    assert_eq!(printed["PermissionPolicy"], saved);

    // The customer's administrator creates the role with the AWS CLI, in LocalStack's IAM.
    let aws = |args: &[&str]| {
        let mut all = vec![
            "--endpoint-url",
            world.endpoint.as_str(),
            "--region",
            seed::REGION,
        ];
        all.extend_from_slice(args);
        let out = clients::aws_cli_as(seed::CUSTOMER_ACCOUNT, &all).unwrap();
        assert!(out.status.success(), "aws {args:?}: {}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    let role = aws(&[
        "iam",
        "create-role",
        "--role-name",
        "xstage-generated",
        "--assume-role-policy-document",
        &format!("file://{}", trust.display()),
    ]);
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"], printed["TrustPolicy"],
        "IAM keeps the trust policy as generated"
    );
    aws(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "xstage-generated",
        "--policy-name",
        "xstage-stage-read",
        "--policy-document",
        &format!("file://{}", permissions.display()),
    ]);
    let policy = aws(&[
        "iam",
        "get-role-policy",
        "--role-name",
        "xstage-generated",
        "--policy-name",
        "xstage-stage-read",
    ]);
    assert_eq!(policy["PolicyDocument"], saved);

    // The stage query runs through the new role and its ExternalId.
    let mut event = seed_event("SELECT count(*) FROM @databend_test/test.parquet");
    event["connection"]["role_arn"] = json!(role_arn);
    event["connection"]["external_id"] = json!("generated-external-id");
    let event = write_json(dir.path(), "event.json", &event);
    let template = template(dir.path());
    let out = xstage(
        &[
            "invoke",
            "StageQuery",
            "--template",
            template.to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["rows"], json!([[ROWS]]), "{body}");
}

#[test]
fn the_prompt_reads_multi_line_statements_and_keeps_history() {
    use std::io::Write as _;
    // `script` gives the shell a terminal, so it runs its interactive prompt.
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    let command = format!("{XSTAGE} sql --format csv --catalog {}", catalog.display());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_DATA_HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    // Line by line, as typed: a line editor discards input typed ahead of its prompt.
    for line in [
        "CREATE CONNECTION c STORAGE_TYPE='s3'\r",
        "  ROLE_ARN='arn:aws:iam::123456789012:role/r';\r",
        "SHOW CONNECTIONS;\r",
        "SHOW NOTHING;\r",
        "\x04",
    ] {
        std::thread::sleep(Duration::from_millis(700));
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(700));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("connection c created"), "{text}");
    assert!(
        text.contains("c,s3,arn:aws:iam::123456789012:role/r"),
        "{text}"
    );
    assert!(
        text.contains("expected CONNECTIONS or STAGES after SHOW"),
        "{text}"
    );
    let history = std::fs::read_to_string(dir.path().join("xstage/history")).unwrap();
    assert!(history.contains("SHOW CONNECTIONS;"), "{history}");
}
