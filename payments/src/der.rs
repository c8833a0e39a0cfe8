//! Just enough DER to take an X.509 certificate's serial number and public key.

use crate::{Error, Result};

struct Tlv<'a> {
    tag: u8,
    /// The whole element, header included.
    whole: &'a [u8],
    body: &'a [u8],
}

fn bad() -> Error {
    Error::KeyInvalid("certificate is not valid DER".into())
}

fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad());
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            whole: &input[..header + len],
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// (serial number in upper-case hex, SubjectPublicKeyInfo DER) of a certificate.
pub fn certificate_serial_and_key(cert: &[u8]) -> Result<(String, Vec<u8>)> {
    let (certificate, _) = read(cert)?;
    let (tbs, _) = read(certificate.body)?;
    let mut rest = tbs.body;
    let (mut item, mut after) = read(rest)?;
    if item.tag == 0xa0 {
        // [0] version
        rest = after;
        (item, after) = read(rest)?;
    }
    if item.tag != 0x02 {
        return Err(bad());
    }
    let serial_bytes = item.body.strip_prefix(&[0]).unwrap_or(item.body);
    let serial: String = serial_bytes.iter().map(|b| format!("{b:02X}")).collect();
    // signature algorithm, issuer, validity, subject, then the key.
    rest = after;
    for _ in 0..4 {
        rest = read(rest)?.1;
    }
    let (spki, _) = read(rest)?;
    if spki.tag != 0x30 {
        return Err(bad());
    }
    Ok((serial, spki.whole.to_vec()))
}
