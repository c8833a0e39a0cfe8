//! Money is integer fen everywhere. Providers and people write yuan (`"12.30"`); these convert
//! exactly, never through floating point.

use crate::{Error, Result};

/// The largest amount minigate handles in one bill or order: 21,474,836.47 yuan, so an amount
/// always fits a GraphQL `Int`.
pub const MAX_FEN: i64 = 2_147_483_647;

/// Parses a non-negative yuan amount with at most two decimals (`"12"`, `"12.3"`, `"12.30"`)
/// into fen. Refuses signs, exponents, spaces, thousands separators and a third decimal.
pub fn parse_yuan(text: &str) -> Result<i64> {
    let bad = || Error::AmountMalformed(text.chars().take(32).collect());
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || (text.contains('.') && frac.is_empty())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let mut cents: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let digit = i64::from(b - b'0');
        cents += if i == 0 { digit * 10 } else { digit };
    }
    whole
        .checked_mul(100)
        .and_then(|f| f.checked_add(cents))
        .filter(|f| *f <= MAX_FEN)
        .ok_or_else(bad)
}

/// Fen as a yuan string with two decimals (`1230` → `"12.30"`), as Alipay expects.
pub fn format_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_strings_become_exact_fen() {
        assert_eq!(parse_yuan("0.01").ok(), Some(1));
        assert_eq!(parse_yuan("12").ok(), Some(1200));
        assert_eq!(parse_yuan("12.3").ok(), Some(1230));
        assert_eq!(parse_yuan("12.30").ok(), Some(1230));
        // 0.29 is 0.28999… as a float; exact parsing keeps it 29 fen.
        assert_eq!(parse_yuan("0.29").ok(), Some(29));
        assert_eq!(parse_yuan("21474836.47").ok(), Some(2_147_483_647));
        assert!(parse_yuan("21474836.48").is_err());
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "-1",
            "+1",
            "1.234",
            "1e3",
            "1,000",
            " 1",
            "1 ",
            "abc",
            "1.2a",
            "9999999999999",
        ] {
            assert!(parse_yuan(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn fen_print_as_yuan_with_two_decimals() {
        assert_eq!(format_yuan(1), "0.01");
        assert_eq!(format_yuan(1230), "12.30");
        assert_eq!(format_yuan(-5), "-0.05");
        for fen in [0, 7, 99, 100, 101, 123_456] {
            assert_eq!(parse_yuan(&format_yuan(fen)).ok(), Some(fen));
        }
    }
}
