//! The SHA-1 WeChat Pay gives for a bill (`hash_type: SHA1`). The file's download is not
//! signed, only the answer naming its digest is; so the bytes are hashed as they are written
//! to disk ([`Sha1Writer`], [`copy_hashed`]) and the file is parsed only if [`check_sha1`]
//! agrees. SHA-1 is what the provider uses here: an integrity check of a download, not a
//! signature of ours.

use std::io::{self, Read, Write};

use aws_lc_rs::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

use crate::{BillFault, Error, Result, hex::hex};

/// A writer that passes bytes on to `inner` and hashes exactly those `inner` accepted.
pub struct Sha1Writer<W: Write> {
    inner: W,
    hash: Context,
}

impl<W: Write> Sha1Writer<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Context::new(&SHA1_FOR_LEGACY_USE_ONLY),
        }
    }

    /// The writer back, and the lower-case hex SHA-1 of everything written through.
    pub fn finish(self) -> (W, String) {
        (self.inner, hex(self.hash.finish().as_ref()))
    }
}

impl<W: Write> Write for Sha1Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `reader` into `writer` and flushes it. Returns the number of bytes and their
/// lower-case hex SHA-1.
pub fn copy_hashed(mut reader: impl Read, writer: &mut impl Write) -> Result<(u64, String)> {
    let mut hashing = Sha1Writer::new(writer);
    let n = io::copy(&mut reader, &mut hashing).map_err(io_error)?;
    hashing.flush().map_err(io_error)?;
    let (_, digest) = hashing.finish();
    Ok((n, digest))
}

/// The lower-case hex SHA-1 of everything `reader` gives.
pub fn sha1_hex(reader: impl Read) -> Result<String> {
    copy_hashed(reader, &mut io::sink()).map(|(_, digest)| digest)
}

/// BILL_HASH_MISMATCH unless `actual` is the digest the provider gave (hex, either case).
pub fn check_sha1(expected_hex: &str, actual_hex: &str) -> Result<()> {
    if expected_hex.trim().eq_ignore_ascii_case(actual_hex.trim()) {
        return Ok(());
    }
    Err(Error::Bill {
        code: BillFault::HashMismatch,
        line: None,
        detail: format!(
            "the file's SHA-1 is {}, the provider gave {}",
            actual_hex.trim(),
            expected_hex.chars().take(64).collect::<String>()
        ),
    })
}

fn io_error(e: io::Error) -> Error {
    Error::Malformed(format!("bill file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_known_texts() {
        assert_eq!(
            sha1_hex(&b"abc"[..]).ok().as_deref(),
            Some("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            sha1_hex(&b""[..]).ok().as_deref(),
            Some("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        );
    }

    #[test]
    fn the_writer_passes_bytes_on_and_hashes_them() {
        let mut w = Sha1Writer::new(Vec::new());
        assert!(w.write_all(b"a").is_ok());
        assert!(w.write_all(b"bc").is_ok());
        let (bytes, digest) = w.finish();
        assert_eq!(bytes, b"abc");
        assert_eq!(digest, "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn digests_compare_in_either_case() {
        let d = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert!(check_sha1(&d.to_uppercase(), d).is_ok());
        let e = check_sha1("da39a3ee5e6b4b0d3255bfef95601890afd80709", d);
        assert!(matches!(
            e,
            Err(Error::Bill {
                code: BillFault::HashMismatch,
                line: None,
                ..
            })
        ));
    }
}
