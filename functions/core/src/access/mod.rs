//! Who may be assumed, and with what: the checks and documents that keep xstage from being a
//! confused deputy.
//!
//! Before any STS call, [`Access::check`] refuses
//! - a role ARN outside the deployment's allowed principals (`RoleNotAllowed`), and
//! - a connection without an ExternalId while one is required (`ExternalIdRequired`).
//!
//! Every `AssumeRole` then carries an inline session policy that scopes the credentials to
//! reading the stage ([`documents::session_policy`]), and a stable SourceIdentity and
//! session name for the customer's CloudTrail ([`identity`]).
//!
//! The deployment configures this through its environment:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `XSTAGE_ALLOWED_ROLE_ARNS` | comma-separated role ARN patterns (`*`, `?`); `*` allows any | none: every role is refused |
//! | `XSTAGE_REQUIRE_EXTERNAL_ID` | `true` or `false` | `true` |

pub mod allowlist;
pub mod documents;
pub mod identity;

pub use allowlist::{AllowedRoles, RolePattern};

use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::Connection;

/// The allowed principals.
pub const ALLOWED_ROLE_ARNS: &str = "XSTAGE_ALLOWED_ROLE_ARNS";
/// Whether a connection must have an ExternalId.
pub const REQUIRE_EXTERNAL_ID: &str = "XSTAGE_REQUIRE_EXTERNAL_ID";

/// The deployment's access rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub allowed_roles: AllowedRoles,
    pub require_external_id: bool,
}

impl Access {
    /// The rules from the process environment (on Lambda: the function's configuration).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The rules from a variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let allowed_roles = AllowedRoles::parse(&var(ALLOWED_ROLE_ARNS).unwrap_or_default())
            .map_err(|why| misconfigured(ALLOWED_ROLE_ARNS, why))?;
        let require_external_id = flag(&var, REQUIRE_EXTERNAL_ID, true)?;
        Ok(Self {
            allowed_roles,
            require_external_id,
        })
    }

    /// Refuses what must never reach STS.
    pub fn check(&self, connection: &Connection) -> Result<()> {
        self.allowed_roles
            .check(&connection.role_arn, ALLOWED_ROLE_ARNS)?;
        if self.require_external_id && connection.external_id.is_none() {
            return Err(FunctionError::new(
                ErrorKind::ExternalIdRequired,
                format!(
                    "the connection to {} has no EXTERNAL_ID, and this deployment requires one: without it any \
                     tenant of this platform that learns the role ARN could read the data (the confused deputy \
                     problem). Give the connection the ExternalId from the role's trust policy \
                     (StringEquals sts:ExternalId)",
                    connection.role_arn
                ),
            ));
        }
        Ok(())
    }
}

/// The function's variable `name` is invalid, and why.
fn misconfigured(name: &str, why: String) -> FunctionError {
    FunctionError::new(
        ErrorKind::InvalidConfiguration,
        format!("the function's {name} is invalid: {why}; fix the function's environment"),
    )
}

/// A `true` / `false` variable of the function's configuration (any case; unset or empty:
/// `default`); anything else is `InvalidConfiguration`.
pub(crate) fn flag(
    var: impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(misconfigured(
            name,
            format!("{other:?} is neither true nor false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(external_id: Option<&str>) -> Connection {
        Connection {
            name: None,
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            external_id: external_id.map(str::to_string),
            region: None,
            endpoint_url: None,
            role_session_name: None,
            duration_seconds: 900,
        }
    }

    fn access(vars: &[(&str, &str)]) -> Result<Access> {
        Access::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn fails_closed_by_default() {
        let a = access(&[]).unwrap();
        assert!(a.require_external_id);
        let err = a.check(&connection(Some("ext-1"))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RoleNotAllowed);
    }

    #[test]
    fn external_id_is_required_unless_configured_otherwise() {
        let a = access(&[(ALLOWED_ROLE_ARNS, "*")]).unwrap();
        assert!(a.check(&connection(Some("ext-1"))).is_ok());
        let err = a.check(&connection(None)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ExternalIdRequired);
        assert!(
            err.message().contains("sts:ExternalId"),
            "{}",
            err.message()
        );
        let a = access(&[(ALLOWED_ROLE_ARNS, "*"), (REQUIRE_EXTERNAL_ID, "False")]).unwrap();
        assert!(a.check(&connection(None)).is_ok());
    }

    #[test]
    fn bad_configuration_is_its_own_kind() {
        for vars in [
            [
                (ALLOWED_ROLE_ARNS, "arn:aws:s3:::bucket"),
                (REQUIRE_EXTERNAL_ID, "true"),
            ],
            [(ALLOWED_ROLE_ARNS, "*"), (REQUIRE_EXTERNAL_ID, "yes")],
        ] {
            let err = access(&vars).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
        }
    }
}
