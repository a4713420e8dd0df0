//! The benchmark dataset: a deterministic wide table with a sorted `id`, written with page
//! indexes, sized like the files xstage is built for (2M rows, 20 row groups, ~190 MB).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, StringDictionaryBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

/// splitmix64: a tiny deterministic generator, so every run writes the same bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "category",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("flag", DataType::Boolean, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("lat", DataType::Float64, false),
        Field::new("lon", DataType::Float64, false),
        Field::new("code", DataType::Int32, false),
        Field::new("note", DataType::Utf8, false),
    ]))
}

/// Rows `start..start + len`.
pub fn batch(rng: &mut Rng, start: i64, len: usize) -> RecordBatch {
    const CATEGORIES: [&str; 8] = ["books", "games", "garden", "tools", "music", "food", "toys", "sport"];
    let ids: Vec<i64> = (start..start + len as i64).collect();
    let mut category = StringDictionaryBuilder::<Int8Type>::new();
    let mut cols: (Vec<i64>, Vec<i64>, Vec<f64>, Vec<i32>, Vec<bool>, Vec<String>, Vec<f64>, Vec<f64>, Vec<i32>, Vec<String>) =
        Default::default();
    for id in &ids {
        cols.0.push(1_700_000_000_000_000 + id * 1_000_000);
        cols.1.push((rng.next() % 1_000_000) as i64);
        category.append_value(CATEGORIES[(rng.next() % 8) as usize]);
        cols.2.push((rng.next() % 1_000_000) as f64 / 100.0);
        cols.3.push((rng.next() % 100) as i32);
        cols.4.push(rng.next() % 2 == 0);
        cols.5.push(rng.text(16));
        cols.6.push((rng.next() % 180_000_000) as f64 / 1e6 - 90.0);
        cols.7.push((rng.next() % 360_000_000) as f64 / 1e6 - 180.0);
        cols.8.push(rng.next() as i32);
        cols.9.push(rng.text(24));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(TimestampMicrosecondArray::from(cols.0).with_timezone("UTC")),
        Arc::new(Int64Array::from(cols.1)),
        Arc::new(category.finish()),
        Arc::new(Float64Array::from(cols.2)),
        Arc::new(Int32Array::from(cols.3)),
        Arc::new(BooleanArray::from(cols.4)),
        Arc::new(StringArray::from(cols.5)),
        Arc::new(Float64Array::from(cols.6)),
        Arc::new(Float64Array::from(cols.7)),
        Arc::new(Int32Array::from(cols.8)),
        Arc::new(StringArray::from(cols.9)),
    ];
    RecordBatch::try_new(schema(), columns).expect("benchmark batch")
}
