//! Exactly once: a raw path created once and replaced only with `OVERWRITE`, a retried
//! statement answering once, a rival holding one of its names, and the session policy the
//! statement's credentials carry.

use super::*;

#[test]
fn raw_paths_are_created_once_and_replaced_only_with_overwrite() {
    block_on(async {
        let select = |n: usize| {
            format!("SELECT * FROM @databend_test/unload-src/small.parquet ORDER BY id LIMIT {n}")
        };
        let raw = "USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE";
        let copy = |n: usize, extra: &str| {
            format!(
                "COPY INTO @databend_test/unload/raw/{{side}}/result.csv FROM ({}) FILE_FORMAT = (TYPE = CSV) {raw} {extra}",
                select(n)
            )
        };
        for reply in both(&copy(10, "")).await {
            reply.unwrap();
        }
        for side in SIDES {
            let key = format!("unload/raw/{side}/result.csv");
            let before = listed(&key).await;
            assert_eq!(before.len(), 1, "{before:?}");
            assert_eq!(
                String::from_utf8(object(&key).await)
                    .unwrap()
                    .lines()
                    .count(),
                10
            );
        }
        let replies = both(&copy(20, "")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let (kind, message) = reply.expect_err("the file exists");
            assert_eq!(kind, "AlreadyExists", "{message}");
            assert!(
                message.contains(&format!("unload/raw/{side}/result.csv")),
                "{message}"
            );
            let text =
                String::from_utf8(object(&format!("unload/raw/{side}/result.csv")).await).unwrap();
            assert_eq!(text.lines().count(), 10, "the file is untouched");
        }
        for reply in both(&copy(20, "OVERWRITE = TRUE")).await {
            reply.unwrap();
        }
        for side in SIDES {
            let text =
                String::from_utf8(object(&format!("unload/raw/{side}/result.csv")).await).unwrap();
            assert_eq!(
                text.lines().count(),
                20,
                "OVERWRITE replaced the one raw path"
            );
        }
        no_upload_in_progress("unload/raw/").await;
    })
}

#[test]
fn a_retry_answers_once_and_a_rival_name_stops_the_writer() {
    block_on(async {
        let w = world().await;
        for side in SIDES {
            let copy = format!(
                "COPY INTO @databend_test/unload/retry/{side}/ FROM (SELECT * FROM @databend_test/unload-src/mid.parquet) FILE_FORMAT = (TYPE = CSV) MAX_FILE_SIZE = 65536"
            );
            let mut e = event(w, &copy);
            e["options"]["query_id"] = json!(format!("retry-{side}"));
            let first = on(side, e.clone()).await.expect("first");
            // A statement's credentials are its own: the cache, warm from the other tests,
            // holds none scoped to this query id.
            assert_eq!(first["stats"]["sts_calls"], 1, "{}", first["stats"]);
            let files = check_commit(&first, &format!("unload/retry/{side}/")).await;
            let again = on(side, e)
                .await
                .expect("a retry of a committed statement answers");
            assert_eq!(again["rows"], first["rows"], "the same answer");
            assert_eq!(
                listed(&format!("unload/retry/{side}/")).await.len(),
                files.len() + 1,
                "nothing new"
            );

            // Another writer already holds the name of this statement's second file.
            let rival = format!("unload/rival/{side}/data_rival-{side}_0000_00000001.csv");
            w.admin
                .put(
                    seed::BUCKET,
                    &format!("{}{rival}", seed::PREFIX),
                    bytes::Bytes::from_static(b"rival\n"),
                )
                .await
                .unwrap();
            let copy = copy.replace("unload/retry/", "unload/rival/");
            let mut e = event(w, &copy);
            e["options"]["query_id"] = json!(format!("rival-{side}"));
            let (kind, message) = on(side, e).await.expect_err("the name is taken");
            assert_eq!(kind, "AlreadyExists", "{message}");
            assert!(message.contains(&rival), "{message}");
            let left: Vec<String> = listed(&format!("unload/rival/{side}/"))
                .await
                .into_keys()
                .collect();
            assert_eq!(left, vec![rival.clone()], "only the rival's file remains");
            assert_eq!(object(&rival).await, b"rival\n", "and it is untouched");
        }
        no_upload_in_progress("unload/retry/").await;
        no_upload_in_progress("unload/rival/").await;
    })
}

/// A statement that died after writing its files but before its commit (no manifest) is
/// finished by its retry: every name is taken by the same bytes, so the retry adopts them
/// (a single PutObject's ETag and a multipart upload's) and creates only the manifest.
#[test]
fn a_retry_of_a_statement_that_died_before_its_commit_adopts_its_files() {
    block_on(async {
        let w = world().await;
        for side in SIDES {
            let dir = format!("unload/died/{side}/");
            // The first file passes the first 8 MiB part (multipart); the last is one put.
            let copy = format!(
                "COPY INTO @databend_test/{dir} FROM (SELECT * FROM @databend_test/unload-src/big.parquet) FILE_FORMAT = (TYPE = CSV) MAX_FILE_SIZE = 9000000"
            );
            let mut e = event(w, &copy);
            e["options"]["query_id"] = json!(format!("died-{side}"));
            let first = on(side, e.clone()).await.expect("first");
            let files = check_commit(&first, &dir).await;
            let before = listed(&dir).await;
            assert!(files.len() >= 2, "{files:?}");
            assert!(
                files.values().any(|(_, etag)| etag.contains('-')),
                "a multipart file: {files:?}"
            );
            // The commit is lost, as if the invocation had died before it.
            let manifest = format!("{}{dir}_xstage_manifest_died-{side}.json", seed::PREFIX);
            w.admin
                .s3
                .delete_object()
                .bucket(seed::BUCKET)
                .key(&manifest)
                .send()
                .await
                .expect("delete the manifest");
            let again = on(side, e).await.expect("the retry finishes the statement");
            assert_eq!(again["rows"], first["rows"], "the same answer");
            assert_eq!(
                again["stats"]["files_written"],
                json!(1),
                "only the manifest is created: {}",
                again["stats"]
            );
            // The same files and the same manifest, byte for byte.
            assert_eq!(listed(&dir).await, before);
        }
        no_upload_in_progress("unload/died/").await;
    })
}

/// moto records the session policy the COPY's AssumeRole carried: the statement's own names.
#[test]
fn the_write_session_policy_names_only_the_statement_files() {
    block_on(async {
        let endpoint = moto::moto().endpoint().to_string();
        let people = fixtures::people(5);
        let body =
            fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 5);
        seed::seed(&endpoint, body).await.expect("seed moto");
        let mut e = seed::seed_event(
            &endpoint,
            "COPY INTO @databend_test/out/ FROM @databend_test/test.parquet FILE_FORMAT = (TYPE = CSV)",
        );
        e["connection"]["external_id"] = json!("moto-write-1");
        let answer = run::native(e).await.expect("COPY through moto");
        assert_eq!(answer["rows"][0][0], json!(5));
        let query_id = answer["stats"]["query_id"].as_str().unwrap().to_string();
        let calls = moto::assume_role_calls(&endpoint).expect("moto data");
        let call = calls
            .iter()
            .find(|c| c.external_id.as_deref() == Some("moto-write-1"))
            .expect("the COPY's AssumeRole");
        let sent: Value = serde_json::from_str(call.policy.as_deref().unwrap()).unwrap();
        let create = sent["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "CreateThisStatementsFiles")
            .expect("a create statement");
        assert_eq!(
            create["Resource"],
            json!([
                format!(
                    "arn:aws:s3:::{}/{}out/data_{query_id}_*",
                    seed::BUCKET,
                    seed::PREFIX
                ),
                format!(
                    "arn:aws:s3:::{}/{}out/_xstage_manifest_{query_id}.json",
                    seed::BUCKET,
                    seed::PREFIX
                ),
            ])
        );
        let deny = sent["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Effect"] == "Deny")
            .expect("the If-None-Match deny");
        assert_eq!(deny["Condition"]["Null"]["s3:if-none-match"], json!("true"));
    })
}
