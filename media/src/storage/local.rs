//! Blobs in a folder of the server's own disk.
//!
//! A blob is written to a temporary file beside its final name, synced, then renamed over it, so a
//! crash never leaves a half-written blob under a final name (at worst a `.tmp` file, which no key
//! ever names). Two writers of the same key each write their own temporary file and the last
//! rename wins with the same bytes.

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use aws_lc_rs::digest;

use super::{Blob, BlobBody, BlobKey, sigv4::hex};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct LocalFolder {
    root: Arc<PathBuf>,
}

impl LocalFolder {
    pub(crate) fn new(root: PathBuf) -> Result<Self> {
        create_dirs(&root).map_err(|e| io_error("creating the media folder", &e))?;
        Ok(Self {
            root: Arc::new(root),
        })
    }

    /// The folder blobs are kept under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &BlobKey) -> PathBuf {
        // A key is `kind/ab/cd/<64 hex>`: only safe characters, so it cannot leave the root.
        self.root.join(key.as_str())
    }

    pub(crate) async fn put_file(
        &self,
        key: &BlobKey,
        source: &Path,
        sha256_hex: &str,
    ) -> Result<()> {
        let dest = self.path_of(key);
        let source = source.to_owned();
        let expected = sha256_hex.to_owned();
        blocking(move || {
            if dest.exists() {
                return Ok(());
            }
            let file = fs::File::open(&source).map_err(|e| io_error("opening the upload", &e))?;
            write_atomically(&dest, file, Some(&expected))
        })
        .await
    }

    pub(crate) async fn put_bytes(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<()> {
        let dest = self.path_of(key);
        blocking(move || {
            if dest.exists() {
                return Ok(());
            }
            write_atomically(&dest, bytes.as_slice(), None)
        })
        .await
    }

    pub(crate) async fn exists(&self, key: &BlobKey) -> Result<bool> {
        tokio::fs::try_exists(self.path_of(key))
            .await
            .map_err(|e| io_error("looking up a blob", &e))
    }

    pub(crate) async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        let file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("opening a blob", &e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| io_error("reading a blob's size", &e))?
            .len();
        Ok(Some(Blob {
            len,
            body: BlobBody::File(file),
        }))
    }

    pub(crate) async fn check(&self) -> Result<()> {
        let meta = tokio::fs::metadata(self.root.as_path())
            .await
            .map_err(|e| io_error("the media folder is not reachable", &e))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(Error::Storage("the media folder is not a folder".into()))
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Storage(format!("blob writer task failed: {e}")))?
}

/// Copies `source` into a new temporary file beside `dest`, checks its SHA-256 against
/// `expected` when given, syncs it, and renames it to `dest`.
fn write_atomically(dest: &Path, source: impl Read, expected: Option<&str>) -> Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| Error::Storage("a blob path has no folder".into()))?;
    create_dirs(dir).map_err(|e| io_error("creating a blob folder", &e))?;
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Storage("a blob path has no name".into()))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = copy_sync_rename(&tmp, dest, dir, source, expected);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn copy_sync_rename(
    tmp: &Path,
    dest: &Path,
    dir: &Path,
    mut source: impl Read,
    expected: Option<&str>,
) -> Result<()> {
    let mut file = new_private_file(tmp).map_err(|e| io_error("creating a blob", &e))?;
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("reading the upload", &e)),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        file.write_all(chunk)
            .map_err(|e| io_error("writing a blob", &e))?;
    }
    if let Some(expected) = expected
        && hex(hasher.finish().as_ref()) != expected
    {
        return Err(Error::Storage(
            "the file's bytes do not match its SHA-256".into(),
        ));
    }
    file.sync_all()
        .map_err(|e| io_error("syncing a blob", &e))?;
    drop(file);
    fs::rename(tmp, dest).map_err(|e| io_error("renaming a blob into place", &e))?;
    // The rename itself is durable only once the folder is synced.
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing a blob folder", &e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Evidence photos are for this service alone: files `0600`, folders `0700` on Unix.
fn new_private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn create_dirs(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// The error without the path: paths stay in the logs, never reach a client.
fn io_error(what: &str, e: &io::Error) -> Error {
    tracing::warn!(error = %e, "{what}");
    Error::Storage(format!("{what}: {}", e.kind()))
}
