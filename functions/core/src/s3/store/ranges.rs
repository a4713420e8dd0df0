//! Byte ranges: which GETs a read of many ranges sends, the bytes of each range cut from
//! their answers, and the `Range` and `Content-Range` headers.

use std::ops::Range;

use bytes::Bytes;
use object_store::GetRange;

/// Ranges closer than this are fetched with one GET. Small, because Parquet pages of one
/// column sit a column chunk apart and reading the gap costs more than a request.
pub const COALESCE_GAP: u64 = 64 * 1024;

/// `ranges` sorted, with those less than [`COALESCE_GAP`] apart merged: the requests a
/// coalesced read of them sends.
pub(super) fn merge_close(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(COALESCE_GAP) => {
                last.end = last.end.max(r.end);
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// The bytes of `range` from the answers `fetched` to the merged `requests` that cover it.
pub(super) fn slice_of(
    requests: &[Range<u64>],
    fetched: &[Bytes],
    range: &Range<u64>,
) -> object_store::Result<Bytes> {
    if range.start >= range.end {
        return Ok(Bytes::new());
    }
    let short = || object_store::Error::Generic {
        store: "S3",
        source: format!("bytes {range:?} lie past the end of the object").into(),
    };
    let i = requests
        .partition_point(|r| r.start <= range.start)
        .checked_sub(1)
        .ok_or_else(short)?;
    let (request, bytes) = (&requests[i], &fetched[i]);
    let from = usize::try_from(range.start - request.start).map_err(|_| short())?;
    let to = usize::try_from(range.end - request.start).map_err(|_| short())?;
    // An object shorter than asked answers up to its end, as object_store does.
    if from >= bytes.len() {
        return Err(short());
    }
    Ok(bytes.slice(from..to.min(bytes.len())))
}

pub(super) fn http_range(range: &GetRange) -> object_store::Result<String> {
    Ok(match range {
        GetRange::Bounded(r) if r.start < r.end => format!("bytes={}-{}", r.start, r.end - 1),
        GetRange::Bounded(r) => {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: format!("empty byte range {r:?}").into(),
            });
        }
        GetRange::Offset(o) => format!("bytes={o}-"),
        GetRange::Suffix(n) => format!("bytes=-{n}"),
    })
}

/// `range` of an object of `size` bytes as offsets; `None` when it asks for nothing.
pub(super) fn absolute(range: &GetRange, size: u64) -> Option<Range<u64>> {
    let r = match range {
        GetRange::Bounded(r) => r.start..r.end.min(size),
        GetRange::Offset(o) => *o..size,
        GetRange::Suffix(n) => size.saturating_sub(*n)..size,
    };
    (r.start < r.end).then_some(r)
}

/// `bytes 0-99/1234` into `(0..100, 1234)`.
pub(super) fn parse_content_range(value: &str) -> Option<(Range<u64>, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end, total) = (
        start.parse::<u64>().ok()?,
        end.parse::<u64>().ok()?,
        total.parse::<u64>().ok()?,
    );
    (start <= end && end < total).then_some((start..end + 1, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-99/1234"), Some((0..100, 1234)));
        assert_eq!(
            parse_content_range("bytes 1200-1233/1234"),
            Some((1200..1234, 1234))
        );
        assert_eq!(parse_content_range("bytes */1234"), None);
        assert_eq!(parse_content_range("bytes 5-1/10"), None);
        assert_eq!(parse_content_range("bytes 0-10/10"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            http_range(&GetRange::Bounded(0..100)).unwrap(),
            "bytes=0-99"
        );
        assert_eq!(http_range(&GetRange::Suffix(8)).unwrap(), "bytes=-8");
        assert_eq!(http_range(&GetRange::Offset(5)).unwrap(), "bytes=5-");
        assert!(http_range(&GetRange::Bounded(5..5)).is_err());
    }

    #[test]
    fn reads_of_many_ranges_are_sliced_from_the_merged_requests() {
        let ranges = [0..10, 5..20, 200_000..200_010, 30..30];
        let requests = merge_close(&ranges);
        assert_eq!(requests, vec![0..20, 200_000..200_010]);
        let data: Vec<u8> = (0..20).collect();
        let fetched = vec![Bytes::from(data), Bytes::from_static(b"0123")];
        let got: Vec<Bytes> = ranges
            .iter()
            .map(|r| slice_of(&requests, &fetched, r).unwrap())
            .collect();
        assert_eq!(&got[0][..], &(0..10).collect::<Vec<u8>>()[..]);
        assert_eq!(&got[1][..], &(5..20).collect::<Vec<u8>>()[..]);
        // The object ends inside the last request: what it has, as object_store answers.
        assert_eq!(&got[2][..], b"0123");
        assert!(got[3].is_empty());
        // A range wholly past what was answered is an error, not a panic.
        assert!(slice_of(&requests, &fetched, &(200_005..200_008)).is_err());
        assert!(slice_of(&[], &[], &(1..2)).is_err());
    }
}
