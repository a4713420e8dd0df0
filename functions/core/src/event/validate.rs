//! Validation of the values STS and S3 would reject anyway, done before any network call so
//! the error names the field and the rule instead of an AWS error code.

use std::sync::LazyLock;

use regex::Regex;

use crate::error::{FunctionError, Result};

static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    // partition : iam : (no region) : 12-digit account : role/ optional-path/ name
    Regex::new(
        r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-[a-z]|aws-eusc):iam::([0-9]{12}):role/((?:[\x21-\x2e\x30-\x7e]+/)*)([A-Za-z0-9_+=,.@-]{1,64})$",
    )
    .expect("static regex")
});
static EXTERNAL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$").expect("static regex"));
static SESSION_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_+=,.@-]{2,64}$").expect("static regex"));
static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2,4}(-[a-z0-9]+){1,4}$").expect("static regex"));

/// Shortens a user value for an error message.
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} chars)", value.chars().count())
    }
}

/// `arn:aws:iam::123456789012:role/path/name`.
pub fn role_arn(value: &str) -> Result<()> {
    let Some(caps) = ROLE_ARN.captures(value) else {
        return Err(FunctionError::invalid_event(format!(
            "`role_arn` {} is not an IAM role ARN; expected arn:<partition>:iam::<12-digit account>:role/[path/]<name>, \
             for example arn:aws:iam::123456789012:role/databend-test",
            quote(value)
        )));
    };
    let path = caps.get(3).map_or("", |m| m.as_str());
    if path.len() + 1 > 512 {
        return Err(FunctionError::invalid_event(
            "`role_arn` has a role path longer than IAM's 512 characters",
        ));
    }
    Ok(())
}

/// STS ExternalId: 2–1224 characters of `[\w+=,.@:/-]`.
pub fn external_id(value: &str) -> Result<()> {
    if EXTERNAL_ID.is_match(value) {
        return Ok(());
    }
    Err(FunctionError::invalid_event(format!(
        "`external_id` {} is invalid: STS accepts 2 to 1224 characters of letters, digits and _+=,.@:/- \
         (got {} characters)",
        quote(value),
        value.chars().count()
    )))
}

/// STS RoleSessionName: 2–64 characters of `[\w+=,.@-]`.
pub fn session_name(value: &str) -> Result<()> {
    if SESSION_NAME.is_match(value) {
        return Ok(());
    }
    Err(FunctionError::invalid_event(format!(
        "`role_session_name` {} is invalid: STS accepts 2 to 64 characters of letters, digits and _+=,.@-",
        quote(value)
    )))
}

/// STS DurationSeconds: 900 to 43200.
pub fn duration_seconds(value: u64) -> Result<()> {
    if (900..=43_200).contains(&value) {
        return Ok(());
    }
    Err(FunctionError::invalid_event(format!(
        "`duration_seconds` {value} is out of range: STS accepts 900 (15 minutes) to 43200 (12 hours), \
         and no more than the role's MaxSessionDuration"
    )))
}

/// An AWS region name such as `us-east-2`.
pub fn region(value: &str) -> Result<()> {
    if REGION.is_match(value) {
        return Ok(());
    }
    Err(FunctionError::invalid_event(format!(
        "`region` {} is not an AWS region name such as us-east-2",
        quote(value)
    )))
}

/// An `http(s)://host[:port]` endpoint with no credentials, query or fragment.
pub fn endpoint_url(value: &str) -> Result<String> {
    let bad = |why: &str| {
        FunctionError::invalid_event(format!(
            "`endpoint_url` {} is invalid: {why}; expected http(s)://host[:port], e.g. http://127.0.0.1:4566",
            quote(value)
        ))
    };
    let url = url::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    if url.path() != "/" {
        return Err(bad("it must not have a path"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// An S3 bucket name, per the general purpose bucket naming rules.
pub fn bucket(value: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(FunctionError::invalid_event(format!(
            "bucket name {} is invalid: {why}",
            quote(value)
        )))
    };
    if !(3..=63).contains(&value.len()) {
        return bad("it must be 3 to 63 characters long");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let first = value.as_bytes()[0];
    let last = value.as_bytes()[value.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("it must begin and end with a letter or digit");
    }
    if value.contains("..") {
        return bad("it must not contain two adjacent periods");
    }
    if value.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it must not be formatted as an IP address");
    }
    if value.starts_with("xn--") || value.starts_with("sthree-") {
        return bad("the prefixes xn-- and sthree- are reserved");
    }
    if value.ends_with("-s3alias") || value.ends_with("--ol-s3") {
        return bad("the suffixes -s3alias and --ol-s3 are reserved");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        for ok in [
            "arn:aws:iam::987654321987:role/databend-test",
            "arn:aws:iam::123456789012:role/service-role/team/reader",
            "arn:aws-cn:iam::123456789012:role/r_1+=,.@-",
            "arn:aws-us-gov:iam::123456789012:role/ab",
        ] {
            role_arn(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "arn:aws:iam::98765432198:role/short-account",
            "arn:aws:iam::9876543219870:role/long-account",
            "arn:aws:iam::987654321987:user/not-a-role",
            "arn:aws:iam:us-east-1:987654321987:role/regional",
            "arn:aws:s3:::bucket",
            "arn:foo:iam::987654321987:role/bad-partition",
            "arn:aws:iam::987654321987:role/",
            "arn:aws:iam::987654321987:role/name with space",
            "arn:aws:iam::987654321987:role//double",
            "arn:aws:iam::987654321987:role/x\n",
            &format!("arn:aws:iam::987654321987:role/{}", "n".repeat(65)),
        ] {
            let err = role_arn(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidEvent);
        }
    }

    #[test]
    fn external_ids() {
        external_id("my-external-id-123").unwrap();
        external_id("a:b/c=d,e.f@g+h_i").unwrap();
        external_id(&"x".repeat(1224)).unwrap();
        for bad in [
            "",
            "x",
            "has space",
            "semi;colon",
            "ünïcode",
            &"x".repeat(1225),
        ] {
            assert!(external_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names() {
        session_name("xstage-stage.1@x").unwrap();
        for bad in ["a", "has:colon", "has/slash", &"s".repeat(65)] {
            assert!(session_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        duration_seconds(900).unwrap();
        duration_seconds(43_200).unwrap();
        assert!(duration_seconds(899).is_err());
        assert!(duration_seconds(43_201).is_err());
    }

    #[test]
    fn buckets() {
        for ok in ["test-bucket-123", "a.b.c", "abc", &"b".repeat(63)] {
            bucket(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "ab",
            "Upper",
            "under_score",
            "-lead",
            "trail-",
            "a..b",
            "192.168.1.1",
            "xn--punycode",
            "x-s3alias",
            &"b".repeat(64),
        ] {
            assert!(bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:4566/").unwrap(),
            "http://127.0.0.1:4566"
        );
        endpoint_url("https://s3.us-east-2.amazonaws.com").unwrap();
        for bad in [
            "127.0.0.1:4566",
            "ftp://host",
            "http://user:pw@host",
            "http://host/path",
            "http://host?x=1",
        ] {
            assert!(endpoint_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions() {
        region("us-east-2").unwrap();
        region("us-gov-west-1").unwrap();
        region("cn-north-1").unwrap();
        assert!(region("US-EAST-1").is_err());
        assert!(region("us east").is_err());
    }
}
