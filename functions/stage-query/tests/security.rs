//! The function against an emulator that enforces IAM (fakecloud `--iam strict
//! --verify-sigv4`): allowed principals and the ExternalId rule refuse before STS, the trust
//! policy's ExternalId condition really denies, every session is scoped to its stage, the
//! `xstage policy` documents grant what they claim and no more, and each failure has its own
//! errorType and advice.
//!
//! The function runs as Lambda would run it: the `xstage-query` process with its own
//! configuration in the environment, an IAM user's access key as its identity.
//!
//! One deviation of fakecloud 0.51.0 from AWS shapes these tests: it authorizes
//! `ListObjectsV2` as the IAM action `s3:ListObjectsV2` (AWS: `s3:ListBucket`), so no policy
//! written for AWS allows a listing there, and the `s3:prefix` condition on listings cannot be
//! shown under it; the documents' listing statements are checked by unit tests and accepted by
//! LocalStack's IAM (`emulator/tests/serve.rs`). (It also authorizes HEAD as
//! `s3:HeadObject`; xstage sends no HEAD: it learns an object's size from a suffix GET. And it
//! answers `NoSuchKey` for a bucket that does not exist, so `NoSuchBucket` is provoked
//! against LocalStack, in `diagnostics.rs`.)

use std::path::Path;
use std::sync::LazyLock;

use bytes::Bytes;
use parquet::basic::Compression;
use serde_json::{Value, json};
use xstage_core::access::documents;
use xstage_core::stage::StageUrl;
use xstage_tests::fakecloud::{self, Keys};
use xstage_tests::fixtures;
use xstage_tests::query_cli::{self, QueryRun};

#[path = "security/writes.rs"]
mod writes;

const BUCKET: &str = "xstage-secure";
const STAGE_PREFIX: &str = "stage/";
const ROWS: usize = 7;

/// A loopback port where nothing listens: an STS or S3 call there fails with
/// `EndpointUnreachable`, so any other answer proves no call was made.
const NOWHERE: &str = "http://127.0.0.1:9";

/// fakecloud's code for a denied S3 call (AWS says `AccessDenied`).
const DENIED: &str = "AccessDeniedException";

struct World {
    endpoint: String,
    platform: Keys,
    platform_arn: String,
    wide_role: String,
    generated_role: String,
    generated_write_role: String,
    other_principal_role: String,
    no_s3_role: String,
    /// Trusts the platform only for the SourceIdentity `xstage.acme.secure`.
    source_identity_role: String,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    xstage_tests::runtime().block_on(async {
        let endpoint = fakecloud::fakecloud().endpoint().to_string();
        let root = Keys::root().s3(&endpoint).await;
        root.create_bucket().bucket(BUCKET).send().await.expect("bucket");
        let people = fixtures::people(ROWS);
        let body = fixtures::write_parquet(&[fixtures::people_batch(&people)], Compression::SNAPPY, ROWS);
        for key in ["stage/data.parquet", "outside/secret.parquet", "stage-sibling/x.parquet"] {
            root.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(Bytes::clone(&body).into())
                .send()
                .await
                .expect("upload");
        }

        // The platform's workload identity: may assume the customer roles, nothing else.
        let (platform_arn, platform) = fakecloud::create_user(
            &endpoint,
            "xstage-platform",
            &json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
                "Resource": format!("arn:aws:iam::{}:role/customer-*", fakecloud::ACCOUNT)
            }]}),
        )
        .await
        .expect("platform user");

        let everything = read_everything();
        let stage = stage_url();
        let role = |name: &'static str, trust: Value, permissions: Value| {
            let endpoint = endpoint.clone();
            async move {
                fakecloud::create_role(&endpoint, name, &trust, &permissions)
                    .await
                    .expect(name)
            }
        };
        World {
            wide_role: role(
                "customer-wide",
                documents::trust_policy(&platform_arn, "ext-wide"),
                everything.clone(),
            )
            .await,
            generated_role: role(
                "customer-generated",
                documents::trust_policy(&platform_arn, "ext-generated"),
                documents::permission_policy("aws", &stage, false),
            )
            .await,
            generated_write_role: role(
                "customer-generated-write",
                documents::trust_policy(&platform_arn, "ext-generated-write"),
                documents::permission_policy("aws", &stage, true),
            )
            .await,
            other_principal_role: role(
                "customer-other-principal",
                documents::trust_policy(
                    &format!("arn:aws:iam::{}:user/someone-else", fakecloud::ACCOUNT),
                    "ext-other",
                ),
                everything,
            )
            .await,
            no_s3_role: role(
                "customer-no-s3",
                documents::trust_policy(&platform_arn, "ext-no-s3"),
                json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::another-bucket/*"
                }]}),
            )
            .await,
            source_identity_role: role("customer-source-identity", {
                let mut trust = documents::trust_policy(&platform_arn, "ext-source");
                trust["Statement"][0]["Condition"]["StringEquals"]["sts:SourceIdentity"] =
                    json!("xstage.acme.secure");
                trust
            }, read_everything())
            .await,
            endpoint,
            platform,
            platform_arn,
        }
    })
});

/// A permission policy reading every bucket: the stage's limits must come from xstage.
fn read_everything() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]
    }]})
}

fn stage_url() -> StageUrl {
    StageUrl::new(BUCKET, STAGE_PREFIX).unwrap()
}

fn event(endpoint: &str, role_arn: &str, external_id: Option<&str>, query: &str) -> Value {
    let mut connection = json!({
        "name": "acme",
        "role_arn": role_arn,
        "region": "us-east-1",
        "endpoint_url": endpoint,
    });
    if let Some(id) = external_id {
        connection["external_id"] = json!(id);
    }
    json!({
        "connection": connection,
        "stage": {"name": "secure", "url": format!("s3://{BUCKET}/{STAGE_PREFIX}"), "connection_name": "acme"},
        "query": query,
    })
}

/// The function, configured as the template configures it, with `keys` as its identity.
fn run_as(keys: &Keys, extra: &[(&'static str, &str)], event: &Value) -> QueryRun {
    let mut env = keys.env();
    env.push(("AWS_REGION", "us-east-1".into()));
    env.push((
        "XSTAGE_ALLOWED_ROLE_ARNS",
        format!("arn:aws:iam::{}:role/customer-*", fakecloud::ACCOUNT),
    ));
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k, v.to_string()));
    }
    query_cli::run(Path::new(env!("CARGO_BIN_EXE_xstage-query")), &env, event)
}

fn run(event: &Value) -> QueryRun {
    run_as(&WORLD.platform, &[], event)
}

fn count(run: &QueryRun) -> Value {
    assert_eq!(run.code, Some(0), "{:?}", run);
    run.body["rows"][0][0].clone()
}

#[test]
fn a_role_granting_the_whole_bucket_still_reads_only_the_stage() {
    let w = &*WORLD;
    // 1. The customer's role may read the whole bucket; a query on the stage works.
    let ok = run(&event(
        &w.endpoint,
        &w.wide_role,
        Some("ext-wide"),
        "SELECT count(*) FROM @secure/data.parquet",
    ));
    assert_eq!(count(&ok), json!(ROWS));

    // 2. A crafted path outside the stage is refused before any call: the endpoint is one
    //    where nothing listens, and the answer is the path's error, not EndpointUnreachable.
    for path in [
        "@secure/../outside/secret.parquet",
        "@secure/stage/../../outside/secret.parquet",
    ] {
        let crafted = run(&event(
            NOWHERE,
            &w.wide_role,
            Some("ext-wide"),
            &format!("SELECT * FROM {path}"),
        ));
        assert_eq!(crafted.code, Some(1), "{crafted:?}");
        assert!(
            matches!(crafted.error_type(), "InvalidQuery" | "InvalidEvent"),
            "{path}: {}",
            crafted.body
        );
        assert!(
            crafted.error_message().contains(".."),
            "{}",
            crafted.error_message()
        );
    }

    // 3. The session credentials themselves cannot leave the stage: the same AssumeRole the
    //    function makes (its session policy), then S3 calls outside the prefix, denied by
    //    the emulator. Without the session policy the same role reads them: the policy is
    //    what narrows.
    xstage_tests::runtime().block_on(async {
        let policy = documents::session_policy(&w.wide_role, &stage_url()).unwrap();
        let scoped = fakecloud::assume_role(
            &w.endpoint,
            &w.platform,
            &w.wide_role,
            "ext-wide",
            Some(&policy),
        )
        .await
        .expect("scoped session");
        let unscoped =
            fakecloud::assume_role(&w.endpoint, &w.platform, &w.wide_role, "ext-wide", None)
                .await
                .expect("unscoped session");
        let (scoped, unscoped) = (scoped.s3(&w.endpoint).await, unscoped.s3(&w.endpoint).await);
        use aws_like::get;
        assert_eq!(get(&scoped, BUCKET, "stage/data.parquet").await, Ok(()));
        for key in ["outside/secret.parquet", "stage-sibling/x.parquet"] {
            assert_eq!(
                get(&scoped, BUCKET, key).await,
                Err(DENIED.to_string()),
                "{key}"
            );
            assert_eq!(
                get(&unscoped, BUCKET, key).await,
                Ok(()),
                "{key} without the session policy"
            );
        }
    });
}

#[test]
fn xstage_policy_documents_grant_exactly_what_they_claim() {
    let w = &*WORLD;
    let ok = run(&event(
        &w.endpoint,
        &w.generated_role,
        Some("ext-generated"),
        "SELECT count(*) FROM @secure/data.parquet",
    ));
    assert_eq!(count(&ok), json!(ROWS));

    xstage_tests::runtime().block_on(async {
        // The role's own credentials, no session policy: what the documents grant.
        let read = fakecloud::assume_role(
            &w.endpoint,
            &w.platform,
            &w.generated_role,
            "ext-generated",
            None,
        )
        .await
        .expect("assume the generated role");
        let read = read.s3(&w.endpoint).await;
        assert_eq!(
            aws_like::get(&read, BUCKET, "stage/data.parquet").await,
            Ok(())
        );
        for key in ["outside/secret.parquet", "stage-sibling/x.parquet"] {
            assert_eq!(
                aws_like::get(&read, BUCKET, key).await,
                Err(DENIED.into()),
                "{key}"
            );
        }
        assert_eq!(
            aws_like::put(&read, BUCKET, "stage/new.parquet").await,
            Err(DENIED.into())
        );
        assert_eq!(
            aws_like::delete(&read, BUCKET, "stage/data.parquet").await,
            Err(DENIED.into())
        );

        // --write adds Put and Delete under the prefix, and nowhere else.
        let write = fakecloud::assume_role(
            &w.endpoint,
            &w.platform,
            &w.generated_write_role,
            "ext-generated-write",
            None,
        )
        .await
        .expect("assume the generated write role");
        let write = write.s3(&w.endpoint).await;
        assert_eq!(
            aws_like::put(&write, BUCKET, "stage/new.parquet").await,
            Ok(())
        );
        assert_eq!(
            aws_like::delete(&write, BUCKET, "stage/new.parquet").await,
            Ok(())
        );
        assert_eq!(
            aws_like::put(&write, BUCKET, "outside/new.parquet").await,
            Err(DENIED.into())
        );

        // The trust policy: the right ExternalId only.
        for wrong in ["ext-generated-x", "EXT-GENERATED"] {
            let denied =
                fakecloud::assume_role(&w.endpoint, &w.platform, &w.generated_role, wrong, None)
                    .await;
            assert_eq!(denied.err(), Some("AccessDenied".to_string()), "{wrong}");
        }
    });
}

#[test]
fn allowed_principals_and_the_external_id_rule_refuse_before_sts() {
    let w = &*WORLD;
    let elsewhere = format!("arn:aws:iam::{}:role/customer-wide", "210987654321");
    let refused = run(&event(NOWHERE, &elsewhere, Some("ext-wide"), "SELECT 1"));
    refused.assert_error("RoleNotAllowed", &[&elsewhere, "XSTAGE_ALLOWED_ROLE_ARNS"]);

    let closed = run_as(
        &w.platform,
        &[("XSTAGE_ALLOWED_ROLE_ARNS", "")],
        &event(NOWHERE, &w.wide_role, Some("ext-wide"), "SELECT 1"),
    );
    closed.assert_error("RoleNotAllowed", &["no allowed principals"]);

    let missing = run(&event(NOWHERE, &w.wide_role, None, "SELECT 1"));
    missing.assert_error("ExternalIdRequired", &[&w.wide_role, "sts:ExternalId"]);

    let misconfigured = run_as(
        &w.platform,
        &[("XSTAGE_REQUIRE_EXTERNAL_ID", "maybe")],
        &event(NOWHERE, &w.wide_role, None, "SELECT 1"),
    );
    misconfigured.assert_error("InvalidConfiguration", &["XSTAGE_REQUIRE_EXTERNAL_ID"]);

    // Allowed to omit it, the request reaches STS, whose trust policy wants one.
    let optional = run_as(
        &w.platform,
        &[("XSTAGE_REQUIRE_EXTERNAL_ID", "false")],
        &event(&w.endpoint, &w.wide_role, None, "SELECT 1"),
    );
    optional.assert_error("AssumeRoleDenied", &["No ExternalId was sent"]);
}

#[test]
fn assume_role_denials_name_the_caller_and_the_external_id() {
    let w = &*WORLD;
    let query = "SELECT count(*) FROM @secure/data.parquet";
    let wrong_id = run(&event(&w.endpoint, &w.wide_role, Some("ext-wrong"), query));
    wrong_id.assert_error(
        "AssumeRoleDenied",
        &[
            &w.wide_role,
            &format!("STS saw the caller as {}", w.platform_arn),
            "sent \"ext-wrong\"",
        ],
    );
    let wrong_principal = run(&event(
        &w.endpoint,
        &w.other_principal_role,
        Some("ext-other"),
        query,
    ));
    wrong_principal.assert_error(
        "AssumeRoleDenied",
        &[&w.other_principal_role, &w.platform_arn, "Principal"],
    );
    let no_role = format!(
        "arn:aws:iam::{}:role/customer-does-not-exist",
        fakecloud::ACCOUNT
    );
    let missing_role = run(&event(&w.endpoint, &no_role, Some("ext-wide"), query));
    missing_role.assert_error("AssumeRoleDenied", &[&no_role, "does not exist"]);
}

#[test]
fn failures_after_the_trust_have_their_own_kinds() {
    let w = &*WORLD;
    let query = "SELECT count(*) FROM @secure/data.parquet";

    // The role is assumed, but its permissions do not cover the stage.
    let denied = run(&event(&w.endpoint, &w.no_s3_role, Some("ext-no-s3"), query));
    denied.assert_error(
        "S3AccessDenied",
        &["s3:GetObject", "arn:aws:s3:::xstage-secure/stage/"],
    );

    // The function's own identity: an unknown key, a wrong secret.
    let unknown = Keys {
        access_key_id: "AKIAUNKNOWNUNKNOWN00".into(),
        secret_access_key: "nope".into(),
        session_token: None,
    };
    let token = run_as(
        &unknown,
        &[],
        &event(&w.endpoint, &w.wide_role, Some("ext-wide"), query),
    );
    token.assert_error("InvalidClientTokenId", &["AWS_ACCESS_KEY_ID"]);
    let bad_secret = Keys {
        secret_access_key: "not-the-secret".into(),
        ..w.platform.clone()
    };
    let signature = run_as(
        &bad_secret,
        &[],
        &event(&w.endpoint, &w.wide_role, Some("ext-wide"), query),
    );
    signature.assert_error("SignatureDoesNotMatch", &["secret key"]);
}

/// Small S3 probes returning the error code, for the direct checks above.
mod aws_like {
    use xstage_tests::fakecloud::code;

    pub type S3 = aws_sdk_s3::Client;

    pub async fn get(s3: &S3, bucket: &str, key: &str) -> Result<(), String> {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| code(&e))
    }

    pub async fn put(s3: &S3, bucket: &str, key: &str) -> Result<(), String> {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes::Bytes::from_static(b"x").into())
            .send()
            .await
            .map(drop)
            .map_err(|e| code(&e))
    }

    pub async fn delete(s3: &S3, bucket: &str, key: &str) -> Result<(), String> {
        s3.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| code(&e))
    }
}

/// README: `sts:AssumeRole` gets a stable `SourceIdentity`, `xstage.<connection>.<stage>`. A
/// role whose trust requires `sts:SourceIdentity` = `xstage.acme.secure` lets the connection
/// `acme`'s stage `secure` in, and refuses the same role and ExternalId from another
/// connection: fakecloud saw the SourceIdentity each sent.
#[test]
fn the_source_identity_is_sent_and_a_trust_policy_can_require_it() {
    let w = &*WORLD;
    let query = "SELECT count(*) FROM @secure/data.parquet";
    let ok = run(&event(
        &w.endpoint,
        &w.source_identity_role,
        Some("ext-source"),
        query,
    ));
    assert_eq!(count(&ok), json!(ROWS));
    let mut other = event(
        &w.endpoint,
        &w.source_identity_role,
        Some("ext-source"),
        query,
    );
    other["connection"]["name"] = json!("globex");
    other["stage"]["connection_name"] = json!("globex");
    let denied = run(&other);
    denied.assert_error("AssumeRoleDenied", &[&w.source_identity_role]);
}
