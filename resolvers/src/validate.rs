//! Checks and normal forms for what operators type or import: plates, VINs, phones, ID numbers.

use crate::{Error, Result};

const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// A mainland plate: province, issuing-office letter, then five characters (six for new-energy
/// plates), letters I and O never used; a few special plates end in 挂 (trailer) or 学 (driving
/// school). Returns the normal form (upper case, no spaces or separator dot).
pub fn plate(input: &str) -> Result<String> {
    let p: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '·' && *c != '.' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let chars: Vec<char> = p.chars().collect();
    let bad = || {
        Error::invalid(
            "plate",
            format!("'{input}' is not a mainland licence plate"),
        )
    };
    let (&province, rest) = chars.split_first().ok_or_else(bad)?;
    if !PROVINCES.contains(province) {
        return Err(bad());
    }
    let (&office, serial) = rest.split_first().ok_or_else(bad)?;
    if !office.is_ascii_uppercase() {
        return Err(bad());
    }
    let serial_ok = |s: &[char]| {
        s.iter()
            .all(|c| (c.is_ascii_uppercase() || c.is_ascii_digit()) && *c != 'I' && *c != 'O')
    };
    let ok = match serial {
        [s @ .., '挂' | '学'] if s.len() == 4 => serial_ok(s),
        s if s.len() == 5 || s.len() == 6 => serial_ok(s),
        _ => false,
    };
    if ok { Ok(p) } else { Err(bad()) }
}

/// A 17-character VIN (ISO 3779) whose ninth character is the check digit, which China's
/// GB 16735 makes mandatory.
pub fn vin(input: &str) -> Result<String> {
    let v = input.trim().to_ascii_uppercase();
    let bad = |why: &str| Error::invalid("vin", format!("'{input}' is not a VIN: {why}"));
    if v.len() != 17 {
        return Err(bad("it must have 17 characters"));
    }
    let expected =
        vin_check_digit(&v).ok_or_else(|| bad("only digits and letters other than I, O and Q"))?;
    if v.chars().nth(8) == Some(expected) {
        Ok(v)
    } else {
        Err(bad("the check digit (9th character) does not match"))
    }
}

/// The check digit (ISO 3779) a 17-character VIN must carry at its ninth position; `None` when a
/// character is not allowed in a VIN (I, O, Q and anything but ASCII letters and digits).
pub fn vin_check_digit(vin: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let mut sum = 0;
    for (c, w) in vin.chars().zip(WEIGHTS) {
        let value = match c {
            '0'..='9' => c.to_digit(10)?,
            'A' | 'J' => 1,
            'B' | 'K' | 'S' => 2,
            'C' | 'L' | 'T' => 3,
            'D' | 'M' | 'U' => 4,
            'E' | 'N' | 'V' => 5,
            'F' | 'W' => 6,
            'G' | 'P' | 'X' => 7,
            'H' | 'Y' => 8,
            'R' | 'Z' => 9,
            _ => return None,
        };
        sum += value * w;
    }
    match sum % 11 {
        10 => Some('X'),
        d => char::from_digit(d, 10),
    }
}

/// A mainland mobile number, 11 digits starting with 1; `+86` and separators are dropped.
pub fn phone(input: &str) -> Result<String> {
    let digits: String = input
        .trim()
        .trim_start_matches("+86")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let ok = digits.len() == 11
        && digits.starts_with('1')
        && digits
            .chars()
            .nth(1)
            .is_some_and(|c| ('3'..='9').contains(&c))
        && digits.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(digits)
    } else {
        Err(Error::invalid(
            "phone",
            format!("'{input}' is not a mainland mobile number"),
        ))
    }
}

/// The check character (GB 11643) of the first 17 digits of a resident ID number.
pub fn id_check_char(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let mut sum = 0;
    for (c, w) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    usize::try_from(sum % 11)
        .ok()
        .and_then(|i| check.get(i))
        .copied()
}

/// An 18-character resident identity number (GB 11643): a valid birth date and check character.
pub fn id_number(input: &str) -> Result<String> {
    let n = input.trim().to_ascii_uppercase();
    let bad = |why: &str| Error::invalid("idNumber", format!("not a resident ID number: {why}"));
    let chars: Vec<char> = n.chars().collect();
    if chars.len() != 18 || !chars[..17].iter().all(char::is_ascii_digit) {
        return Err(bad("18 characters, the first 17 digits"));
    }
    let expected = id_check_char(&n[..17]);
    if expected != Some(chars[17]) {
        return Err(bad("the check character does not match"));
    }
    if chrono::NaiveDate::parse_from_str(&n[6..14], "%Y%m%d").is_err() {
        return Err(bad("the birth date is not a date"));
    }
    Ok(n)
}

/// A person's or a place's name: trimmed, 1 to `max` characters.
pub fn name(field: &str, input: &str, max: usize) -> Result<String> {
    let t = input.trim();
    let len = t.chars().count();
    if len == 0 || len > max || t.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("1 to {max} characters, no control characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Optional free text: trimmed, blank is none, otherwise as [`name`] checks it.
pub fn optional_text(field: &str, input: Option<&str>, max: usize) -> Result<Option<String>> {
    input
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| name(field, t, max))
        .transpose()
}

/// The `after` of a resumable subscription: an `eventId` it delivered.
pub fn event_id(after: Option<&async_graphql::ID>) -> Result<Option<i64>> {
    after
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| Error::invalid("after", "an eventId from this subscription"))
        })
        .transpose()
}

/// A short code operators type (branch codes, tenant slugs): letters, digits, `-` and `_`.
pub fn code(field: &str, input: &str) -> Result<String> {
    let t = input.trim();
    let ok = (1..=32).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(field, "1 to 32 letters, digits, '-' or '_'"))
    }
}

/// A secret reference: `env:NAME` or `file:/absolute/path`, never the secret itself.
pub fn secret_ref(field: &str, input: &str) -> Result<String> {
    let t = input.trim();
    let ok = match t.split_once(':') {
        Some(("env", name)) => {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        Some(("file", path)) => path.starts_with('/') && !path.contains(".."),
        _ => false,
    };
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(
            field,
            "a reference 'env:NAME' or 'file:/absolute/path', not a secret",
        ))
    }
}

/// A WeChat or Alipay app id, or a merchant number.
pub fn app_id(field: &str, input: &str) -> Result<String> {
    let t = input.trim();
    if (4..=64).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(field, "4 to 64 letters, digits or '_'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_normalised_and_checked() {
        assert_eq!(plate("粤b 12345").unwrap(), "粤B12345");
        assert_eq!(plate("粤B·D12345").unwrap(), "粤BD12345");
        assert_eq!(plate("京A1234学").unwrap(), "京A1234学");
        for bad in [
            "",
            "粤",
            "B12345",
            "粤112345",
            "粤B1234",
            "粤BI2345",
            "粤B1234567",
            "X B12345",
        ] {
            assert!(plate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vins_need_a_matching_check_digit() {
        assert_eq!(vin("1m8gdm9axkp042788").unwrap(), "1M8GDM9AXKP042788");
        assert_eq!(vin("LSVAU218XN2183294").unwrap(), "LSVAU218XN2183294");
        assert!(vin("1M8GDM9A1KP042788").is_err());
        assert!(vin("1M8GDM9AXKP04278").is_err());
        assert!(vin("1M8GDM9AXKP0427O8").is_err());
    }

    #[test]
    fn phones_accept_country_code_and_separators() {
        assert_eq!(phone("+86 138-0013-8000").unwrap(), "13800138000");
        for bad in ["12800138000", "1380013800", "138001380001", "1380013800a"] {
            assert!(phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_numbers_need_a_date_and_check_character() {
        assert_eq!(
            id_number("11010519491231002x").unwrap(),
            "11010519491231002X"
        );
        assert!(id_number("110105194912310021").is_err());
        assert!(id_number("110105194913310028").is_err());
        assert!(id_number("11010519491231002").is_err());
    }

    #[test]
    fn secret_references_never_hold_a_secret() {
        assert!(secret_ref("s", "env:WX_SECRET_1").is_ok());
        assert!(secret_ref("s", "file:/run/secrets/wx").is_ok());
        assert!(secret_ref("s", "0123456789abcdef").is_err());
        assert!(secret_ref("s", "file:relative").is_err());
        assert!(secret_ref("s", "file:/run/../etc/shadow").is_err());
    }
}
