//! The endpoints an event makes the function call: what a host's egress allowlist must let
//! through for this invocation, and nothing more.
//!
//! With an `endpoint_url` (LocalStack, MinIO) both STS and S3 go there. Otherwise STS is the
//! regional endpoint `https://sts.{region}.{suffix}` and S3 the virtual-hosted
//! `https://{bucket}.s3.{region}.{suffix}`, or path-style `https://s3.{region}.{suffix}` for a
//! bucket name with dots, as the SDK addresses them.

use crate::event::Event;

/// The URLs (scheme, host, port) the event's invocation will call. `region` is the function's
/// own, used when the connection names none. An event that does not parse calls nothing: the
/// handler rejects it before any network call.
pub fn endpoints(event: &[u8], region: &str) -> Vec<String> {
    let Some(event) = serde_json::from_slice(event)
        .ok()
        .and_then(|v| Event::from_json(v).ok())
    else {
        return Vec::new();
    };
    if let Some(endpoint) = &event.connection.endpoint_url {
        return vec![endpoint.clone()];
    }
    let region = event.connection.region.as_deref().unwrap_or(region);
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let mut urls = vec![format!("https://sts.{region}.{suffix}")];
    // Every stage's bucket: a COPY INTO may write to another stage of the connection.
    for stage in event.all_stages() {
        let bucket = stage.url.bucket();
        let s3 = if bucket.contains('.') {
            format!("https://s3.{region}.{suffix}")
        } else {
            format!("https://{bucket}.s3.{region}.{suffix}")
        };
        if !urls.contains(&s3) {
            urls.push(s3);
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(connection: serde_json::Value, url: &str) -> Vec<u8> {
        let mut c = json!({"role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "ext-1"});
        c.as_object_mut()
            .unwrap()
            .extend(connection.as_object().unwrap().clone());
        serde_json::to_vec(&json!({
            "connection": c,
            "stage": {"name": "s", "url": url},
            "query": "SELECT 1 FROM @s/a.parquet"
        }))
        .unwrap()
    }

    #[test]
    fn aws_endpoints_follow_region_and_addressing() {
        assert_eq!(
            endpoints(&event(json!({}), "s3://bucket/p/"), "eu-west-1"),
            [
                "https://sts.eu-west-1.amazonaws.com",
                "https://bucket.s3.eu-west-1.amazonaws.com"
            ]
        );
        assert_eq!(
            endpoints(
                &event(json!({"region": "cn-north-1"}), "s3://my.bucket/"),
                "us-east-1"
            ),
            [
                "https://sts.cn-north-1.amazonaws.com.cn",
                "https://s3.cn-north-1.amazonaws.com.cn"
            ]
        );
    }

    #[test]
    fn every_stages_bucket_is_reached() {
        let mut e: serde_json::Value =
            serde_json::from_slice(&event(json!({}), "s3://raw/p/")).unwrap();
        e["stages"] =
            json!([{"name": "out", "url": "s3://cur/o/"}, {"name": "o2", "url": "s3://raw/q/"}]);
        assert_eq!(
            endpoints(&serde_json::to_vec(&e).unwrap(), "eu-west-1"),
            [
                "https://sts.eu-west-1.amazonaws.com",
                "https://raw.s3.eu-west-1.amazonaws.com",
                "https://cur.s3.eu-west-1.amazonaws.com"
            ]
        );
    }

    #[test]
    fn endpoint_override_is_the_only_endpoint() {
        assert_eq!(
            endpoints(
                &event(
                    json!({"endpoint_url": "http://127.0.0.1:4566"}),
                    "s3://bucket/"
                ),
                "us-east-1"
            ),
            ["http://127.0.0.1:4566"]
        );
    }

    #[test]
    fn invalid_events_call_nothing() {
        assert!(endpoints(b"not json", "us-east-1").is_empty());
        assert!(endpoints(br#"{"query": "SELECT 1"}"#, "us-east-1").is_empty());
    }
}
