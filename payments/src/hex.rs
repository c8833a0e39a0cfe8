//! Lower-case hexadecimal, as digests are written in bills and answers.

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_become_lower_case_pairs() {
        assert_eq!(super::hex(&[0x00, 0x7f, 0xab, 0xff]), "007fabff");
        assert_eq!(super::hex(&[]), "");
    }
}
