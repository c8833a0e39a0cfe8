//! The lines of a bill as bytes, one at a time into one reused buffer, numbered from 1 and
//! without their `\n` or `\r\n`. A line is decoded only after it was cut: both encodings the
//! bills use (UTF-8, GBK) never use the byte `\n` inside a character.
//!
//! A line longer than [`MAX_LINE`] is refused rather than buffered: a bill's rows are a few
//! hundred bytes, and a file without line ends must not become one unbounded allocation.

use std::io::{BufRead, Read};

use super::{Parse, fault};
use crate::BillFault;

/// The longest line accepted, in bytes.
pub(crate) const MAX_LINE: usize = 64 * 1024;

pub(crate) struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    number: u64,
    /// What a failed read means: BILL_MALFORMED for a plain file, BILL_ARCHIVE_CORRUPT for an
    /// archive's entry (where a read fails on bad deflate data or a wrong CRC).
    read_fault: BillFault,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(reader: R, read_fault: BillFault) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(1024),
            number: 0,
            read_fault,
        }
    }

    /// The next line and its number; `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Parse<Option<(u64, &[u8])>> {
        self.buf.clear();
        let number = self.number.saturating_add(1);
        // Room for the longest line and its `\r\n`: reading more proves the line too long.
        let limit = u64::try_from(MAX_LINE)
            .unwrap_or(u64::MAX)
            .saturating_add(2);
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| fault(self.read_fault, Some(number), format!("reading: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.number = number;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE {
            return Err(fault(
                BillFault::Malformed,
                Some(number),
                format!("the line is longer than {MAX_LINE} bytes"),
            ));
        }
        Ok(Some((number, &self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut lines = Lines::new(text, BillFault::Malformed);
        let mut out = Vec::new();
        while let Ok(Some((n, l))) = lines.next_line() {
            out.push((n, l.to_vec()));
        }
        out
    }

    #[test]
    fn lines_end_with_crlf_or_lf() {
        assert_eq!(
            all(b"a,b\r\nc\n\r\nd"),
            vec![
                (1, b"a,b".to_vec()),
                (2, b"c".to_vec()),
                (3, b"".to_vec()),
                (4, b"d".to_vec())
            ]
        );
        assert!(all(b"").is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut lines = Lines::new(&long[..], BillFault::Malformed);
        assert!(lines.next_line().is_err());
        let exact = [vec![b'x'; MAX_LINE], b"\r\nx".to_vec()].concat();
        assert_eq!(all(&exact).len(), 2);
        let over = [vec![b'x'; MAX_LINE + 1], b"\n".to_vec()].concat();
        assert!(
            Lines::new(&over[..], BillFault::Malformed)
                .next_line()
                .is_err()
        );
    }
}
