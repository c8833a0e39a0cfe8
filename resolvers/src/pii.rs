//! Masking of personal data for viewers whose role may not see it in full.

/// `13800138000` → `138****8000`.
pub fn mask_phone(phone: &str) -> String {
    mask(phone, 3, 4)
}

/// `11010519491231002X` → `110***********002X`.
pub fn mask_id_number(id: &str) -> String {
    mask(id, 3, 4)
}

fn mask(s: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= keep_start + keep_end {
        return "*".repeat(chars.len());
    }
    let hidden = chars.len() - keep_start - keep_end;
    chars[..keep_start]
        .iter()
        .chain(std::iter::repeat_n(&'*', hidden))
        .chain(&chars[chars.len() - keep_end..])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_id_number("11010519491231002X"), "110***********002X");
        assert_eq!(mask_phone("123"), "***");
    }
}
