//! The IAM documents of one stage, written once and used on both sides of the trust:
//!
//! - the customer's **trust policy** and least-privilege **permission policy**, printed by
//!   `xstage policy`;
//! - the inline **session policy** every `AssumeRole` carries, so the temporary credentials
//!   can read the stage and nothing else, whatever more the customer's role grants.
//!
//! Keys are literal: `*`, `?` and `$` in a prefix are escaped as IAM's `${*}`, `${?}` and
//! `${$}`, so a prefix never widens into a wildcard.

use serde_json::{Value, json};

use crate::error::{FunctionError, Result};
use crate::stage::StageUrl;

/// STS's limit on the plain text of an inline session policy.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// The actions the trust policy lets the workload identity perform on the customer's role:
/// AssumeRole itself, and SetSourceIdentity, because every session carries a SourceIdentity.
pub const TRUSTED_ACTIONS: [&str; 2] = ["sts:AssumeRole", "sts:SetSourceIdentity"];

/// `text` with IAM's wildcard and variable characters escaped.
pub fn iam_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

/// The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`, ...), or `aws`.
pub fn partition_of(arn: &str) -> &str {
    arn.split(':')
        .nth(1)
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
}

/// The customer role's trust policy: `principal` may assume it only with `external_id`.
pub fn trust_policy(principal: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "XstageWorkloadIdentity",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": TRUSTED_ACTIONS,
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

/// Read access to the stage: `s3:ListBucket` limited by `s3:prefix`, `s3:GetObject` under the
/// prefix; and, with `write` (for `COPY INTO`), `s3:PutObject`, `s3:AbortMultipartUpload`
/// and `s3:DeleteObject` under the prefix (a statement's session policy narrows them to its
/// own names, [`write_session_policy`]), and `s3:ListBucketMultipartUploads` on the bucket
/// (a statement spread over workers aborts the uploads a dead worker left).
pub fn stage_statements(partition: &str, stage: &StageUrl, write: bool) -> Vec<Value> {
    let bucket = format!("arn:{partition}:s3:::{}", stage.bucket());
    let prefix = iam_literal(stage.prefix());
    let mut list = json!({
        "Sid": "ListTheStage",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": bucket,
    });
    if !prefix.is_empty() {
        list["Condition"] = json!({"StringLike": {"s3:prefix": [prefix, format!("{prefix}*")]}});
    }
    let objects = format!("{bucket}/{prefix}*");
    let mut statements = vec![
        list,
        json!({
            "Sid": "ReadTheStage",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": objects,
        }),
    ];
    if write {
        statements.push(json!({
            "Sid": "WriteTheStage",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"],
            "Resource": objects,
        }));
        statements.push(find_uploads(&bucket));
    }
    statements
}

/// Listing the bucket's open multipart uploads (S3 has no key for narrowing it to a prefix).
fn find_uploads(bucket: &str) -> Value {
    json!({
        "Sid": "FindOpenUploads",
        "Effect": "Allow",
        "Action": "s3:ListBucketMultipartUploads",
        "Resource": bucket,
    })
}

/// The customer role's permission policy for one stage.
pub fn permission_policy(partition: &str, stage: &StageUrl, write: bool) -> Value {
    json!({"Version": "2012-10-17", "Statement": stage_statements(partition, stage, write)})
}

/// The inline session policy of an `AssumeRole` for reading `stage`, as compact JSON.
pub fn session_policy(role_arn: &str, stage: &StageUrl) -> Result<String> {
    let policy = permission_policy(partition_of(role_arn), stage, false).to_string();
    if policy.len() > MAX_SESSION_POLICY_CHARS {
        return Err(FunctionError::invalid_event(format!(
            "the stage s3://{}/{} is too long to scope the session to it: its session policy is {} characters \
             and STS accepts {MAX_SESSION_POLICY_CHARS}; use a shorter stage prefix",
            stage.bucket(),
            stage.prefix(),
            policy.len()
        )));
    }
    Ok(policy)
}

/// What one `COPY INTO` may create, as stage-relative key patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteGrant {
    /// Keys the statement creates, each as literal parts with a wildcard between each two
    /// (`["out/data_<query id>_", ""]` is `out/data_<query id>_*`): a `*` the user wrote
    /// stays literal.
    pub create: Vec<Vec<String>>,
    /// `OVERWRITE = TRUE`: the one raw key it may replace (no `If-None-Match`).
    pub replace: Option<String>,
    /// Deny any object creation under the stage that does not send `If-None-Match`
    /// (`s3:if-none-match`), so the credentials cannot replace a file.
    pub require_if_none_match: bool,
}

/// The inline session policy of an `AssumeRole` for a `COPY INTO`: read the stage it reads
/// (`source`) and the target's stage (`stage`: its manifest, and the names it checks and
/// cleans up), create only `grant`'s keys in `stage`, abort their multipart uploads and
/// delete them (a failed statement removes what it wrote); nothing else.
pub fn write_session_policy(
    role_arn: &str,
    source: &StageUrl,
    stage: &StageUrl,
    grant: &WriteGrant,
) -> Result<String> {
    let partition = partition_of(role_arn);
    let object = |parts: &Vec<String>| {
        let literal: Vec<String> = parts.iter().map(|p| iam_literal(p)).collect();
        format!(
            "arn:{partition}:s3:::{}/{}{}",
            stage.bucket(),
            iam_literal(stage.prefix()),
            literal.join("*")
        )
    };
    let created: Vec<String> = grant.create.iter().map(object).collect();
    let mut statements = stage_statements(partition, source, false);
    if stage != source {
        for (mut read, sid) in stage_statements(partition, stage, false)
            .into_iter()
            .zip(["ListTheTarget", "ReadTheTarget"])
        {
            read["Sid"] = json!(sid);
            statements.push(read);
        }
    }
    statements.push(json!({
        "Sid": "CreateThisStatementsFiles",
        "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"],
        "Resource": created,
    }));
    statements.push(find_uploads(&format!(
        "arn:{partition}:s3:::{}",
        stage.bucket()
    )));
    if let Some(key) = &grant.replace {
        statements.push(json!({
            "Sid": "ReplaceTheRawPath",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": format!("arn:{partition}:s3:::{}/{}", stage.bucket(), iam_literal(&stage.key(key))),
        }));
    } else if grant.require_if_none_match {
        // CreateMultipartUpload and UploadPart create nothing (s3:ObjectCreationOperation is
        // false for them); PutObject and CompleteMultipartUpload must carry If-None-Match.
        statements.push(json!({
            "Sid": "NeverReplaceAFile",
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Resource": format!("arn:{partition}:s3:::{}/*", stage.bucket()),
            "Condition": {
                "Bool": {"s3:ObjectCreationOperation": "true"},
                "Null": {"s3:if-none-match": "true"}
            }
        }));
    }
    let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    if policy.len() > MAX_SESSION_POLICY_CHARS {
        return Err(FunctionError::invalid_event(format!(
            "the stage s3://{}/{} and the COPY's target are too long to scope the session to them: \
             its session policy is {} characters and STS accepts {MAX_SESSION_POLICY_CHARS}; use a \
             shorter stage prefix or target path",
            stage.bucket(),
            stage.prefix(),
            policy.len()
        )));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(url: &str) -> StageUrl {
        StageUrl::parse(url).unwrap()
    }

    #[test]
    fn trust_names_principal_external_id_and_source_identity() {
        let t = trust_policy("arn:aws:iam::123456789012:role/w", "ext-1");
        let s = &t["Statement"][0];
        assert_eq!(
            s["Principal"]["AWS"],
            json!("arn:aws:iam::123456789012:role/w")
        );
        assert_eq!(
            s["Action"],
            json!(["sts:AssumeRole", "sts:SetSourceIdentity"])
        );
        assert_eq!(
            s["Condition"],
            json!({"StringEquals": {"sts:ExternalId": "ext-1"}})
        );
    }

    #[test]
    fn permissions_cover_the_prefix_only() {
        let p = permission_policy(
            "aws",
            &stage("s3://test-bucket-123/optional/prefix/"),
            false,
        );
        let s = p["Statement"].as_array().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["Action"], json!("s3:ListBucket"));
        assert_eq!(s[0]["Resource"], json!("arn:aws:s3:::test-bucket-123"));
        assert_eq!(
            s[0]["Condition"]["StringLike"]["s3:prefix"],
            json!(["optional/prefix/", "optional/prefix/*"])
        );
        assert_eq!(s[1]["Action"], json!("s3:GetObject"));
        assert_eq!(
            s[1]["Resource"],
            json!("arn:aws:s3:::test-bucket-123/optional/prefix/*")
        );
        assert!(!p.to_string().contains("PutObject"));

        let p = permission_policy("aws", &stage("s3://b-1/p"), true);
        let s = p["Statement"].as_array().unwrap();
        assert_eq!(
            s[2]["Action"],
            json!(["s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"])
        );
        assert_eq!(s[2]["Resource"], json!("arn:aws:s3:::b-1/p/*"));
    }

    #[test]
    fn whole_buckets_partitions_and_wildcards_in_keys() {
        let p = permission_policy("aws-cn", &stage("s3://whole-bucket/"), false);
        assert!(p["Statement"][0].get("Condition").is_none());
        assert_eq!(
            p["Statement"][1]["Resource"],
            json!("arn:aws-cn:s3:::whole-bucket/*")
        );

        let p = permission_policy("aws", &stage("s3://bkt/a*b?c$d/"), false);
        assert_eq!(
            p["Statement"][1]["Resource"],
            json!("arn:aws:s3:::bkt/a${*}b${?}c${$}d/*")
        );
        assert_eq!(
            p["Statement"][0]["Condition"]["StringLike"]["s3:prefix"][1],
            json!("a${*}b${?}c${$}d/*")
        );
        assert_eq!(
            partition_of("arn:aws-us-gov:iam::123456789012:role/r"),
            "aws-us-gov"
        );
    }

    #[test]
    fn session_policies_are_read_only_and_bounded() {
        let role = "arn:aws:iam::123456789012:role/r";
        let policy = session_policy(role, &stage("s3://bucket/prefix/")).unwrap();
        let v: Value = serde_json::from_str(&policy).unwrap();
        assert_eq!(
            v,
            permission_policy("aws", &stage("s3://bucket/prefix/"), false)
        );
        let long = format!("s3://bucket/{}/", "p".repeat(1000));
        let err = session_policy(role, &stage(&long)).unwrap_err();
        assert!(
            err.message().contains("shorter stage prefix"),
            "{}",
            err.message()
        );
    }

    /// The grant of `COPY INTO @s/out/ …` with query id `q-1`.
    fn out_q1() -> WriteGrant {
        WriteGrant {
            create: vec![
                vec!["out/data_q-1_".into(), String::new()],
                vec!["out/_xstage_manifest_q-1.json".into()],
            ],
            replace: None,
            require_if_none_match: true,
        }
    }

    #[test]
    fn write_sessions_create_only_their_names() {
        let role = "arn:aws:iam::123456789012:role/r";
        let grant = out_q1();
        let policy =
            write_session_policy(role, &stage("s3://b-1/p*/"), &stage("s3://b-1/p*/"), &grant)
                .unwrap();
        let v: Value = serde_json::from_str(&policy).unwrap();
        let s = v["Statement"].as_array().unwrap();
        assert_eq!(s[1]["Action"], json!("s3:GetObject"));
        assert_eq!(
            s[2]["Resource"],
            json!([
                "arn:aws:s3:::b-1/p${*}/out/data_q-1_*",
                "arn:aws:s3:::b-1/p${*}/out/_xstage_manifest_q-1.json"
            ])
        );
        // Listing uploads is bucket-wide: it reads no object and creates nothing.
        assert_eq!(s[3]["Action"], json!("s3:ListBucketMultipartUploads"));
        assert_eq!(s[3]["Resource"], json!("arn:aws:s3:::b-1"));
        assert_eq!(s[4]["Effect"], json!("Deny"));
        assert_eq!(s[4]["Condition"]["Null"]["s3:if-none-match"], json!("true"));
        assert_eq!(
            s[4]["Condition"]["Bool"]["s3:ObjectCreationOperation"],
            json!("true")
        );

        let off = WriteGrant {
            require_if_none_match: false,
            ..grant.clone()
        };
        let policy =
            write_session_policy(role, &stage("s3://b-1/p/"), &stage("s3://b-1/p/"), &off).unwrap();
        assert!(!policy.contains("if-none-match"), "{policy}");

        let raw = WriteGrant {
            create: vec![vec!["out/a*b_".into(), String::new()]],
            replace: Some("out/result.csv".into()),
            require_if_none_match: true,
        };
        let policy =
            write_session_policy(role, &stage("s3://b-1/p/"), &stage("s3://b-1/p/"), &raw).unwrap();
        let v: Value = serde_json::from_str(&policy).unwrap();
        assert_eq!(
            v["Statement"][4]["Resource"],
            json!("arn:aws:s3:::b-1/p/out/result.csv")
        );
        assert!(!policy.contains("Deny"), "{policy}");
        assert_eq!(
            v["Statement"][2]["Resource"],
            json!(["arn:aws:s3:::b-1/p/out/a${*}b_*"])
        );
    }

    /// A COPY from one stage into another: it reads both (the target for its checks), and
    /// creates only in the target.
    #[test]
    fn a_copy_into_another_stage_reads_the_source_and_creates_in_the_target() {
        let role = "arn:aws:iam::123456789012:role/r";
        let (raw, cur) = (stage("s3://b-1/raw/"), stage("s3://b-2/cur/"));
        let policy = write_session_policy(role, &raw, &cur, &out_q1()).unwrap();
        let v: Value = serde_json::from_str(&policy).unwrap();
        let s = v["Statement"].as_array().unwrap();
        let sids: Vec<&str> = s.iter().map(|x| x["Sid"].as_str().unwrap()).collect();
        assert_eq!(
            sids,
            [
                "ListTheStage",
                "ReadTheStage",
                "ListTheTarget",
                "ReadTheTarget",
                "CreateThisStatementsFiles",
                "FindOpenUploads",
                "NeverReplaceAFile"
            ]
        );
        assert_eq!(s[1]["Resource"], json!("arn:aws:s3:::b-1/raw/*"));
        assert_eq!(s[3]["Resource"], json!("arn:aws:s3:::b-2/cur/*"));
        assert_eq!(
            s[4]["Resource"][0],
            json!("arn:aws:s3:::b-2/cur/out/data_q-1_*")
        );
        assert_eq!(s[5]["Resource"], json!("arn:aws:s3:::b-2"));
        // Nothing is created in the source's bucket.
        assert!(
            !s[4..].iter().any(|x| x.to_string().contains("b-1")),
            "{policy}"
        );
    }

    /// README's "Least privilege for writes" prints this statement's session policy.
    #[test]
    fn readme_prints_the_write_session_policy() {
        let policy = write_session_policy(
            "arn:aws:iam::987654321987:role/databend-test",
            &stage("s3://test-bucket-123/optional/prefix/"),
            &stage("s3://test-bucket-123/optional/prefix/"),
            &out_q1(),
        )
        .unwrap();
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(&policy).unwrap()).unwrap();
        let readme = include_str!("../../../../README.md");
        assert!(
            readme.contains(&format!("```json\n{pretty}\n```")),
            "README should show:\n{pretty}"
        );
    }
}
