//! The one place that differs per target: the base AWS configuration (the function's own
//! credentials, the HTTP client, the sleep implementation and timeouts).
//!
//! Native builds use `aws-config`'s standard chain (environment, profile, web identity,
//! container and instance roles: on Lambda, the execution role's variables) with the SDK's
//! hyper/rustls client under tokio. WASI builds (`wasm32-wasip2`) take the function's own
//! credentials from the environment the host gives the guest, send HTTP through wasi:http
//! (`aws-smithy-wasm`) and sleep with `wstd`.

use std::time::Duration;

use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// The region used when neither the connection nor `AWS_REGION` names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The variable that sets how long an AWS call waits for the first byte of its response.
pub const READ_TIMEOUT_VAR: &str = "XSTAGE_AWS_READ_TIMEOUT_SECONDS";
/// [`READ_TIMEOUT_VAR`]'s default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect, read and per-attempt limits for every AWS call. The read limit is
/// [`READ_TIMEOUT_VAR`] (seconds, 0.1 to 900), else [`DEFAULT_READ_TIMEOUT`]; a call past it
/// is retried, then fails with `Timeout`.
pub fn timeouts() -> TimeoutConfig {
    let read = read_timeout(std::env::var(READ_TIMEOUT_VAR).ok().as_deref());
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(read)
        .operation_attempt_timeout(read.max(Duration::from_secs(60)))
        .build()
}

fn read_timeout(value: Option<&str>) -> Duration {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return DEFAULT_READ_TIMEOUT;
    };
    match value.parse::<f64>() {
        Ok(s) if (0.1..=900.0).contains(&s) => Duration::from_secs_f64(s),
        _ => {
            tracing::warn!(
                "{READ_TIMEOUT_VAR}={value:?} is not a number of seconds from 0.1 to 900; using {}s",
                DEFAULT_READ_TIMEOUT.as_secs()
            );
            DEFAULT_READ_TIMEOUT
        }
    }
}

/// The region from the environment, as Lambda sets it, else [`DEFAULT_REGION`].
pub fn env_region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_string())
}

/// The process-wide base configuration, loaded once.
#[cfg(not(target_arch = "wasm32"))]
pub async fn base_config() -> SdkConfig {
    use aws_config::BehaviorVersion;
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

/// The base configuration of a WASI guest: credentials from its environment, wasi:http.
#[cfg(target_arch = "wasm32")]
pub async fn base_config() -> SdkConfig {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_smithy_async::rt::sleep::SharedAsyncSleep;
    use aws_smithy_async::time::SystemTimeSource;
    use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
    use aws_smithy_wasm::wasi::{WasiHttpClientBuilder, WasiSleep};

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env_region()))
        .http_client(WasiHttpClientBuilder::new().build())
        .sleep_impl(SharedAsyncSleep::new(WasiSleep))
        .time_source(SystemTimeSource::new())
        .timeout_config(timeouts());
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        builder = builder.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_timeout_is_seconds_within_bounds() {
        assert_eq!(read_timeout(None), DEFAULT_READ_TIMEOUT);
        assert_eq!(read_timeout(Some(" 2.5 ")), Duration::from_millis(2500));
        assert_eq!(read_timeout(Some("0")), DEFAULT_READ_TIMEOUT);
        assert_eq!(read_timeout(Some("soon")), DEFAULT_READ_TIMEOUT);
        assert_eq!(read_timeout(Some("901")), DEFAULT_READ_TIMEOUT);
    }
}
