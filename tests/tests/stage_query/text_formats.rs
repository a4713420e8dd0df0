//! CSV, TSV and NDJSON stages: each format and compression with a known answer, natively and
//! under WASI (through [`run`]), and each kind of malformed input as a typed `InvalidFormat`
//! naming the file and, where a line is at fault, the line.

use super::*;

/// People in each text file.
const ROWS: usize = 300;
/// People in `text/big.csv`, for a LIMIT that stops early.
const BIG_ROWS: usize = 50_000;

struct Text {
    people: Vec<Person>,
    big_len: u64,
}

static TEXT: OnceCell<Text> = OnceCell::const_new();

/// In the TSV, every tenth name and every fifteenth age is NULL (`\N`, Databend's
/// NULL_DISPLAY).
fn tsv(people: &[Person]) -> String {
    people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = if i % 10 == 0 { "\\N" } else { p.name.as_str() };
            let age = if tsv_age_is_null(i) {
                "\\N".to_string()
            } else {
                p.age.to_string()
            };
            format!("{}\t{name}\t{age}\t{}\t{}\n", p.id, p.score, p.active)
        })
        .collect()
}

fn tsv_age_is_null(i: usize) -> bool {
    i % 15 == 1
}

fn csv(people: &[Person]) -> String {
    let mut out = String::from("id,name,age,score,active\n");
    for p in people {
        out.push_str(&format!(
            "{},\"{}\",{},{},{}\n",
            p.id, p.name, p.age, p.score, p.active
        ));
    }
    out
}

fn ndjson(people: &[Person]) -> String {
    people
        .iter()
        .map(|p| {
            // Written by hand: keys in this order, as the columns are expected.
            format!(
                "{{\"id\":{},\"name\":{},\"age\":{},\"score\":{},\"active\":{}}}\n",
                p.id,
                json!(p.name),
                p.age,
                json!(p.score),
                p.active
            )
        })
        .collect()
}

fn zstd(text: &[u8]) -> Bytes {
    Bytes::from(zstd::bulk::compress(text, 3).unwrap())
}

async fn text() -> &'static Text {
    TEXT.get_or_init(|| async {
        let w = world().await;
        let people = fixtures::people(ROWS);
        let big = csv(&fixtures::people(BIG_ROWS));
        let (csv, tsv, ndjson) = (csv(&people), tsv(&people), ndjson(&people));
        let mut ragged = csv.clone().into_bytes();
        // Line 3 (the second person) gets a sixth field.
        let third = ragged
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .unwrap()
            .0;
        ragged.splice(third..third, b",extra".iter().copied());
        let mut latin1 = b"id,name\n1,ok\n2,Ren".to_vec();
        latin1.extend_from_slice(b"\xe9e\n3,ok\n");
        let gz = fixtures::gzip(csv.as_bytes());
        let files: Vec<(&str, Bytes)> = vec![
            ("people.csv", Bytes::from(csv.clone())),
            ("people.csv.gz", gz.clone()),
            ("people.csv.zst", zstd(csv.as_bytes())),
            ("people.tsv", Bytes::from(tsv)),
            ("people.ndjson", Bytes::from(ndjson.clone())),
            ("people.ndjson.zst", zstd(ndjson.as_bytes())),
            ("people.jsonl.gz", fixtures::gzip(ndjson.as_bytes())),
            ("people.data", Bytes::from(ndjson.clone())),
            ("big.csv", Bytes::from(big.clone())),
            ("mixed/a.csv", Bytes::from(csv.clone())),
            ("mixed/b.ndjson", Bytes::from(ndjson.clone())),
            ("bad/ragged.csv", Bytes::from(ragged)),
            // Tab-separated, read as CSV: the names with a comma split in two.
            (
                "bad/wrong-delimiter.csv",
                Bytes::from("id\tname\n1\tdoe\n2\tsmith, john\n"),
            ),
            ("bad/truncated.csv.gz", gz.slice(0..gz.len() / 2)),
            ("bad/latin1.csv", Bytes::from(latin1)),
            // A number column (by its first 1,000 rows) with a word past them.
            ("bad/not-a-number.csv", {
                let mut text = String::from("id,n\n");
                for i in 0..1_200 {
                    text.push_str(&format!(
                        "{i},{}\n",
                        if i == 1_100 {
                            "many".into()
                        } else {
                            i.to_string()
                        }
                    ));
                }
                Bytes::from(text)
            }),
            (
                "bad/broken.ndjson",
                Bytes::from("{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3, \"name\": \n{\"id\": 4}\n"),
            ),
        ];
        for (name, body) in files {
            w.admin
                .put(seed::BUCKET, &format!("{}text/{name}", seed::PREFIX), body)
                .await
                .expect("upload");
        }
        Text {
            people,
            big_len: big.len() as u64,
        }
    })
    .await
}

fn event(sql: &str, file_format: Option<Value>) -> Value {
    let endpoint = &WORLD.get().expect("the world is set up").endpoint;
    let mut event = seed::seed_event(endpoint, sql);
    if let Some(format) = file_format {
        event["stage"]["file_format"] = format;
    }
    event
}

async fn text_query(sql: &str, file_format: Option<Value>) -> Value {
    text().await;
    run(event(sql, file_format))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

async fn text_err(sql: &str, file_format: Option<Value>) -> (String, String) {
    text().await;
    match run(event(sql, file_format)).await {
        Ok(v) => panic!("{sql} should fail, got {v}"),
        Err(e) => e,
    }
}

fn header() -> Option<Value> {
    Some(json!({"type": "CSV", "skip_header": 1}))
}

#[test]
fn a_csv_with_a_header_reads_its_names_and_types() {
    block_on(async {
        let t = text().await;
        let v = text_query(
            "SELECT id, name, age, score, active FROM @databend_test/text/people.csv ORDER BY id LIMIT 3",
            header(),
        )
        .await;
        let want: Vec<Value> = t.people[..3].iter().map(Person::json).collect();
        assert_eq!(rows(&v), &want);
        let types = run::column_types(&v);
        assert_eq!(types, ["BIGINT", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN"]);
    })
}

/// The same aggregates over every format and compression: by extension, by the stage's
/// format, and by the query's `FILE_FORMAT =>` (which takes the stage's options of its type).
#[test]
fn each_format_and_compression_gives_the_known_answer() {
    block_on(async {
        let t = text().await;
        let ages: i64 = t.people.iter().map(|p| i64::from(p.age)).sum();
        let max_score = t.people.iter().map(|p| p.score).fold(f64::MIN, f64::max);
        let named = |n: usize| json!([[ROWS, ages, n, max_score]]);
        let tsv_ages: i64 = t
            .people
            .iter()
            .enumerate()
            .filter(|(i, _)| !tsv_age_is_null(*i))
            .map(|(_, p)| i64::from(p.age))
            .sum();
        let named_sql = |from: &str| {
            format!(
                "SELECT count(*), sum(age), count(name), max(score) FROM @databend_test/text/{from}"
            )
        };
        let cases: Vec<(String, Option<Value>, Value)> = vec![
            (named_sql("people.csv"), header(), named(ROWS)),
            (named_sql("people.csv.gz"), header(), named(ROWS)),
            (named_sql("people.csv.zst"), header(), named(ROWS)),
            (
                named_sql("people.csv.gz"),
                Some(json!({"type": "csv", "skip_header": "1", "compression": "GZIP"})),
                named(ROWS),
            ),
            (named_sql("people.ndjson"), None, named(ROWS)),
            (named_sql("people.ndjson.zst"), None, named(ROWS)),
            (named_sql("people.jsonl.gz"), None, named(ROWS)),
            (
                named_sql("people.data (FILE_FORMAT => 'ndjson')"),
                None,
                named(ROWS),
            ),
            (
                named_sql("people.csv (FILE_FORMAT => 'csv')"),
                header(),
                named(ROWS),
            ),
            (
                "SELECT count(*), sum(column_3), count(column_2), max(column_4) FROM @databend_test/text/people.tsv"
                    .into(),
                None,
                json!([[ROWS, tsv_ages, ROWS - ROWS / 10, max_score]]),
            ),
        ];
        for (sql, format, want) in cases {
            let v = text_query(&sql, format.clone()).await;
            assert_eq!(v["rows"], want, "{sql} with {format:?}");
            assert_eq!(v["stats"]["files"], 1, "{sql}");
        }
    })
}

/// A whole-file read is streamed: a LIMIT stops reading long before the end.
#[test]
fn a_limit_stops_reading_a_text_file_early() {
    block_on(async {
        let t = text().await;
        let v = text_query(
            "SELECT * FROM @databend_test/text/big.csv LIMIT 1",
            header(),
        )
        .await;
        assert_eq!(rows(&v), &vec![fixtures::people(1)[0].json()]);
        let read = v["stats"]["bytes_read"].as_u64().unwrap();
        assert!(
            read < t.big_len / 2,
            "read {read} of {} bytes for one row",
            t.big_len
        );
    })
}

#[test]
fn infer_schema_and_list_read_text_files() {
    block_on(async {
        text().await;
        let v = text_query(
            "SELECT column_name, type FROM INFER_SCHEMA(location => '@databend_test/text/people.ndjson.zst')",
            None,
        )
        .await;
        // DataFusion's JSON inference orders the columns by name.
        assert_eq!(
            v["rows"],
            json!([
                ["active", "BOOLEAN"],
                ["age", "BIGINT"],
                ["id", "BIGINT"],
                ["name", "VARCHAR"],
                ["score", "DOUBLE"]
            ])
        );
        let v = text_query(
            "SELECT column_name FROM INFER_SCHEMA(location => '@databend_test/text/people.csv', file_format => 'CSV')",
            header(),
        )
        .await;
        assert_eq!(
            v["rows"],
            json!([["id"], ["name"], ["age"], ["score"], ["active"]])
        );
        let v = text_query(
            "LIST @databend_test/text/ PATTERN => 'people[.]csv.*'",
            None,
        )
        .await;
        let names: Vec<&Value> = rows(&v).iter().map(|r| &r[0]).collect();
        assert_eq!(
            names,
            [
                "text/people.csv",
                "text/people.csv.gz",
                "text/people.csv.zst"
            ]
        );
    })
}

#[test]
fn a_directory_of_two_formats_is_refused_with_the_fix() {
    block_on(async {
        let (kind, message) =
            text_err("SELECT count(*) FROM @databend_test/text/mixed/", None).await;
        assert_eq!(kind, "InvalidQuery");
        assert!(
            message.contains("two formats") && message.contains("text/mixed/a.csv is CSV"),
            "{message}"
        );
        let v = text_query(
            "SELECT count(*) FROM @databend_test/text/mixed/ (PATTERN => '.*[.]ndjson')",
            None,
        )
        .await;
        assert_eq!(v["rows"], json!([[ROWS]]));
    })
}

/// Each kind of malformed input: the kind, the file, and the line where one is at fault.
#[test]
fn malformed_text_is_an_invalid_format_naming_the_file_and_line() {
    block_on(async {
        let cases: &[(&str, Option<Value>, &[&str])] = &[
            ("bad/ragged.csv", header(), &["bad/ragged.csv", "line 3"]),
            (
                "bad/wrong-delimiter.csv",
                header(),
                &["bad/wrong-delimiter.csv", "line 3", "FIELD_DELIMITER"],
            ),
            (
                "bad/truncated.csv.gz",
                header(),
                &["bad/truncated.csv.gz", "COMPRESSION"],
            ),
            (
                "bad/latin1.csv",
                header(),
                &["bad/latin1.csv", "UTF-8", "line 3"],
            ),
            ("bad/broken.ndjson", None, &["bad/broken.ndjson", "line 3"]),
            (
                "bad/not-a-number.csv",
                header(),
                &["bad/not-a-number.csv", "'many'", "Int64"],
            ),
        ];
        for (file, format, wants) in cases {
            let sql = format!("SELECT * FROM @databend_test/text/{file}");
            let (kind, message) = text_err(&sql, format.clone()).await;
            assert_eq!(kind, "InvalidFormat", "{file}: {message}");
            for want in *wants {
                assert!(message.contains(want), "{file}: {want:?} not in {message}");
            }
        }
    })
}

#[test]
fn bad_file_formats_are_refused_before_any_request() {
    block_on(async {
        text().await;
        for (format, why) in [
            (
                json!({"type": "orc"}),
                "xstage reads CSV, TSV, NDJSON and PARQUET",
            ),
            (json!({"type": "csv", "skip_header": 2}), "SKIP_HEADER"),
            (
                json!({"type": "ndjson", "field_delimiter": ","}),
                "does not take FIELD_DELIMITER",
            ),
            (json!(["csv"]), "must be an object"),
        ] {
            let (kind, message) =
                text_err("SELECT * FROM @databend_test/text/people.csv", Some(format)).await;
            assert_eq!(kind, "InvalidEvent");
            assert!(message.contains(why), "{message}");
        }
    })
}
