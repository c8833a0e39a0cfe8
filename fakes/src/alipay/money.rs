//! Alipay writes money as yuan with two decimals (`"12.30"`); the fake keeps fen. Both ways
//! are exact integer arithmetic, never floating point.

/// Yuan with at most two decimals (`"12"`, `"12.3"`, `"12.30"`) as fen. None for signs,
/// exponents, spaces, a third decimal, or more than 12 integer digits.
pub fn parse_yuan(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 12
        || !digits(whole)
        || frac.len() > 2
        || (text.contains('.') && frac.is_empty())
        || !digits(frac)
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents = frac
        .bytes()
        .zip([10i64, 1])
        .map(|(b, weight)| i64::from(b - b'0') * weight)
        .sum::<i64>();
    whole.checked_mul(100)?.checked_add(cents)
}

/// Fen as yuan with exactly two decimals (`1230` → `"12.30"`).
pub fn format_yuan(fen: i64) -> String {
    Yuan(fen).to_string()
}

/// Fen that display as yuan with exactly two decimals, for writing amounts straight into a
/// larger text (the bill) without a `String` per amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Yuan(pub(crate) i64);

impl std::fmt::Display for Yuan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parse_exactly() {
        assert_eq!(parse_yuan("0.01"), Some(1));
        assert_eq!(parse_yuan("0.29"), Some(29));
        assert_eq!(parse_yuan("12.3"), Some(1230));
        assert_eq!(parse_yuan("12"), Some(1200));
        assert_eq!(parse_yuan("100000000.00"), Some(10_000_000_000));
        for bad in [
            "", ".5", "1.", "1.234", "-1", "+1", "1e2", " 1", "1,0", "0x1",
        ] {
            assert_eq!(parse_yuan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fen_format_with_two_decimals() {
        assert_eq!(format_yuan(1), "0.01");
        assert_eq!(format_yuan(1230), "12.30");
        assert_eq!(format_yuan(0), "0.00");
        assert_eq!(format_yuan(-105), "-1.05");
    }
}
