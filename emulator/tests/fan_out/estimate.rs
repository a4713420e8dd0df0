//! `options.dry_run` and `options.max_bytes_scanned` over the fan-out world (TPC-H
//! `lineitem` in 12 files): the dry run's figures against what the query then does, and a
//! refused query reading no more than planning does, counted by a proxy before LocalStack.

use serde_json::{Value, json};
use xstage_tests::fault_proxy::FaultProxy;
use xstage_tests::{query_cli, seed, tpch};

use super::{PARTS, SERVER, TABLE, WORLD, call, event, event_at, fanned, single, xstage_query};

/// The dry run's one row, by column name.
fn figures(answer: &Value) -> Value {
    let names = answer["schema"].as_array().expect("a schema");
    let row = answer["rows"][0].as_array().expect("one row");
    assert_eq!(answer["row_count"], json!(1), "{answer}");
    names
        .iter()
        .zip(row)
        .map(|(c, v)| (c["name"].as_str().unwrap().to_string(), v.clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn dry(mut event: Value) -> Value {
    event["options"]["dry_run"] = json!(true);
    event
}

#[test]
fn a_dry_run_says_what_the_query_then_does() {
    let server = &*SERVER;
    let q1 = tpch::q1(TABLE);
    let preview = call(&server.url, &dry(event(&q1, fanned())));
    assert_eq!(preview["stats"]["path"], json!("dry_run"), "{preview}");
    let f = figures(&preview);
    assert_eq!(f["files"], json!(PARTS), "{f}");
    assert_eq!(f["path"], json!("fan_out"), "{f}");
    let ran = call(&server.url, &event(&q1, fanned()));
    assert_eq!(
        f["workers"], ran["stats"]["workers"],
        "{f} {}",
        ran["stats"]
    );
    // The preview reads footers (and page indexes) only: a small part of what the query
    // reads. (That it reads what planning reads and nothing more is counted by a proxy in
    // the test below.)
    let previewed = preview["stats"]["bytes_read"].as_u64().unwrap();
    let read = ran["stats"]["bytes_read"].as_u64().unwrap();
    let planned = f["bytes_scanned"].as_u64().unwrap();
    assert!(previewed * 4 < read, "preview {previewed}, run {read}");
    // Q1 keeps nearly every row group: the planned bytes are the bytes read, give or take
    // the footers and what page indexes skip.
    assert!(
        planned as f64 > read as f64 * 0.5 && planned as f64 <= read as f64 * 1.1,
        "planned {planned}, read {read}"
    );

    // One invocation: the same figures, path single.
    let alone = figures(&call(&server.url, &dry(event(&q1, single()))));
    assert_eq!(alone["path"], json!("single"));
    assert_eq!(alone["workers"], json!(0));
    assert_eq!(alone["bytes_scanned"], f["bytes_scanned"]);

    // A limit without a filter is filled by the first row group: one invocation, whatever
    // fan_out allows, and so it runs.
    let first = format!("SELECT * FROM {TABLE} LIMIT 1");
    let limit = figures(&call(&server.url, &dry(event(&first, fanned()))));
    assert_eq!(limit["row_groups"], json!(1), "{limit}");
    assert_eq!(limit["path"], json!("single"), "{limit}");
    let ran = call(&server.url, &event(&first, fanned()));
    assert_eq!(ran["stats"]["path"], json!("single"), "{}", ran["stats"]);

    // A filter whose statistics rule out row groups: they are not counted.
    let narrow = format!("SELECT count(*) FROM {TABLE} WHERE l_orderkey < 100");
    let pruned = figures(&call(&server.url, &dry(event(&narrow, fanned()))));
    assert!(
        pruned["row_groups_pruned"].as_u64().unwrap() > 0,
        "{pruned}"
    );
    assert!(
        pruned["bytes_scanned"].as_u64().unwrap() < planned / 4,
        "{pruned} against Q1's {planned}"
    );
}

#[test]
fn a_query_above_max_bytes_scanned_is_refused_before_any_data_is_read() {
    let world = &*WORLD;
    let proxy = FaultProxy::start(&world.endpoint).expect("proxy");
    let mut env = seed::platform_env();
    env.push(("XSTAGE_ALLOW_WRITES", "true".into()));
    // Each run is a new process: a cold environment, footers read again.
    let run_query = |query: &str, options: Value| {
        let mut e = event_at(proxy.url(), query, json!({"max_workers": 1}));
        for (k, v) in options.as_object().unwrap() {
            e["options"][k] = v.clone();
        }
        let out = query_cli::run(&xstage_query(), &env, &e);
        (out, proxy.take_traffic())
    };
    let q6 = tpch::q6(TABLE);
    let run = |options: Value| run_query(&q6, options);
    let (preview, planning) = run(json!({"dry_run": true}));
    assert_eq!(preview.code, Some(0), "{preview:?}");
    let planned = figures(&preview.body)["bytes_scanned"].as_u64().unwrap();

    let (refused, traffic) = run(json!({"max_bytes_scanned": planned - 1}));
    refused.assert_error(
        "ScanLimitExceeded",
        &[&format!("would read {planned} bytes"), "max_bytes_scanned"],
    );
    // What planning reads, and nothing more.
    assert_eq!(traffic.get, planning.get, "{traffic:?} {planning:?}");
    assert_eq!(traffic.bytes, planning.bytes, "{traffic:?} {planning:?}");

    let (ran, traffic) = run(json!({"max_bytes_scanned": planned}));
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        traffic.bytes > planning.bytes + planned / 4,
        "{traffic:?} against planning's {planning:?} and {planned} planned"
    );

    // A COPY INTO is bounded the same way, before it writes; a dry run refuses it.
    let copy = format!("COPY INTO @databend_test/estimate/ FROM (SELECT l_orderkey FROM {TABLE})");
    let copying = |options: Value| run_query(&copy, options);
    let (refused, traffic) = copying(json!({"max_bytes_scanned": 1}));
    refused.assert_error("ScanLimitExceeded", &["max_bytes_scanned"]);
    assert_eq!(traffic.other, 0, "a refused COPY wrote: {traffic:?}");
    let (refused, traffic) = copying(json!({"dry_run": true}));
    refused.assert_error("InvalidEvent", &["dry_run", "COPY INTO"]);
    assert_eq!(traffic, Default::default(), "a refused dry run called AWS");
}
