//! The one place that differs per target: the base AWS configuration (the function's own
//! credentials, the HTTP client, the sleep implementation and timeouts).
//!
//! Native builds use `aws-config`'s standard chain (environment, profile, web identity,
//! container and instance roles: on Lambda, the execution role's variables) with the SDK's
//! hyper/rustls client under tokio.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The region used when neither the connection nor `AWS_REGION` names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Connect, read and per-attempt limits for every AWS call.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .operation_attempt_timeout(Duration::from_secs(60))
        .build()
}

/// The region from the environment, as Lambda sets it, else [`DEFAULT_REGION`].
pub fn env_region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// The process-wide base configuration, loaded once.
pub async fn base_config() -> SdkConfig {
    static BASE: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    BASE.get_or_init(|| async {
        aws_config::defaults(BehaviorVersion::latest())
            // Explicit, so loading never probes the instance metadata service for a region.
            .region(Region::new(env_region()))
            .timeout_config(timeouts())
            .load()
            .await
    })
    .await
    .clone()
}
