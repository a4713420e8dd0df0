//! Parquet fixtures generated at test time, with the answers the tests expect computed here
//! from the generated rows, independently of the engine under test.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int32Builder, Int64Array, ListBuilder, MapBuilder, StringArray, StringBuilder, StructArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::{Value, json};

/// Writes batches as one Parquet file with page statistics (column and offset index).
pub fn write_parquet(
    batches: &[RecordBatch],
    compression: Compression,
    row_group_size: usize,
) -> Bytes {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_size))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, batches[0].schema(), Some(props)).expect("parquet writer");
    for b in batches {
        writer.write(b).expect("write batch");
    }
    writer.close().expect("close parquet writer");
    Bytes::from(buf)
}

/// The codecs xstage must read, with the name used in fixture file names.
pub fn codecs() -> Vec<(&'static str, Compression)> {
    vec![
        ("none", Compression::UNCOMPRESSED),
        ("snappy", Compression::SNAPPY),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("lz4_raw", Compression::LZ4_RAW),
        ("brotli", Compression::BROTLI(BrotliLevel::default())),
    ]
}

// ---------------------------------------------------------------------------------------
// The seed's test.parquet: a small "people" table.

/// One row of the seed table.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub age: i32,
    pub score: f64,
    pub active: bool,
}

pub fn people(n: usize) -> Vec<Person> {
    let names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    (0..n)
        .map(|i| Person {
            id: 1000 + i as i64,
            name: format!("{}-{i}", names[i % names.len()]),
            age: 20 + (i * 7 % 50) as i32,
            score: (i as f64) * 1.5 + 0.25,
            active: i % 3 != 0,
        })
        .collect()
}

pub fn people_batch(rows: &[Person]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("age", DataType::Int32, false),
        Field::new("score", DataType::Float64, false),
        Field::new("active", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.name.clone()),
            )),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.age))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.score))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.active)))),
        ],
    )
    .expect("people batch")
}

impl Person {
    /// The row as the function must return it.
    pub fn json(&self) -> Value {
        json!([self.id, self.name, self.age, self.score, self.active])
    }
}

// ---------------------------------------------------------------------------------------
// Sales part files for globs, GROUP BY and ORDER BY.

#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    pub region: String,
    pub product: String,
    pub quantity: i64,
    pub price_cents: i64,
}

/// `parts` files of `rows_per_part` sales each; part `p` row `i` is fully determined.
pub fn sales(parts: usize, rows_per_part: usize) -> Vec<Vec<Sale>> {
    let regions = ["north", "south", "east", "west"];
    let products = ["apple", "pear", "plum"];
    (0..parts)
        .map(|p| {
            (0..rows_per_part)
                .map(|i| {
                    let n = p * rows_per_part + i;
                    Sale {
                        region: regions[(n * 7 + p) % regions.len()].to_string(),
                        product: products[n % products.len()].to_string(),
                        quantity: 1 + (n * 13 % 17) as i64,
                        price_cents: 100 + (n * 31 % 500) as i64,
                    }
                })
                .collect()
        })
        .collect()
}

pub fn sales_batch(rows: &[Sale]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("product", DataType::Utf8, false),
        Field::new("quantity", DataType::Int64, false),
        Field::new("price_cents", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.region.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.product.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.quantity),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.price_cents),
            )),
        ],
    )
    .expect("sales batch")
}

/// `SELECT region, sum(quantity), count(*) ... WHERE price_cents >= min_price GROUP BY region
/// ORDER BY region`, computed by hand.
pub fn sales_by_region(rows: &[Sale], min_price: i64) -> Vec<Value> {
    let mut groups: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.price_cents >= min_price) {
        let g = groups.entry(&r.region).or_default();
        g.0 += r.quantity;
        g.1 += 1;
    }
    groups
        .into_iter()
        .map(|(region, (qty, count))| json!([region, qty, count]))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Every type the result encoding handles specially.

/// A one-row-per-case table of tricky types, and the JSON rows expected back.
pub fn types_batch() -> (RecordBatch, Vec<Value>) {
    let big = (1i64 << 53) + 1;
    let ts_utc = 1_700_000_000_123_456i64; // 2023-11-14T22:13:20.123456Z

    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1), None, Some(3)]);
    list.append_null();
    let list = list.finish();

    let point_fields = Fields::from(vec![
        Field::new("x", DataType::Int32, true),
        Field::new("label", DataType::Utf8, true),
    ]);
    let point = StructArray::new(
        point_fields,
        vec![
            Arc::new(Int32Array::from(vec![Some(7), Some(-1)])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("p"), None])) as ArrayRef,
        ],
        None,
    );

    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    map.keys().append_value("a");
    map.values().append_value(1);
    map.keys().append_value("b");
    map.values().append_value(2);
    map.append(true).expect("map row");
    map.append(true).expect("empty map row");
    let map = map.finish();

    // README: a map whose keys are not strings is a list of `{"key", "value"}` objects.
    let mut codes = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
    codes.keys().append_value(404);
    codes.values().append_value("not found");
    codes.keys().append_value(200);
    codes.values().append_null();
    codes.append(true).expect("map row");
    codes.append(false).expect("null map row");
    let codes = codes.finish();

    let columns: Vec<(&str, ArrayRef)> = vec![
        ("big", Arc::new(Int64Array::from(vec![big, -5]))),
        (
            "price",
            Arc::new(
                Decimal128Array::from(vec![Some(1234567), Some(-50)])
                    .with_precision_and_scale(12, 4)
                    .expect("decimal"),
            ),
        ),
        (
            "at",
            Arc::new(TimestampMicrosecondArray::from(vec![ts_utc, 0]).with_timezone("UTC")),
        ),
        ("day", Arc::new(Date32Array::from(vec![19_675, 0]))),
        (
            "raw",
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\xffhi"[..]), None])),
        ),
        ("tags", Arc::new(list)),
        ("point", Arc::new(point)),
        ("attrs", Arc::new(map)),
        ("codes", Arc::new(codes)),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
        .expect("types batch");
    let expected = vec![
        json!([
            big.to_string(),
            "123.4567",
            "2023-11-14T22:13:20.123456Z",
            "2023-11-14",
            "AP9oaQ==",
            [1, null, 3],
            {"x": 7, "label": "p"},
            {"a": 1, "b": 2},
            [{"key": 404, "value": "not found"}, {"key": 200, "value": null}]
        ]),
        json!([-5, "-0.0050", "1970-01-01T00:00:00.000000Z", "1970-01-01", null, null, {"x": -1, "label": null}, {}, null]),
    ];
    (batch, expected)
}

/// `text` gzipped.
pub fn gzip(text: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).expect("writing to memory");
    Bytes::from(encoder.finish().expect("writing to memory"))
}

/// A query over no file with a million groups, each aggregating a 300-byte string: some
/// 300 MB of state, past a 256 MB function's query pool.
pub fn million_groups_sql() -> String {
    let hundred: Vec<String> = (0..100).map(|n| format!("({n})")).collect();
    let values = format!("(VALUES {})", hundred.join(", "));
    format!(
        "SELECT a.column1 AS a, b.column1 AS b, c.column1 AS c, \
         max(repeat('x', 300) || CAST(c.column1 AS VARCHAR)) AS s \
         FROM {values} AS a CROSS JOIN {values} AS b CROSS JOIN {values} AS c \
         GROUP BY a.column1, b.column1, c.column1"
    )
}
