//! Defences against hostile Parquet: bounds checked before parquet-rs allocates.
//!
//! parquet-rs trusts the sizes and counts a file declares, and some of them size an
//! allocation before any byte is read; an allocation that fails aborts the process (on
//! Lambda, the execution environment; under the WASI host, the instance), which no error
//! handling can turn into an answer. These checks run first and turn such files into
//! `InvalidParquet` errors:
//!
//! - [`footer`]: the footer's counts (row groups, schema nodes and children, column chunks)
//!   against what its bytes can hold and against each other;
//! - [`pages`]: every page header as its bytes arrive: declared sizes against the
//!   function's memory, pages inside their chunk, and streams that would inflate past what
//!   they declare;
//! - [`arrow_hint`]: the Arrow schema a writer embedded, kept only if arrow-ipc can convert
//!   it without panicking;
//! - [`thrift`]: the allocation-free walker of Thrift's compact protocol both use.
//!
//! Their neighbours: `engine::footer` runs the footer check before decoding, and
//! `s3::S3Store` runs the page check on every ranged read of a file whose footer it knows.

pub mod arrow_hint;
pub mod footer;
pub mod pages;
pub mod thrift;

pub use pages::PageMap;

/// The largest page accepted, uncompressed, for a function with `memory` bytes: a quarter
/// of it, so a page, its decoded arrays and the rest of the query still fit.
pub fn max_page_bytes(memory: usize) -> u64 {
    (memory as u64 / 4).max(1 << 20)
}
