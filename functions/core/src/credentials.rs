//! Temporary credentials for the customer's role: `sts:AssumeRole` with the connection's
//! ExternalId, an inline session policy that scopes them to reading the stage, and the
//! stage's SourceIdentity (see [`crate::access`]). Cached in the process per (role ARN,
//! ExternalId, session policy, session name, endpoint, region) and refreshed five minutes
//! before they expire.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_types::SdkConfig;

use crate::access::{documents, identity};
use crate::aws_error::{AwsFailure, advice};
use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::{Connection, Stage};

/// Credentials closer than this to expiry are not used.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Entries kept at most; expired ones go first.
const CACHE_CAPACITY: usize = 256;

/// What a cached entry is keyed by; credentials are never shared across keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_policy: Option<String>,
    pub session_name: String,
    pub endpoint_url: Option<String>,
    pub region: String,
}

/// A process-wide credential cache.
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<CacheKey, Credentials>>,
}

impl CredentialCache {
    /// Usable credentials for `key` at `now`, if cached.
    pub fn get(&self, key: &CacheKey, now: SystemTime) -> Option<Credentials> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|c| fresh(c, now)).cloned()
    }

    pub fn put(&self, key: CacheKey, credentials: Credentials, now: SystemTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, c| fresh(c, now));
        if entries.len() >= CACHE_CAPACITY {
            // Drop the entry closest to expiry.
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, c)| c.expiry())
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, credentials);
    }
}

fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_some_and(|exp| {
        exp.duration_since(now)
            .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
    })
}

static CACHE: LazyLock<CredentialCache> = LazyLock::new(CredentialCache::default);

/// Credentials for the connection's role, scoped by `session_policy` (`None`: reading the
/// stage, [`documents::session_policy`]; a `COPY INTO` gives its own write policy), and
/// whether STS was called for them. The policy is part of the cache key, so credentials
/// scoped to one statement's writes never serve a read or another statement.
pub async fn assume_role(
    base: &SdkConfig,
    connection: &Connection,
    stage: &Stage,
    region: &str,
    session_policy: Option<String>,
) -> Result<(Credentials, bool)> {
    let session_policy = match session_policy {
        Some(p) => p,
        None => documents::session_policy(&connection.role_arn, &stage.url)?,
    };
    let session_name = identity::session_name(connection, &stage.name);
    let source_identity = identity::source_identity(connection, &stage.name);
    let key = CacheKey {
        role_arn: connection.role_arn.clone(),
        external_id: connection.external_id.clone(),
        session_policy: Some(session_policy.clone()),
        session_name: session_name.clone(),
        endpoint_url: connection.endpoint_url.clone(),
        region: region.to_string(),
    };
    if let Some(credentials) = CACHE.get(&key, SystemTime::now()) {
        return Ok((credentials, false));
    }
    let mut config =
        aws_sdk_sts::config::Builder::from(base).region(Region::new(region.to_string()));
    if let Some(endpoint) = &connection.endpoint_url {
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(config.build());
    let out = client
        .assume_role()
        .role_arn(&connection.role_arn)
        .set_external_id(connection.external_id.clone())
        .role_session_name(&session_name)
        .source_identity(&source_identity)
        .policy(&session_policy)
        .duration_seconds(connection.duration_seconds as i32)
        .send()
        .await
        .map_err(|e| map_sts_error(&AwsFailure::from_sdk(&e), connection))?;
    let c = out.credentials().ok_or_else(|| {
        FunctionError::internal(format!(
            "STS AssumeRole on {} returned no credentials",
            connection.role_arn
        ))
    })?;
    let expiry = SystemTime::UNIX_EPOCH
        + Duration::from_secs(c.expiration().secs().max(0) as u64)
        + Duration::from_nanos(u64::from(c.expiration().subsec_nanos()));
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        Some(expiry),
        "xstage-assume-role",
    );
    CACHE.put(key, credentials.clone(), SystemTime::now());
    Ok((credentials, true))
}

fn map_sts_error(failure: &AwsFailure, connection: &Connection) -> FunctionError {
    let role = &connection.role_arn;
    let said = failure.said();
    if let Some(kind) = failure.common_kind() {
        let extra = if kind == ErrorKind::InvalidClientTokenId {
            " If the credentials are right, check the role ARN's account and partition."
        } else {
            ""
        };
        // Where it was asked, when the connection says: an unreachable endpoint is a typo.
        let at = match (&connection.endpoint_url, failure.transport) {
            (Some(endpoint), Some(_)) => format!(" at {endpoint}"),
            _ => String::new(),
        };
        return FunctionError::new(
            kind,
            format!(
                "STS AssumeRole on {role}{at} failed{said}: {}.{extra}",
                advice(kind)
            ),
        );
    }
    match failure.code.as_deref() {
        Some("AccessDenied") | Some("AccessDeniedException") => {
            assume_role_denied(failure, connection)
        }
        Some("ValidationError") => FunctionError::invalid_event(format!(
            "STS rejected AssumeRole on {role}{said}; check duration_seconds against the role's MaxSessionDuration \
             and the session name"
        )),
        Some("PackedPolicyTooLarge" | "MalformedPolicyDocument") => {
            FunctionError::invalid_event(format!(
                "STS rejected the session policy that scopes AssumeRole on {role} to the stage{said}; use a shorter \
             stage prefix"
            ))
        }
        Some("RegionDisabledException") => FunctionError::new(
            ErrorKind::AssumeRoleDenied,
            format!(
                "STS is not activated in this region for the role's account{said}: activate the region in IAM \
                 account settings, or set the connection's region to an active one"
            ),
        ),
        _ => FunctionError::internal(format!(
            "STS AssumeRole on {role} failed{said}; retry, and report it if it persists"
        )),
    }
}

/// STS says only "User: <caller> is not authorized to perform: sts:AssumeRole on resource:
/// <role>", the same for a wrong Principal, a wrong ExternalId and a missing role. What the
/// response does tell apart: who the caller was (compare it with the trust policy's
/// Principal), and whether an ExternalId was sent at all.
fn assume_role_denied(failure: &AwsFailure, connection: &Connection) -> FunctionError {
    let role = &connection.role_arn;
    let caller = failure
        .message
        .as_deref()
        .and_then(|m| m.strip_prefix("User: "))
        .and_then(|m| m.split_whitespace().next())
        .filter(|arn| arn.starts_with("arn:"));
    let principal = match caller {
        Some(caller) => format!(
            "STS saw the caller as {caller}: the trust policy's Principal must name this identity (for an \
             assumed role, the role ARN arn:...:role/<name>, not the session)"
        ),
        None => {
            "the trust policy's Principal must name this function's execution role (the template's \
                 WorkloadIdentityRoleArn)"
                .to_string()
        }
    };
    let external = match &connection.external_id {
        Some(id) => format!(
            "If the Principal is right, the ExternalId is the mismatch: the connection sent {id:?}, which must \
             equal the trust policy's StringEquals sts:ExternalId exactly (case and whitespace included)"
        ),
        None => "No ExternalId was sent: if the trust policy has an sts:ExternalId condition (it should), give \
                 the connection that EXTERNAL_ID"
            .to_string(),
    };
    FunctionError::new(
        ErrorKind::AssumeRoleDenied,
        format!(
            "STS denied AssumeRole on {role}{said}. Either the role does not trust this caller, or the \
             ExternalId does not match, or the role does not exist; STS does not say which. {principal}. \
             {external}. The trust policy must also allow sts:SetSourceIdentity (`xstage policy` prints a \
             complete one).",
            said = failure.said()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(external: &str) -> CacheKey {
        CacheKey {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some(external.into()),
            session_policy: None,
            session_name: "xstage.c.s".into(),
            endpoint_url: None,
            region: "us-east-1".into(),
        }
    }

    fn creds(expiry: SystemTime) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "SECRET",
            Some("TOKEN".into()),
            Some(expiry),
            "test",
        )
    }

    #[test]
    fn cache_is_keyed_and_refreshes_early() {
        let cache = CredentialCache::default();
        let now = SystemTime::now();
        cache.put(key("a"), creds(now + Duration::from_secs(3600)), now);
        assert!(cache.get(&key("a"), now).is_some());
        assert!(
            cache.get(&key("b"), now).is_none(),
            "another ExternalId must not share"
        );
        // 4 minutes left: inside the 5-minute refresh window.
        assert!(
            cache
                .get(&key("a"), now + Duration::from_secs(3600 - 240))
                .is_none()
        );
        assert!(
            cache
                .get(&key("a"), now + Duration::from_secs(3600 - 360))
                .is_some()
        );
    }

    #[test]
    fn cache_is_bounded() {
        let cache = CredentialCache::default();
        let now = SystemTime::now();
        for i in 0..(CACHE_CAPACITY + 10) {
            cache.put(
                key(&format!("id-{i}")),
                creds(now + Duration::from_secs(3600 + i as u64)),
                now,
            );
        }
        assert!(cache.entries.lock().unwrap().len() <= CACHE_CAPACITY);
        assert!(
            cache
                .get(&key(&format!("id-{}", CACHE_CAPACITY + 9)), now)
                .is_some()
        );
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let text = format!("{:?}", creds(SystemTime::now()));
        assert!(
            !text.contains("SECRET") && !text.contains("TOKEN"),
            "{text}"
        );
    }

    fn connection() -> Connection {
        Connection {
            name: None,
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some("ext-1".into()),
            region: None,
            endpoint_url: None,
            role_session_name: None,
            duration_seconds: 900,
        }
    }

    #[test]
    fn sts_errors_name_the_cause_and_fix() {
        let failure = |code: &str| AwsFailure {
            code: Some(code.into()),
            message: Some("denied".into()),
            status: Some(403),
            ..AwsFailure::default()
        };
        let denied = map_sts_error(&failure("AccessDenied"), &connection());
        assert_eq!(denied.kind(), ErrorKind::AssumeRoleDenied);
        for needle in [
            "arn:aws:iam::123456789012:role/r",
            "sent \"ext-1\"",
            "trust policy",
            "Principal",
        ] {
            assert!(
                denied.message().contains(needle),
                "{needle}: {}",
                denied.message()
            );
        }
        let said = AwsFailure {
            message: Some(
                "User: arn:aws:iam::111122223333:user/platform is not authorized to perform: sts:AssumeRole on \
                 resource: arn:aws:iam::123456789012:role/r"
                    .into(),
            ),
            ..failure("AccessDenied")
        };
        let denied = map_sts_error(&said, &connection());
        assert!(
            denied
                .message()
                .contains("STS saw the caller as arn:aws:iam::111122223333:user/platform"),
            "{}",
            denied.message()
        );
        let mut without = connection();
        without.external_id = None;
        let denied = map_sts_error(&failure("AccessDenied"), &without);
        assert!(
            denied.message().contains("No ExternalId was sent"),
            "{}",
            denied.message()
        );
        let token = map_sts_error(&failure("InvalidClientTokenId"), &connection());
        assert_eq!(token.kind(), ErrorKind::InvalidClientTokenId);
        assert!(token.message().contains("role ARN"), "{}", token.message());
        assert_eq!(
            map_sts_error(&failure("ExpiredToken"), &connection()).kind(),
            ErrorKind::ExpiredToken
        );
        assert_eq!(
            map_sts_error(&failure("Throttling"), &connection()).kind(),
            ErrorKind::Throttled
        );
        let unreachable = AwsFailure {
            transport: Some(crate::aws_error::Transport::Unreachable),
            ..AwsFailure::default()
        };
        assert_eq!(
            map_sts_error(&unreachable, &connection()).kind(),
            ErrorKind::EndpointUnreachable
        );
    }
}
