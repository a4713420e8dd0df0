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

/// The session the function asks for a `COPY INTO @<target>/<dir>` with query id `query_id`
/// from the `secure` stage: S3 through it.
async fn write_session(w: &World, target: &StageUrl, dir: &str, query_id: &str) -> aws_like::S3 {
    let grant = WriteGrant {
        create: vec![
            vec![format!("{dir}data_{query_id}_"), String::new()],
            vec![format!("{dir}_xstage_manifest_{query_id}.json")],
        ],
        replace: None,
        require_if_none_match: false,
    };
    let policy =
        documents::write_session_policy(&w.generated_write_role, &stage_url(), target, &grant)
            .unwrap();
    let session = fakecloud::assume_role(
        &w.endpoint,
        &w.platform,
        &w.generated_write_role,
        "ext-generated-write",
        Some(&policy),
    )
    .await
    .expect("the write session");
    session.s3(&w.endpoint).await
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
        let s3 = write_session(w, &stage_url(), "out/", "q-sec").await;
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

/// A `COPY INTO` another stage of the connection (`curated`, under the same role's
/// permissions): it reads the source stage and creates only in the target; the session a
/// statement gets creates its names there and nowhere in the source.
#[test]
fn a_copy_into_another_stage_creates_only_there() {
    let w = &*WORLD;
    let curated = StageUrl::new(BUCKET, &format!("{STAGE_PREFIX}curated/")).unwrap();
    let mut e = event(
        &w.endpoint,
        &w.generated_write_role,
        Some("ext-generated-write"),
        "COPY INTO @curated/c/ FROM @secure/data.parquet FILE_FORMAT = (TYPE = CSV)",
    );
    e["stages"] =
        json!([{"name": "curated", "url": curated.to_string(), "connection_name": "acme"}]);
    let done = run_as(&w.platform, &WRITES_ON, &e);
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.body["rows"][0][0], json!(ROWS));
    let query_id = done.body["stats"]["query_id"].as_str().unwrap().to_string();

    xstage_tests::runtime().block_on(async {
        let s3 = write_session(w, &curated, "c/", "q-cur").await;
        // The statement's manifest is in the target, which the session reads.
        let manifest = format!("{STAGE_PREFIX}curated/c/_xstage_manifest_{query_id}.json");
        assert_eq!(aws_like::get(&s3, BUCKET, &manifest).await, Ok(()));
        let own = format!("{STAGE_PREFIX}curated/c/data_q-cur_0000_00000000.csv");
        assert_eq!(put_if_absent(&s3, &own).await, Ok(()));
        // The same name in the source stage is not the statement's.
        assert_eq!(
            aws_like::put(
                &s3,
                BUCKET,
                &format!("{STAGE_PREFIX}c/data_q-cur_0000_00000000.csv")
            )
            .await,
            Err(DENIED.into())
        );
        assert_eq!(
            aws_like::get(&s3, BUCKET, &format!("{STAGE_PREFIX}data.parquet")).await,
            Ok(())
        );
    });
}
