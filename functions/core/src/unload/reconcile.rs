//! What a spread `COPY INTO` leaves behind, made to match what it commits.
//!
//! Workers never delete: a retried or speculative worker may be adopting a file another
//! attempt created. Once every worker has ended, the coordinator lists the statement's own
//! names (`data_<query id>_*` under the target) and:
//! - when some task ran more than once ([`strays`]): checks that every file the answers list
//!   is there with its ETag, deletes any other file of the query id, and aborts the
//!   statement's multipart uploads still open (a worker that died mid-file);
//! - when the statement failed ([`remove`]): deletes every file of the query id and aborts
//!   its uploads, returning the names it could not delete.
//!
//! Aborting needs `s3:ListBucketMultipartUploads` on the bucket (`xstage policy --write`);
//! without it the uploads are named in the log, and a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) removes them.

use std::collections::HashMap;

use super::Out;
use super::files::FileEntry;
use super::target::Target;
use crate::aws_error::AwsFailure;
use crate::error::{ErrorKind, FunctionError, Result};

/// Deletes the files of the statement that its answers do not list, and aborts its open
/// uploads; an error if a listed file is not there as listed.
pub(crate) async fn strays(out: &Out, target: &Target, files: &[FileEntry]) -> Result<()> {
    let prefix = out.prefix();
    let listed = list(out, target)
        .await
        .map_err(|said| failed("listing", prefix, target, &said))?;
    for file in files {
        let key = format!("{prefix}{}", file.name);
        if listed.get(&key) != Some(&file.etag) {
            return Err(FunctionError::new(
                ErrorKind::Internal,
                format!(
                    "s3://{}/{key}, which a COPY INTO writer reported, is not there with ETag {}: \
                     another writer with the same query id removed or replaced it. Run the \
                     statement again with a new query id",
                    out.bucket(),
                    file.etag
                ),
            ));
        }
    }
    let wanted: std::collections::HashSet<String> = files
        .iter()
        .map(|f| format!("{prefix}{}", f.name))
        .collect();
    for key in listed.keys().filter(|k| !wanted.contains(*k)) {
        delete(out, key)
            .await
            .map_err(|said| failed("deleting a stray file of", prefix, target, &said))?;
    }
    abort_uploads(out, target).await;
    Ok(())
}

/// Deletes every file of the failed statement and aborts its uploads; the stage-relative
/// names (or a description) of what could not be deleted.
pub(crate) async fn remove(out: &Out, target: &Target) -> Vec<String> {
    let prefix = out.prefix();
    let listed = match list(out, target).await {
        Ok(listed) => listed,
        Err(said) => {
            return vec![format!(
                "{}data_{}_* (they could not be listed{said})",
                target.dir, target.query_id
            )];
        }
    };
    let mut left = Vec::new();
    let mut keys: Vec<&String> = listed.keys().collect();
    keys.sort();
    for key in keys {
        if delete(out, key).await.is_err() {
            left.push(key.strip_prefix(prefix).unwrap_or(key).to_string());
        }
    }
    abort_uploads(out, target).await;
    left
}

/// Where the statement's names are listed from, and whether a listed key is one of them.
fn scope(prefix: &str, target: &Target) -> (String, impl Fn(&str) -> bool) {
    let own = format!("data_{}_", target.query_id);
    // Partitioned, the names sit one directory down (or more: a value may hold `/`).
    let from = match target.partitioned {
        true => format!("{prefix}{}", target.dir),
        false => format!("{prefix}{}{own}", target.dir),
    };
    let start = from.clone();
    let ours = move |key: &str| {
        key.starts_with(&start) && key.rsplit('/').next().is_some_and(|n| n.starts_with(&own))
    };
    (from, ours)
}

/// The statement's objects: key → ETag (unquoted). `Err`: what S3 said.
async fn list(out: &Out, target: &Target) -> std::result::Result<HashMap<String, String>, String> {
    let (from, ours) = scope(out.prefix(), target);
    let mut objects = HashMap::new();
    let mut token = None;
    loop {
        out.writes.request();
        let page = out
            .client()
            .list_objects_v2()
            .bucket(out.bucket())
            .prefix(&from)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| AwsFailure::from_sdk(&e).said())?;
        for object in page.contents() {
            if let Some(key) = object.key().filter(|k| ours(k)) {
                let etag = object.e_tag().unwrap_or_default().trim_matches('"');
                objects.insert(key.to_string(), etag.to_string());
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok(objects),
        }
    }
}

async fn delete(out: &Out, key: &str) -> std::result::Result<(), String> {
    out.writes.request();
    out.client()
        .delete_object()
        .bucket(out.bucket())
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsFailure::from_sdk(&e).said())
}

/// Aborts the statement's multipart uploads still open. Best effort: what cannot be listed
/// or aborted is named in the log.
async fn abort_uploads(out: &Out, target: &Target) {
    let (from, ours) = scope(out.prefix(), target);
    out.writes.request();
    let listed = out
        .client()
        .list_multipart_uploads()
        .bucket(out.bucket())
        .prefix(&from)
        .send()
        .await;
    let uploads = match listed {
        Ok(page) => page.uploads().to_vec(),
        Err(e) => {
            tracing::warn!(
                "could not list the open multipart uploads under s3://{}/{from}{} (grant \
                 s3:ListBucketMultipartUploads, or let a lifecycle rule abort them)",
                out.bucket(),
                AwsFailure::from_sdk(&e).said()
            );
            return;
        }
    };
    for upload in uploads {
        let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        if !ours(key) {
            continue;
        }
        out.writes.request();
        let aborted = out
            .client()
            .abort_multipart_upload()
            .bucket(out.bucket())
            .key(key)
            .upload_id(id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(
                "could not abort the multipart upload of s3://{}/{key}{}",
                out.bucket(),
                AwsFailure::from_sdk(&e).said()
            );
        }
    }
}

fn failed(doing: &str, prefix: &str, target: &Target, said: &str) -> FunctionError {
    FunctionError::new(
        ErrorKind::ServiceUnavailable,
        format!(
            "{doing} the files of COPY INTO query {} under {prefix}{} failed{said}; the statement \
             did not commit",
            target.query_id, target.dir
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sql: &str) -> Target {
        let crate::sql::Statement::Copy(copy) = crate::sql::rewrite(sql).unwrap() else {
            panic!("{sql} is a COPY");
        };
        Target::new(&copy, "q1".into(), 0).unwrap()
    }

    #[test]
    fn only_the_statements_own_names_are_in_scope() {
        let t = target("COPY INTO @s/out/ FROM (SELECT 1 AS a)");
        let (from, ours) = scope("pre/", &t);
        assert_eq!(from, "pre/out/data_q1_");
        assert!(ours("pre/out/data_q1_0000_00000000.parquet"));
        let p = target("COPY INTO @s/out/ FROM (SELECT 1 AS a) PARTITION BY ('x')");
        let (from, ours) = scope("pre/", &p);
        assert_eq!(from, "pre/out/");
        assert!(ours("pre/out/x/data_q1_0002_00000001.parquet"));
        assert!(!ours("pre/out/x/data_q2_0002_00000001.parquet"));
        assert!(!ours("pre/other/x/data_q1_0002_00000001.parquet"));
        assert!(!ours("pre/out/_xstage_manifest_q1.json"));
    }
}
