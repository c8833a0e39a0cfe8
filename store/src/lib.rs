//! # minigate-store
//!
//! The one place that knows minigate runs on two databases: PostgreSQL in production and an
//! embedded SQLite file by default. It holds the pool handle ([`Db`]), connections and write
//! transactions ([`Conn`]), the few dialect differences (row locks and job claiming, list
//! parameters, `now()`, constraint names in errors) and the migrations.
//!
//! Business SQL is written once, in PostgreSQL's spelling with `$1` placeholders; the query macros
//! ([`fetch_one!`], [`fetch_optional!`], [`fetch_all!`], [`fetch_scalar!`], [`execute!`]) run it on
//! either backend, translating it for SQLite once per statement (see [`dialect`]).
//!
//! Depends on nothing of ours.

mod conn;
pub mod dialect;
mod error;
mod id;
mod list;
mod macros;
mod migrate;
mod notify;
pub mod testing;

pub use conn::{Backend, Conn, Db, DbOptions, PoolStats, Raw};
pub use error::{Error, Result, Unique};
pub use id::Id;
pub use list::List;
pub use notify::{JobGuard, Listener};

/// Beijing time (Asia/Shanghai, UTC+8 all year: China has no daylight saving time), in which
/// business days, quiet hours and both payment providers' timestamps are reckoned.
pub const BEIJING: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

#[doc(hidden)]
pub use sqlx;
