//! Page headers checked as their bytes arrive from S3, before parquet-rs decodes them.
//!
//! parquet-rs reserves a page's declared `uncompressed_page_size` (up to 2 GiB) before
//! decompressing it, and its GZIP, BROTLI and LZ4 (frame) decoders read to the end of the
//! stream whatever the header declared, so one small page can inflate to gigabytes. Neither
//! can be caught once started: an allocation failure aborts the process. [`PageMap`] knows
//! where every column chunk (and, with an offset index, every page) starts, and [`PageMap::check`]
//! walks the headers in the fetched bytes: a declared size above the limit, a page running
//! past its chunk, or a stream inflating past its declared size is refused. The inflation
//! check decodes into a counting sink, bounded by the declared size; the other codecs
//! (SNAPPY, ZSTD, LZ4_RAW) are already bounded by parquet-rs.

use std::collections::BTreeSet;
use std::io::Read;
use std::ops::Range;

use parquet::basic::Compression;
use parquet::file::metadata::ParquetMetaData;

use super::thrift::{Malformed, Reader, ty};

#[derive(Debug, Clone)]
struct Chunk {
    range: Range<u64>,
    codec: Compression,
}

/// Where a file's pages are, from its footer and offset index.
#[derive(Debug, Clone, Default)]
pub struct PageMap {
    /// Column chunks by start offset.
    chunks: Vec<Chunk>,
    /// Page starts known from the offset index.
    pages: BTreeSet<u64>,
    /// The largest `uncompressed_page_size` accepted.
    max_page: u64,
}

/// A page header's fields that bound its decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    len: usize,
    uncompressed: i64,
    compressed: i64,
    /// Bytes at the start of the page stored uncompressed (DATA_PAGE_V2's levels).
    plain_prefix: i64,
    compressed_data: bool,
}

impl PageMap {
    pub fn new(metadata: &ParquetMetaData, max_page: u64) -> Self {
        let mut chunks: Vec<Chunk> = metadata
            .row_groups()
            .iter()
            .flat_map(|rg| rg.columns())
            .map(|c| {
                let (start, len) = c.byte_range();
                Chunk {
                    range: start..start.saturating_add(len),
                    codec: c.compression(),
                }
            })
            .collect();
        chunks.sort_by_key(|c| c.range.start);
        let pages = metadata
            .offset_index()
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|index| index.page_locations())
            .filter_map(|p| u64::try_from(p.offset).ok())
            .collect();
        Self {
            chunks,
            pages,
            max_page,
        }
    }

    /// Checks the page headers in `bytes`, read from offset `start` of the file.
    pub fn check(&self, start: u64, bytes: &[u8]) -> Result<(), String> {
        let end = start.saturating_add(bytes.len() as u64);
        // A linear scan: a hostile footer may declare overlapping chunks, which no search
        // over sorted ends could rely on.
        for chunk in self
            .chunks
            .iter()
            .take_while(|c| c.range.start < end)
            .filter(|c| c.range.end > start)
        {
            // Where a header is known to begin: the chunk's start, else the first page start
            // of the offset index inside the fetched bytes.
            let from = if chunk.range.start >= start {
                Some(chunk.range.start)
            } else {
                self.pages
                    .range(start..chunk.range.end.min(end))
                    .next()
                    .copied()
            };
            if let Some(from) = from {
                let stop = chunk.range.end.min(end);
                self.walk(
                    chunk,
                    from,
                    &bytes[(from - start) as usize..(stop - start) as usize],
                )?;
            }
        }
        Ok(())
    }

    /// Walks consecutive pages of `chunk` from file offset `at`, over `bytes`.
    fn walk(&self, chunk: &Chunk, mut at: u64, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let header = match header(bytes) {
                Ok(h) => h,
                Err(Malformed::Incomplete) => return Ok(()), // the rest was not fetched
                // Not ours to judge: parquet-rs reports malformed headers with their own error.
                Err(Malformed::Invalid(_)) => return Ok(()),
            };
            if header.uncompressed < 0 || header.compressed < 0 {
                return Err(format!(
                    "the page at offset {at} declares a negative size ({} compressed, {} uncompressed)",
                    header.compressed, header.uncompressed
                ));
            }
            if header.uncompressed as u64 > self.max_page {
                return Err(format!(
                    "the page at offset {at} declares {} bytes uncompressed, more than the {}-byte \
                     limit of this function's memory",
                    header.uncompressed, self.max_page
                ));
            }
            let data_start = at + header.len as u64;
            let data_end = data_start + header.compressed as u64;
            if data_end > chunk.range.end {
                return Err(format!(
                    "the page at offset {at} runs to offset {data_end}, past the end of its column \
                     chunk at {}",
                    chunk.range.end
                ));
            }
            let data_len = header.compressed as usize;
            let Some(data) = bytes.get(header.len..header.len + data_len) else {
                return Ok(()); // the page's data was not fetched with its header
            };
            if header.compressed_data {
                let prefix = usize::try_from(header.plain_prefix.max(0))
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let budget = (header.uncompressed as u64).saturating_sub(prefix as u64);
                if let Some(n) = inflated(chunk.codec, &data[prefix..], budget)
                    && n > budget
                {
                    return Err(format!(
                        "the page at offset {at} inflates past the {} bytes its header declares",
                        header.uncompressed
                    ));
                }
            }
            at = data_end;
            bytes = &bytes[header.len + data_len..];
        }
        Ok(())
    }
}

/// Bytes a stream decodes to, counted up to `budget + 1`, for the codecs whose decoders
/// in parquet-rs are unbounded. `None` when the codec is bounded or the bytes do not decode
/// (parquet-rs then reports the error).
fn inflated(codec: Compression, data: &[u8], budget: u64) -> Option<u64> {
    let reader: Box<dyn Read + '_> = match codec {
        Compression::GZIP(_) => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::BROTLI(_) => Box::new(brotli::Decompressor::new(data, 4096)),
        Compression::LZ4 => Box::new(lz4_flex::frame::FrameDecoder::new(data)),
        _ => return None,
    };
    std::io::copy(
        &mut reader.take(budget.saturating_add(1)),
        &mut std::io::sink(),
    )
    .ok()
}

/// Decodes the bounding fields of a Thrift `PageHeader`.
fn header(bytes: &[u8]) -> Result<Header, Malformed> {
    let mut r = Reader::new(bytes);
    let mut h = Header {
        len: 0,
        uncompressed: 0,
        compressed: 0,
        plain_prefix: 0,
        compressed_data: true,
    };
    let mut last = 0;
    while let Some((id, kind)) = r.field(&mut last)? {
        match (id, kind) {
            (2, ty::I32) => h.uncompressed = r.int()?,
            (3, ty::I32) => h.compressed = r.int()?,
            (8, ty::STRUCT) => {
                // DataPageHeaderV2: levels lengths (5, 6) and is_compressed (7).
                let mut last = 0;
                while let Some((id, kind)) = r.field(&mut last)? {
                    match (id, kind) {
                        (5 | 6, ty::I32) => {
                            h.plain_prefix = h.plain_prefix.saturating_add(r.int()?)
                        }
                        (7, ty::TRUE) => h.compressed_data = true,
                        (7, ty::FALSE) => h.compressed_data = false,
                        (_, kind) => r.skip(kind, 2)?,
                    }
                }
            }
            (_, kind) => r.skip(kind, 1)?,
        }
    }
    h.len = r.position();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::checks::thrift::Writer;

    fn page(uncompressed: i64, data: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin()
            .field(1, ty::I32)
            .int(0)
            .field(2, ty::I32)
            .int(uncompressed)
            .field(3, ty::I32)
            .int(data.len() as i64)
            .field(5, ty::STRUCT)
            .begin()
            .field(1, ty::I32)
            .int(10)
            .end()
            .end();
        w.bytes.extend_from_slice(data);
        w.bytes
    }

    fn map(len: u64, codec: Compression) -> PageMap {
        PageMap {
            chunks: vec![Chunk {
                range: 4..4 + len,
                codec,
            }],
            pages: BTreeSet::new(),
            max_page: 1 << 20,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn honest_pages_pass() {
        let mut chunk = page(5, b"hello");
        chunk.extend(page(3, b"abc"));
        map(chunk.len() as u64, Compression::UNCOMPRESSED)
            .check(4, &chunk)
            .unwrap();
        let zipped = gzip(&[7u8; 1000]);
        let chunk = page(1000, &zipped);
        map(chunk.len() as u64, Compression::GZIP(Default::default()))
            .check(4, &chunk)
            .unwrap();
    }

    #[test]
    fn a_huge_declared_page_is_refused() {
        let chunk = page(2_000_000_000, b"x");
        let err = map(chunk.len() as u64, Compression::SNAPPY)
            .check(4, &chunk)
            .unwrap_err();
        assert!(err.contains("2000000000 bytes uncompressed"), "{err}");
    }

    #[test]
    fn a_gzip_bomb_is_refused_before_it_inflates() {
        // 50 MB of zeros in ~50 KB, declared as 100 bytes.
        let zipped = gzip(&vec![0u8; 50 << 20]);
        let chunk = page(100, &zipped);
        let err = map(chunk.len() as u64, Compression::GZIP(Default::default()))
            .check(4, &chunk)
            .unwrap_err();
        assert!(err.contains("inflates past the 100 bytes"), "{err}");
    }

    #[test]
    fn a_page_past_its_chunk_is_refused() {
        let chunk = page(5, b"hello");
        let err = map(chunk.len() as u64 - 2, Compression::UNCOMPRESSED)
            .check(4, &chunk)
            .unwrap_err();
        assert!(err.contains("past the end of its column chunk"), "{err}");
    }

    #[test]
    fn reads_that_start_inside_a_chunk_begin_at_a_known_page() {
        let first = page(5, b"hello");
        let second = page(2_000_000_000, b"x");
        let mut chunk = first.clone();
        chunk.extend(&second);
        let mut m = map(chunk.len() as u64, Compression::UNCOMPRESSED);
        // Without a known page start, bytes from the middle of a chunk are not judged.
        m.check(4 + first.len() as u64, &second).unwrap();
        m.pages.insert(4 + first.len() as u64);
        assert!(m.check(4 + first.len() as u64, &second).is_err());
        // Bytes around the chunk: headers from its start on.
        let mut around = vec![0u8; 4];
        around.extend(&chunk);
        around.extend([1, 2, 3]);
        assert!(m.check(0, &around).is_err());
    }
}
