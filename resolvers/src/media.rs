//! Photos as the rest of the API sees them: who may see one, who may attach one to a record, and
//! the `Media` type with its signed URLs. Uploads arrive through the gateway's `POST /media`; the
//! checks, processing and storage live in `minigate-media`.

mod access;
mod object;
mod query;

pub use access::{may_see, may_see_evidence, usable};
pub use object::{Media, MediaEvidence, MediaPurpose, UploadAnswer};
pub use query::MediaQuery;
