//! The amounts of bills, read exactly. Bills print yuan with a fixed number of decimals and,
//! for fees and Alipay's 商家实收, a sign: `12.30`, `-5.00`, WeChat's fee `0.07380`. Unlike
//! [`crate::money::parse_yuan`] (what people type), these accept only the printed shape, and a
//! sign only where the caller allows one. The result is an integer of the smallest unit:
//! fen for two decimals, millifen (1/1000 fen, 1e-5 yuan) for WeChat's five.

/// `digits.dd`: a non-negative amount of fen.
pub fn fen(text: &str) -> Option<i64> {
    fixed(text, false, 2, 2, 2)
}

/// `-?digits.dd`: a signed amount of fen.
pub fn signed_fen(text: &str) -> Option<i64> {
    fixed(text, true, 2, 2, 2)
}

/// `-?digits.d{2,5}`: a signed fee in millifen. WeChat prints five decimals (`0.07380`);
/// fewer are scaled (`0.07` is 7000).
pub fn millifen(text: &str) -> Option<i64> {
    fixed(text, true, 2, 5, 5)
}

/// Fen as millifen.
pub fn fen_to_millifen(fen: i64) -> Option<i64> {
    fen.checked_mul(1000)
}

/// Millifen as WeChat prints them: yuan with five decimals (`7380` → `0.07380`).
pub fn format_millifen(millifen: i64) -> String {
    let sign = if millifen < 0 { "-" } else { "" };
    let abs = millifen.unsigned_abs();
    format!("{sign}{}.{:05}", abs / 100_000, abs % 100_000)
}

/// Parses `-?digits.frac` with `min..=max` decimals into units of `scale` decimals
/// (`max <= scale`). Digits are ASCII only; no `+`, spaces, exponent or separators.
fn fixed(text: &str, signed: bool, min: usize, max: usize, scale: usize) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return None,
        None => (false, text),
    };
    let (whole, frac) = body.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || frac.len() < min || frac.len() > max {
        return None;
    }
    let mut value: i64 = 0;
    for b in whole.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)?
            .checked_add(i64::from(b.checked_sub(b'0')?))?;
    }
    for _ in frac.len()..scale {
        value = value.checked_mul(10)?;
    }
    if negative {
        value.checked_neg()
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decimal_amounts_are_exact_fen() {
        assert_eq!(fen("0.29"), Some(29));
        assert_eq!(fen("12.30"), Some(1230));
        assert_eq!(fen("0.00"), Some(0));
        assert_eq!(fen("21474836.47"), Some(2_147_483_647));
        assert_eq!(signed_fen("-5.00"), Some(-500));
        assert_eq!(signed_fen("-0.01"), Some(-1));
        assert_eq!(signed_fen("7.07"), Some(707));
        assert_eq!(fen("92233720368547758.07"), Some(i64::MAX));
        assert_eq!(fen("92233720368547758.08"), None);
        for bad in [
            "", "1", "1.", ".50", "1.2", "1.234", "-1.00", "+1.00", " 1.00", "1.00 ", "1,000.00",
            "1e3", "1.0a", "１.00", "--1.00", "-",
        ] {
            assert_eq!(fen(bad), None, "{bad:?} was accepted");
        }
        for bad in ["--1.00", "-", "-.00", "+1.00", "- 1.00", "-1.0"] {
            assert_eq!(signed_fen(bad), None, "{bad:?} was accepted");
        }
    }

    #[test]
    fn fees_are_exact_millifen() {
        assert_eq!(millifen("0.07380"), Some(7380));
        assert_eq!(millifen("-0.03000"), Some(-3000));
        assert_eq!(millifen("0.00000"), Some(0));
        assert_eq!(millifen("0.07"), Some(7000));
        assert_eq!(millifen("0.0738"), Some(7380));
        assert_eq!(millifen("1.00001"), Some(100_001));
        assert_eq!(millifen("-0.00174"), Some(-174));
        for bad in ["0.073800", "0.0", "0", "-", "0.0738x", "1e-5"] {
            assert_eq!(millifen(bad), None, "{bad:?} was accepted");
        }
        assert_eq!(fen_to_millifen(7), Some(7000));
        assert_eq!(fen_to_millifen(i64::MAX), None);
    }

    #[test]
    fn millifen_print_as_five_decimals() {
        assert_eq!(format_millifen(7380), "0.07380");
        assert_eq!(format_millifen(-3000), "-0.03000");
        assert_eq!(format_millifen(0), "0.00000");
        assert_eq!(format_millifen(123_456_789), "1234.56789");
        for m in [0, 1, -1, 7380, -3000, 99_999, 100_000] {
            assert_eq!(millifen(&format_millifen(m)), Some(m));
        }
    }
}
