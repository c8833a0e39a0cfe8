//! Blobs by content hash (DESIGN.md §6): a local folder by default, an S3-compatible object store
//! in production.
//!
//! A blob is named by a [`BlobKey`]: a SHA-256 and a [`BlobKind`], laid out as
//! `original/ab/cd/abcd…` so that no folder grows large. Keys are never built from anything a
//! client sent, so no path can escape the folder or the bucket. Writes are idempotent: a key that
//! exists is not written again (the same bytes twice are stored once).
//!
//! Reads are streamed ([`Blob::chunk`], [`Blob::into_stream`]): originals are up to 20 MiB and are
//! never loaded whole.

mod local;
mod s3;
mod sigv4;

use std::{fmt, path::Path, path::PathBuf};

use bytes::Bytes;
use futures_util::Stream;

pub use local::LocalFolder;
pub use s3::{S3Bucket, S3Config};

use crate::{Error, Result};

/// Where blobs live. Cheap to clone (shared inside).
#[derive(Clone, Debug)]
pub enum Storage {
    Local(LocalFolder),
    S3(S3Bucket),
}

impl Storage {
    /// Blobs under `root`, which is created if missing.
    pub fn local(root: PathBuf) -> Result<Storage> {
        LocalFolder::new(root).map(Storage::Local)
    }

    /// Blobs in an S3-compatible bucket (path-style URLs, SigV4). Nothing is sent yet: call
    /// [`Storage::check`] at startup.
    pub fn s3(cfg: S3Config) -> Result<Storage> {
        S3Bucket::new(cfg).map(Storage::S3)
    }

    /// Stores the file at `path` (whose SHA-256 is `sha256_hex`) under `key`, unless `key` is
    /// already stored. The file is streamed, not read into memory, and left in place (the caller
    /// owns it). Bytes that do not match `sha256_hex` are refused and nothing is stored.
    pub async fn put_file(
        &self,
        key: &BlobKey,
        path: &Path,
        sha256_hex: &str,
        content_type: &str,
    ) -> Result<()> {
        if !is_sha256_hex(sha256_hex) {
            return Err(Error::Storage("put_file: not a SHA-256 hex digest".into()));
        }
        match self {
            Storage::Local(l) => l.put_file(key, path, sha256_hex).await,
            Storage::S3(s) => s.put_file(key, path, sha256_hex, content_type).await,
        }
    }

    /// Stores `bytes` under `key`, unless `key` is already stored.
    pub async fn put_bytes(&self, key: &BlobKey, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        match self {
            Storage::Local(l) => l.put_bytes(key, bytes).await,
            Storage::S3(s) => s.put_bytes(key, bytes, content_type).await,
        }
    }

    pub async fn exists(&self, key: &BlobKey) -> Result<bool> {
        match self {
            Storage::Local(l) => l.exists(key).await,
            Storage::S3(s) => s.exists(key).await,
        }
    }

    /// The blob, ready to be streamed, or `None` when there is no such key.
    pub async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        match self {
            Storage::Local(l) => l.get(key).await,
            Storage::S3(s) => s.get(key).await,
        }
    }

    /// Whether the storage can be reached (the folder is there; the bucket answers a signed
    /// HEAD), for startup and readiness.
    pub async fn check(&self) -> Result<()> {
        match self {
            Storage::Local(l) => l.check().await,
            Storage::S3(s) => s.check().await,
        }
    }
}

/// What a blob is, which is also the first part of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// The bytes as uploaded: evidence, never shown as is.
    Original,
    /// The re-encoded variant shown in full, without metadata.
    Display,
    /// The small re-encoded variant for lists.
    Thumbnail,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Original => "original",
            BlobKind::Display => "display",
            BlobKind::Thumbnail => "thumbnail",
        }
    }
}

/// The name of a blob: a kind and a SHA-256 (64 lowercase hex digits), nothing else, so a key is
/// always a safe relative path such as `original/ab/cd/abcd…`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    kind: BlobKind,
    /// `kind/ab/cd/hash`, built once.
    path: String,
}

impl BlobKey {
    /// Refuses anything but 64 lowercase hex digits.
    pub fn new(kind: BlobKind, sha256_hex: &str) -> Result<BlobKey> {
        if !is_sha256_hex(sha256_hex) {
            return Err(Error::Storage(
                "invalid blob key: not a lowercase SHA-256 hex digest".into(),
            ));
        }
        let (a, b) = (&sha256_hex[..2], &sha256_hex[2..4]);
        Ok(BlobKey {
            kind,
            path: format!("{}/{a}/{b}/{sha256_hex}", kind.as_str()),
        })
    }

    /// The key of `bytes` by their own SHA-256.
    pub fn of_bytes(kind: BlobKind, bytes: &[u8]) -> BlobKey {
        let hash = sigv4::sha256_hex(bytes);
        let (a, b) = (&hash[..2], &hash[2..4]);
        BlobKey {
            kind,
            path: format!("{}/{a}/{b}/{hash}", kind.as_str()),
        }
    }

    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    /// The SHA-256 hex digest in the key.
    pub fn sha256_hex(&self) -> &str {
        let start = self.path.len().saturating_sub(64);
        &self.path[start..]
    }

    /// The relative path (`original/ab/cd/abcd…`), also the object key in a bucket.
    pub fn as_str(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.path)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sigv4::sha256_hex(bytes)
}

pub(crate) use sigv4::hex;

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stored blob being read: its length, then its bytes chunk by chunk.
pub struct Blob {
    len: u64,
    body: BlobBody,
}

enum BlobBody {
    File(tokio::fs::File),
    Http(reqwest::Response),
}

/// Bytes read from a file per chunk.
const FILE_CHUNK: usize = 64 * 1024;

impl Blob {
    /// The length in bytes (for `Content-Length`).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next chunk, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        match &mut self.body {
            BlobBody::File(file) => {
                use tokio::io::AsyncReadExt as _;
                let mut buf = bytes::BytesMut::with_capacity(FILE_CHUNK);
                let n = file
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| Error::Storage(format!("reading a blob failed: {e}")))?;
                Ok((n > 0).then(|| buf.freeze()))
            }
            BlobBody::Http(response) => response.chunk().await.map_err(s3::transport_error),
        }
    }

    /// The bytes as a stream (for a response body); errors are `io::Error`s wrapping
    /// [`Error::Storage`], as HTTP servers expect.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures_util::stream::try_unfold(self, |mut blob| async move {
            match blob.chunk().await {
                Ok(Some(chunk)) => Ok(Some((chunk, blob))),
                Ok(None) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            }
        })
    }

    /// All the bytes, for small blobs (variants) and tests; refuses a blob longer than `limit`.
    pub async fn read_to_end(mut self, limit: u64) -> Result<Vec<u8>> {
        if self.len > limit {
            return Err(Error::TooLarge { limit });
        }
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
            if u64::try_from(out.len()).unwrap_or(u64::MAX) > limit {
                return Err(Error::TooLarge { limit });
            }
        }
        Ok(out)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_key_is_laid_out_in_two_levels_of_folders() {
        let key = BlobKey::new(BlobKind::Original, HASH).unwrap();
        assert_eq!(key.as_str(), format!("original/9f/86/{HASH}"),);
        assert_eq!(key.sha256_hex(), HASH);
        assert_eq!(
            BlobKey::new(BlobKind::Thumbnail, HASH).unwrap().as_str(),
            format!("thumbnail/9f/86/{HASH}")
        );
        assert_eq!(
            BlobKey::of_bytes(BlobKind::Display, b"test").as_str(),
            format!("display/9f/86/{HASH}")
        );
    }

    #[test]
    fn a_key_refuses_anything_but_64_lowercase_hex_digits() {
        for bad in [
            "",
            &HASH[..63],
            &format!("{HASH}0"),
            &HASH.to_uppercase(),
            &format!("../{}", &HASH[3..]),
            &format!("{}/", &HASH[..63]),
            &format!("{}g", &HASH[..63]),
        ] {
            assert!(BlobKey::new(BlobKind::Original, bad).is_err(), "{bad:?}");
        }
    }
}
