//! The seed scenario, set up for real against an emulator: the customer's bucket, the role
//! that trusts the platform with an ExternalId condition, its permission policy, and data.

use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use serde_json::{Value, json};

/// The customer's account in the seed.
pub const CUSTOMER_ACCOUNT: &str = "987654321987";
/// The platform's (the function's own) account.
pub const PLATFORM_ACCOUNT: &str = "123456789012";
pub const BUCKET: &str = "test-bucket-123";
pub const PREFIX: &str = "optional/prefix/";
pub const ROLE_NAME: &str = "databend-test";
pub const EXTERNAL_ID: &str = "my-external-id-123";
pub const REGION: &str = "us-east-2";
pub const CONNECTION: &str = "databend_test";
pub const STAGE: &str = "databend_test";

pub fn role_arn() -> String {
    format!("arn:aws:iam::{CUSTOMER_ACCOUNT}:role/{ROLE_NAME}")
}

/// The platform principal the customer's role trusts.
pub fn platform_principal() -> String {
    format!("arn:aws:iam::{PLATFORM_ACCOUNT}:root")
}

/// The seed's trust policy: the platform as Principal, with `StringEquals sts:ExternalId`.
pub fn trust_policy(principal: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// The seed's permission policy: ListBucket on the bucket, `s3:*Object` on its objects.
pub fn permission_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{bucket}")},
            {"Effect": "Allow", "Action": "s3:*Object", "Resource": format!("arn:aws:s3:::{bucket}/*")}
        ]
    })
}

/// Clients acting as the customer's administrator. LocalStack derives the account from a
/// 12-digit access key id, so resources land in the customer's account.
#[derive(Clone)]
pub struct Admin {
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
}

impl Admin {
    pub async fn new(endpoint: &str, account: &str, region: &str) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                account,
                "test",
                None,
                None,
                "xstage-tests",
            ))
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let iam = aws_sdk_iam::Client::new(&config);
        Self { s3, iam }
    }

    /// Creates a bucket in `region`; an existing bucket of ours is fine.
    pub async fn create_bucket(&self, bucket: &str, region: &str) -> Result<()> {
        let mut req = self.s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("{e:?}");
                if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists")
                {
                    Ok(())
                } else {
                    Err(e).with_context(|| format!("creating bucket {bucket}"))
                }
            }
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("uploading s3://{bucket}/{key}"))?;
        Ok(())
    }

    /// Key → (size, ETag without quotes) of every object under `prefix`.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<std::collections::BTreeMap<String, (u64, String)>> {
        let mut out = std::collections::BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
            for o in page.contents() {
                let etag = o.e_tag().unwrap_or_default().trim_matches('"').to_string();
                let key = o.key().unwrap_or_default().to_string();
                out.insert(key, (o.size().unwrap_or(0) as u64, etag));
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// [`Admin::list`] of the seed's stage directory `dir`, keys relative to the stage.
    pub async fn list_stage(
        &self,
        dir: &str,
    ) -> Result<std::collections::BTreeMap<String, (u64, String)>> {
        let all = self.list(BUCKET, &format!("{PREFIX}{dir}")).await?;
        Ok(all
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(PREFIX).unwrap_or(&k).to_string(), v))
            .collect())
    }

    /// The body of the seed's stage object `key` (stage-relative).
    pub async fn get_stage(&self, key: &str) -> Result<Bytes> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}{key}"))
            .send()
            .await
            .with_context(|| format!("getting s3://{BUCKET}/{PREFIX}{key}"))?;
        Ok(out.body.collect().await?.into_bytes())
    }

    /// The manifest of `COPY INTO` query `query_id` under the stage directory `dir`, checked
    /// against the listing: it must list exactly the data files there, with their sizes and
    /// ETags. Returns the manifest and those files (stage-relative name → (size, ETag)).
    pub async fn committed(
        &self,
        dir: &str,
        query_id: &str,
    ) -> Result<(Value, std::collections::BTreeMap<String, (u64, String)>)> {
        let mut data = self.list_stage(dir).await?;
        let key = format!("{dir}_xstage_manifest_{query_id}.json");
        anyhow::ensure!(data.remove(&key).is_some(), "no manifest {key} in {data:?}");
        let manifest: Value = serde_json::from_slice(&self.get_stage(&key).await?)?;
        let files: std::collections::BTreeMap<String, (u64, String)> = manifest["files"]
            .as_array()
            .context("the manifest's files")?
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap_or_default().to_string();
                let etag = f["etag"].as_str().unwrap_or_default().to_string();
                (name, (f["size"].as_u64().unwrap_or(u64::MAX), etag))
            })
            .collect();
        anyhow::ensure!(
            files == data,
            "the manifest must list exactly what exists under {dir}: it lists {files:?}, S3 holds {data:?}"
        );
        Ok((manifest, data))
    }

    /// The keys of the multipart uploads open under `prefix`.
    pub async fn open_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let out = self
            .s3
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .with_context(|| format!("listing the uploads under s3://{bucket}/{prefix}"))?;
        Ok(out
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_string))
            .collect())
    }

    /// Uploads `parts` as one multipart object (every part but the last at least 5 MiB).
    pub async fn put_multipart(&self, bucket: &str, key: &str, parts: Vec<Bytes>) -> Result<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("starting a multipart upload of s3://{bucket}/{key}"))?;
        let id = upload.upload_id().context("an upload id")?;
        let mut done = Vec::new();
        for (i, body) in parts.into_iter().enumerate() {
            let number = i as i32 + 1;
            let part = self
                .s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .with_context(|| format!("uploading part {number} of s3://{bucket}/{key}"))?;
            done.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
        }
        self.s3
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("completing s3://{bucket}/{key}"))?;
        Ok(())
    }

    /// Creates (or updates) a role with a trust policy and one inline permission policy.
    pub async fn create_role(&self, name: &str, trust: &Value, permissions: &Value) -> Result<()> {
        let created = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await;
        if let Err(e) = created {
            let text = format!("{e:?}");
            if !text.contains("EntityAlreadyExists") {
                return Err(e).with_context(|| format!("creating role {name}"));
            }
            self.iam
                .update_assume_role_policy()
                .role_name(name)
                .policy_document(trust.to_string())
                .send()
                .await
                .with_context(|| format!("updating the trust policy of {name}"))?;
        }
        self.iam
            .put_role_policy()
            .role_name(name)
            .policy_name(format!("{name}-s3-read"))
            .policy_document(permissions.to_string())
            .send()
            .await
            .with_context(|| format!("putting the permission policy of {name}"))?;
        Ok(())
    }
}

/// Creates the seed's bucket, role and policies, and uploads `test.parquet`.
pub async fn seed(endpoint: &str, test_parquet: Bytes) -> Result<Admin> {
    let admin = Admin::new(endpoint, CUSTOMER_ACCOUNT, REGION).await;
    admin.create_bucket(BUCKET, REGION).await?;
    admin
        .create_role(
            ROLE_NAME,
            &trust_policy(&platform_principal(), EXTERNAL_ID),
            &permission_policy(BUCKET),
        )
        .await?;
    admin
        .put(BUCKET, &format!("{PREFIX}test.parquet"), test_parquet)
        .await?;
    Ok(admin)
}

/// The seed's three Databend statements as one event:
///
/// ```sql
/// CREATE CONNECTION databend_test STORAGE_TYPE='s3'
///   ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123';
/// CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/'
///   CONNECTION=(CONNECTION_NAME='databend_test');
/// SELECT * FROM @databend_test/test.parquet LIMIT 1;
/// ```
pub fn seed_event(endpoint: &str, query: &str) -> Value {
    json!({
        "connection": {
            "name": CONNECTION,
            "storage_type": "s3",
            "role_arn": role_arn(),
            "external_id": EXTERNAL_ID,
            "region": REGION,
            "endpoint_url": endpoint
        },
        "stage": {
            "name": STAGE,
            "url": format!("s3://{BUCKET}/{PREFIX}"),
            "connection_name": CONNECTION
        },
        "query": query
    })
}

/// The variable holding the function's allowed principals.
pub const ALLOWED_ROLES_VAR: &str = "XSTAGE_ALLOWED_ROLE_ARNS";

/// The allowed principals the tests configure: any role of the customer account.
pub fn allowed_roles() -> String {
    format!("arn:aws:iam::{CUSTOMER_ACCOUNT}:role/*")
}

/// The platform identity's variables, as a function process gets them: its own key (the
/// platform account's, which LocalStack maps to that account), region and allowed principals.
pub fn platform_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", PLATFORM_ACCOUNT.to_string()),
        ("AWS_SECRET_ACCESS_KEY", "platform-secret-key".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        (ALLOWED_ROLES_VAR, allowed_roles()),
    ]
}

/// Seeds `endpoint` (blocking) with the seed's bucket, role and a `test.parquet` of `rows`
/// people in one row group; returns the people, the expectation.
pub fn seed_people(endpoint: &str, rows: usize) -> Vec<crate::fixtures::Person> {
    use crate::fixtures;
    let people = fixtures::people(rows);
    let body = fixtures::write_parquet(
        &[fixtures::people_batch(&people)],
        parquet::basic::Compression::SNAPPY,
        rows,
    );
    crate::runtime()
        .block_on(seed(endpoint, body))
        .expect("seed the emulator");
    people
}

/// Turns `COPY INTO` on for this process's function (`XSTAGE_ALLOW_WRITES=true`), and for the
/// processes it starts that inherit its environment.
pub fn allow_writes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: as `platform_identity`: called before the test creates threads or clients
        // that read the environment, and the `Once` makes the other tests wait.
        unsafe { std::env::set_var("XSTAGE_ALLOW_WRITES", "true") };
    });
}

/// Makes the test process look like the platform: its own credentials in the environment
/// (the standard chain reads them), and no profile files or instance metadata.
pub fn platform_identity() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test calls this before it creates any thread or SDK client, and the
        // `Once` makes the other tests wait until the variables are set.
        unsafe {
            for (name, value) in platform_env() {
                std::env::set_var(name, value);
            }
            std::env::remove_var("AWS_SESSION_TOKEN");
            std::env::remove_var("AWS_PROFILE");
            std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        }
    });
}
