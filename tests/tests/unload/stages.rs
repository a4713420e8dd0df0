//! A `COPY INTO` from one stage into another stage of the same connection, here in another
//! bucket: a CSV stage converted into a Parquet stage and back, natively and in WASI; a
//! statement that reads two stages is refused before any call.

use std::fmt::Write as _;

use super::*;

const CURATED_BUCKET: &str = "xstage-curated";

/// The seed's connection with a second stage, `curated`, in another bucket.
fn with_curated(mut e: Value) -> Value {
    e["stages"] = json!([{
        "name": "curated",
        "url": format!("s3://{CURATED_BUCKET}/cur/"),
        "connection_name": seed::CONNECTION,
    }]);
    e
}

#[test]
fn a_copy_converts_one_stages_csv_into_another_stages_parquet() {
    block_on(async {
        let w = world().await;
        w.admin
            .create_bucket(CURATED_BUCKET, seed::REGION)
            .await
            .expect("the curated bucket");
        let mut csv = String::from("id,name,age,score,active\n");
        for p in &w.small {
            writeln!(
                csv,
                "{},{},{},{},{}",
                p.id, p.name, p.age, p.score, p.active
            )
            .unwrap();
        }
        let raw = "unload-stages/raw/";
        w.admin
            .put(
                seed::BUCKET,
                &format!("{}{raw}people.csv", seed::PREFIX),
                csv.into(),
            )
            .await
            .expect("the CSV source");
        let want: Vec<Value> = w.small.iter().map(Person::json).collect();
        for side in SIDES {
            // The event's stage is the CSV one the statement reads; the target is `curated`.
            let mut e = with_curated(event(
                w,
                &format!(
                    "COPY INTO @curated/{side}/ FROM @databend_test/{raw} FILE_FORMAT = (TYPE = PARQUET)"
                ),
            ));
            e["stage"]["file_format"] = json!({"type": "csv", "skip_header": 1});
            let answer = on(side, e)
                .await
                .unwrap_or_else(|e| panic!("{side}: {e:?}"));
            assert_eq!(answer["rows"][0][0], json!(SMALL), "{side}: {answer}");
            let query_id = answer["stats"]["query_id"].as_str().unwrap();
            let listed = w
                .admin
                .list(CURATED_BUCKET, &format!("cur/{side}/"))
                .await
                .expect("list the target");
            let manifest = format!("cur/{side}/_xstage_manifest_{query_id}.json");
            assert!(listed.contains_key(&manifest), "{side}: {listed:?}");
            let data: Vec<(&String, &(u64, String))> =
                listed.iter().filter(|(k, _)| **k != manifest).collect();
            assert!(
                !data.is_empty()
                    && data
                        .iter()
                        .all(|(k, _)| k.ends_with(".parquet") && k.contains(query_id)),
                "{side}: {listed:?}"
            );
            let output: u64 = data.iter().map(|(_, (size, _))| size).sum();
            assert_eq!(answer["rows"][0][2].as_u64(), Some(output), "{side}");
            let open = w
                .admin
                .open_uploads(CURATED_BUCKET, "cur/")
                .await
                .expect("uploads");
            assert!(open.is_empty(), "{open:?}");
            // Nothing was written beside the source.
            assert_eq!(listed_len(w, raw).await, 1, "{side}");

            // Read back through the curated stage, which the statement reads: the rows, with
            // the types CSV inferred kept by Parquet.
            let back = with_curated(event(
                w,
                &format!("SELECT * FROM @curated/{side}/ ORDER BY id"),
            ));
            let back = on(side, back).await.unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(back["rows"], json!(want), "{side}");
            let types = run::column_types(&back);
            assert_eq!(types, ["BIGINT", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN"]);
        }

        // Back the other way: the event's stage is the target, the source under `stages`.
        let e = with_curated(event(
            w,
            "COPY INTO @databend_test/unload-stages/back/ FROM (SELECT id, name FROM @curated/native/ WHERE id % 2 = 0) FILE_FORMAT = (TYPE = CSV OUTPUT_HEADER = TRUE)",
        ));
        let answer = run::native(e).await.unwrap_or_else(|e| panic!("{e:?}"));
        let evens: Vec<Value> = w
            .small
            .iter()
            .filter(|p| p.id % 2 == 0)
            .map(|p| json!([p.id, p.name]))
            .collect();
        assert_eq!(answer["rows"][0][0], json!(evens.len()));
        let back = read(
            "SELECT * FROM @databend_test/unload-stages/back/ ORDER BY id",
            Some(json!({"type": "csv", "skip_header": 1})),
        )
        .await;
        assert_eq!(back["rows"], json!(evens));

        // One statement reads one stage: a join of both is refused before any call.
        let e = with_curated(event(
            w,
            "COPY INTO @curated/join/ FROM (SELECT * FROM @curated/native/ a JOIN @databend_test/unload-stages/back/ b USING (id))",
        ));
        let (kind, message) = run::native(e).await.expect_err("two stages read");
        assert_eq!(kind, "InvalidQuery");
        assert!(
            message.contains("reads stages @curated and @databend_test"),
            "{message}"
        );
    });
}

async fn listed_len(w: &World, dir: &str) -> usize {
    w.admin
        .list(seed::BUCKET, &format!("{}{dir}", seed::PREFIX))
        .await
        .expect("list")
        .len()
}
