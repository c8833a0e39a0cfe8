//! What a photo is for. The purpose decides who besides its uploader may use it.

use std::{fmt, str::FromStr};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Accident,
    Damage,
    Invoice,
    Plate,
    Certificate,
    Inspection,
    Audit,
    IncomeScreenshot,
    Avatar,
}

impl Purpose {
    pub const ALL: [Purpose; 9] = [
        Purpose::Accident,
        Purpose::Damage,
        Purpose::Invoice,
        Purpose::Plate,
        Purpose::Certificate,
        Purpose::Inspection,
        Purpose::Audit,
        Purpose::IncomeScreenshot,
        Purpose::Avatar,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Accident => "accident",
            Purpose::Damage => "damage",
            Purpose::Invoice => "invoice",
            Purpose::Plate => "plate",
            Purpose::Certificate => "certificate",
            Purpose::Inspection => "inspection",
            Purpose::Audit => "audit",
            Purpose::IncomeScreenshot => "income_screenshot",
            Purpose::Avatar => "avatar",
        }
    }

    /// Whether staff of the uploader's branch (and operators of the tenant) may attach the photo
    /// to their own records: a driver's accident photos to the repair they open, a colleague's
    /// plate photos to the registration. A driver's income screenshots and avatar stay theirs.
    pub fn shared_with_staff(self) -> bool {
        !matches!(self, Purpose::IncomeScreenshot | Purpose::Avatar)
    }
}

impl FromStr for Purpose {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| Error::PurposeInvalid(s.chars().take(40).collect()))
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purpose_reads_back_from_its_name() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().ok(), Some(p));
        }
    }

    #[test]
    fn an_unknown_purpose_is_refused_with_its_code() {
        let e = "selfie".parse::<Purpose>().err();
        assert_eq!(e.map(|e| e.code()), Some("MEDIA_PURPOSE_INVALID"));
        assert!("".parse::<Purpose>().is_err());
        assert!("Accident".parse::<Purpose>().is_err());
    }
}
