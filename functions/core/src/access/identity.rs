//! What the customer's CloudTrail shows for our sessions: every `AssumeRole` carries a
//! `RoleSessionName` and a `SourceIdentity` of the form `xstage.<tenant>.<stage>`, where the
//! tenant is the connection's name (or, without one, the role's account) and the stage is the
//! stage's name.
//!
//! - Stable: the same connection and stage always give the same value, so a customer can
//!   filter CloudTrail on it and write conditions on `sts:SourceIdentity`.
//! - Sanitized: only STS's characters `[A-Za-z0-9_+=,.@-]`; anything else becomes `-`.
//! - Bounded: at most 64 characters; a longer value keeps its first 55 and ends with `-` and
//!   8 hex digits of a hash of the whole, so distinct long names stay distinct.
//!
//! SourceIdentity persists through role chaining and cannot be changed by the session, which
//! is why it, not the session name, is the audit key.

use crate::event::Connection;

/// STS's limit for RoleSessionName and SourceIdentity.
pub const MAX_CHARS: usize = 64;

/// `xstage.<tenant>.<stage>`, sanitized and bounded.
pub fn source_identity(connection: &Connection, stage_name: &str) -> String {
    let tenant = connection
        .name
        .clone()
        .unwrap_or_else(|| account_of(&connection.role_arn).to_string());
    bounded(&format!(
        "xstage.{}.{}",
        sanitize(&tenant),
        sanitize(stage_name)
    ))
}

/// The session name: the connection's own `role_session_name`, else the source identity.
pub fn session_name(connection: &Connection, stage_name: &str) -> String {
    connection
        .role_session_name
        .clone()
        .unwrap_or_else(|| source_identity(connection, stage_name))
}

fn account_of(role_arn: &str) -> &str {
    role_arn.split(':').nth(4).unwrap_or("unknown")
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_CHARS {
        return text.to_string();
    }
    // FNV-1a: stable across builds and targets, unlike `DefaultHasher`.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let keep = MAX_CHARS - 9;
    format!("{}-{:08x}", &text[..keep], hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::validate;

    fn connection(name: Option<&str>) -> Connection {
        Connection {
            name: name.map(str::to_string),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: Some("ext-1".into()),
            region: None,
            endpoint_url: None,
            role_session_name: None,
            duration_seconds: 900,
        }
    }

    #[test]
    fn stable_and_named_after_tenant_and_stage() {
        let c = connection(Some("databend_conn"));
        assert_eq!(source_identity(&c, "s"), "xstage.databend_conn.s");
        assert_eq!(session_name(&c, "s"), "xstage.databend_conn.s");
        assert_eq!(
            source_identity(&connection(None), "s"),
            "xstage.123456789012.s"
        );
        let mut own = c.clone();
        own.role_session_name = Some("mine".into());
        assert_eq!(session_name(&own, "s"), "mine");
        assert_eq!(source_identity(&own, "s"), "xstage.databend_conn.s");
    }

    #[test]
    fn always_valid_for_sts() {
        for (name, stage) in [
            ("c", "s"),
            ("tenant with spaces/and:colons", "stage\u{e9}\u{1F600}"),
            (&"n".repeat(300), &"s".repeat(300)),
        ] {
            let id = source_identity(&connection(Some(name)), stage);
            assert!(id.len() <= MAX_CHARS, "{id}");
            validate::session_name(&id).unwrap();
        }
        let a = source_identity(&connection(Some(&"n".repeat(100))), "stage-a");
        let b = source_identity(&connection(Some(&"n".repeat(100))), "stage-b");
        assert_ne!(a, b, "long names keep distinct hashes");
    }
}
