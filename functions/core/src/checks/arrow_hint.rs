//! The Arrow schema a writer may embed in a Parquet footer (`ARROW:schema`: base64 of an
//! IPC `Schema` message), checked before arrow-ipc converts it.
//!
//! arrow-ipc 59 panics on types it cannot map (an integer 3 bits wide, a list with two
//! children, a time unit out of range...), and parquet-rs and DataFusion hand it whatever
//! the footer holds. Found by the `parquet_footer` fuzz target. A hint is kept only when
//! every field, nested fields included, is a type checked here to convert; otherwise the
//! file is read by its Parquet schema alone, as if no writer had left a hint.

use arrow_ipc::{DateUnit, Field, IntervalUnit, Precision, TimeUnit, Type, root_as_message};
use base64::Engine as _;

/// The key parquet-rs reads the hint from.
pub const KEY: &str = "ARROW:schema";

const MAX_DEPTH: usize = 64;

/// Whether arrow-ipc can convert this `ARROW:schema` value without panicking.
pub fn is_safe(encoded: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return true; // parquet-rs reports a decoding error itself
    };
    // The same framing parquet-rs strips: a continuation marker and a length.
    let slice = if bytes.len() > 8 && bytes[0..4] == [255u8; 4] {
        &bytes[8..]
    } else {
        &bytes[..]
    };
    let Ok(message) = root_as_message(slice) else {
        return true; // a verification error, which parquet-rs returns as an error
    };
    let Some(schema) = message.header_as_schema() else {
        return true;
    };
    if schema.endianness() != arrow_ipc::Endianness::Little {
        return false; // decimals of a big-endian schema are `unimplemented!`
    }
    match schema.fields() {
        Some(fields) => fields.iter().all(|f| field_is_safe(f, 0)),
        None => false,
    }
}

fn int_ok(int: Option<arrow_ipc::Int>) -> bool {
    int.is_some_and(|i| matches!(i.bitWidth(), 8 | 16 | 32 | 64))
}

fn children_ok(field: Field<'_>, count: Option<usize>, depth: usize) -> bool {
    match field.children() {
        Some(children) => {
            count.is_none_or(|n| children.len() == n)
                && children.iter().all(|c| field_is_safe(c, depth + 1))
        }
        None => count.is_none(),
    }
}

fn field_is_safe(field: Field<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if let Some(dictionary) = field.dictionary()
        && !int_ok(dictionary.indexType())
    {
        return false;
    }
    match field.type_type() {
        Type::Null | Type::Bool | Type::Binary | Type::Utf8 | Type::LargeBinary => true,
        Type::LargeUtf8 | Type::BinaryView | Type::Utf8View => true,
        Type::Int => int_ok(field.type_as_int()),
        Type::FixedSizeBinary => field.type_as_fixed_size_binary().is_some(),
        Type::FloatingPoint => field.type_as_floating_point().is_some_and(|f| {
            matches!(
                f.precision(),
                Precision::HALF | Precision::SINGLE | Precision::DOUBLE
            )
        }),
        Type::Date => field
            .type_as_date()
            .is_some_and(|d| matches!(d.unit(), DateUnit::DAY | DateUnit::MILLISECOND)),
        Type::Time => field.type_as_time().is_some_and(|t| {
            matches!(
                (t.unit(), t.bitWidth()),
                (TimeUnit::SECOND | TimeUnit::MILLISECOND, 32)
                    | (TimeUnit::MICROSECOND | TimeUnit::NANOSECOND, 64)
            )
        }),
        Type::Timestamp => field.type_as_timestamp().is_some_and(|t| unit_ok(t.unit())),
        Type::Duration => field.type_as_duration().is_some_and(|d| unit_ok(d.unit())),
        Type::Interval => field.type_as_interval().is_some_and(|i| {
            matches!(
                i.unit(),
                IntervalUnit::YEAR_MONTH | IntervalUnit::DAY_TIME | IntervalUnit::MONTH_DAY_NANO
            )
        }),
        Type::List | Type::LargeList | Type::ListView | Type::LargeListView => {
            children_ok(field, Some(1), depth)
        }
        Type::FixedSizeList => {
            field.type_as_fixed_size_list().is_some() && children_ok(field, Some(1), depth)
        }
        Type::Map => field.type_as_map().is_some() && children_ok(field, Some(1), depth),
        Type::Struct_ => field.children().is_none() || children_ok(field, None, depth),
        Type::Decimal => field.type_as_decimal().is_some_and(|d| {
            matches!(d.bitWidth(), 32 | 64 | 128 | 256)
                && u8::try_from(d.precision()).is_ok()
                && i8::try_from(d.scale()).is_ok()
        }),
        // Unions and run-end encoding check more than is worth repeating here; anything else
        // arrow-ipc does not know.
        _ => false,
    }
}

fn unit_ok(unit: TimeUnit) -> bool {
    matches!(
        unit,
        TimeUnit::SECOND | TimeUnit::MILLISECOND | TimeUnit::MICROSECOND | TimeUnit::NANOSECOND
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit as ArrowUnit};

    use super::*;

    fn hint(schema: &Schema) -> String {
        parquet::arrow::encode_arrow_schema(schema)
    }

    #[test]
    fn hints_writers_leave_are_kept() {
        let schema = Schema::new(vec![
            ArrowField::new("id", DataType::Int64, false),
            ArrowField::new("name", DataType::Utf8, true),
            ArrowField::new(
                "at",
                DataType::Timestamp(ArrowUnit::Microsecond, Some("Europe/Paris".into())),
                true,
            ),
            ArrowField::new(
                "tags",
                DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true))),
                true,
            ),
            ArrowField::new("price", DataType::Decimal128(10, 2), true),
            ArrowField::new(
                "code",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ]);
        assert!(is_safe(&hint(&schema)));
    }
}

#[cfg(test)]
pub(crate) mod broken {
    //! A hint arrow-ipc 59 panics on: one Int field 0 bits wide (what the fuzzer found).

    use arrow::datatypes::{DataType, Field as ArrowField, Schema};
    use base64::Engine as _;

    pub fn hint() -> String {
        let schema = Schema::new(vec![ArrowField::new("v", DataType::Int32, false)]);
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = engine
            .decode(parquet::arrow::encode_arrow_schema(&schema))
            .unwrap();
        // The Int table's bitWidth: the 32 whose zeroing the accessor sees.
        for at in 0..bytes.len() - 4 {
            if bytes[at..at + 4] != [32, 0, 0, 0] {
                continue;
            }
            let mut patched = bytes.clone();
            patched[at] = 0;
            let width = arrow_ipc::root_as_message(&patched[8..])
                .ok()
                .and_then(|m| m.header_as_schema())
                .and_then(|s| s.fields())
                .and_then(|f| f.get(0).type_as_int())
                .map(|i| i.bitWidth());
            if width == Some(0) {
                return engine.encode(patched);
            }
        }
        panic!("no Int bitWidth found in the encoded schema");
    }

    #[test]
    fn arrow_ipc_panics_on_it_and_the_check_refuses_it() {
        let hint = hint();
        assert!(!super::is_safe(&hint));
        let kv = vec![parquet::file::metadata::KeyValue::new(
            super::KEY.to_string(),
            hint,
        )];
        let schema =
            parquet::schema::parser::parse_message_type("message m { required int32 v; }").unwrap();
        let descr = parquet::schema::types::SchemaDescriptor::new(std::sync::Arc::new(schema));
        let converted =
            std::panic::catch_unwind(|| parquet::arrow::parquet_to_arrow_schema(&descr, Some(&kv)));
        assert!(
            converted.is_err(),
            "arrow-ipc no longer panics: the check may go"
        );
    }
}
