//! `xstage policy`: the customer's side of the trust, generated rather than copied from
//! documentation.
//!
//! - The **trust policy** of the customer's role: the platform's workload identity (the
//!   function's execution role) as Principal, `sts:AssumeRole` only, conditioned on
//!   `StringEquals sts:ExternalId`.
//! - The **permission policy**, least privilege for one stage: `s3:ListBucket` on the bucket
//!   with an `s3:prefix` condition, `s3:GetObject` on `prefix/*`, and `s3:PutObject` /
//!   `s3:DeleteObject` only when asked for writes.

use serde_json::{Value, json};
use xstage_core::event::validate;
use xstage_core::stage::StageUrl;

/// What the policies are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRequest {
    pub stage_url: String,
    /// The platform's workload identity: the ARN the customer's role trusts.
    pub workload_role: String,
    pub external_id: String,
    pub write: bool,
}

/// The two documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    pub trust: Value,
    pub permissions: Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("--stage-url: {0}")]
    StageUrl(String),
    #[error(
        "--workload-role {0:?} is not an IAM principal ARN; expected arn:aws:iam::<12-digit account>:role/<name> \
         (the function's execution role: the template's WorkloadIdentityRoleArn output)"
    )]
    WorkloadRole(String),
    #[error("--external-id: {0}")]
    ExternalId(String),
}

/// The partition of an IAM principal ARN (`aws`, `aws-cn`, `aws-us-gov`), if it is one.
fn principal_partition(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (*resource == "root"
                    || ((resource.starts_with("role/") || resource.starts_with("user/"))
                        && resource.len() > 5))
                && matches!(*partition, "aws" | "aws-cn" | "aws-us-gov") =>
        {
            Some(partition)
        }
        _ => None,
    }
}

pub fn generate(request: &PolicyRequest) -> Result<Policies, PolicyError> {
    let stage =
        StageUrl::parse(&request.stage_url).map_err(|e| PolicyError::StageUrl(e.to_string()))?;
    let partition = principal_partition(&request.workload_role)
        .ok_or_else(|| PolicyError::WorkloadRole(request.workload_role.clone()))?;
    validate::external_id(&request.external_id)
        .map_err(|e| PolicyError::ExternalId(e.to_string()))?;

    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "XstageWorkloadIdentity",
            "Effect": "Allow",
            "Principal": {"AWS": request.workload_role},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": request.external_id}}
        }]
    });

    let bucket = format!("arn:{partition}:s3:::{}", stage.bucket());
    let prefix = stage.prefix();
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
    if request.write {
        statements.push(json!({
            "Sid": "WriteTheStage",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": objects,
        }));
    }
    Ok(Policies {
        trust,
        permissions: json!({"Version": "2012-10-17", "Statement": statements}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> PolicyRequest {
        PolicyRequest {
            stage_url: url.into(),
            workload_role: "arn:aws:iam::123456789012:role/xstage-workload".into(),
            external_id: "my-external-id-123".into(),
            write: false,
        }
    }

    #[test]
    fn the_trust_policy_names_the_principal_and_the_external_id() {
        let p = generate(&request("s3://test-bucket-123/optional/prefix/")).unwrap();
        let s = &p.trust["Statement"][0];
        assert_eq!(
            s["Principal"]["AWS"],
            json!("arn:aws:iam::123456789012:role/xstage-workload")
        );
        assert_eq!(s["Action"], json!("sts:AssumeRole"));
        assert_eq!(
            s["Condition"],
            json!({"StringEquals": {"sts:ExternalId": "my-external-id-123"}})
        );
    }

    #[test]
    fn permissions_cover_the_prefix_only() {
        let p = generate(&request("s3://test-bucket-123/optional/prefix/")).unwrap();
        let s = p.permissions["Statement"].as_array().unwrap();
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
        assert!(!p.permissions.to_string().contains("PutObject"));

        let mut w = request("s3://b-1/p");
        w.write = true;
        let p = generate(&w).unwrap();
        let s = p.permissions["Statement"].as_array().unwrap();
        assert_eq!(s[2]["Action"], json!(["s3:PutObject", "s3:DeleteObject"]));
        assert_eq!(s[2]["Resource"], json!("arn:aws:s3:::b-1/p/*"));
    }

    #[test]
    fn a_whole_bucket_stage_and_other_partitions() {
        let mut r = request("s3://whole-bucket/");
        r.workload_role = "arn:aws-cn:iam::123456789012:role/w".into();
        let p = generate(&r).unwrap();
        let s = p.permissions["Statement"].as_array().unwrap();
        assert!(s[0].get("Condition").is_none());
        assert_eq!(s[1]["Resource"], json!("arn:aws-cn:s3:::whole-bucket/*"));
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let mut r = request("s3://b/../x/");
        assert!(matches!(generate(&r), Err(PolicyError::StageUrl(_))));
        r = request("s3://bucket/p/");
        r.workload_role = "arn:aws:s3:::bucket".into();
        assert!(matches!(generate(&r), Err(PolicyError::WorkloadRole(_))));
        r.workload_role = "arn:aws:iam::123456789012:root".into();
        assert!(generate(&r).is_ok());
        r.external_id = "x".into();
        assert!(matches!(generate(&r), Err(PolicyError::ExternalId(_))));
    }
}
