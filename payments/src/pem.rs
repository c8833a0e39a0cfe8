//! PEM: the text form keys and certificates are configured in.

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{Error, Result};

/// The DER bodies of every `-----BEGIN {label}-----` block in `text`, in order.
pub fn blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or_else(|| Error::KeyInvalid(format!("unterminated {label} block")))?;
        let b64: String = after[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push(
            STANDARD
                .decode(b64)
                .map_err(|_| Error::KeyInvalid(format!("{label} block is not base64")))?,
        );
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

/// The single block labelled `label`.
pub fn one(text: &str, label: &str) -> Result<Vec<u8>> {
    let mut all = blocks(text, label)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(Error::KeyInvalid(format!("no {label} block"))),
        _ => Err(Error::KeyInvalid(format!("more than one {label} block"))),
    }
}
