//! The footer (Thrift `FileMetaData`) walked before parquet-rs decodes it.
//!
//! parquet-rs sizes some vectors from counts in the footer before reading their elements
//! (the row groups, a schema node's children). A footer of a few bytes claiming two billion
//! row groups would make it allocate hundreds of gigabytes and abort the process, which no
//! error handling can catch. This walk bounds every count by what the bytes can hold and by
//! the structure (a node cannot have more children than the schema has nodes).

use super::thrift::{Malformed, Reader, ty};

/// Most schema nodes (columns and groups) accepted.
pub const MAX_SCHEMA_NODES: usize = 100_000;
/// Most row groups accepted in one file.
pub const MAX_ROW_GROUPS: usize = 100_000;

/// Checks the bytes of a `FileMetaData`; `Err` says what is wrong.
pub fn check(footer: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(footer);
    walk(&mut r).map_err(|m| match m {
        Malformed::Incomplete => "its footer ends in the middle of a structure".to_string(),
        Malformed::Invalid(why) => format!("its footer is malformed: {why}"),
    })
}

fn invalid<T>(why: String) -> Result<T, Malformed> {
    Err(Malformed::Invalid(why))
}

fn walk(r: &mut Reader<'_>) -> Result<(), Malformed> {
    let mut last = 0;
    let mut nodes = 0usize;
    while let Some((id, kind)) = r.field(&mut last)? {
        match (id, kind) {
            (2, ty::LIST) => {
                let (element, len) = r.list()?;
                if len > MAX_SCHEMA_NODES {
                    return invalid(format!(
                        "the schema claims {len} nodes, more than the {MAX_SCHEMA_NODES} accepted"
                    ));
                }
                nodes = len;
                for _ in 0..len {
                    schema_element(r, element, len)?;
                }
            }
            (3, ty::I64) => {
                let rows = r.int()?;
                if rows < 0 {
                    return invalid(format!("the file claims {rows} rows"));
                }
            }
            (4, ty::LIST) => {
                let (element, len) = r.list()?;
                if len > MAX_ROW_GROUPS {
                    return invalid(format!(
                        "it claims {len} row groups, more than the {MAX_ROW_GROUPS} accepted"
                    ));
                }
                for _ in 0..len {
                    row_group(r, element, nodes)?;
                }
            }
            (_, kind) => r.skip(kind, 1)?,
        }
    }
    Ok(())
}

fn expect_struct(element: u8, what: &str) -> Result<(), Malformed> {
    if element != ty::STRUCT {
        return invalid(format!(
            "{what} is a list of type {element}, not of structs"
        ));
    }
    Ok(())
}

/// A `SchemaElement`: `num_children` (field 5) must fit in the schema.
fn schema_element(r: &mut Reader<'_>, element: u8, nodes: usize) -> Result<(), Malformed> {
    expect_struct(element, "the schema")?;
    let mut last = 0;
    while let Some((id, kind)) = r.field(&mut last)? {
        if id == 5 && kind == ty::I32 {
            let children = r.int()?;
            if children < 0 || children as u64 >= nodes as u64 {
                return invalid(format!(
                    "a schema node claims {children} children in a schema of {nodes} nodes"
                ));
            }
        } else {
            r.skip(kind, 2)?;
        }
    }
    Ok(())
}

/// A `RowGroup`: its column chunks (field 1) cannot outnumber the schema's nodes, and its
/// row count (field 3) cannot be negative.
fn row_group(r: &mut Reader<'_>, element: u8, nodes: usize) -> Result<(), Malformed> {
    expect_struct(element, "the row groups")?;
    let mut last = 0;
    while let Some((id, kind)) = r.field(&mut last)? {
        match (id, kind) {
            (1, ty::LIST) => {
                let (element, len) = r.list()?;
                if len > nodes {
                    return invalid(format!(
                        "a row group claims {len} column chunks in a schema of {nodes} nodes"
                    ));
                }
                for _ in 0..len {
                    r.skip(element, 3)?;
                }
            }
            (3, ty::I64) => {
                let rows = r.int()?;
                if rows < 0 {
                    return invalid(format!("a row group claims {rows} rows"));
                }
            }
            (_, kind) => r.skip(kind, 2)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::thrift::Writer;

    fn footer(schema_children: i64, row_groups: usize, chunks: usize) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin()
            .field(1, ty::I32)
            .int(2)
            .field(2, ty::LIST)
            .list(ty::STRUCT, 2);
        w.begin()
            .field(4, ty::BINARY)
            .binary(b"schema")
            .field(5, ty::I32)
            .int(schema_children)
            .end();
        w.begin()
            .field(1, ty::I32)
            .int(1)
            .field(4, ty::BINARY)
            .binary(b"id")
            .end();
        w.field(3, ty::I64).int(10);
        w.field(4, ty::LIST).list(ty::STRUCT, row_groups);
        for _ in 0..row_groups.min(3) {
            w.begin().field(1, ty::LIST).list(ty::STRUCT, chunks);
            for _ in 0..chunks.min(3) {
                w.begin().field(2, ty::I64).int(4).end();
            }
            w.field(2, ty::I64).int(100).field(3, ty::I64).int(10).end();
        }
        w.end();
        w.bytes
    }

    #[test]
    fn a_plain_footer_passes() {
        check(&footer(1, 1, 1)).unwrap();
    }

    #[test]
    fn billions_of_row_groups_are_refused_before_any_allocation() {
        let err = check(&footer(1, 2_000_000_000, 1)).unwrap_err();
        assert!(err.contains("2000000000 elements"), "{err}");
        // More row groups than the cap, in bytes that could hold them.
        let mut many = footer(1, MAX_ROW_GROUPS + 1, 1);
        many.extend(std::iter::repeat_n(0u8, 300_000));
        let err = check(&many).unwrap_err();
        assert!(err.contains("100001 row groups"), "{err}");
    }

    #[test]
    fn a_node_with_more_children_than_the_schema_is_refused() {
        let err = check(&footer(2_000_000_000, 1, 1)).unwrap_err();
        assert!(err.contains("2000000000 children"), "{err}");
        let err = check(&footer(-1, 1, 1)).unwrap_err();
        assert!(err.contains("-1 children"), "{err}");
    }

    #[test]
    fn more_chunks_than_schema_nodes_are_refused() {
        let err = check(&footer(1, 1, 3)).unwrap_err();
        assert!(err.contains("3 column chunks"), "{err}");
    }

    #[test]
    fn a_cut_footer_is_refused() {
        let bytes = footer(1, 1, 1);
        let err = check(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(err.contains("ends in the middle"), "{err}");
    }
}
