//! `xstage policy`: the customer's side of the trust, generated rather than copied from
//! documentation. The documents themselves are `xstage_core::access::documents`, the same
//! code that writes the function's session policies.
//!
//! - The **trust policy** of the customer's role: the platform's workload identity (the
//!   function's execution role) as Principal, `sts:AssumeRole` and `sts:SetSourceIdentity`
//!   only, conditioned on `StringEquals sts:ExternalId`.
//! - The **permission policy**, least privilege for one stage: `s3:ListBucket` on the bucket
//!   with an `s3:prefix` condition, `s3:GetObject` on `prefix/*`, and `s3:PutObject`,
//!   `s3:AbortMultipartUpload` and `s3:DeleteObject` (with `s3:ListBucketMultipartUploads` on
//!   the bucket) only when asked for writes (COPY INTO).

use serde_json::Value;
use xstage_core::access::documents;
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

    Ok(Policies {
        trust: documents::trust_policy(&request.workload_role, &request.external_id),
        permissions: documents::permission_policy(partition, &stage, request.write),
    })
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(
            s["Action"],
            json!(["sts:AssumeRole", "sts:SetSourceIdentity"])
        );
        assert_eq!(
            s["Condition"],
            json!({"StringEquals": {"sts:ExternalId": "my-external-id-123"}})
        );
    }

    #[test]
    fn partitions_come_from_the_workload_role() {
        let mut r = request("s3://whole-bucket/");
        r.workload_role = "arn:aws-cn:iam::123456789012:role/w".into();
        let p = generate(&r).unwrap();
        assert_eq!(
            p.permissions["Statement"][1]["Resource"],
            json!("arn:aws-cn:s3:::whole-bucket/*")
        );
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
