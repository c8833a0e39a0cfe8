//! # minigate-media
//!
//! Photo uploads: validation, EXIF, display and thumbnail variants, storage by content hash and
//! signed URLs (DESIGN.md §6). The photos issue fills it in.
//!
//! A leaf: depends on `minigate-store` only, never on `payments`, `push` or anything above.
