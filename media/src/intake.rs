//! Receiving an upload: the body is streamed to a temporary file, hashed on the way and cut off at
//! the size limit, so a 20 MiB photo (or a 2 GiB attack) never sits in memory.

use std::path::Path;

use aws_lc_rs::digest;
use chrono::{DateTime, Utc};
use tempfile::NamedTempFile;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{Error, Result};

/// An upload on disk: removed when dropped.
pub struct Received {
    pub file: NamedTempFile,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub bytes: u64,
    /// When the last byte arrived: the evidence time.
    pub received_at: DateTime<Utc>,
}

/// Copies `body` into a new temporary file in `dir`. More than `limit` bytes is `TooLarge` (the
/// rest is not read), none is `Empty`; the file is gone either way.
pub async fn receive<R: AsyncRead + Unpin>(body: R, dir: &Path, limit: u64) -> Result<Received> {
    let file = NamedTempFile::new_in(dir).map_err(|e| storage("temporary file", &e))?;
    let std_file = file.reopen().map_err(|e| storage("temporary file", &e))?;
    let mut out = tokio::fs::File::from_std(std_file);
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut total: u64 = 0;
    let mut body = body.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .await
            .map_err(|e| Error::Corrupt(format!("the upload was cut off: {e}")))?;
        if n == 0 {
            break;
        }
        total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if total > limit {
            return Err(Error::TooLarge { limit });
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hash.update(chunk);
        out.write_all(chunk)
            .await
            .map_err(|e| storage("temporary file", &e))?;
    }
    if total == 0 {
        return Err(Error::Empty);
    }
    out.flush()
        .await
        .map_err(|e| storage("temporary file", &e))?;
    Ok(Received {
        file,
        sha256: crate::storage::hex(hash.finish().as_ref()),
        bytes: total,
        received_at: Utc::now(),
    })
}

fn storage(what: &str, e: &std::io::Error) -> Error {
    Error::Storage(format!("{what}: {}", e.kind()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_lands_on_disk_with_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let body: &[u8] = b"abc";
        let r = receive(body, dir.path(), 10).await.unwrap();
        assert_eq!(r.bytes, 3);
        assert_eq!(
            r.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(r.file.path()).unwrap(), b"abc");
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 1001];
        let e = receive(&body[..], dir.path(), 1000).await.err().unwrap();
        assert_eq!(e.code(), "MEDIA_TOO_LARGE");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Exactly the limit is fine.
        assert!(receive(&body[..1000], dir.path(), 1000).await.is_ok());
    }

    #[tokio::test]
    async fn an_empty_upload_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = receive(&b""[..], dir.path(), 1000).await.err().unwrap();
        assert_eq!(e.code(), "MEDIA_EMPTY");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
