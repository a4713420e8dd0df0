//! Settings: [`HostConfig`] for the engine as a whole, [`FunctionConfig`] per function (the
//! fields of an `AWS::Serverless::Function` that matter to a local run).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::egress::EgressPolicy;

/// Engine-wide settings. The pooling allocator reserves its slots up front, so the largest
/// memory any function may have and the number of live instances are fixed here.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// The most execution environments alive at once, across all functions.
    pub max_environments: u32,
    /// The largest `memory_size_mb` a function may ask for.
    pub max_memory_mb: u32,
    /// The wasm stack a guest may use.
    pub max_wasm_stack: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_environments: 64,
            max_memory_mb: 4096,
            max_wasm_stack: 4 << 20,
        }
    }
}

/// `$XSTAGE_CACHE/wasmtime`, else `$XDG_CACHE_HOME/xstage/wasmtime`, else
/// `~/.cache/xstage/wasmtime`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XSTAGE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("xstage")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("xstage")))
        .map(|d| d.join("wasmtime"))
}

/// One function, as Lambda configures it.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub name: String,
    /// `MemorySize` in MB: the cap on the guest's linear memory. Lambda's default is 128;
    /// ours is 512, what the stage query function needs for DataFusion.
    pub memory_size_mb: u32,
    /// `Timeout`: the longest one invocation may run.
    pub timeout: Duration,
    /// `Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// `AWS_REGION` of the function.
    pub region: String,
    /// The function's own credentials (its execution role's), given to the guest as
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub credentials: Option<FunctionCredentials>,
    /// `ReservedConcurrentExecutions`: the most execution environments of this function.
    pub reserved_concurrency: Option<u32>,
    /// How long an idle execution environment is kept warm.
    pub idle_timeout: Duration,
    /// Which origins the guest may send HTTP requests to.
    pub egress: EgressPolicy,
}

impl FunctionConfig {
    /// A function with Lambda-like defaults: 512 MB, 30 s, `us-east-1`, no credentials, no
    /// egress, environments kept warm for 5 minutes.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            memory_size_mb: 512,
            timeout: Duration::from_secs(30),
            environment: BTreeMap::new(),
            region: "us-east-1".to_string(),
            credentials: None,
            reserved_concurrency: None,
            idle_timeout: Duration::from_secs(300),
            egress: EgressPolicy::deny_all(),
        }
    }
}

/// A function's own AWS credentials. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl FunctionCredentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` of this process,
    /// if the first two are set.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

impl fmt::Debug for FunctionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = FunctionCredentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(
            !shown.contains("very-secret") && !shown.contains("token-secret"),
            "{shown}"
        );
    }
}
