//! The per-image results table (one row per image, one score column per method, optional logits
//! and features) as Parquet: written as a run goes (`--results`), read back by column for the
//! window and reports ([`open`]), and shards' parts merged into the whole run's ([`merge()`]); the
//! streamed scores CSV beside it.

pub mod arrays;
pub mod columns;
pub mod csv_writer;
pub mod layout;
pub mod load;
pub mod merge;
pub mod parquet_writer;
pub mod provenance;
pub mod reader;
pub mod schema;
pub mod stored;

pub use load::{Load, OnRows, RowsRead};
pub use merge::merge;
pub use parquet_writer::{ResultsWriter, TableWriter};
pub use provenance::{RunDescription, metadata};
pub use reader::{Results, ResultsFile, open, open_watched, open_with};
pub use schema::Metadata;
