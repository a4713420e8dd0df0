//! The allowed principals: which customer role ARNs this deployment may assume, as IAM-style
//! ARN patterns (`*` matches any run of characters, `?` exactly one), RisingWave's "allowed
//! principals" list. Checked before any STS call, so a role outside the list never sees a
//! request from us.

use crate::error::{ErrorKind, FunctionError, Result};
use crate::event::validate::quote;

/// One pattern, such as `arn:aws:iam::123456789012:role/xstage-*`, or `*` for any role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePattern(String);

impl RolePattern {
    pub fn parse(pattern: &str) -> std::result::Result<Self, String> {
        let pattern = pattern.trim();
        if pattern == "*" {
            return Ok(Self(pattern.to_string()));
        }
        let parts: Vec<&str> = pattern.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, "iam", "", account, resource]
                if !partition.is_empty()
                    && !account.is_empty()
                    && resource.starts_with("role/")
                    && resource.len() > "role/".len() =>
            {
                Ok(Self(pattern.to_string()))
            }
            _ => Err(format!(
                "{} is not a role ARN pattern; expected arn:<partition>:iam::<account>:role/<name>, where \
                 * and ? are wildcards (arn:aws:iam::123456789012:role/xstage-*), or * for any role",
                quote(pattern)
            )),
        }
    }

    /// IAM's ARN matching: case-sensitive, `*` any run (including `/`), `?` one character.
    pub fn matches(&self, arn: &str) -> bool {
        wildcard_match(self.0.as_bytes(), arn.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Iterative glob matching with single-star backtracking: linear in practice, never
/// exponential, whatever the pattern.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The configured list. Empty means nothing is allowed: xstage fails closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedRoles(Vec<RolePattern>);

impl AllowedRoles {
    /// A comma- or whitespace-separated list of patterns.
    pub fn parse(list: &str) -> std::result::Result<Self, String> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(RolePattern::parse)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when some pattern matches `role_arn`, else `RoleNotAllowed`.
    pub fn check(&self, role_arn: &str, variable: &str) -> Result<()> {
        if self.0.iter().any(|p| p.matches(role_arn)) {
            return Ok(());
        }
        let message = if self.0.is_empty() {
            format!(
                "role {role_arn} is not allowed: this deployment has no allowed principals. Set {variable} \
                 to the role ARNs it may assume (patterns such as arn:aws:iam::123456789012:role/xstage-*; \
                 * allows any role); on AWS it comes from the template's AllowedRoleArns parameter"
            )
        } else {
            let list: Vec<&str> = self.0.iter().map(RolePattern::as_str).collect();
            format!(
                "role {role_arn} is not allowed: it matches none of the allowed principals in {variable} \
                 ({}). Check the connection's ROLE_ARN for a typo, or add the role to {variable}",
                list.join(", ")
            )
        };
        Err(FunctionError::new(ErrorKind::RoleNotAllowed, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/xstage-reader";

    #[test]
    fn wildcards_follow_iam() {
        let p = |s: &str| RolePattern::parse(s).unwrap();
        assert!(p("*").matches(ROLE));
        assert!(p(ROLE).matches(ROLE));
        assert!(p("arn:aws:iam::123456789012:role/xstage-*").matches(ROLE));
        assert!(
            p("arn:aws:iam::123456789012:role/*").matches("arn:aws:iam::123456789012:role/a/b/c")
        );
        assert!(p("arn:aws:iam::12345678901?:role/xstage-reader").matches(ROLE));
        assert!(p("arn:aws:iam::*:role/xstage-reader").matches(ROLE));
        assert!(
            !p("arn:aws:iam::123456789012:role/xstage-*")
                .matches("arn:aws:iam::123456789012:role/other")
        );
        assert!(
            !p("arn:aws:iam::123456789012:role/XSTAGE-*").matches(ROLE),
            "case-sensitive"
        );
        assert!(
            !p("arn:aws:iam::210987654321:role/*").matches(ROLE),
            "another account"
        );
        assert!(
            !p(ROLE).matches(&format!("{ROLE}-2")),
            "no implicit prefix match"
        );
        assert!(
            !p("arn:aws:iam::123456789012:role/xstage-reade?").matches(ROLE.trim_end_matches('r'))
        );
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let pattern =
            RolePattern::parse(&format!("arn:aws:iam::1:role/{}b", "*a".repeat(30))).unwrap();
        let text = format!("arn:aws:iam::1:role/{}", "a".repeat(5000));
        // Backtracking on every star would not finish; one-star backtracking does at once.
        assert!(!pattern.matches(&text));
        assert!(pattern.matches(&format!("{text}b")));
    }

    #[test]
    fn lists_parse_and_refuse_non_roles() {
        let list = AllowedRoles::parse(
            " arn:aws:iam::1:role/a , arn:aws:iam::2:role/b\narn:aws:iam::3:role/c",
        )
        .unwrap();
        assert_eq!(list.0.len(), 3);
        assert!(AllowedRoles::parse("").unwrap().is_empty());
        for bad in [
            "arn:aws:iam::1:user/u",
            "arn:aws:s3:::bucket",
            "role/x",
            "arn:aws:iam::1:role/",
        ] {
            let err = AllowedRoles::parse(bad).unwrap_err();
            assert!(err.contains("not a role ARN pattern"), "{bad}: {err}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let err = AllowedRoles::default()
            .check(ROLE, "XSTAGE_ALLOWED_ROLE_ARNS")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RoleNotAllowed);
        assert!(
            err.message().contains("no allowed principals"),
            "{}",
            err.message()
        );
        let list = AllowedRoles::parse("arn:aws:iam::123456789012:role/other-*").unwrap();
        let err = list.check(ROLE, "XSTAGE_ALLOWED_ROLE_ARNS").unwrap_err();
        assert!(
            err.message().contains(ROLE) && err.message().contains("other-*"),
            "{}",
            err.message()
        );
        assert!(AllowedRoles::parse("*").unwrap().check(ROLE, "X").is_ok());
    }
}
