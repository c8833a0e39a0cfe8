//! One entry of a zip archive as an owned, streaming [`Read`].
//!
//! The `zip` crate's reader of an entry borrows the archive, so a parser that owns the archive
//! cannot also keep the entry's reader between calls without self-reference. Instead a worker
//! thread owns the archive, inflates the entry and passes it on in chunks through a bounded
//! channel: memory stays a few chunks whatever the entry's size, and a deflate or CRC error
//! arrives as a read error exactly where it occurs. The worker ends when the entry does, when
//! it fails, or when the reader is dropped (its next send fails).

use std::io::{self, Read, Seek};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use zip::ZipArchive;

/// Bytes per chunk sent from the worker.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between worker and reader.
const IN_FLIGHT: usize = 4;

enum Chunk {
    Data(Vec<u8>),
    End,
    Failed(String),
}

/// The inflated bytes of one entry, read as they are produced.
pub(crate) struct EntryReader {
    chunks: Receiver<Chunk>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl EntryReader {
    /// Starts inflating entry `index` of `archive` on a worker thread.
    pub(crate) fn spawn<R>(archive: ZipArchive<R>, index: usize) -> io::Result<Self>
    where
        R: Read + Seek + Send + 'static,
    {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        thread::Builder::new()
            .name("bill-unzip".into())
            .spawn(move || pump(archive, index, &tx))?;
        Ok(Self {
            chunks: rx,
            current: Vec::new(),
            pos: 0,
            ended: false,
        })
    }
}

impl Read for EntryReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(rest) = self.current.get(self.pos..).filter(|r| !r.is_empty()) {
                let n = rest.len().min(out.len());
                if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
                    dst.copy_from_slice(src);
                }
                self.pos = self.pos.saturating_add(n);
                return Ok(n);
            }
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Chunk::Data(bytes)) => {
                    self.current = bytes;
                    self.pos = 0;
                }
                Ok(Chunk::End) => self.ended = true,
                Ok(Chunk::Failed(why)) => return Err(io::Error::other(why)),
                Err(_) => return Err(io::Error::other("the archive reader stopped")),
            }
        }
    }
}

/// The worker: inflates the entry into chunks until it ends, fails, or nobody listens.
fn pump<R: Read + Seek>(mut archive: ZipArchive<R>, index: usize, tx: &SyncSender<Chunk>) {
    let last = match archive.by_index(index) {
        Err(e) => Chunk::Failed(e.to_string()),
        Ok(mut entry) => loop {
            let mut buf = vec![0; CHUNK];
            match entry.read(&mut buf) {
                Ok(0) => break Chunk::End,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Chunk::Data(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Chunk::Failed(e.to_string()),
            }
        },
    };
    // Nobody listening any more is no one's problem.
    let _ = tx.send(last);
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::{ZipWriter, write::SimpleFileOptions};

    use super::*;

    #[test]
    fn an_entry_streams_whole_across_chunks() {
        let text: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("a.bin", SimpleFileOptions::default()).unwrap();
        w.write_all(&text).unwrap();
        let zip = w.finish().unwrap().into_inner();
        let archive = ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut reader = EntryReader::spawn(archive, 0).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn a_missing_entry_is_a_read_error() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("a.bin", SimpleFileOptions::default()).unwrap();
        let zip = w.finish().unwrap().into_inner();
        let archive = ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut reader = EntryReader::spawn(archive, 7).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }
}
