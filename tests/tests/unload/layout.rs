//! Where and how big the files are: `MAX_FILE_SIZE` and `SINGLE`, multipart files and a
//! source failing mid-file, `PARTITION BY`, and a gigabyte in a 512 MB function.

use super::*;

#[test]
fn max_file_size_rolls_over_and_single_writes_one_file() {
    block_on(async {
        let source = "SELECT * FROM @databend_test/unload-src/mid.parquet";
        let max = 65_536u64;
        let csv = Some(json!({"type": "csv", "skip_header": 1}));
        for (case, format, bound, read_format) in [
            ("csv", "TYPE = CSV OUTPUT_HEADER = TRUE", max, csv),
            ("ndjson-gzip", "TYPE = NDJSON COMPRESSION = GZIP", max, None),
            ("parquet", "TYPE = PARQUET", max, None),
        ] {
            let dir = format!("unload/roll/{case}/{{side}}/");
            let replies = both(&format!("COPY INTO @databend_test/{dir} FROM ({source}) FILE_FORMAT = ({format}) MAX_FILE_SIZE = {max} DETAILED_OUTPUT = TRUE")).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let answer = reply.unwrap_or_else(|e| panic!("{case} {side}: {e:?}"));
                let dir = dir.replace("{side}", side);
                let data: BTreeMap<_, _> = listed(&dir)
                    .await
                    .into_iter()
                    .filter(|(k, _)| !k.contains("_xstage_manifest_"))
                    .collect();
                assert!(data.len() >= 3, "{case}: {} files", data.len());
                for (name, (size, _)) in &data {
                    assert!(
                        *size <= bound,
                        "{case}: {name} is {size} bytes, over {bound}"
                    );
                }
                let sizes: Vec<u64> = data.values().map(|(size, _)| *size).collect();
                eprintln!(
                    "{case} {side}: {} files of MAX_FILE_SIZE {max}: {sizes:?}",
                    data.len()
                );
                // DETAILED_OUTPUT: one row per file, as S3 lists them.
                let rows = answer["rows"].as_array().unwrap();
                let detailed: BTreeMap<String, u64> = rows
                    .iter()
                    .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
                    .collect();
                let sizes: BTreeMap<String, u64> =
                    data.iter().map(|(k, (s, _))| (k.clone(), *s)).collect();
                assert_eq!(detailed, sizes);
                let total: u64 = rows.iter().map(|r| r[2].as_u64().unwrap()).sum();
                assert_eq!(total, MID as u64);
                let seqs: Vec<String> = data
                    .keys()
                    .map(|k| {
                        k.rsplit('_')
                            .next()
                            .unwrap()
                            .split('.')
                            .next()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                let want: Vec<String> = (0..data.len()).map(|i| format!("{i:08}")).collect();
                assert_eq!(seqs, want, "sequence numbers from 0, none missing");
                let back = read(
                    &format!("SELECT count(*), sum(id) FROM @databend_test/{dir}"),
                    read_format.clone(),
                )
                .await;
                let ids: i64 = (0..MID as i64).map(|i| 1000 + i).sum();
                assert_eq!(back["rows"][0], json!([MID, ids]), "{case}");
            }
        }
        let replies = both(&format!("COPY INTO @databend_test/unload/single/{{side}}/ FROM ({source}) FILE_FORMAT = (TYPE = CSV) MAX_FILE_SIZE = {max} SINGLE = TRUE")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            let data = check_commit(&answer, &format!("unload/single/{side}/")).await;
            assert_eq!(data.len(), 1, "SINGLE writes one file: {data:?}");
        }
        no_upload_in_progress("unload/roll/").await;
        no_upload_in_progress("unload/single/").await;
    })
}

#[test]
fn multipart_files_and_failures_mid_file_leave_nothing_behind() {
    block_on(async {
        let big = "@databend_test/unload-src/big.parquet";
        let replies = both(&format!("COPY INTO @databend_test/unload/big/{{side}}/ FROM (SELECT * FROM {big}) FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE")).await;
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            let data = check_commit(&answer, &format!("unload/big/{side}/")).await;
            let (size, etag) = data.values().next().unwrap();
            assert!(*size > 8 * 1024 * 1024, "{size}");
            assert!(etag.ends_with("-2"), "a two-part upload: {etag}");
            // At least CreateMultipartUpload, two UploadParts, Complete and the manifest's Put.
            assert!(
                answer["stats"]["put_requests"].as_u64().unwrap() >= 5,
                "{}",
                answer["stats"]
            );
            let back = read(
                &format!("SELECT count(*) FROM @databend_test/unload/big/{side}/"),
                Some(json!({"type": "csv"})),
            )
            .await;
            assert_eq!(back["rows"][0][0], json!(BIG));
        }
        // A value that cannot be cast fails the source past the first 8 MiB part, and past
        // the first files: every file and the upload in progress go.
        let fail = format!(
            "SELECT id, CAST(CASE WHEN id > {} THEN 'x' ELSE '1' END AS INT) AS v, name FROM {big}",
            1000 + BIG as i64 - 20_000
        );
        for (case, options) in [
            ("single", "SINGLE = TRUE"),
            ("rolled", "MAX_FILE_SIZE = 1048576"),
        ] {
            let replies = both(&format!("COPY INTO @databend_test/unload/fail/{case}/{{side}}/ FROM ({fail}) FILE_FORMAT = (TYPE = CSV) {options}")).await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let (kind, message) = reply.expect_err("the cast fails");
                assert_eq!(kind, "InvalidQuery", "{message}");
                assert!(
                    message.contains("'x'") || message.contains("Cannot cast"),
                    "{message}"
                );
                let left = listed(&format!("unload/fail/{case}/{side}/")).await;
                assert!(left.is_empty(), "a failed COPY leaves no files: {left:?}");
            }
        }
        no_upload_in_progress("unload/big/").await;
        no_upload_in_progress("unload/fail/").await;
    })
}

#[test]
fn partition_by_writes_each_value_and_null_under_its_directory() {
    block_on(async {
        let w = world().await;
        let expr = "CASE WHEN id % 5 = 0 THEN NULL ELSE 'g' || CAST(id % 3 AS VARCHAR) END";
        let replies = both(&format!(
            "COPY INTO @databend_test/unload/part/{{side}}/ FROM (SELECT * FROM @databend_test/unload-src/small.parquet) PARTITION BY ({expr}) FILE_FORMAT = (TYPE = NDJSON)"
        ))
        .await;
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        for p in &w.small {
            let dir = if p.id % 5 == 0 {
                "_NULL_".to_string()
            } else {
                format!("g{}", p.id % 3)
            };
            *want.entry(dir).or_default() += 1;
        }
        for (side, reply) in SIDES.iter().zip(replies) {
            let answer = reply.unwrap();
            assert_eq!(answer["rows"][0][0], json!(SMALL));
            let dir = format!("unload/part/{side}/");
            let data = listed(&dir).await;
            let mut got: BTreeMap<String, usize> = BTreeMap::new();
            for key in data.keys().filter(|k| !k.contains("_xstage_manifest_")) {
                let sub = key
                    .strip_prefix(&dir)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_string();
                let back = read(&format!("SELECT count(*) FROM @databend_test/{key}"), None).await;
                *got.entry(sub).or_default() += back["rows"][0][0].as_u64().unwrap() as usize;
            }
            assert_eq!(got, want, "{side}");
            // The partition value is not a column of what was written.
            let back = read(
                &format!("SELECT * FROM @databend_test/{dir}g1/ LIMIT 1"),
                None,
            )
            .await;
            assert_eq!(
                back["schema"].as_array().unwrap().len(),
                5,
                "{}",
                back["schema"]
            );
        }
        for (hostile, needle) in [
            ("'../escape'", "`.` and `..`"),
            ("'/abs'", "absolute"),
            ("'a' || chr(1)", "control character"),
            ("''", "empty"),
        ] {
            let replies = both(&format!(
                "COPY INTO @databend_test/unload/hostile/{{side}}/ FROM (SELECT * FROM @databend_test/unload-src/small.parquet) PARTITION BY ({hostile})"
            ))
            .await;
            for (side, reply) in SIDES.iter().zip(replies) {
                let (kind, message) = reply.expect_err(hostile);
                assert_eq!(kind, "InvalidQuery", "{message}");
                assert!(
                    message.contains("PARTITION BY value") && message.contains(needle),
                    "{hostile}: {message}"
                );
                assert!(listed(&format!("unload/hostile/{side}/")).await.is_empty());
            }
        }
        let escaped = listed("unload/escape").await;
        assert!(escaped.is_empty(), "{escaped:?}");
        no_upload_in_progress("unload/part/").await;
        no_upload_in_progress("unload/hostile/").await;
    })
}

/// "A 1 GB output in a 512 MB function must succeed": one CSV file of more than a GiB
/// (SINGLE, a multipart upload of 8 MiB parts), written by the WASI component with 512 MB,
/// whose memory the host enforces.
#[test]
fn a_gigabyte_unloads_in_a_512_mb_function() {
    block_on(async {
        let w = world().await;
        let function = run::load_stage_query(|c| {
            c.memory_size_mb = 512;
            c.timeout = Duration::from_secs(300);
            c.environment
                .insert("XSTAGE_ALLOW_WRITES".into(), "true".into());
        })
        .await;
        let copies = 100;
        let values: Vec<String> = (0..copies).map(|i| format!("({i})")).collect();
        let sql = format!(
            "COPY INTO @databend_test/unload/gigabyte/ FROM (SELECT b.* FROM @databend_test/unload-src/big.parquet b \
             CROSS JOIN (VALUES {}) AS v(k)) FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE",
            values.join(", ")
        );
        let (reply, stats) = run::wasi(&function, &event(w, &sql)).await;
        let answer = reply.unwrap_or_else(|e| panic!("{e:?}"));
        let rows = (BIG * copies) as u64;
        assert_eq!(answer["rows"][0][0].as_u64(), Some(rows));
        let data = check_commit(&answer, "unload/gigabyte/").await;
        let (size, etag) = data.values().next().unwrap();
        assert!(*size > 1 << 30, "{size} bytes");
        let parts: u64 = etag.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(parts, size.div_ceil(8 << 20), "8 MiB parts: {etag}");
        assert!(
            stats.peak_memory_bytes <= 512 << 20,
            "{}",
            stats.peak_memory_bytes
        );
        eprintln!(
            "{size} bytes, {rows} rows, {parts} parts in {:?}; guest peak {} MB of 512",
            stats.duration,
            stats.peak_memory_bytes >> 20
        );
        no_upload_in_progress("unload/gigabyte/").await;
    })
}
