//! S3 failing under a `COPY INTO`: the fault proxy (`xstage_tests::fault_proxy`) between the
//! function and LocalStack answers with S3's own errors. A transient error the SDK's retries
//! absorb leaves a complete statement; one that outlasts them (starting the upload, or
//! completing it after every part was sent) fails it with its kind, leaves no file and no
//! upload in progress, and the same event then succeeds.

use xstage_tests::fault_proxy::{Fault, FaultProxy, Only, Service};

use super::*;

fn through(proxy: &FaultProxy, sql: &str) -> Value {
    let w = WORLD.get().expect("the world is made first");
    let mut e = event(w, sql);
    e["connection"]["endpoint_url"] = json!(proxy.url());
    e
}

#[test]
fn s3_errors_while_writing_are_retried_or_leave_nothing() {
    block_on(async {
        let _ = world().await;
        let proxy = FaultProxy::start(localstack::localstack().endpoint()).expect("proxy");
        // One CSV file past the first 8 MiB part: a two-part upload.
        let copy_into = |dir: &str| {
            format!(
                "COPY INTO @databend_test/{dir} FROM (SELECT * FROM @databend_test/unload-src/big.parquet) \
                 FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE"
            )
        };
        for side in SIDES {
            // Two 500s on the first write requests: the SDK's retries absorb them.
            let dir = format!("unload/faults/retried/{side}/");
            let before = proxy.faulted();
            proxy.inject_only(
                Service::S3,
                Fault::s3_internal_error(),
                Only::path(&dir).times(2),
            );
            let sql = copy_into(&dir);
            let answer = on(side, through(&proxy, &sql)).await.expect("retried");
            assert_eq!(answer["rows"][0][0], json!(BIG));
            let data = check_commit(&answer, &dir).await;
            assert!(data.values().next().unwrap().1.ends_with("-2"), "{data:?}");
            assert_eq!(proxy.faulted() - before, 2);
            proxy.clear();
            no_upload_in_progress(&dir).await;

            // SlowDown on every attempt to start the upload (the SDK makes three): the COPY
            // fails `Throttled` with nothing created, and the same event succeeds once S3
            // answers again.
            let dir = format!("unload/faults/throttled/{side}/");
            let sql = copy_into(&dir);
            proxy.inject_only(
                Service::S3,
                Fault::s3_error(503, "SlowDown", "Please reduce your request rate.", &[]),
                Only::path(&dir).times(4),
            );
            let (kind, message) = on(side, through(&proxy, &sql))
                .await
                .expect_err("throttled");
            assert_eq!(kind, "Throttled", "{message}");
            assert!(message.contains(&dir), "{message}");
            proxy.clear();
            assert!(
                listed(&dir).await.is_empty(),
                "a throttled COPY leaves no file"
            );
            no_upload_in_progress(&dir).await;
            let answer = on(side, through(&proxy, &sql))
                .await
                .expect("S3 answers again");
            check_commit(&answer, &dir).await;

            // CompleteMultipartUpload failing on every attempt: both parts were sent, the
            // upload is aborted, and nothing is left.
            let dir = format!("unload/faults/complete/{side}/");
            let sql = copy_into(&dir);
            let before = proxy.faulted();
            proxy.inject_only(
                Service::S3,
                Fault::s3_internal_error(),
                Only::path(&dir).method("POST").query("uploadId"),
            );
            let (kind, message) = on(side, through(&proxy, &sql))
                .await
                .expect_err("never completes");
            assert_eq!(kind, "ServiceUnavailable", "{message}");
            assert!(message.contains("CompleteMultipartUpload"), "{message}");
            assert_eq!(proxy.faulted() - before, 3, "the SDK's three attempts");
            proxy.clear();
            assert!(listed(&dir).await.is_empty(), "no file");
            no_upload_in_progress(&dir).await;
        }
    })
}
