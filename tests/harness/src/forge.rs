//! Hand-made Parquet files that lie: every byte written here, so a header or a footer can
//! claim what no writer library would let it claim (a page inflating to gigabytes, billions
//! of rows, columns or row groups), and real files cut or patched (truncated, bad magic, a
//! footer length past the file).
//!
//! [`Forge::valid`] is the honest baseline: one required INT32 column `v` with the values
//! `0..rows`, one row group, one PLAIN data page; the tests read it first, so every other
//! variant is known to be wrong only in the way it was made wrong.

use std::io::Write;

use bytes::Bytes;
use xstage_core::checks::thrift::{Writer, ty};

/// Parquet's compression codec ids.
pub mod codec {
    pub const UNCOMPRESSED: i64 = 0;
    pub const SNAPPY: i64 = 1;
    pub const GZIP: i64 = 2;
}

/// What the forged file claims and holds.
#[derive(Debug, Clone)]
pub struct Forge {
    /// Values actually stored.
    pub rows: usize,
    /// The page's codec and its stored bytes (by default, the values, uncompressed).
    pub codec: i64,
    pub page_data: Option<Vec<u8>>,
    /// The page header's `uncompressed_page_size` (by default, the true size).
    pub declared_page_size: Option<i64>,
    /// The row count in the footer and the row group (by default, `rows`).
    pub claimed_rows: Option<i64>,
    /// The number of schema nodes the schema list claims (by default, 2).
    pub claimed_schema_nodes: Option<usize>,
    /// The root's `num_children` (by default, 1).
    pub claimed_children: Option<i64>,
    /// The number of row groups the list claims (by default, 1).
    pub claimed_row_groups: Option<usize>,
}

impl Forge {
    pub fn valid(rows: usize) -> Self {
        Self {
            rows,
            codec: codec::UNCOMPRESSED,
            page_data: None,
            declared_page_size: None,
            claimed_rows: None,
            claimed_schema_nodes: None,
            claimed_children: None,
            claimed_row_groups: None,
        }
    }

    /// The sum of the stored values, as `SELECT sum(v)` must answer for the valid file.
    pub fn sum(&self) -> i64 {
        (0..self.rows as i64).sum()
    }

    pub fn bytes(&self) -> Bytes {
        let plain: Vec<u8> = (0..self.rows as i32).flat_map(i32::to_le_bytes).collect();
        let data = self.page_data.clone().unwrap_or_else(|| plain.clone());
        let mut page = Writer::default();
        page.begin()
            .field(1, ty::I32)
            .int(0) // DATA_PAGE
            .field(2, ty::I32)
            .int(self.declared_page_size.unwrap_or(plain.len() as i64))
            .field(3, ty::I32)
            .int(data.len() as i64)
            .field(5, ty::STRUCT)
            .begin()
            .field(1, ty::I32)
            .int(self.rows as i64)
            .field(2, ty::I32)
            .int(0) // PLAIN
            .field(3, ty::I32)
            .int(3) // RLE
            .field(4, ty::I32)
            .int(3)
            .end()
            .end();
        let mut file = b"PAR1".to_vec();
        let page_offset = file.len() as i64;
        file.extend(&page.bytes);
        file.extend(&data);
        let chunk_len = (page.bytes.len() + data.len()) as i64;
        let rows = self.claimed_rows.unwrap_or(self.rows as i64);

        let mut m = Writer::default();
        m.begin().field(1, ty::I32).int(2);
        m.field(2, ty::LIST)
            .list(ty::STRUCT, self.claimed_schema_nodes.unwrap_or(2));
        m.begin()
            .field(4, ty::BINARY)
            .binary(b"schema")
            .field(5, ty::I32)
            .int(self.claimed_children.unwrap_or(1))
            .end();
        m.begin()
            .field(1, ty::I32)
            .int(1) // INT32
            .field(3, ty::I32)
            .int(0) // REQUIRED
            .field(4, ty::BINARY)
            .binary(b"v")
            .end();
        m.field(3, ty::I64).int(rows);
        m.field(4, ty::LIST)
            .list(ty::STRUCT, self.claimed_row_groups.unwrap_or(1));
        m.begin().field(1, ty::LIST).list(ty::STRUCT, 1);
        m.begin().field(2, ty::I64).int(page_offset);
        m.field(3, ty::STRUCT)
            .begin()
            .field(1, ty::I32)
            .int(1)
            .field(2, ty::LIST)
            .list(ty::I32, 1)
            .int(0)
            .field(3, ty::LIST)
            .list(ty::BINARY, 1)
            .binary(b"v")
            .field(4, ty::I32)
            .int(self.codec)
            .field(5, ty::I64)
            .int(self.rows as i64)
            .field(6, ty::I64)
            .int((page.bytes.len() + plain.len()) as i64)
            .field(7, ty::I64)
            .int(chunk_len)
            .field(9, ty::I64)
            .int(page_offset)
            .end();
        m.end(); // ColumnChunk
        m.field(2, ty::I64)
            .int(chunk_len)
            .field(3, ty::I64)
            .int(rows);
        m.end(); // RowGroup
        m.field(6, ty::BINARY).binary(b"xstage forge");
        m.end(); // FileMetaData

        file.extend(&m.bytes);
        file.extend((m.bytes.len() as u32).to_le_bytes());
        file.extend(b"PAR1");
        Bytes::from(file)
    }
}

/// A gzip stream (many members) that inflates to `gib` GiB of zeros from about a
/// thousandth of that.
pub fn gzip_bomb(gib: usize) -> Vec<u8> {
    let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 64 << 20];
    member.write_all(&zeros).expect("gzip");
    let member = member.finish().expect("gzip");
    member.repeat(gib * 16)
}

/// `file` with its last four bytes (the magic) replaced.
pub fn with_magic(file: &[u8], magic: &[u8; 4]) -> Bytes {
    let mut out = file.to_vec();
    let n = out.len();
    out[n - 4..].copy_from_slice(magic);
    Bytes::from(out)
}

/// `file` with its footer length field set to `len`.
pub fn with_footer_len(file: &[u8], len: u32) -> Bytes {
    let mut out = file.to_vec();
    let n = out.len();
    out[n - 8..n - 4].copy_from_slice(&len.to_le_bytes());
    Bytes::from(out)
}

/// A file of `size` bytes: the Parquet magic, zeros, and a trailer whose footer length
/// `footer_len` fits in the file.
pub fn padded_with_footer_len(size: usize, footer_len: u32) -> Bytes {
    let mut out = vec![0u8; size];
    out[..4].copy_from_slice(b"PAR1");
    out[size - 8..size - 4].copy_from_slice(&footer_len.to_le_bytes());
    out[size - 4..].copy_from_slice(b"PAR1");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;

    #[test]
    fn the_valid_forgery_is_read_by_parquet_rs() {
        let forge = Forge::valid(1000);
        let reader = SerializedFileReader::new(forge.bytes()).expect("a readable file");
        assert_eq!(reader.metadata().file_metadata().num_rows(), 1000);
        let mut sum = 0i64;
        for row in reader.get_row_iter(None).expect("rows") {
            sum += i64::from(row.expect("a row").get_int(0).expect("an int"));
        }
        assert_eq!(sum, forge.sum());
    }

    #[test]
    fn the_bomb_is_small_and_inflates_far() {
        let bomb = gzip_bomb(1);
        assert!(bomb.len() < 2 << 20, "{}", bomb.len());
        let mut inflated = 0u64;
        let mut d = flate2::read::MultiGzDecoder::new(&bomb[..]);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut d, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            inflated += n as u64;
        }
        assert_eq!(inflated, 1 << 30);
    }
}
