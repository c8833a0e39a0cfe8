//! What a photo's EXIF says: the orientation we apply, and the claims we record.
//!
//! Anything wrong with the EXIF block is the photo's metadata being broken, not the photo: it is
//! processed upright as stored (orientation 1) and marked `exif_unreadable`. A block that parses
//! but has an odd field (a blank date, a GPS rational over zero) just loses that field.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ::exif::{Exif, In, Reader, Tag, Value};
use chrono::{FixedOffset, NaiveDate};

use super::{Claims, Format, TakenAt, container};

/// Longest camera name we keep; EXIF strings are whatever the file says.
const MAX_CAMERA_CHARS: usize = 100;

/// The orientation (1–8) and the claims of the photo.
pub(crate) fn read(bytes: &[u8], format: Format) -> (u16, Claims) {
    let Some(block) = container::exif_block(bytes, format) else {
        return (1, Claims::default());
    };
    match catch_unwind(AssertUnwindSafe(|| Reader::new().read_raw(block.to_vec()))) {
        Ok(Ok(exif)) => (orientation(&exif), claims(&exif)),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "unreadable EXIF; processing the photo as stored");
            unreadable()
        }
        Err(_) => {
            tracing::warn!("EXIF reader panicked; processing the photo as stored");
            unreadable()
        }
    }
}

fn unreadable() -> (u16, Claims) {
    let claims = Claims {
        exif_unreadable: true,
        ..Claims::default()
    };
    (1, claims)
}

fn orientation(exif: &Exif) -> u16 {
    exif.get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u16::try_from(v).ok())
        .filter(|v| (1..=8).contains(v))
        .unwrap_or(1)
}

fn claims(exif: &Exif) -> Claims {
    Claims {
        taken_at: taken_at(exif),
        latitude: coordinate(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S', 90.0),
        longitude: coordinate(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W', 180.0),
        camera: camera(exif),
        exif_unreadable: false,
    }
}

/// The first string of an ASCII field, without the NULs and spaces cameras pad with.
fn ascii(exif: &Exif, tag: Tag) -> Option<&[u8]> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let Value::Ascii(ref strings) = field.value else {
        return None;
    };
    let s = strings.first()?.as_slice();
    let s = s.split(|&b| b == 0).next().unwrap_or_default().trim_ascii();
    (!s.is_empty()).then_some(s)
}

fn taken_at(exif: &Exif) -> Option<TakenAt> {
    let mut dt = ::exif::DateTime::from_ascii(ascii(exif, Tag::DateTimeOriginal)?).ok()?;
    let local =
        NaiveDate::from_ymd_opt(i32::from(dt.year), u32::from(dt.month), u32::from(dt.day))?
            .and_hms_opt(
                u32::from(dt.hour),
                u32::from(dt.minute),
                u32::from(dt.second),
            )?;
    let offset = ascii(exif, Tag::OffsetTimeOriginal)
        .and_then(|o| dt.parse_offset(o).ok())
        .and(dt.offset)
        .and_then(|minutes| FixedOffset::east_opt(i32::from(minutes) * 60));
    Some(TakenAt { local, offset })
}

/// Degrees, minutes, seconds and a reference letter, as signed decimal degrees.
fn coordinate(exif: &Exif, tag: Tag, reference: Tag, negative: u8, max: f64) -> Option<f64> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let Value::Rational(ref dms) = field.value else {
        return None;
    };
    let part = |i: usize| dms.get(i).map_or(0.0, |r| r.to_f64());
    let degrees = dms.first()?.to_f64() + part(1) / 60.0 + part(2) / 3600.0;
    if !degrees.is_finite() || !(0.0..=max).contains(&degrees) {
        return None;
    }
    let sign = match ascii(exif, reference)?.first()? {
        r if r.eq_ignore_ascii_case(&negative) => -1.0,
        _ => 1.0,
    };
    Some(sign * degrees)
}

/// `Make Model`, or just `Model` when it already names the maker (`Canon` + `Canon EOS R5`).
fn camera(exif: &Exif) -> Option<String> {
    let text = |tag| ascii(exif, tag).map(|s| String::from_utf8_lossy(s).into_owned());
    let name = match (text(Tag::Make), text(Tag::Model)) {
        (Some(make), Some(model)) if model.to_lowercase().starts_with(&make.to_lowercase()) => {
            model
        }
        (Some(make), Some(model)) => format!("{make} {model}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return None,
    };
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CAMERA_CHARS)
        .collect();
    Some(clean)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use minigate_fakes::photos::{self as fixtures, ExifSpec};

    fn read_tiff(tiff: &[u8]) -> (u16, Claims) {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend_from_slice(&fixtures::app1(tiff));
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        read(&jpeg, Format::Jpeg)
    }

    #[test]
    fn a_phone_style_block_gives_orientation_time_place_and_camera() {
        let (orientation, claims) = read_tiff(&fixtures::tiff(&ExifSpec::phone()));
        assert_eq!(orientation, 6);
        let taken = claims.taken_at.unwrap();
        assert_eq!(taken.to_string(), "2024-05-01T14:23:05+08:00");
        assert_eq!(
            taken.to_fixed().unwrap().to_rfc3339(),
            "2024-05-01T14:23:05+08:00"
        );
        // 31° 13' 50.4" S, 121° 28' 12" W
        let lat = claims.latitude.unwrap();
        let lon = claims.longitude.unwrap();
        assert!(
            (lat + 31.0 + 13.0 / 60.0 + 50.4 / 3600.0).abs() < 1e-9,
            "{lat}"
        );
        assert!((lon - -121.47).abs() < 1e-6, "{lon}");
        assert_eq!(claims.camera.as_deref(), Some("Apple iPhone 15"));
        assert!(!claims.exif_unreadable);
    }

    #[test]
    fn north_and_east_are_positive_and_a_model_naming_its_maker_is_not_doubled() {
        let spec = ExifSpec {
            lat_ref: b'N',
            lon_ref: b'E',
            make: "Canon".into(),
            model: "Canon EOS R5".into(),
            offset: None,
            ..ExifSpec::phone()
        };
        let (_, claims) = read_tiff(&fixtures::tiff(&spec));
        assert!(claims.latitude.unwrap() > 31.0);
        assert!(claims.longitude.unwrap() > 121.0);
        assert_eq!(claims.camera.as_deref(), Some("Canon EOS R5"));
        let taken = claims.taken_at.unwrap();
        assert_eq!(taken.to_string(), "2024-05-01T14:23:05");
        assert_eq!(taken.to_fixed(), None);
    }

    #[test]
    fn odd_fields_are_dropped_one_by_one() {
        let spec = ExifSpec {
            orientation: 9,
            date: "0000:00:00 00:00:00".into(),
            lat: [(91, 1), (0, 1), (0, 1)],
            lon: [(1, 0), (0, 1), (0, 1)],
            ..ExifSpec::phone()
        };
        let (orientation, claims) = read_tiff(&fixtures::tiff(&spec));
        assert_eq!(orientation, 1);
        assert_eq!(claims.taken_at, None);
        assert_eq!(claims.latitude, None);
        assert_eq!(claims.longitude, None);
        assert!(!claims.exif_unreadable);
        assert_eq!(claims.camera.as_deref(), Some("Apple iPhone 15"));
    }

    #[test]
    fn garbage_after_the_exif_identifier_is_unreadable_not_an_error() {
        let (orientation, claims) = read_tiff(b"this is not a TIFF header at all");
        assert_eq!(orientation, 1);
        assert!(claims.exif_unreadable);
        assert_eq!(claims.camera, None);

        // A valid header whose IFD offset points past the end.
        let (orientation, claims) = read_tiff(b"II*\0\xFF\xFF\0\0");
        assert_eq!(orientation, 1);
        assert!(claims.exif_unreadable);
    }

    #[test]
    fn no_exif_claims_nothing_and_is_not_unreadable() {
        let (orientation, claims) = read(b"\xFF\xD8\xFF\xD9", Format::Jpeg);
        assert_eq!(orientation, 1);
        assert_eq!(claims, Claims::default());
    }
}
