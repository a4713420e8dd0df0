//! Arrow's plain layouts for an answer that leaves the function as Arrow IPC.
//!
//! DataFusion reads strings and binaries as views (`Utf8View`, `BinaryView`): each value is a
//! 16-byte view into buffers that several batches, and the slices of one batch, share. IPC
//! writes every buffer a batch's views point into, whole, once per batch: a batch of 100 rows
//! sliced from a page of 8,192 carries the page. Cast to `Utf8` / `Binary`, each batch carries
//! its own values only, and readers without view support (older pyarrow, DuckDB, arrow-js)
//! read the stream.

use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::error::{FunctionError, Result};

/// `schema` with each view type, at any depth, replaced by its plain layout.
pub fn schema(schema: &Schema) -> Schema {
    Schema::new_with_metadata(
        schema.fields().iter().map(field).collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

/// `batch` in `want`, the [`schema`] of its own; a batch without views is returned as it is.
pub fn batch(batch: &RecordBatch, want: &SchemaRef) -> Result<RecordBatch> {
    if want.fields() == batch.schema().fields() {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(want.fields())
        .map(|(column, field)| cast(column, field.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| FunctionError::internal(format!("casting views to plain Arrow: {e}")))?;
    RecordBatch::try_new(want.clone(), columns)
        .map_err(|e| FunctionError::internal(format!("casting views to plain Arrow: {e}")))
}

fn field(f: &FieldRef) -> FieldRef {
    Arc::new(Field::clone(f).with_data_type(data_type(f.data_type())))
}

fn data_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::ListView(f) | DataType::List(f) => DataType::List(field(f)),
        DataType::LargeListView(f) | DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringViewArray};

    use super::*;

    fn views(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8View, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                Arc::new(StringViewArray::from_iter((0..n).map(|i| {
                    (i % 7 != 0).then(|| format!("a value longer than twelve {i}"))
                }))),
            ],
        )
        .unwrap()
    }

    fn ipc_bytes(batches: &[RecordBatch]) -> usize {
        let mut w =
            arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.into_inner().unwrap().len()
    }

    /// Ten slices of one batch: as views each carries the whole value buffer; plain, each
    /// carries its own tenth.
    #[test]
    fn slices_carry_their_own_values_only() {
        let whole = views(10_000);
        let slices: Vec<RecordBatch> = (0..10).map(|i| whole.slice(i * 1_000, 1_000)).collect();
        let want = Arc::new(schema(&whole.schema()));
        let plain: Vec<RecordBatch> = slices.iter().map(|b| batch(b, &want).unwrap()).collect();
        let (as_views, as_plain) = (ipc_bytes(&slices), ipc_bytes(&plain));
        assert!(
            as_plain * 4 < as_views,
            "{as_plain} bytes plain, {as_views} as views"
        );
        assert_eq!(plain[3].schema().field(1).data_type(), &DataType::Utf8);
        let s = plain[3]
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(s.value(1), "a value longer than twelve 3001");
        assert!(s.is_null(3), "row 3003 is null");
    }

    #[test]
    fn nested_views_become_plain_and_other_types_stay() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true)));
        let s = Schema::new(vec![
            Field::new("l", list, true),
            Field::new("n", DataType::Float64, false),
        ]);
        let plain = schema(&s);
        assert_eq!(
            plain.field(0).data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        assert_eq!(plain.field(1).data_type(), &DataType::Float64);
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        assert_eq!(batch(&b, &b.schema()).unwrap(), b);
    }
}
