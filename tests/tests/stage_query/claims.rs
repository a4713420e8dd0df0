//! README's claims about events and locations, each end to end, natively and under WASI: a
//! test here fails when the sentence it names stops being true.

use super::*;

/// "RisingWave's names are synonyms … `s3.external_id` → `external_id`; `s3.bucket_name` +
/// `s3.path` form the stage when no `stage` is given (its name is the connection's `name`,
/// else `s3`)", and `s3.endpoint_url` → `endpoint_url`.
#[test]
fn risingwave_keys_and_the_stage_named_after_the_connection() {
    block_on(async {
        let w = world().await;
        let event = |endpoint: &str, query: &str| {
            json!({
                "connection": {
                    "name": "rw_conn",
                    "s3.iam_role_arn": seed::role_arn(),
                    "s3.external_id": seed::EXTERNAL_ID,
                    "s3.region_name": seed::REGION,
                    "s3.endpoint_url": endpoint,
                    "s3.bucket_name": seed::BUCKET,
                    "s3.path": seed::PREFIX
                },
                "query": query
            })
        };
        let v = run(event(
            &w.endpoint,
            "SELECT count(*) FROM @rw_conn/test.parquet",
        ))
        .await
        .expect("the stage named after the connection");
        assert_eq!(rows(&v), &vec![json!([SEED_ROWS])]);

        let (kind, message) = run(event(&w.endpoint, "SELECT count(*) FROM @s3/test.parquet"))
            .await
            .expect_err("`s3` names no stage when the connection has a name");
        assert_eq!(kind, "InvalidQuery", "{message}");
        assert!(message.contains("s3"), "{message}");

        // Without `s3.external_id` there is no ExternalId: the key is what supplied it.
        let mut bare = event(&w.endpoint, "SELECT count(*) FROM @rw_conn/test.parquet");
        bare["connection"]
            .as_object_mut()
            .unwrap()
            .remove("s3.external_id");
        let (kind, message) = run(bare).await.expect_err("no ExternalId");
        assert_eq!(kind, "ExternalIdRequired", "{message}");

        // `s3.endpoint_url` is where STS and S3 are asked: a closed port is unreachable.
        let (kind, message) = run(event(
            "http://127.0.0.1:9",
            "SELECT count(*) FROM @rw_conn/test.parquet",
        ))
        .await
        .expect_err("nothing listens there");
        assert_eq!(kind, "EndpointUnreachable", "{message}");
        assert!(message.contains("127.0.0.1:9"), "{message}");
    })
}

/// "`@s/file.parquet`: one object (or, if none exists, the "directory" `file.parquet/`)".
#[test]
fn a_file_name_falls_back_to_the_directory_of_that_name() {
    block_on(async {
        let w = world().await;
        let parts = [fixtures::people(30), fixtures::people(12)];
        for (i, part) in parts.iter().enumerate() {
            let body =
                fixtures::write_parquet(&[fixtures::people_batch(part)], Compression::SNAPPY, 10);
            w.admin
                .put(
                    seed::BUCKET,
                    &format!("{}claims/events.parquet/part-{i}.parquet", seed::PREFIX),
                    body,
                )
                .await
                .expect("upload");
        }
        let v = query("SELECT count(*) FROM @databend_test/claims/events.parquet").await;
        assert_eq!(rows(&v), &vec![json!([42])]);
        assert_eq!(v["stats"]["files"], 2);
    })
}

/// "`@s/dir/ (PATTERN => '.*[.]parquet')`: objects whose stage-relative path matches the regex
/// (unanchored)", for a query and for LIST.
#[test]
fn pattern_matches_anywhere_in_the_path() {
    block_on(async {
        let w = world().await;
        let v = query("SELECT count(*) FROM @databend_test/sales/ (PATTERN => 'part-[13]')").await;
        let want = w.sales[1].len() + w.sales[3].len();
        assert_eq!(rows(&v), &vec![json!([want])]);
        let listed = query("LIST @databend_test/sales/ PATTERN => '2024/part-[13]'").await;
        let names: Vec<&str> = rows(&listed)
            .iter()
            .map(|r| r[0].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["sales/2024/part-1.parquet", "sales/2024/part-3.parquet"]
        );
    })
}

/// "`options.max_rows` (default 10,000, at most 1,000,000)".
#[test]
fn max_rows_has_a_ceiling() {
    block_on(async {
        let w = world().await;
        let mut event = seed::seed_event(&w.endpoint, "SELECT id FROM @databend_test/test.parquet");
        event["options"] = json!({"max_rows": 1_000_000});
        let v = run(event.clone()).await.expect("the ceiling itself");
        assert_eq!(v["row_count"], SEED_ROWS);
        event["options"] = json!({"max_rows": 1_000_001});
        let (kind, message) = run(event).await.expect_err("past the ceiling");
        assert_eq!(kind, "InvalidEvent", "{message}");
        assert!(
            message.contains("max_rows") && message.contains("1000000"),
            "{message}"
        );
    })
}

/// "Rows stop at `max_rows` or 5 MB of JSON with `"truncated": true`, so a response never
/// reaches Lambda's 6 MB limit."
#[test]
fn a_buffered_answer_stops_at_five_megabytes() {
    block_on(async {
        let w = world().await;
        // 20,000 people × 16: some 6.4 MB of rows as JSON.
        let values: Vec<String> = (1..=16).map(|n| format!("({n})")).collect();
        let sql = format!(
            "SELECT p.*, t.n FROM @databend_test/whole/people.parquet AS p CROSS JOIN (VALUES {}) AS t(n)",
            values.join(", ")
        );
        let mut event = seed::seed_event(&w.endpoint, &sql);
        event["options"] = json!({"max_rows": 1_000_000});
        let v = run(event).await.expect("a truncated answer");
        let size = serde_json::to_vec(&v).unwrap().len();
        assert_eq!(v["truncated"], true);
        let count = v["row_count"].as_u64().unwrap() as usize;
        assert_eq!(rows(&v).len(), count);
        assert!(count > 100_000 && count < WHOLE_ROWS * 16, "{count} rows");
        assert!(
            size <= 5 * 1024 * 1024 && size > 4 * 1024 * 1024,
            "{size} bytes"
        );
    })
}

/// "Writes are off unless the function's configuration allows them (`XSTAGE_ALLOW_WRITES`)…
/// Refused: `WritesNotAllowed`, before any AWS call": this binary's function leaves it unset,
/// and the event's endpoint is a port nothing listens on.
#[test]
fn copy_into_is_refused_while_writes_are_off() {
    block_on(async {
        let event = seed::seed_event(
            "http://127.0.0.1:9",
            "COPY INTO @databend_test/out/ FROM @databend_test/test.parquet",
        );
        let (kind, message) = run(event).await.expect_err("writes are off");
        assert_eq!(kind, "WritesNotAllowed", "{message}");
        assert!(message.contains("XSTAGE_ALLOW_WRITES=true"), "{message}");
    })
}
