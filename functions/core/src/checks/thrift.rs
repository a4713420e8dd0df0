//! A reader of Thrift's compact protocol, the encoding of Parquet footers and page headers,
//! that only walks: it decodes integers and container headers, skips everything else, and
//! refuses what no valid file contains (a container longer than the bytes left, nesting
//! deeper than [`MAX_DEPTH`], a varint longer than ten bytes). It allocates nothing.

/// Deepest nesting of structs and containers walked. Parquet's own structures nest about
/// six deep; statistics and logical types add a few.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not valid compact Thrift. `Incomplete` means the bytes ended first: the
/// caller may not have all of the structure yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    Incomplete,
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Malformed>;

fn invalid<T>(why: impl Into<String>) -> Result<T> {
    Err(Malformed::Invalid(why.into()))
}

/// Compact protocol type ids.
pub mod ty {
    pub const STOP: u8 = 0;
    pub const TRUE: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const UUID: u8 = 13;
}

/// A cursor over compact-protocol bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.pos).ok_or(Malformed::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        if n > self.remaining() {
            return Err(Malformed::Incomplete);
        }
        self.pos += n;
        Ok(())
    }

    /// An unsigned LEB128 varint of at most ten bytes.
    pub fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return invalid("a varint overflows 64 bits");
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        invalid("a varint is longer than ten bytes")
    }

    /// A zigzag-encoded signed integer (i16, i32 and i64 alike).
    pub fn int(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// The next field of a struct: `(id, type)`, or `None` at the struct's end.
    pub fn field(&mut self, last_id: &mut i16) -> Result<Option<(i16, u8)>> {
        let header = self.byte()?;
        let ty = header & 0x0f;
        if ty == ty::STOP {
            return Ok(None);
        }
        let delta = header >> 4;
        let id = if delta == 0 {
            i16::try_from(self.int()?).or_else(|_| invalid("a field id does not fit in 16 bits"))?
        } else {
            last_id.saturating_add(i16::from(delta))
        };
        *last_id = id;
        Ok(Some((id, ty)))
    }

    /// A list or set header: `(element type, length)`. Every element takes at least one
    /// byte, so a length beyond the bytes left is refused before anyone allocates for it.
    pub fn list(&mut self) -> Result<(u8, usize)> {
        let header = self.byte()?;
        let short = usize::from(header >> 4);
        let len = if short == 15 {
            usize::try_from(self.varint()?).unwrap_or(usize::MAX)
        } else {
            short
        };
        let element = header & 0x0f;
        self.check_len(len, element)?;
        Ok((element, len))
    }

    fn check_len(&self, len: usize, element: u8) -> Result<()> {
        // Booleans in containers take a byte each; every other element at least one.
        let least = if element == ty::DOUBLE { 8 } else { 1 };
        if len.saturating_mul(least) > self.remaining() {
            return invalid(format!(
                "a container claims {len} elements with only {} bytes left",
                self.remaining()
            ));
        }
        Ok(())
    }

    /// Skips one value of type `ty`.
    pub fn skip(&mut self, ty: u8, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return invalid(format!("nesting deeper than {MAX_DEPTH}"));
        }
        match ty {
            ty::TRUE | ty::FALSE => Ok(()),
            ty::BYTE => self.advance(1),
            ty::I16 | ty::I32 | ty::I64 => self.varint().map(drop),
            ty::DOUBLE => self.advance(8),
            ty::UUID => self.advance(16),
            ty::BINARY => {
                let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                if len > self.remaining() {
                    return Err(Malformed::Incomplete);
                }
                self.advance(len)
            }
            ty::LIST | ty::SET => {
                let (element, len) = self.list()?;
                for _ in 0..len {
                    self.skip_element(element, depth + 1)?;
                }
                Ok(())
            }
            ty::MAP => {
                let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                if len == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                self.check_len(len.saturating_mul(2), ty::BYTE)?;
                for _ in 0..len {
                    self.skip_element(kinds >> 4, depth + 1)?;
                    self.skip_element(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            ty::STRUCT => self.skip_struct(depth + 1),
            other => invalid(format!("unknown compact type {other}")),
        }
    }

    /// Container elements: booleans are a byte each there.
    fn skip_element(&mut self, ty: u8, depth: usize) -> Result<()> {
        match ty {
            ty::TRUE | ty::FALSE => self.advance(1),
            other => self.skip(other, depth),
        }
    }

    /// Skips the rest of a struct whose header was read.
    pub fn skip_struct(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return invalid(format!("nesting deeper than {MAX_DEPTH}"));
        }
        let mut last = 0;
        while let Some((_, ty)) = self.field(&mut last)? {
            self.skip(ty, depth)?;
        }
        Ok(())
    }

    /// An integer field's value, for a field of type `ty`.
    pub fn int_of(&mut self, ty: u8) -> Result<i64> {
        match ty {
            ty::I16 | ty::I32 | ty::I64 => self.int(),
            ty::BYTE => Ok(i64::from(self.byte()? as i8)),
            other => invalid(format!("an integer field has type {other}")),
        }
    }
}

/// A compact-protocol writer, for tests and fuzz seeds that forge footers and page headers.
/// Fields are written in the order called; `begin` and `end` bracket a struct.
#[derive(Debug, Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
    last: Vec<i16>,
}

impl Writer {
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.bytes.push(b);
                return self;
            }
            self.bytes.push(b | 0x80);
        }
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }
    pub fn begin(&mut self) -> &mut Self {
        self.last.push(0);
        self
    }
    pub fn field(&mut self, id: i16, ty: u8) -> &mut Self {
        let last = self.last.last_mut().expect("inside a struct");
        let delta = id - *last;
        *last = id;
        if (1..=15).contains(&delta) {
            self.bytes.push(((delta as u8) << 4) | ty);
        } else {
            self.bytes.push(ty);
            self.int(i64::from(id));
        }
        self
    }
    pub fn end(&mut self) -> &mut Self {
        self.bytes.push(ty::STOP);
        self.last.pop();
        self
    }
    pub fn list(&mut self, element: u8, len: usize) -> &mut Self {
        if len < 15 {
            self.bytes.push(((len as u8) << 4) | element);
        } else {
            self.bytes.push(0xf0 | element);
            self.varint(len as u64);
        }
        self
    }
    pub fn binary(&mut self, b: &[u8]) -> &mut Self {
        self.varint(b.len() as u64);
        self.bytes.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn integers_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            let mut w = Writer::default();
            w.int(v);
            assert_eq!(Reader::new(&w.bytes).int().unwrap(), v);
        }
    }

    #[test]
    fn structs_are_skipped_whole() {
        let mut w = Writer::default();
        w.begin()
            .field(1, ty::I32)
            .int(7)
            .field(4, ty::BINARY)
            .binary(b"name")
            .field(40, ty::LIST)
            .list(ty::I64, 3)
            .int(1)
            .int(2)
            .int(3)
            .field(41, ty::STRUCT)
            .begin()
            .field(1, ty::TRUE)
            .end()
            .end();
        w.bytes.push(0xAA); // what follows the struct
        let mut r = Reader::new(&w.bytes);
        r.skip_struct(0).unwrap();
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn a_list_longer_than_the_bytes_is_refused() {
        let mut w = Writer::default();
        w.list(ty::STRUCT, 2_000_000_000);
        assert!(matches!(
            Reader::new(&w.bytes).list(),
            Err(Malformed::Invalid(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            bytes.push((1 << 4) | ty::STRUCT);
        }
        let err = Reader::new(&bytes).skip_struct(0).unwrap_err();
        assert!(
            matches!(err, Malformed::Invalid(ref m) if m.contains("nesting")),
            "{err:?}"
        );
    }

    #[test]
    fn truncation_is_incomplete_not_invalid() {
        let mut w = Writer::default();
        w.begin().field(1, ty::BINARY).binary(b"hello").end();
        let cut = &w.bytes[..w.bytes.len() - 3];
        assert_eq!(Reader::new(cut).skip_struct(0), Err(Malformed::Incomplete));
    }

    #[test]
    fn overlong_varints_are_refused() {
        let bytes = [0xffu8; 11];
        assert!(matches!(
            Reader::new(&bytes).varint(),
            Err(Malformed::Invalid(_))
        ));
    }
}
