//! What reaches S3, counted rather than timed: bytes read at most once, footers and column
//! index entries reused, and the metadata lengths an environment learns per file.

use super::*;

/// The S3 requests of an answer.
fn requests(v: &Value) -> u64 {
    v["stats"]["s3_requests"].as_u64().unwrap()
}

/// `after` read the file as `learned` did: as many requests and the same bytes.
fn assert_reads_alike(learned: &Value, after: &Value) {
    assert_eq!(
        (requests(after), &after["stats"]["bytes_read"]),
        (requests(learned), &learned["stats"]["bytes_read"]),
        "{} then {}",
        learned["stats"],
        after["stats"]
    );
}

#[test]
fn a_whole_scan_reads_each_byte_at_most_once() {
    block_on(async {
        let w = world().await;
        // Every column, every row group, no filter and no LIMIT: the column chunks are
        // fetched ahead, at once, on a file this environment has never read.
        let v = query(
            "SELECT sum(id), sum(age), sum(score), count(DISTINCT name), \
             sum(CASE WHEN active THEN 1 ELSE 0 END) FROM @databend_test/whole/people.parquet",
        )
        .await;
        let people = fixtures::people(WHOLE_ROWS);
        let expected = json!([[
            people.iter().map(|p| p.id).sum::<i64>(),
            people.iter().map(|p| i64::from(p.age)).sum::<i64>(),
            people.iter().map(|p| p.score).sum::<f64>(),
            WHOLE_ROWS,
            people.iter().filter(|p| p.active).count(),
        ]]);
        assert_eq!(&json!(rows(&v)), &expected);
        // The first read (the file's last 64 KiB) and the chunks before it: what the first
        // read holds is not fetched again.
        let bytes = v["stats"]["bytes_read"].as_u64().unwrap();
        assert!(
            bytes <= w.whole_len,
            "{} for a {}-byte file",
            v["stats"],
            w.whole_len
        );
        assert!(bytes > w.whole_len / 2, "{}", v["stats"]);
    })
}

#[test]
fn a_filter_reuses_the_column_index_entries_it_read_of_the_same_object_version() {
    block_on(async {
        let w = world().await;
        let key = format!("{}kept/people.parquet", seed::PREFIX);
        let put = |people: Vec<Person>| {
            let body = fixtures::write_parquet(
                &[fixtures::people_batch(&people)],
                Compression::UNCOMPRESSED,
                2_000,
            );
            let (admin, key) = (&w.admin, &key);
            async move { admin.put(seed::BUCKET, key, body).await.expect("upload") }
        };
        let sql = "SELECT id, name FROM @databend_test/kept/people.parquet \
                   WHERE id BETWEEN 5000 AND 5004 ORDER BY id";
        let expected = |people: &[Person]| -> Vec<Value> {
            people
                .iter()
                .filter(|p| (5000..=5004).contains(&p.id))
                .map(|p| json!([p.id, p.name]))
                .collect()
        };
        let people = fixtures::people(WHOLE_ROWS);
        put(people.clone()).await;
        // The first read of a file new to the environment may hold its column index; from
        // the second, the first read stops at the offset index and one GET reads the
        // filter's column index entry.
        let first = query(sql).await;
        assert_eq!(rows(&first), &expected(&people));
        let learned = query(sql).await;
        assert_eq!(rows(&learned), &expected(&people));
        // The same version again: the entry is kept, one request fewer.
        let kept = query(sql).await;
        assert_eq!(rows(&kept), &expected(&people));
        assert_eq!(
            requests(&kept) + 1,
            requests(&learned),
            "{} then {}",
            learned["stats"],
            kept["stats"]
        );
        // Overwritten, same size and shape: a new ETag, so the entry is read anew and the
        // answer is the new object's.
        let renamed: Vec<Person> = people
            .into_iter()
            .map(|mut p| {
                p.name = p.name.to_uppercase();
                p
            })
            .collect();
        put(renamed.clone()).await;
        let after = query(sql).await;
        assert_eq!(rows(&after), &expected(&renamed));
        assert_eq!(requests(&after), requests(&learned), "{}", after["stats"]);
    })
}

#[test]
fn count_star_reads_each_footer_once() {
    block_on(async {
        let w = world().await;
        let v = query("SELECT count(*) FROM @databend_test/sales/2024/*.parquet").await;
        assert_eq!(rows(&v), &vec![json!([SALES_PARTS * SALES_ROWS])]);
        // One LIST, then one suffix GET per file: planning and execution share the footer.
        assert_eq!(
            v["stats"]["s3_requests"],
            1 + SALES_PARTS as u64,
            "{}",
            v["stats"]
        );
        // Every footer again, each now read with exactly the length it took the first time
        // (this environment learned it then, or in another test).
        let again = query("SELECT count(*) FROM @databend_test/sales/2024/*.parquet").await;
        assert_eq!(again["stats"]["s3_requests"], v["stats"]["s3_requests"]);
        assert_eq!(
            again["stats"]["bytes_read"], w.sales_footers,
            "{}",
            again["stats"]
        );
        let seed = query("SELECT count(*) FROM @databend_test/test.parquet").await;
        // One suffix GET gives the size and the footer: the whole file, smaller than the
        // metadata size hint, on a first read; exactly the footer once this environment has
        // read the file before.
        assert_eq!(seed["stats"]["s3_requests"], 1, "{}", seed["stats"]);
        let file = &w.test_parquet;
        let footer = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
        assert!(
            [file.len() as u64, u64::from(footer) + 8]
                .contains(&seed["stats"]["bytes_read"].as_u64().unwrap()),
            "{} for a {}-byte file with a {footer}-byte footer",
            seed["stats"],
            file.len()
        );
    })
}

/// A query that does without the page indexes (`count(*)`, whose first read is the footer
/// alone) leaves what the environment learned of where they start: a LIMIT after it still
/// reads the footer and the offset index in its first request and the page it needs in a
/// second. (It once learned from the footer it had stripped of them, so the next LIMIT took a
/// request more for the offset index; `seed_flow_returns_the_first_row` met that whenever
/// `count_star_reads_each_footer_once` ran just before it.)
#[test]
fn a_count_between_two_limits_leaves_the_learned_lengths_alone() {
    block_on(async {
        let w = world().await;
        // Its own key: what the tests of this binary learn of `test.parquet` depends on
        // which ran first.
        let key = format!("{}learned/people.parquet", seed::PREFIX);
        w.admin
            .put(seed::BUCKET, &key, w.test_parquet.clone())
            .await
            .expect("upload");
        let limit = "SELECT * FROM @databend_test/learned/people.parquet LIMIT 1";
        let count = "SELECT count(*) FROM @databend_test/learned/people.parquet";
        // New to the environment: the first read holds the whole file, and teaches its
        // lengths.
        let first = query(limit).await;
        assert_eq!(requests(&first), 1, "{}", first["stats"]);
        let learned = query(limit).await;
        assert_eq!(rows(&learned), &vec![w.people[0].json()]);
        assert_eq!(requests(&learned), 2, "{}", learned["stats"]);
        let counted = query(count).await;
        assert_eq!(rows(&counted), &vec![json!([SEED_ROWS])]);
        assert_eq!(requests(&counted), 1, "{}", counted["stats"]);
        let after = query(limit).await;
        assert_eq!(rows(&after), &vec![w.people[0].json()]);
        assert_reads_alike(&learned, &after);
    })
}

/// What an environment learns of a file is the endpoint's: moto holds a bucket of the seed's
/// name with another file under the same key, and reading it between two LIMITs on
/// LocalStack's changes nothing for the second. (Keyed by bucket and key alone, the lengths
/// learned of moto's file made the next read of LocalStack's take 4 requests instead of 2;
/// `seed_flow_returns_the_first_row` met that whenever the moto tests ran just before it.)
#[test]
fn a_bucket_of_the_same_name_elsewhere_teaches_nothing_here() {
    block_on(async {
        let w = world().await;
        let (moto_endpoint, moto_people) = seeded_moto().await;
        let key = format!("{}learned/endpoint.parquet", seed::PREFIX);
        w.admin
            .put(seed::BUCKET, &key, w.test_parquet.clone())
            .await
            .expect("upload to LocalStack");
        // moto's file under the same bucket and key: other rows, other row groups, another
        // footer.
        let other = fixtures::write_parquet(
            &[fixtures::people_batch(moto_people)],
            Compression::SNAPPY,
            5,
        );
        assert_ne!(other.len(), w.test_parquet.len());
        seed::Admin::new(moto_endpoint, seed::CUSTOMER_ACCOUNT, seed::REGION)
            .await
            .put(seed::BUCKET, &key, other)
            .await
            .expect("upload to moto");
        let sql = "SELECT * FROM @databend_test/learned/endpoint.parquet LIMIT 1";
        run_native(seed::seed_event(&w.endpoint, sql))
            .await
            .expect("first read on LocalStack");
        let learned = run_native(seed::seed_event(&w.endpoint, sql))
            .await
            .expect("LocalStack");
        assert_eq!(requests(&learned), 2, "{}", learned["stats"]);
        let elsewhere = run_native(seed::seed_event(moto_endpoint, sql))
            .await
            .expect("moto");
        assert_eq!(rows(&elsewhere), &vec![moto_people[0].json()]);
        let after = run_native(seed::seed_event(&w.endpoint, sql))
            .await
            .expect("LocalStack again");
        assert_eq!(rows(&after), &vec![w.people[0].json()]);
        assert_reads_alike(&learned, &after);
    })
}
