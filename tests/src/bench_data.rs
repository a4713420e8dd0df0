//! The benchmark dataset: a deterministic wide table with a sorted `id`, written with page
//! indexes, sized like the files xstage is built for (2M rows, 20 row groups, ~190 MB).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    StringDictionaryBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int8Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

/// splitmix64: a tiny deterministic generator, so every run writes the same bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
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
    const CATEGORIES: [&str; 8] = [
        "books", "games", "garden", "tools", "music", "food", "toys", "sport",
    ];
    let ids: Vec<i64> = (start..start + len as i64).collect();
    let mut category = StringDictionaryBuilder::<Int8Type>::new();
    let n = ids.len();
    let mut ts = Vec::with_capacity(n);
    let mut user_id = Vec::with_capacity(n);
    let mut amount = Vec::with_capacity(n);
    let mut quantity = Vec::with_capacity(n);
    let mut flag = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut lon = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut note = Vec::with_capacity(n);
    for id in &ids {
        ts.push(1_700_000_000_000_000 + id * 1_000_000);
        user_id.push((rng.next_u64() % 1_000_000) as i64);
        category.append_value(CATEGORIES[(rng.next_u64() % 8) as usize]);
        amount.push((rng.next_u64() % 1_000_000) as f64 / 100.0);
        quantity.push((rng.next_u64() % 100) as i32);
        flag.push(rng.next_u64().is_multiple_of(2));
        name.push(rng.text(16));
        lat.push((rng.next_u64() % 180_000_000) as f64 / 1e6 - 90.0);
        lon.push((rng.next_u64() % 360_000_000) as f64 / 1e6 - 180.0);
        code.push(rng.next_u64() as i32);
        note.push(rng.text(32));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
        Arc::new(Int64Array::from(user_id)),
        Arc::new(category.finish()),
        Arc::new(Float64Array::from(amount)),
        Arc::new(Int32Array::from(quantity)),
        Arc::new(BooleanArray::from(flag)),
        Arc::new(StringArray::from(name)),
        Arc::new(Float64Array::from(lat)),
        Arc::new(Float64Array::from(lon)),
        Arc::new(Int32Array::from(code)),
        Arc::new(StringArray::from(note)),
    ];
    RecordBatch::try_new(schema(), columns).expect("benchmark batch")
}

/// `rows` rows of the dataset (generator seeded with `seed`) as one Parquet file.
pub fn write(
    rows: usize,
    seed: u64,
    props: parquet::file::properties::WriterProperties,
) -> parquet::errors::Result<bytes::Bytes> {
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema(), Some(props))?;
    let mut rng = Rng::new(seed);
    let mut start = 0;
    while start < rows {
        let len = 50_000.min(rows - start);
        writer.write(&batch(&mut rng, start as i64, len))?;
        start += len;
    }
    writer.close()?;
    Ok(bytes::Bytes::from(buf))
}

/// The first `rows` rows of the dataset (generator seeded with `seed`) as one CSV file with a
/// header line, each value in Arrow's display form (timestamps in RFC 3339).
pub fn write_csv(rows: usize, seed: u64) -> Result<bytes::Bytes, arrow::error::ArrowError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::fmt::Write;

    let schema = schema();
    let mut out = String::new();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    let mut rng = Rng::new(seed);
    let options = FormatOptions::default();
    let mut start = 0;
    while start < rows {
        let len = 50_000.min(rows - start);
        let batch = batch(&mut rng, start as i64, len);
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..len {
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // No value holds a comma, a quote or a line break (`Rng::text` is alphanumeric).
                write!(out, "{}", f.value(row)).expect("writing to a String");
            }
            out.push('\n');
        }
        start += len;
    }
    Ok(bytes::Bytes::from(out))
}
