//! Checks the test harness itself: LocalStack and moto start and answer, moto records the
//! ExternalId and session name of a real AssumeRole, LocalStack serves S3, and supervised child
//! processes die with the test process however it ends.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use xstage_tests::localstack::{self, localstack};
use xstage_tests::moto::{self, assume_role_calls, moto};
use xstage_tests::process::{ServerCommand, ServerProcess};

/// A suffix unique to this run, for names that must not collide on a shared emulator.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "xstage-tests")
}

fn sts_client(endpoint: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test]
async fn both_emulators_are_up() {
    let ls = localstack();
    eprintln!(
        "LocalStack: {} ({}), ready after {:?}",
        ls.endpoint(),
        ls.kind(),
        ls.startup_time()
    );
    assert!(!ls.endpoint().ends_with('/'));
    if ls.kind() != "env" {
        localstack::check_health(ls.endpoint()).expect("LocalStack health");
    }

    let mt = moto();
    eprintln!(
        "moto: {} ({}), ready after {:?}",
        mt.endpoint(),
        mt.kind(),
        mt.startup_time()
    );
    moto::check_ready(mt.endpoint()).expect("moto answers");
}

/// When a Docker engine answers and holds LocalStack's image, the harness runs LocalStack
/// in a container (testcontainers, on the host's network, bound to 127.0.0.1); otherwise as
/// a process, having said why. Either way it is LocalStack 2026.3.0.
#[tokio::test]
async fn localstack_runs_in_a_container_when_docker_and_its_image_are_here() {
    let ls = localstack();
    if ls.kind() == "env" {
        return;
    }
    match localstack::container_unavailable() {
        None => assert_eq!(ls.kind(), "container", "Docker and the image are here"),
        Some(why) => {
            eprintln!("LocalStack is a process: {why}");
            assert_eq!(ls.kind(), "process");
        }
    }
    assert!(
        ls.endpoint().starts_with("http://127.0.0.1:"),
        "{}",
        ls.endpoint()
    );
    let health =
        xstage_tests::process::http_get_json(&format!("{}/_localstack/health", ls.endpoint()))
            .expect("health");
    assert_eq!(health["version"], "2026.3.0", "{health}");
}

#[tokio::test]
async fn moto_records_the_external_id_of_assume_role() {
    let endpoint = moto().endpoint();
    let session = format!("harness-{}", unique());
    let external_id = format!("ext-{}", unique());
    let role_arn = "arn:aws:iam::123456789012:role/xstage-harness";

    let out = sts_client(endpoint)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(&session)
        .external_id(&external_id)
        .send()
        .await
        .expect("AssumeRole against moto");
    assert!(
        out.credentials().is_some(),
        "AssumeRole returned credentials"
    );

    let calls = assume_role_calls(endpoint).expect("read moto's data.json");
    let ours: Vec<_> = calls
        .iter()
        .filter(|c| c.role_session_name == session)
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "exactly one recorded call for {session}: {calls:?}"
    );
    assert_eq!(ours[0].external_id.as_deref(), Some(external_id.as_str()));
    assert_eq!(ours[0].role_arn, role_arn);
}

#[tokio::test]
async fn localstack_serves_s3() {
    let s3 = s3_client(localstack().endpoint());
    let bucket = format!("xstage-harness-{}", unique());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    let listed = s3.list_buckets().send().await.expect("ListBuckets");
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.contains(&bucket.as_str()), "{bucket} in {names:?}");
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("DeleteBucket");
}

/// Tells [`lifeline_child`] how to end; unset in a normal run, where it does nothing.
const CHILD_MODE: &str = "XSTAGE_HARNESS_CHILD_MODE";

/// Run by [`supervised_children_die_with_the_test_process`] in a child test process: starts a
/// supervised server that has a child of its own and a scratch directory, leaks its guard (as a
/// `static` would), prints the process group and then ends as [`CHILD_MODE`] says.
#[test]
#[ignore = "helper, run in a child process by supervised_children_die_with_the_test_process"]
fn lifeline_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let scratch = std::env::temp_dir().join(format!("xstage-lifeline-{}", unique()));
    std::fs::create_dir_all(&scratch).expect("create the scratch directory");
    // In "kill" mode the server ignores SIGTERM, so the supervisor has to escalate to SIGKILL.
    let script = if mode == "kill" {
        "trap '' TERM; sleep 300 & sleep 300"
    } else {
        "sleep 300 & sleep 300"
    };
    let command = ServerCommand::new("lifeline-check", "/bin/sh")
        .args(["-c", script])
        .remove_on_exit(&scratch);
    let server: &'static ServerProcess = Box::leak(Box::new(
        ServerProcess::spawn(&command).expect("spawn the server"),
    ));
    std::thread::sleep(Duration::from_millis(300));
    println!("PGID {} SCRATCH {}", server.pgid(), scratch.display());
    match mode.as_str() {
        "exit" => std::process::exit(0),
        "panic" => panic!("the test panics while its server runs"),
        "kill" => {
            // SIGKILL ourselves: no destructor, no atexit, nothing but the kernel closing fds.
            let _ = Command::new("/bin/sh")
                .args(["-c", "kill -s KILL $PPID"])
                .status();
            std::thread::sleep(Duration::from_secs(30));
            unreachable!("still alive after SIGKILL");
        }
        other => panic!("unknown {CHILD_MODE} {other}"),
    }
}

/// True while any process of group `pgid` exists.
fn group_alive(pgid: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", r#"kill -s 0 -- "-$1" 2>/dev/null"#, "sh", pgid])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn supervised_children_die_with_the_test_process() {
    let exe = std::env::current_exe().expect("path of this test binary");
    for mode in ["exit", "panic", "kill"] {
        let output = Command::new(&exe)
            .args([
                "lifeline_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_MODE, mode)
            .output()
            .expect("run the child test process");
        let stdout = String::from_utf8_lossy(&output.stdout);
        // libtest may print "test lifeline_child ... " on the same line first.
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("PGID ").map(|(_, rest)| rest));
        let line = line.unwrap_or_else(|| {
            panic!(
                "{mode}: no PGID line; stdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (pgid, scratch) = (fields[0], Path::new(fields[2]));

        let deadline = Instant::now() + Duration::from_secs(15);
        while (group_alive(pgid) || scratch.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !group_alive(pgid),
            "{mode}: process group {pgid} still alive"
        );
        assert!(
            !scratch.exists(),
            "{mode}: {} not removed",
            scratch.display()
        );
    }
}
