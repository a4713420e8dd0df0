//! Temporary credentials for the customer's role: `sts:AssumeRole` with the connection's
//! ExternalId, cached in the process per (role ARN, ExternalId, session policy, endpoint,
//! region) and refreshed five minutes before they expire.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::config::Region;
use aws_types::SdkConfig;

use crate::aws_error::{AwsFailure, advice};
use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::Connection;

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

/// The session name: the given one, else `xstage-<stage>-<random>`, valid for STS.
pub fn session_name(connection: &Connection, stage_name: &str) -> String {
    if let Some(name) = &connection.role_session_name {
        return name.clone();
    }
    let mut bytes = [0u8; 4];
    // A failure to get randomness leaves zeros: the name stays valid, only less unique.
    let _ = getrandom::fill(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let stage: String = stage_name
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
        })
        .take(64 - "xstage--".len() - suffix.len())
        .collect();
    format!("xstage-{stage}-{suffix}")
}

/// Credentials for the connection's role, and whether STS was called for them.
pub async fn assume_role(
    base: &SdkConfig,
    connection: &Connection,
    stage_name: &str,
    region: &str,
) -> Result<(Credentials, bool)> {
    let key = CacheKey {
        role_arn: connection.role_arn.clone(),
        external_id: connection.external_id.clone(),
        session_policy: None,
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
    let session = session_name(connection, stage_name);
    let out = client
        .assume_role()
        .role_arn(&connection.role_arn)
        .set_external_id(connection.external_id.clone())
        .role_session_name(&session)
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
        return FunctionError::new(
            kind,
            format!(
                "STS AssumeRole on {role} failed{said}: {}.{extra}",
                advice(kind)
            ),
        );
    }
    let external = match &connection.external_id {
        Some(id) => format!("ExternalId {id:?}"),
        None => "no ExternalId".to_string(),
    };
    match failure.code.as_deref() {
        Some("AccessDenied") | Some("AccessDeniedException") => FunctionError::new(
            ErrorKind::AssumeRoleDenied,
            format!(
                "STS denied AssumeRole on {role} with {external}{said}. Either the role's trust policy does not \
                 name this function's identity as Principal, or its `sts:ExternalId` condition expects a \
                 different value than the connection's EXTERNAL_ID, or the role does not exist. Fix the trust \
                 policy (Principal + StringEquals sts:ExternalId) or the connection."
            ),
        ),
        Some("ValidationError") => FunctionError::invalid_event(format!(
            "STS rejected AssumeRole on {role}{said}; check duration_seconds against the role's MaxSessionDuration \
             and the session name"
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(external: &str) -> CacheKey {
        CacheKey {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some(external.into()),
            session_policy: None,
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
            transport: None,
        };
        let denied = map_sts_error(&failure("AccessDenied"), &connection());
        assert_eq!(denied.kind(), ErrorKind::AssumeRoleDenied);
        for needle in [
            "arn:aws:iam::123456789012:role/r",
            "ExternalId \"ext-1\"",
            "trust policy",
            "Principal",
        ] {
            assert!(
                denied.message().contains(needle),
                "{needle}: {}",
                denied.message()
            );
        }
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

    #[test]
    fn default_session_names_are_valid() {
        let conn = Connection {
            name: None,
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: None,
            region: None,
            endpoint_url: None,
            role_session_name: None,
            duration_seconds: 900,
        };
        let a = session_name(&conn, "databend_test");
        assert!(a.starts_with("xstage-databend_test-"), "{a}");
        crate::event::validate::session_name(&a).unwrap();
        let long = session_name(&conn, &"s".repeat(200));
        assert!(long.len() <= 64);
        crate::event::validate::session_name(&long).unwrap();
        assert_ne!(session_name(&conn, "x"), session_name(&conn, "x"));
    }
}
