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
/// prefix; and, with `write`, `s3:PutObject` and `s3:DeleteObject` under the prefix.
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
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": objects,
        }));
    }
    statements
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
        assert_eq!(s[2]["Action"], json!(["s3:PutObject", "s3:DeleteObject"]));
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
}
