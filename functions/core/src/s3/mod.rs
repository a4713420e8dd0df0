//! S3 access for one invocation: a client built from the assumed role's credentials, the
//! stage-confined [`S3Store`], counters and error mapping.

mod error;
mod prefetched;
mod stats;
mod store;
mod tails;

pub use error::map as map_error;
pub use stats::{IoCounts, IoStats};
pub use store::{COALESCE_GAP, S3Store, key_of};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_types::SdkConfig;

/// An S3 client that signs with `credentials`. With an endpoint override (LocalStack, MinIO)
/// it uses path-style addressing.
pub fn client(
    base: &SdkConfig,
    credentials: Credentials,
    region: &str,
    endpoint_url: Option<&str>,
) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(base)
        .credentials_provider(credentials)
        .region(Region::new(region.to_string()))
        // Ranged reads cannot be checked against a whole-object checksum anyway.
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    if let Some(endpoint) = endpoint_url {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}
