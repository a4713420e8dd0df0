//! Whole-object reads (CSV and NDJSON files): one GET whose body is passed on as it
//! arrives, counted and checked for length, and remembered as the object last streamed so a
//! reader's error can name the file.

use futures::stream::{self, StreamExt};
use object_store::{GetResult, GetResultPayload};

use super::S3Store;
use crate::aws_error::{AwsFailure, Transport, chain};
use crate::s3::stats::Request;

impl S3Store {
    /// One GET of a whole object (a CSV or NDJSON file), its body passed on as it arrives:
    /// memory stays one chunk, and a reader that stops early (a LIMIT) reads no further.
    pub(super) async fn stream(&self, key: &str) -> object_store::Result<GetResult> {
        tracing::debug!(bucket = %self.bucket, key, "GetObject (streamed)");
        self.stats.request(Request::Get);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(self.planned_version(key))
            .send()
            .await
            .map_err(|e| self.fail(&AwsFailure::from_sdk(&e), "GetObject", key))?;
        self.saw_version(key, out.e_tag());
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        let meta = Self::meta_of(key, size, &out);
        let this = self.clone();
        let key = key.to_string();
        let body = stream::try_unfold((out.body, 0u64), move |(mut body, got)| {
            let (this, key) = (this.clone(), key.clone());
            async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => {
                        this.stats.bytes(chunk.len() as u64);
                        this.stats.reading(&key);
                        let got = got + chunk.len() as u64;
                        Ok(Some((chunk, (body, got))))
                    }
                    Ok(None) if got == size => Ok(None),
                    Ok(None) => {
                        Err(this.cut_off(&key, format!("it ended after {got} of {size} bytes")))
                    }
                    Err(e) => Err(this.cut_off(&key, chain(&e))),
                }
            }
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(body.boxed()),
            range: 0..size,
            meta,
            attributes: Default::default(),
        })
    }

    pub(super) fn cut_off(&self, key: &str, why: String) -> object_store::Error {
        let failure = AwsFailure {
            transport: Some(Transport::Unreachable),
            message: Some(format!("the response body was cut off: {why}")),
            ..AwsFailure::default()
        };
        self.fail(&failure, "GetObject", key)
    }
}
