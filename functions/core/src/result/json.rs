//! Arrow values as JSON: natives where lossless, strings where not (64-bit integers beyond
//! ±2^53, decimals, timestamps in RFC 3339), base64 for binary, arrays and objects for
//! nested types.

use arrow::array::timezone::Tz;
use arrow::array::{AnyDictionaryArray, Array, AsArray};
use arrow::datatypes::*;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeZone};
use serde_json::{Map, Number, Value};

/// The largest integer a JSON number (an IEEE double) holds exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The JSON value of row `i` of `array`.
pub fn value(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(i);
            if v <= MAX_SAFE_INTEGER as u64 {
                v.into()
            } else {
                Value::String(v.to_string())
            }
        }
        DataType::Float16 => float(f64::from(array.as_primitive::<Float16Type>().value(i))),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => array.as_string::<i32>().value(i).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).into(),
        DataType::Utf8View => array.as_string_view().value(i).into(),
        DataType::Binary => base64(array.as_binary::<i32>().value(i)),
        DataType::LargeBinary => base64(array.as_binary::<i64>().value(i)),
        DataType::BinaryView => base64(array.as_binary_view().value(i)),
        DataType::FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(i)),
        DataType::Timestamp(unit, tz) => timestamp(array, i, *unit, tz.as_deref()),
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref()),
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(i).as_ref()),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = Map::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(s.columns()) {
                map.insert(field.name().clone(), value(column.as_ref(), i));
            }
            Value::Object(map)
        }
        DataType::Map(_, _) => map(array, i),
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            value(dict.values().as_ref(), dictionary_key(dict, i))
        }
        // Decimals, dates, times, durations, intervals and anything rarer: their display text.
        _ => display(array, i),
    }
}

/// Where row `i` of a dictionary points in its values. One key is read:
/// `normalized_keys()[i]` copied every key of the batch for each row, so an answer's
/// dictionary column cost its batch size squared.
fn dictionary_key(dict: &dyn AnyDictionaryArray, i: usize) -> usize {
    fn key<K: ArrowPrimitiveType>(keys: &dyn Array, i: usize) -> usize {
        keys.as_primitive::<K>().value(i).as_usize()
    }
    let keys = dict.keys();
    let k = match keys.data_type() {
        DataType::Int8 => key::<Int8Type>(keys, i),
        DataType::Int16 => key::<Int16Type>(keys, i),
        DataType::Int32 => key::<Int32Type>(keys, i),
        DataType::Int64 => key::<Int64Type>(keys, i),
        DataType::UInt8 => key::<UInt8Type>(keys, i),
        DataType::UInt16 => key::<UInt16Type>(keys, i),
        DataType::UInt32 => key::<UInt32Type>(keys, i),
        _ => key::<UInt64Type>(keys, i),
    };
    // As `normalized_keys` does: a key past the values (which a valid array cannot hold)
    // reads the last value rather than panicking.
    k.min(dict.values().len().saturating_sub(1))
}

fn int(v: i64) -> Value {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
        v.into()
    } else {
        Value::String(v.to_string())
    }
}

fn float(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        // JSON has no NaN or infinity.
        None if v.is_nan() => "NaN".into(),
        None if v > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(BASE64.encode(bytes))
}

fn list(values: &dyn Array) -> Value {
    Value::Array((0..values.len()).map(|j| value(values, j)).collect())
}

fn map(array: &dyn Array, i: usize) -> Value {
    let m = array.as_map();
    let entries = m.value(i);
    let keys = entries.column(0);
    let values = entries.column(1);
    let string_keys = matches!(
        keys.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if string_keys {
        let mut out = Map::with_capacity(entries.len());
        for j in 0..entries.len() {
            if let Value::String(k) = value(keys.as_ref(), j) {
                out.insert(k, value(values.as_ref(), j));
            }
        }
        Value::Object(out)
    } else {
        Value::Array(
            (0..entries.len())
                .map(|j| {
                    let mut pair = Map::with_capacity(2);
                    pair.insert("key".into(), value(keys.as_ref(), j));
                    pair.insert("value".into(), value(values.as_ref(), j));
                    Value::Object(pair)
                })
                .collect(),
        )
    }
}

fn timestamp(array: &dyn Array, i: usize, unit: TimeUnit, tz: Option<&str>) -> Value {
    let raw = match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(i),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(i),
    };
    let (secs, nanos) = match unit {
        TimeUnit::Second => (raw, 0),
        TimeUnit::Millisecond => (raw.div_euclid(1_000), raw.rem_euclid(1_000) * 1_000_000),
        TimeUnit::Microsecond => (raw.div_euclid(1_000_000), raw.rem_euclid(1_000_000) * 1_000),
        TimeUnit::Nanosecond => (raw.div_euclid(1_000_000_000), raw.rem_euclid(1_000_000_000)),
    };
    let Some(utc) = DateTime::from_timestamp(secs, nanos as u32) else {
        return display(array, i);
    };
    let format = match unit {
        TimeUnit::Second => SecondsFormat::Secs,
        TimeUnit::Millisecond => SecondsFormat::Millis,
        TimeUnit::Microsecond => SecondsFormat::Micros,
        TimeUnit::Nanosecond => SecondsFormat::Nanos,
    };
    match tz {
        // A naive timestamp has no offset to state: ISO 8601 local date-time.
        None => Value::String(naive(utc.naive_utc(), format)),
        Some(tz) => match tz.parse::<Tz>() {
            Ok(tz) => {
                let local = tz.from_utc_datetime(&utc.naive_utc());
                let fixed: DateTime<FixedOffset> = local.fixed_offset();
                Value::String(fixed.to_rfc3339_opts(format, true))
            }
            Err(_) => display(array, i),
        },
    }
}

fn naive(t: NaiveDateTime, format: SecondsFormat) -> String {
    let text = t.and_utc().to_rfc3339_opts(format, true);
    text.strip_suffix('Z').unwrap_or(&text).to_string()
}

fn display(array: &dyn Array, i: usize) -> Value {
    let options = FormatOptions::default().with_display_error(true);
    match ArrayFormatter::try_new(array, &options) {
        Ok(f) => Value::String(f.value(i).to_string()),
        Err(e) => Value::String(format!("<unprintable: {e}>")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::*;
    use arrow::buffer::OffsetBuffer;
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_beyond_2_pow_53_are_strings() {
        let a = Int64Array::from(vec![1, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, i64::MIN]);
        let got: Vec<Value> = (0..4).map(|i| value(&a, i)).collect();
        assert_eq!(
            got,
            vec![
                json!(1),
                json!(MAX_SAFE_INTEGER),
                json!("9007199254740992"),
                json!("-9223372036854775808")
            ]
        );
        let u = UInt64Array::from(vec![u64::MAX]);
        assert_eq!(value(&u, 0), json!("18446744073709551615"));
    }

    #[test]
    fn decimals_are_strings() {
        let d = Decimal128Array::from(vec![123456, -5])
            .with_precision_and_scale(10, 3)
            .unwrap();
        assert_eq!(value(&d, 0), json!("123.456"));
        assert_eq!(value(&d, 1), json!("-0.005"));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let utc = TimestampMicrosecondArray::from(vec![1_700_000_000_123_456]).with_timezone("UTC");
        assert_eq!(value(&utc, 0), json!("2023-11-14T22:13:20.123456Z"));
        let ny = TimestampSecondArray::from(vec![1_700_000_000]).with_timezone("America/New_York");
        assert_eq!(value(&ny, 0), json!("2023-11-14T17:13:20-05:00"));
        let plus = TimestampMillisecondArray::from(vec![0]).with_timezone("+02:00");
        assert_eq!(value(&plus, 0), json!("1970-01-01T02:00:00.000+02:00"));
        let naive = TimestampMillisecondArray::from(vec![-1]);
        assert_eq!(value(&naive, 0), json!("1969-12-31T23:59:59.999"));
    }

    #[test]
    fn binary_is_base64_and_floats_are_safe() {
        let b = BinaryArray::from(vec![&b"\x00\xffhi"[..]]);
        assert_eq!(value(&b, 0), json!("AP9oaQ=="));
        let f = Float64Array::from(vec![1.5, f64::NAN, f64::NEG_INFINITY]);
        assert_eq!(value(&f, 0), json!(1.5));
        assert_eq!(value(&f, 1), json!("NaN"));
        assert_eq!(value(&f, 2), json!("-Infinity"));
    }

    /// A map column of one row holding every key and value given.
    fn one_map(keys: ArrayRef, values: ArrayRef) -> MapArray {
        let entries = StructArray::from(vec![
            (
                Arc::new(Field::new("keys", keys.data_type().clone(), false)),
                keys,
            ),
            (
                Arc::new(Field::new("values", values.data_type().clone(), true)),
                values,
            ),
        ]);
        let n = i32::try_from(entries.len()).unwrap();
        let field = Arc::new(Field::new("entries", entries.data_type().clone(), false));
        MapArray::new(
            field,
            OffsetBuffer::new(vec![0, n].into()),
            entries,
            None,
            false,
        )
    }

    #[test]
    fn nested_types() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
        ]);
        assert_eq!(value(&list, 0), json!([1, null, 3]));
        assert_eq!(value(&list, 1), Value::Null);

        let s = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![7])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
            ),
        ]);
        assert_eq!(value(&s, 0), json!({"a": 7, "b": "x"}));

        let m = one_map(
            Arc::new(StringArray::from(vec!["k1", "k2"])),
            Arc::new(Int32Array::from(vec![1, 2])),
        );
        assert_eq!(value(&m, 0), json!({"k1": 1, "k2": 2}));

        // README: a map with non-string keys is a list of {"key", "value"} objects.
        let m = one_map(
            Arc::new(Int64Array::from(vec![10, i64::MAX])),
            Arc::new(StringArray::from(vec![Some("ten"), None])),
        );
        assert_eq!(
            value(&m, 0),
            json!([{"key": 10, "value": "ten"}, {"key": i64::MAX.to_string(), "value": null}])
        );

        let dict: DictionaryArray<Int8Type> = vec!["a", "b", "a"].into_iter().collect();
        assert_eq!(value(&dict, 2), json!("a"));
        // Every row reads its own key, whatever the key type, in a slice too.
        let dict: DictionaryArray<UInt16Type> = vec![Some("x"), None, Some("y"), Some("x")]
            .into_iter()
            .collect();
        let rows: Vec<Value> = (0..dict.len()).map(|i| value(&dict, i)).collect();
        assert_eq!(rows, [json!("x"), Value::Null, json!("y"), json!("x")]);
        let slice = dict.slice(2, 2);
        assert_eq!(
            [value(&slice, 0), value(&slice, 1)],
            [json!("y"), json!("x")]
        );
    }
}
