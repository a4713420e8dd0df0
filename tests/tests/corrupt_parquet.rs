//! Corrupt and hostile Parquet in LocalStack: each file gets a typed `InvalidParquet`,
//! natively and as the WASI component under the host with 256 MB and a 30 s timeout (so
//! within that memory and time: an allocation past the limit would trap the guest, a hang
//! would end as `Timeout`), and the same execution environment then answers a valid file.
//!
//! The files are generated here: real files cut or patched, and hand-forged ones
//! (`xstage_tests::forge`) whose headers and footers claim what no writer library produces.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parquet::basic::Compression;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use xstage_host::Function;
use xstage_tests::forge::{self, Forge, codec};
use xstage_tests::run::{self, Reply};
use xstage_tests::{fixtures, localstack, seed};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(xstage_tests::runtime);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    run::block_on(&RUNTIME, Duration::from_secs(600), f)
}

const MEMORY_MB: u32 = 256;
const TIMEOUT: Duration = Duration::from_secs(30);
const VALID_ROWS: usize = 1000;

/// One hostile file: its name under `corrupt/`, its bytes, the query that reaches the
/// corruption, and what the error message must say.
struct Case {
    name: &'static str,
    body: Bytes,
    sql: &'static str,
    says: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let people = fixtures::people(200);
    let real = fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, 50);
    let star = "SELECT * FROM @databend_test/corrupt/{}.parquet LIMIT 1";
    let sum = "SELECT sum(v) FROM @databend_test/corrupt/{}.parquet";
    let footer_len = u32::from_le_bytes(real[real.len() - 8..real.len() - 4].try_into().unwrap());
    vec![
        Case {
            name: "truncated-half",
            body: real.slice(..real.len() / 2),
            sql: star,
            says: &["does not end with the Parquet magic"],
        },
        Case {
            name: "truncated-last-byte",
            body: real.slice(..real.len() - 1),
            sql: star,
            says: &["does not end with the Parquet magic"],
        },
        Case {
            name: "truncated-footer",
            // The data and the trailer, with the footer's first half cut out.
            body: {
                let cut = real.len() - 8 - footer_len as usize / 2;
                let mut b = real[..real.len() - 8 - footer_len as usize].to_vec();
                b.extend_from_slice(&real[cut..]);
                Bytes::from(b)
            },
            sql: star,
            says: &[],
        },
        Case {
            name: "bad-magic",
            body: forge::with_magic(&real, b"PAR2"),
            sql: star,
            says: &["does not end with the Parquet magic"],
        },
        Case {
            name: "footer-longer-than-file",
            body: forge::with_footer_len(&real, real.len() as u32 + 100),
            sql: star,
            says: &["more than the", "file holds"],
        },
        Case {
            name: "footer-above-64mb",
            body: forge::padded_with_footer_len(66 << 20, 65 << 20),
            sql: star,
            says: &["more than the 67108864-byte limit"],
        },
        Case {
            name: "billions-of-rows",
            body: Forge {
                claimed_rows: Some(5_000_000_000),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: "SELECT count(*) FROM @databend_test/corrupt/{}.parquet",
            says: &["5000000000 rows", "holds 1000 values"],
        },
        Case {
            name: "billions-of-columns",
            body: Forge {
                claimed_schema_nodes: Some(2_000_000_000),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: star,
            says: &["2000000000 elements"],
        },
        Case {
            name: "billions-of-children",
            body: Forge {
                claimed_children: Some(2_000_000_000),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: star,
            says: &["2000000000 children"],
        },
        Case {
            name: "billions-of-row-groups",
            body: Forge {
                claimed_row_groups: Some(2_000_000_000),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: star,
            says: &["2000000000 elements"],
        },
        Case {
            name: "page-declares-2gb",
            body: Forge {
                codec: codec::SNAPPY,
                declared_page_size: Some(i32::MAX as i64),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: sum,
            says: &["2147483647 bytes uncompressed"],
        },
        Case {
            name: "gzip-bomb-2gb",
            body: Forge {
                codec: codec::GZIP,
                page_data: Some(forge::gzip_bomb(2)),
                ..Forge::valid(VALID_ROWS)
            }
            .bytes(),
            sql: sum,
            says: &["inflates past the 4000 bytes"],
        },
    ]
}

struct World {
    endpoint: String,
    cases: Vec<Case>,
}

static WORLD: OnceCell<World> = OnceCell::const_new();

async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let endpoint = localstack::localstack().endpoint().to_string();
            let people = fixtures::people(10);
            let test = fixtures::write_parquet(
                &[fixtures::people_batch(&people)],
                Compression::SNAPPY,
                10,
            );
            let admin = seed::seed(&endpoint, test).await.expect("seed");
            let cases = cases();
            for case in &cases {
                let key = format!("{}corrupt/{}.parquet", seed::PREFIX, case.name);
                admin
                    .put(seed::BUCKET, &key, case.body.clone())
                    .await
                    .expect("upload");
            }
            let valid = Forge {
                codec: codec::UNCOMPRESSED,
                ..Forge::valid(VALID_ROWS)
            };
            admin
                .put(
                    seed::BUCKET,
                    &format!("{}forge/valid.parquet", seed::PREFIX),
                    valid.bytes(),
                )
                .await
                .expect("upload");
            World { endpoint, cases }
        })
        .await
}

async fn function() -> &'static Function {
    static FUNCTION: OnceCell<Function> = OnceCell::const_new();
    run::stage_query(&FUNCTION, |config| {
        config.memory_size_mb = MEMORY_MB;
        config.timeout = TIMEOUT;
    })
    .await
}

async fn native(event: &Value) -> Reply {
    tokio::time::timeout(TIMEOUT, run::native(event.clone()))
        .await
        .unwrap_or_else(|_| Err(("Timeout".into(), "the native run took too long".into())))
}

/// The WASI run, and the environment's peak memory.
async fn wasi(event: &Value) -> (Reply, u64) {
    let (reply, stats) = run::wasi(function().await, event).await;
    (reply, stats.peak_memory_bytes)
}

#[track_caller]
fn assert_invalid(case: &Case, how: &str, reply: &Reply) {
    match reply {
        Err((kind, message)) => {
            assert_eq!(kind, "InvalidParquet", "{} ({how}): {message}", case.name);
            let key = format!("corrupt/{}.parquet", case.name);
            assert!(message.contains(&key), "{} ({how}): {message}", case.name);
            for s in case.says {
                assert!(
                    message.contains(s),
                    "{} ({how}) should say {s:?}: {message}",
                    case.name
                );
            }
        }
        Ok(v) => panic!("{} ({how}) should fail, got {v}", case.name),
    }
}

#[test]
fn every_hostile_file_is_invalid_parquet_within_memory_and_time() {
    block_on(async {
        let w = world().await;
        for case in &w.cases {
            let sql = case.sql.replace("{}", case.name);
            let event = seed::seed_event(&w.endpoint, &sql);

            let started = Instant::now();
            assert_invalid(case, "native", &native(&event).await);
            let native_time = started.elapsed();

            let started = Instant::now();
            let (reply, peak) = wasi(&event).await;
            assert_invalid(case, "WASI", &reply);
            assert!(
                peak <= u64::from(MEMORY_MB) << 20,
                "{}: peak {peak}",
                case.name
            );
            eprintln!(
                "{:<26} native {:>6.0} ms  WASI {:>6.0} ms  guest peak {:>4} MB",
                case.name,
                native_time.as_secs_f64() * 1000.0,
                started.elapsed().as_secs_f64() * 1000.0,
                peak >> 20
            );
        }
    });
}

#[test]
fn the_environment_keeps_answering_after_hostile_files() {
    block_on(async {
        let w = world().await;
        let valid = seed::seed_event(
            &w.endpoint,
            "SELECT sum(v) AS s, count(*) AS n FROM @databend_test/forge/valid.parquet",
        );
        let expected = json!([[Forge::valid(VALID_ROWS).sum(), VALID_ROWS]]);
        let (before, _) = wasi(&valid).await;
        assert_eq!(before.expect("the valid forgery reads")["rows"], expected);
        for case in &w.cases {
            let event = seed::seed_event(&w.endpoint, &case.sql.replace("{}", case.name));
            let (reply, _) = wasi(&event).await;
            assert_invalid(case, "WASI", &reply);
            let (after, _) = wasi(&valid).await;
            assert_eq!(
                after.unwrap_or_else(|e| panic!("after {}: {e:?}", case.name))["rows"],
                expected
            );
        }
        assert_eq!(
            native(&valid)
                .await
                .expect("native reads the valid forgery")["rows"],
            expected
        );
    });
}
