//! # minigate-media
//!
//! Photo uploads (DESIGN.md §6):
//!
//! * [`image`]: what a file is (magic bytes), how big it claims to be (header only, before any
//!   decoding), what its EXIF claims (orientation, capture time, GPS), and the display and
//!   thumbnail variants, encoded with no metadata at all;
//! * [`storage`]: blobs by content hash in a local folder or an S3-compatible object store;
//! * [`intake`]: an upload streamed to a temporary file, hashed, under a size limit;
//! * [`url`]: signed, expiring URLs (an `<image>` tag cannot send a token);
//! * [`db`]: one record per upload (its owner, purpose, evidence and claims), one row per blob;
//! * [`Purpose`]: what a photo is for, which decides who else may use it;
//! * [`service`]: the whole upload (check, process under a bounded pool, store, record) and the
//!   signed-URL reads, shared by the gateway's routes and the resolvers.
//!
//! A leaf: depends on `minigate-store` only, never on `payments`, `push` or anything above. It does
//! not read configuration: the gateway builds [`image::Limits`] and the storage from its config.

pub mod db;
mod error;
pub mod image;
pub mod intake;
mod purpose;
pub mod service;
pub mod storage;
pub mod url;

pub use error::{CODES, Error, Result};
pub use purpose::Purpose;
