//! Which origins a guest may reach. Every outbound wasi:http request is checked against the
//! [`Allowlist`] of its invocation, on the request URI's scheme, host and port: the URI is
//! what the connection is made to, while a Host header is the guest's to set (Spin's
//! CVE-2024-32980 allowed requests by their Host header).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A scheme, host and port, as a connection is made to them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub https: bool,
    /// Lowercase host name or IP literal (IPv6 in brackets).
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `http(s)://host[:port][/...]`; the path is ignored.
    pub fn parse(url: &str) -> Option<Self> {
        let uri: http::Uri = url.parse().ok()?;
        Self::of(uri.scheme_str()?, uri.authority()?)
    }

    /// The origin of a request's scheme and authority. User info is refused.
    pub fn of(scheme: &str, authority: &http::uri::Authority) -> Option<Self> {
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Some(Self { https, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The origins one invocation may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(BTreeSet<Origin>);

impl Allowlist {
    /// Allows nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Allows the origins of these URLs; ones that do not parse are skipped.
    pub fn from_urls<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self(
            urls.into_iter()
                .filter_map(|u| Origin::parse(u.as_ref()))
                .collect(),
        )
    }

    pub fn insert(&mut self, origin: Origin) {
        self.0.insert(origin);
    }

    pub fn extend(&mut self, other: &Allowlist) {
        self.0.extend(other.0.iter().cloned());
    }

    pub fn permits(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    pub fn origins(&self) -> impl Iterator<Item = &Origin> {
        self.0.iter()
    }
}

type Derive = dyn Fn(&[u8], &str) -> Allowlist + Send + Sync;

/// How a function's allowlist is decided: a fixed list, plus, optionally, origins derived
/// from each event and the function's region (the endpoints the invocation is configured for).
#[derive(Clone)]
pub struct EgressPolicy {
    fixed: Allowlist,
    per_event: Option<Arc<Derive>>,
}

impl EgressPolicy {
    /// No outbound HTTP at all.
    pub fn deny_all() -> Self {
        Self::fixed(Allowlist::empty())
    }

    /// The same origins for every invocation.
    pub fn fixed(allow: Allowlist) -> Self {
        Self {
            fixed: allow,
            per_event: None,
        }
    }

    /// Origins derived from each event and the function's region, plus `fixed`.
    pub fn per_event(
        fixed: Allowlist,
        derive: impl Fn(&[u8], &str) -> Allowlist + Send + Sync + 'static,
    ) -> Self {
        Self {
            fixed,
            per_event: Some(Arc::new(derive)),
        }
    }

    /// The stage query function's policy: the STS and S3 endpoints of the event's connection
    /// and stage (see `xstage_core::egress`), nothing else.
    pub fn stage_query() -> Self {
        Self::per_event(Allowlist::empty(), |event, region| {
            Allowlist::from_urls(xstage_core::egress::endpoints(event, region))
        })
    }

    /// This policy, plus `extra` for every invocation.
    pub fn allowing(mut self, extra: Allowlist) -> Self {
        self.fixed.extend(&extra);
        self
    }

    /// The allowlist of one invocation.
    pub fn allowlist(&self, event: &[u8], region: &str) -> Allowlist {
        let mut allow = self.fixed.clone();
        if let Some(derive) = &self.per_event {
            allow.extend(&derive(event, region));
        }
        allow
    }
}

impl fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressPolicy")
            .field("fixed", &self.fixed)
            .field("per_event", &self.per_event.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::parse(url).unwrap()
    }

    #[test]
    fn origins_normalise_scheme_case_and_default_ports() {
        assert_eq!(
            origin("HTTPS://STS.us-east-1.amazonaws.com"),
            origin("https://sts.us-east-1.amazonaws.com:443/x")
        );
        assert_eq!(
            origin("http://127.0.0.1:4566").to_string(),
            "http://127.0.0.1:4566"
        );
        assert_ne!(origin("http://h"), origin("https://h"));
        assert!(Origin::parse("ftp://h").is_none());
        assert!(Origin::parse("http://user@h").is_none());
        assert!(Origin::parse("/relative").is_none());
    }

    #[test]
    fn allowlist_matches_scheme_host_and_port_exactly() {
        let allow = Allowlist::from_urls([
            "http://127.0.0.1:4566",
            "https://sts.us-east-1.amazonaws.com",
        ]);
        assert!(allow.permits(&origin("http://127.0.0.1:4566/bucket?x")));
        assert!(!allow.permits(&origin("http://127.0.0.1:4567")));
        assert!(!allow.permits(&origin("https://127.0.0.1:4566")));
        assert!(!allow.permits(&origin("https://evil.sts.us-east-1.amazonaws.com")));
        assert!(allow.permits(&origin("https://sts.us-east-1.amazonaws.com.")));
    }

    #[test]
    fn per_event_policy_adds_to_the_fixed_list() {
        let policy =
            EgressPolicy::per_event(Allowlist::from_urls(["http://a"]), |event, region| {
                Allowlist::from_urls([format!(
                    "https://{}.{region}",
                    String::from_utf8_lossy(event)
                )])
            });
        let allow = policy.allowlist(b"b", "r");
        assert!(allow.permits(&origin("http://a")) && allow.permits(&origin("https://b.r")));
        assert!(
            !EgressPolicy::deny_all()
                .allowlist(b"", "r")
                .permits(&origin("http://a"))
        );
    }
}
