//! The line an NDJSON reader refused. arrow-json decodes a file as one stream and says what
//! was wrong, not where; on that error path the file is read again, one line at a time
//! through the same decoder and schema, to name the first line it refuses.

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// The most bytes read again to find the line; past them the message names no line.
pub const MAX_BYTES: u64 = 256 << 20;

/// The 1-based number of the first line of `body` (the file's decompressed bytes) that is
/// not UTF-8 or that arrow-json refuses with `schema`; `None` if every line up to
/// [`MAX_BYTES`] decodes or the body fails.
pub async fn ndjson_line<E>(
    body: impl Stream<Item = Result<Bytes, E>>,
    schema: SchemaRef,
) -> Option<u64> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .build_decoder()
        .ok()?;
    let mut pending: Vec<u8> = Vec::new();
    let mut line = 0u64;
    let mut seen = 0u64;
    let mut check = |text: &[u8], line: u64| -> Option<u64> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let refused = std::str::from_utf8(text).is_err()
            || decoder.decode(text).is_err()
            || decoder.decode(b"\n").is_err()
            || decoder.flush().is_err();
        refused.then_some(line)
    };
    futures::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        seen += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            line += 1;
            if let Some(bad) = check(&pending[start..start + end], line) {
                return Some(bad);
            }
            start += end + 1;
        }
        pending.drain(..start);
        if seen > MAX_BYTES {
            return None;
        }
    }
    check(&pending, line + 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    async fn line_of(chunks: &[&[u8]]) -> Option<u64> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c))),
        );
        ndjson_line(body, schema()).await
    }

    #[tokio::test]
    async fn names_the_first_refused_line_across_chunks() {
        assert_eq!(
            line_of(&[b"{\"a\":1}\n{\"a\":2,", b"\"b\":\"x\"}\n\n{\"a\":"]).await,
            Some(4)
        );
        assert_eq!(line_of(&[b"{\"a\":1}\n{\"a\":\"x\"}\n"]).await, Some(2));
        assert_eq!(line_of(&[b"{\"a\":1}\n{\"b\":\"\xff\"}\n"]).await, Some(2));
        assert_eq!(line_of(&[b"{\"a\":1}\n", b"{\"a\":2}"]).await, None);
        assert_eq!(line_of(&[b"{\"a\":1}\n[1, 2\n"]).await, Some(2));
    }
}
