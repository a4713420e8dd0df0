//! `COPY INTO` under enforced IAM: the function writes through the `xstage policy --write`
//! role with its own statement-scoped session; those credentials cannot create outside the
//! statement's names, cannot delete or replace anything else, and cannot replace their own
//! files; a read-only role is `S3AccessDenied` naming `s3:PutObject`; writes off is
//! `WritesNotAllowed` before any call.
//!
//! fakecloud 0.51 honours `If-None-Match: *` (412) but does not evaluate the
//! `s3:if-none-match` condition key (a policy conditioned on it denies every put), so the
//! function runs here with `XSTAGE_WRITE_REQUIRE_IF_NONE_MATCH=false`; the document with the
//! condition is checked as JSON (`xstage_core::access::documents`'s unit tests).

use super::*;
use xstage_core::access::documents::WriteGrant;

const WRITES_ON: [(&str, &str); 2] = [
    ("XSTAGE_ALLOW_WRITES", "true"),
    ("XSTAGE_WRITE_REQUIRE_IF_NONE_MATCH", "false"),
];

async fn put_if_absent(s3: &aws_like::S3, key: &str) -> Result<(), String> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .if_none_match("*")
        .body(bytes::Bytes::from_static(b"y").into())
        .send()
        .await
        .map(drop)
        .map_err(|e| xstage_tests::fakecloud::code(&e))
}

#[test]
fn a_copy_creates_only_its_own_names() {
    let w = &*WORLD;
    let copy = "COPY INTO @secure/out/ FROM @secure/data.parquet FILE_FORMAT = (TYPE = CSV)";
    let done = run_as(
        &w.platform,
        &WRITES_ON,
        &event(
            &w.endpoint,
            &w.generated_write_role,
            Some("ext-generated-write"),
            copy,
        ),
    );
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.body["rows"][0][0], json!(ROWS));
    let query_id = done.body["stats"]["query_id"].as_str().unwrap().to_string();

    xstage_tests::runtime().block_on(async {
        // The session a COPY with query id `q-sec` gets, as the function asks for it.
        let grant = WriteGrant {
            create: vec![
                vec!["out/data_q-sec_".into(), String::new()],
                vec!["out/_xstage_manifest_q-sec.json".into()],
            ],
            replace: None,
            require_if_none_match: false,
        };
        let policy =
            documents::write_session_policy(&w.generated_write_role, &stage_url(), &grant).unwrap();
        let session = fakecloud::assume_role(
            &w.endpoint,
            &w.platform,
            &w.generated_write_role,
            "ext-generated-write",
            Some(&policy),
        )
        .await
        .expect("the write session");
        let s3 = session.s3(&w.endpoint).await;
        let own = "stage/out/data_q-sec_0000_00000000.csv";
        assert_eq!(put_if_absent(&s3, own).await, Ok(()));
        // Its own name again: the conditional write refuses to replace it.
        let again = put_if_absent(&s3, own).await.unwrap_err();
        assert!(
            again.contains("PreconditionFailed") || again.contains("412"),
            "{again}"
        );
        // Anything else under the stage: not its name, so denied, whether new or existing.
        for key in [
            "stage/out/other.csv",
            "stage/data.parquet",
            &format!("stage/out/data_{query_id}_0000_00000000.csv"),
            "outside/new.csv",
        ] {
            assert_eq!(
                aws_like::put(&s3, BUCKET, key).await,
                Err(DENIED.into()),
                "{key}"
            );
        }
        // It deletes nothing but its own names.
        assert_eq!(
            aws_like::delete(&s3, BUCKET, "stage/data.parquet").await,
            Err(DENIED.into())
        );
        assert_eq!(
            aws_like::delete(
                &s3,
                BUCKET,
                &format!("stage/out/_xstage_manifest_{query_id}.json")
            )
            .await,
            Err(DENIED.into())
        );
        assert_eq!(
            aws_like::get(&s3, BUCKET, "stage/data.parquet").await,
            Ok(())
        );
    });
}

#[test]
fn a_read_only_role_is_denied_naming_put_object_and_writes_off_call_nothing() {
    let w = &*WORLD;
    let copy = "COPY INTO @secure/ro/ FROM @secure/data.parquet";
    let denied = run_as(
        &w.platform,
        &WRITES_ON,
        &event(&w.endpoint, &w.generated_role, Some("ext-generated"), copy),
    );
    denied.assert_error(
        "S3AccessDenied",
        &["s3:PutObject", "stage/ro/data_", "xstage policy --write"],
    );

    let off = run(&event(
        NOWHERE,
        &w.generated_write_role,
        Some("ext-generated-write"),
        copy,
    ));
    off.assert_error("WritesNotAllowed", &["XSTAGE_ALLOW_WRITES"]);
}
