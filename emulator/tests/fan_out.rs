//! Fan-out (`options.fan_out`) end to end: TPC-H `lineitem` in LocalStack as many Parquet
//! files, `xstage serve` running the stage query component whose workers are WASI
//! invocations of the same component, reached through the Lambda Invoke API. Every answer
//! must equal the single-invocation answer exactly, through `xstage serve` and natively
//! (`xstage-query`, whose workers are `xstage serve`'s).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use parquet::basic::Compression;
use serde_json::{Value, json};
use xstage_tests::fault_proxy::{Fault, FaultProxy, Only, Service};
use xstage_tests::invoke::{agent, fan_out_template, invoke, serve};
use xstage_tests::process::ServerProcess;
use xstage_tests::{fixtures, localstack, query_cli, seed, tpch};

#[path = "fan_out/copy.rs"]
mod copy;
#[path = "fan_out/estimate.rs"]
mod estimate;
#[path = "fan_out/forged.rs"]
mod forged;

const XSTAGE: &str = env!("CARGO_BIN_EXE_xstage");
/// Parts of lineitem, one file each.
const PARTS: i32 = 12;
const SCALE: f64 = 0.05;
const TABLE: &str = "@databend_test/lineitem/";

/// LocalStack with the seed's bucket and role, and lineitem under the stage.
struct World {
    endpoint: String,
    /// Each part's size, by part number.
    sizes: Vec<u64>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    seed::platform_identity();
    let endpoint = localstack::localstack().endpoint().to_string();
    let people = fixtures::people(3);
    let body = fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 3);
    let runtime = xstage_tests::runtime();
    let admin = runtime
        .block_on(seed::seed(&endpoint, body))
        .expect("seed LocalStack");
    let mut sizes = vec![0];
    for part in 1..=PARTS {
        let file = tpch::lineitem_part(SCALE, part, PARTS, 5_000);
        sizes.push(file.len() as u64);
        runtime
            .block_on(admin.put(
                seed::BUCKET,
                &format!("{}lineitem/part-{part:02}.parquet", seed::PREFIX),
                file,
            ))
            .expect("upload lineitem");
    }
    World { endpoint, sizes }
});

struct Server {
    url: String,
    _process: ServerProcess,
    _dir: tempfile::TempDir,
}

fn start(reserved: Option<u32>) -> Server {
    let world = &*WORLD;
    let dir = tempfile::tempdir().unwrap();
    let template = fan_out_template(dir.path(), 60, reserved).expect("write the template");
    let (process, url) =
        serve(XSTAGE, "xstage-fan-out", &template, &world.endpoint).expect("start xstage serve");
    Server {
        url,
        _process: process,
        _dir: dir,
    }
}

static SERVER: LazyLock<Server> = LazyLock::new(|| start(None));

/// The event for `query` with `fan_out` options (`{"max_workers": 1}`: one invocation).
fn event(query: &str, fan_out: Value) -> Value {
    event_at(&WORLD.endpoint, query, fan_out)
}

fn event_at(endpoint: &str, query: &str, fan_out: Value) -> Value {
    let mut e = seed::seed_event(endpoint, query);
    e["options"] = json!({ "fan_out": fan_out });
    e
}

fn fanned() -> Value {
    json!({"max_workers": 8, "bytes_per_worker": 65536})
}

fn single() -> Value {
    json!({"max_workers": 1})
}

/// Invokes StageQuery at `url`.
fn invoked(url: &str, event: &Value) -> xstage_tests::invoke::Invoked {
    invoke(
        &agent(Duration::from_secs(300)),
        url,
        "StageQuery",
        event.to_string().as_bytes(),
    )
    .expect("invoke")
}

/// Invokes StageQuery at `url`; the response body, or a panic naming the error.
fn call(url: &str, event: &Value) -> Value {
    let answer = invoked(url, event);
    assert!(answer.succeeded(), "{} {}", answer.status, answer.body);
    answer.json()
}

/// Invokes and expects a function error: its type and message.
fn call_err(url: &str, event: &Value) -> (String, String) {
    let answer = invoked(url, event);
    assert_eq!(
        answer.function_error.as_deref(),
        Some("Unhandled"),
        "{}",
        answer.body
    );
    let body = answer.json();
    (
        body["errorType"].as_str().unwrap_or_default().to_string(),
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The parts of an answer that must not depend on the path taken.
fn answer(v: &Value) -> Value {
    json!({
        "schema": v["schema"],
        "rows": v["rows"],
        "row_count": v["row_count"],
        "truncated": v["truncated"],
        "files": v["stats"]["files"],
    })
}

fn queries() -> Vec<(&'static str, String)> {
    vec![
        ("Q1", tpch::q1(TABLE)),
        ("Q6", tpch::q6(TABLE)),
        (
            "count(DISTINCT)",
            format!("SELECT count(DISTINCT l_suppkey) AS suppliers, count(*) AS n FROM {TABLE}"),
        ),
        (
            "count(DISTINCT) by group",
            format!(
                "SELECT l_returnflag, count(DISTINCT l_orderkey) AS orders FROM {TABLE} \
                 GROUP BY l_returnflag ORDER BY l_returnflag"
            ),
        ),
        (
            "filter with LIMIT",
            format!(
                "SELECT l_orderkey, l_linenumber, l_comment FROM {TABLE} \
                 WHERE l_quantity >= 50 AND l_discount = 0.10 LIMIT 40"
            ),
        ),
        (
            "ORDER BY ... LIMIT",
            format!(
                "SELECT l_orderkey, l_linenumber, l_extendedprice FROM {TABLE} \
                 ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 25"
            ),
        ),
    ]
}

#[test]
fn fanned_out_answers_equal_single_invocation_answers_under_serve() {
    let server = &*SERVER;
    for (name, query) in queries() {
        let one = call(&server.url, &event(&query, single()));
        assert_eq!(one["stats"]["path"], json!("single"), "{name}: {one}");
        let many = call(&server.url, &event(&query, fanned()));
        let stats = &many["stats"];
        assert_eq!(stats["path"], json!("fan_out"), "{name}: {stats}");
        let workers = stats["workers"].as_u64().unwrap();
        assert!((2..=8).contains(&workers), "{name}: {stats}");
        assert!(
            stats["last_worker_ms"].as_u64().is_some(),
            "{name}: {stats}"
        );
        assert!(one["row_count"].as_u64().unwrap() > 0, "{name}: {one}");
        assert_eq!(answer(&many), answer(&one), "{name}");
        // Each worker reads its own share and the footers of its files.
        let (b1, bn) = (
            one["stats"]["bytes_read"].as_u64().unwrap(),
            stats["bytes_read"].as_u64().unwrap(),
        );
        if !name.contains("LIMIT") {
            assert!(
                bn as f64 <= b1 as f64 * 1.5 + 400_000.0,
                "{name}: {b1} → {bn}"
            );
        }
    }
}

#[test]
fn natively_the_coordinator_fans_out_to_xstage_serve() {
    let server = &*SERVER;
    let query = xstage_query();
    for (name, sql) in queries() {
        let mut env = seed::platform_env();
        env.push(("XSTAGE_FAN_OUT_FUNCTION", "StageQuery".into()));
        env.push(("AWS_ENDPOINT_URL_LAMBDA", server.url.clone()));
        let one = query_cli::run(&query, &env, &event(&sql, single()));
        assert_eq!(one.code, Some(0), "{name}: {one:?}");
        let many = query_cli::run(&query, &env, &event(&sql, fanned()));
        assert_eq!(many.code, Some(0), "{name}: {many:?}");
        assert_eq!(
            many.body["stats"]["path"],
            json!("fan_out"),
            "{name}: {}",
            many.body
        );
        assert_eq!(answer(&many.body), answer(&one.body), "{name}");
        // The same answer as the WASI coordinator's.
        let wasi = call(&server.url, &event(&sql, fanned()));
        assert_eq!(answer(&wasi), answer(&many.body), "{name}");
    }
}

/// The native function built beside `xstage`.
fn xstage_query() -> PathBuf {
    let path = Path::new(XSTAGE).with_file_name("xstage-query");
    assert!(path.exists(), "{} is not built", path.display());
    path
}

#[test]
fn a_tree_starts_its_workers_through_inner_nodes() {
    let server = &*SERVER;
    let query = tpch::q1(TABLE);
    let one = call(&server.url, &event(&query, single()));
    let tree = call(
        &server.url,
        &event(
            &query,
            json!({"max_workers": 8, "bytes_per_worker": 65536, "direct_invokes": 2}),
        ),
    );
    let stats = &tree["stats"];
    assert_eq!(answer(&tree), answer(&one));
    assert_eq!(stats["workers"], json!(8), "{stats}");
    // 8 leaves under direct_invokes 2: 2 inner nodes, each with 2 inner nodes of 2 leaves.
    assert_eq!(stats["invocations"], json!(2 + 4 + 8), "{stats}");
}

#[test]
fn sts_is_called_at_most_once_per_new_environment_and_not_when_warm() {
    let server = start(None);
    let query = tpch::q6(TABLE);
    let first = call(&server.url, &event(&query, fanned()));
    let stats = &first["stats"];
    let workers = stats["workers"].as_u64().unwrap();
    let sts = stats["sts_calls"].as_u64().unwrap();
    assert!(sts >= 1 && sts <= 1 + workers, "{stats}");
    // Every environment is warm now: its credential cache answers.
    let again = call(&server.url, &event(&query, fanned()));
    assert_eq!(again["stats"]["sts_calls"], json!(0), "{}", again["stats"]);
    assert_eq!(answer(&again), answer(&first));
}

#[test]
fn a_worker_throttled_or_cut_off_mid_answer_is_invoked_again_and_the_answer_stays_right() {
    let server = &*SERVER;
    // The coordinator (native) reaches the workers through a proxy in front of xstage serve.
    let proxy = FaultProxy::start(&server.url).expect("proxy");
    let mut env = seed::platform_env();
    env.push(("XSTAGE_FAN_OUT_FUNCTION", "StageQuery".into()));
    env.push(("AWS_ENDPOINT_URL_LAMBDA", proxy.url().to_string()));
    let query = tpch::q1(TABLE);
    let one = query_cli::run(&xstage_query(), &env, &event(&query, single()));
    assert_eq!(one.code, Some(0), "{one:?}");

    // Lambda's throttling, twice.
    proxy.inject_only(
        Service::S3,
        Fault::Respond {
            status: 429,
            headers: vec![
                ("x-amzn-errortype".into(), "TooManyRequestsException".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: r#"{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#.into(),
        },
        Only::path("/invocations").times(2),
    );
    let many = query_cli::run(&xstage_query(), &env, &event(&query, fanned()));
    assert_eq!(many.code, Some(0), "{many:?}");
    assert_eq!(proxy.faulted(), 2);
    assert_eq!(
        many.body["stats"]["tasks_retried"],
        json!(2),
        "{}",
        many.body["stats"]
    );
    assert_eq!(answer(&many.body), answer(&one.body));

    // A worker's answer cut off in the middle: the worker ran, its answer is lost.
    proxy.inject_only(
        Service::S3,
        Fault::ResetMidBody { after_bytes: 64 },
        Only::path("/invocations").times(1),
    );
    let cut = query_cli::run(&xstage_query(), &env, &event(&query, fanned()));
    assert_eq!(cut.code, Some(0), "{cut:?}");
    assert_eq!(
        cut.body["stats"]["tasks_retried"],
        json!(1),
        "{}",
        cut.body["stats"]
    );
    assert_eq!(answer(&cut.body), answer(&one.body));
}

#[test]
fn a_straggler_gets_a_speculative_duplicate_and_the_first_answer_wins() {
    let server = &*SERVER;
    let query = tpch::q6(TABLE);
    let one = call(&server.url, &event(&query, single()));
    // One worker's first read of part 5's early row groups is held far longer than any
    // worker takes; the duplicate's read of the same range is not.
    let stall = Duration::from_secs(45);
    let proxy = FaultProxy::start(&WORLD.endpoint).expect("proxy");
    proxy.inject_only(
        Service::S3,
        Fault::Stall(stall),
        Only::path("part-05.parquet")
            .ranges_below(WORLD.sizes[5] / 2)
            .times(1),
    );
    let options = json!({"max_workers": 8, "bytes_per_worker": 65536, "speculate_after": 2.0});
    let started = std::time::Instant::now();
    let many = call(&server.url, &event_at(proxy.url(), &query, options));
    let took = started.elapsed();
    assert_eq!(proxy.faulted(), 1);
    let stats = &many["stats"];
    assert!(stats["tasks_speculated"].as_u64().unwrap() >= 1, "{stats}");
    // The duplicate answered: the query did not wait for the held read. A duplicate's
    // answer counted as well as the first one's would double the sum.
    assert!(took < stall, "{took:?}: {stats}");
    assert_eq!(answer(&many), answer(&one));
}

#[test]
fn reserved_concurrency_bounds_the_workers_and_the_query_still_answers() {
    // The coordinator holds one of three slots; eight workers share the other two.
    let server = start(Some(3));
    let query = tpch::q1(TABLE);
    let one = call(&server.url, &event(&query, single()));
    let many = call(&server.url, &event(&query, fanned()));
    let stats = &many["stats"];
    assert_eq!(stats["workers"], json!(8), "{stats}");
    // At least six of the eight were refused a slot at first and waited for one.
    assert!(stats["tasks_retried"].as_u64().unwrap() >= 6, "{stats}");
    assert_eq!(answer(&many), answer(&one));
}

#[test]
fn a_coordinator_holding_the_only_slot_runs_the_query_itself_and_says_why() {
    let server = start(Some(1));
    let query = tpch::q6(TABLE);
    let many = call(&server.url, &event(&query, fanned()));
    let stats = &many["stats"];
    assert_eq!(stats["path"], json!("single_after_fan_out"), "{stats}");
    let why = stats["fan_out_failure"].as_str().unwrap_or_default();
    assert!(why.starts_with("Throttled"), "{stats}");
    assert!(why.contains("ReservedConcurrentExecutions"), "{why}");
    assert!(why.contains("max_workers"), "{why}");
    let one = call(&server.url, &event(&query, single()));
    assert_eq!(one["stats"]["path"], json!("single"));
    assert_eq!(answer(&many), answer(&one));
}

#[test]
fn concurrent_coordinators_never_starve_each_other_into_throttled() {
    // Two slots and two fanned-out queries at once: while both coordinators hold them no
    // worker can run, and each runs its own query rather than fail `Throttled`.
    let server = start(Some(2));
    let query = tpch::q6(TABLE);
    let one = call(&server.url, &event(&query, single()));
    let answers: Vec<Value> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| call(&server.url, &event(&query, fanned()))))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for many in &answers {
        assert_eq!(answer(many), answer(&one));
        let path = many["stats"]["path"].as_str().unwrap_or_default();
        assert!(
            ["fan_out", "single_after_fan_out"].contains(&path),
            "{}",
            many["stats"]
        );
    }
}

#[test]
fn a_permanent_worker_error_fails_the_query_with_its_type_and_file() {
    let server = &*SERVER;
    let proxy = FaultProxy::start(&WORLD.endpoint).expect("proxy");
    proxy.inject_only(
        Service::S3,
        Fault::s3_error(403, "AccessDenied", "Access Denied", &[]),
        // A worker's reads of the file's first row groups; the coordinator reads its end.
        Only::path("part-07.parquet").ranges_below(WORLD.sizes[7] / 2),
    );
    let (kind, message) = call_err(
        &server.url,
        &event_at(proxy.url(), &tpch::q6(TABLE), fanned()),
    );
    assert_eq!(kind, "S3AccessDenied", "{message}");
    assert!(message.contains("part-07.parquet"), "{message}");
    assert!(message.contains("fan-out worker"), "{message}");
}

#[test]
fn a_group_by_too_large_for_a_workers_response_is_split_or_runs_in_the_coordinator() {
    let server = &*SERVER;
    // Every row is its own group: each worker's partial is its whole share of the table,
    // far more than Lambda's 6 MB response carries.
    let columns = "l_orderkey, l_linenumber, l_partkey, l_suppkey, l_quantity, l_extendedprice, \
                   l_discount, l_tax, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, \
                   l_shipmode, l_comment";
    let query = format!(
        "SELECT count(*) AS n, sum(l_extendedprice) AS s FROM \
         (SELECT {columns} FROM {TABLE} GROUP BY {columns})"
    );
    let one = call(&server.url, &event(&query, single()));
    let e = event(&query, json!({"max_workers": 2, "bytes_per_worker": 65536}));
    let many = call(&server.url, &e);
    assert_eq!(answer(&many), answer(&one));
    let stats = &many["stats"];
    if stats["path"] == json!("fan_out") {
        assert!(stats["tasks_retried"].as_u64().unwrap() >= 1, "{stats}");
    } else {
        // Split down to single row groups and still too large: one invocation answers.
        assert_eq!(stats["path"], json!("single_after_fan_out"), "{stats}");
        let why = stats["fan_out_failure"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("ResultTooLarge") && why.contains("6 MB"),
            "{stats}"
        );
    }
}
