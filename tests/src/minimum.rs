//! The physical minimum of a query over a Parquet file: the footer plus exactly the pages the
//! query must read, worked out from the footer and the page index (offset index for where
//! pages are, column index for what they hold).
//!
//! The benchmark divides what each reader fetched by this figure. It counts bytes a perfect
//! reader cannot avoid: no page index, no over-read, no retries.

use std::ops::Range;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use parquet::file::metadata::{
    ColumnChunkMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// A file's layout as its footer and page index describe it.
pub struct Layout {
    meta: ParquetMetaData,
    footer: u64,
}

impl Layout {
    /// Reads the footer and page index of a whole file held in memory.
    pub fn parse(file: &Bytes) -> Result<Self> {
        if file.len() < 12 {
            bail!("{} bytes is not a Parquet file", file.len());
        }
        let len = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into()?) as u64;
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(file)
            .context("reading the footer and page index")?;
        Ok(Self {
            meta,
            footer: len + 8,
        })
    }

    /// The footer: its Thrift metadata, its length and the closing magic.
    pub fn footer(&self) -> u64 {
        self.footer
    }

    pub fn rows(&self) -> i64 {
        self.meta.file_metadata().num_rows()
    }

    /// `SELECT * … LIMIT 1`: the footer, and for every column of the first row group its
    /// dictionary page (if any) and first data page.
    pub fn first_row(&self) -> Result<u64> {
        let mut total = self.footer;
        for col in 0..self.columns() {
            total += self.pages(0, col, 0..1)?;
        }
        Ok(total)
    }

    /// Every page of the named columns (all columns if `names` is empty), in every row group.
    pub fn whole_columns(&self, names: &[&str]) -> Result<u64> {
        let columns = self.column_indices(names)?;
        let mut total = self.footer;
        for rg in self.meta.row_groups() {
            for &col in &columns {
                total += rg.column(col).compressed_size() as u64;
            }
        }
        Ok(total)
    }

    /// `SELECT * … WHERE column BETWEEN lo AND hi` on an INT64 column whose matching rows
    /// are `matching` (file row numbers): the footer, the pages of `column` whose min/max
    /// (column index) overlap the range, which a reader must decode to find the rows, and
    /// for every other column the pages holding the matching rows.
    pub fn int64_range(&self, column: &str, lo: i64, hi: i64, matching: Range<i64>) -> Result<u64> {
        let col = self.column_indices(&[column])?[0];
        let column_index = self
            .meta
            .column_index()
            .context("the file has no column index")?;
        let mut total = self.footer;
        let mut first_row = 0;
        for (rg, rg_index) in column_index.iter().enumerate() {
            let rg_rows = self.meta.row_group(rg).num_rows();
            let ColumnIndexMetaData::INT64(index) = &rg_index[col] else {
                bail!("{column} has no INT64 column index in row group {rg}");
            };
            let locations = self.locations(rg, col)?;
            for (page, location) in locations.iter().enumerate() {
                let (Some(min), Some(max)) = (index.min_value(page), index.max_value(page)) else {
                    continue;
                };
                if *max >= lo && *min <= hi {
                    total += location.compressed_page_size as u64;
                }
            }
            let rows = matching.start.max(first_row) - first_row
                ..matching.end.min(first_row + rg_rows) - first_row;
            if !rows.is_empty() {
                for c in (0..self.columns()).filter(|&c| c != col) {
                    total += self.pages(rg, c, rows.clone())?;
                }
            }
            first_row += rg_rows;
        }
        Ok(total)
    }

    fn columns(&self) -> usize {
        self.meta.file_metadata().schema_descr().num_columns()
    }

    fn column_indices(&self, names: &[&str]) -> Result<Vec<usize>> {
        let schema = self.meta.file_metadata().schema_descr();
        if names.is_empty() {
            return Ok((0..schema.num_columns()).collect());
        }
        names
            .iter()
            .map(|name| {
                (0..schema.num_columns())
                    .find(|&i| schema.column(i).path().string() == *name)
                    .with_context(|| format!("no column {name}"))
            })
            .collect()
    }

    fn locations(
        &self,
        rg: usize,
        col: usize,
    ) -> Result<&[parquet::file::page_index::offset_index::PageLocation]> {
        Ok(self
            .meta
            .offset_index()
            .context("the file has no offset index")?[rg][col]
            .page_locations())
    }

    /// Bytes of column `col` in row group `rg` that rows `rows` need: its dictionary page (if
    /// any) and the data pages whose rows intersect `rows`.
    fn pages(&self, rg: usize, col: usize, rows: Range<i64>) -> Result<u64> {
        let chunk: &ColumnChunkMetaData = self.meta.row_group(rg).column(col);
        let locations = self.locations(rg, col)?;
        let rg_rows = self.meta.row_group(rg).num_rows();
        let first_data = locations
            .first()
            .map_or(chunk.data_page_offset(), |p| p.offset);
        let dictionary = chunk
            .dictionary_page_offset()
            .map_or(0, |start| (first_data - start) as u64);
        let mut total = dictionary;
        for (i, page) in locations.iter().enumerate() {
            let end = locations
                .get(i + 1)
                .map_or(rg_rows, |next| next.first_row_index);
            if page.first_row_index < rows.end && rows.start < end {
                total += page.compressed_page_size as u64;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    use super::*;
    use crate::bench_data;

    fn file() -> Bytes {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_000))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build();
        bench_data::write(3_000, 1, props).unwrap()
    }

    #[test]
    fn minimums_are_ordered_and_inside_the_file() {
        let file = file();
        let layout = Layout::parse(&file).unwrap();
        let size = file.len() as u64;
        let first = layout.first_row().unwrap();
        // In the benchmark data the id is the row number.
        let range = layout
            .int64_range("id", 1_500, 1_549, 1_500..1_550)
            .unwrap();
        let two = layout.whole_columns(&["category", "flag"]).unwrap();
        let all = layout.whole_columns(&[]).unwrap();
        assert!(layout.footer() < first, "{first}");
        // 50 rows inside one 100-row page of every column: like the first row's pages, one
        // data page per column (and the dictionary).
        assert!(
            range > layout.footer() && range < first * 3 / 2,
            "{range} vs {first}"
        );
        assert!(two < all && first < all, "{two} {all}");
        // Everything but the page index and the leading magic.
        assert!(all < size && all > size * 8 / 10, "{all} of {size}");
        assert_eq!(
            layout.int64_range("id", 10_000, 20_000, 0..0).unwrap(),
            layout.footer()
        );
    }
}
