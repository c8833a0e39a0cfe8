//! The format, from magic bytes only.

use super::Format;
use crate::{Error, Result};

/// What the first bytes of a file say it is.
///
/// JPEG, PNG and WebP are accepted; anything else is [`Error::UnsupportedFormat`] with a name a
/// person can read (`"HEIC"`, `"GIF"`, `"PDF"`, `"unknown"`), whatever the file is called.
pub fn sniff(head: &[u8]) -> Result<Format> {
    if head.is_empty() {
        return Err(Error::Empty);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return Ok(Format::Webp);
    }
    Err(Error::UnsupportedFormat(other(head).to_owned()))
}

/// A readable name for a format we refuse.
fn other(head: &[u8]) -> &'static str {
    if head.get(4..8) == Some(b"ftyp") {
        return iso_bmff(head);
    }
    const MAGIC: &[(&[u8], &str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"%PDF-", "PDF"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"BM", "BMP"),
        (b"\0\0\x01\0", "ICO"),
        (b"\xFF\x0A", "JPEG XL"),
        (b"\0\0\0\x0CJXL \r\n\x87\n", "JPEG XL"),
        (b"\0\0\0\x0CjP  \r\n\x87\n", "JPEG 2000"),
        (b"8BPS", "PSD"),
        (b"PK\x03\x04", "ZIP"),
        (b"<svg", "SVG"),
        (b"<?xml", "XML"),
    ];
    if head.starts_with(b"RIFF") {
        return "RIFF";
    }
    MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map_or("unknown", |(_, name)| name)
}

/// ISO base media files (`....ftyp<brand>`): HEIC/HEIF and AVIF photos, MP4/MOV videos.
fn iso_bmff(head: &[u8]) -> &'static str {
    // The major brand, then (after a 4-byte minor version) the compatible brands, as far as the
    // box and the bytes we have go.
    let box_len = head
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b: [u8; 4]| super::idx(u32::from_be_bytes(b)));
    let end = box_len.min(head.len());
    let major = head.get(8..12);
    let compatible = head.get(16..end).unwrap_or_default().chunks_exact(4);
    let brands: Vec<&[u8]> = major.into_iter().chain(compatible).collect();
    let has = |names: &[&[u8; 4]]| brands.iter().any(|b| names.iter().any(|n| *b == &n[..]));
    if has(&[b"avif", b"avis"]) {
        "AVIF"
    } else if has(&[
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
    ]) {
        "HEIC"
    } else if has(&[b"mif1", b"msf1"]) {
        "HEIF"
    } else if has(&[b"qt  "]) {
        "QuickTime"
    } else {
        "MP4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &[u8]) -> String {
        match sniff(head) {
            Err(Error::UnsupportedFormat(name)) => name,
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
    }

    #[test]
    fn jpeg_png_and_webp_are_recognised_by_their_magic_bytes() {
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF").ok(),
            Some(Format::Jpeg)
        );
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE1\x12\x34Exif").ok(),
            Some(Format::Jpeg)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR").ok(),
            Some(Format::Png)
        );
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8L").ok(), Some(Format::Webp));
    }

    #[test]
    fn heic_and_avif_from_phones_are_refused_by_name() {
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(refused(heic), "HEIC");
        // An iPhone HEIC: major brand mif1, compatible heic.
        let iphone = b"\0\0\0\x20ftypmif1\0\0\0\0mif1MiHEmiafheic";
        assert_eq!(refused(iphone), "HEIC");
        let avif = b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miafMA1B";
        assert_eq!(refused(avif), "AVIF");
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isomiso2";
        assert_eq!(refused(mp4), "MP4");
    }

    #[test]
    fn other_formats_are_refused_with_a_readable_name() {
        assert_eq!(refused(b"GIF89a\x01\0\x01\0"), "GIF");
        assert_eq!(refused(b"%PDF-1.7\n"), "PDF");
        assert_eq!(refused(b"II*\0\x08\0\0\0"), "TIFF");
        assert_eq!(refused(b"BM\x36\0\0\0"), "BMP");
        assert_eq!(refused(b"RIFF\x24\0\0\0WAVEfmt "), "RIFF");
        assert_eq!(refused(b"hello, world"), "unknown");
        // A JPEG needs three bytes of magic, not two.
        assert_eq!(refused(b"\xFF\xD8"), "unknown");
    }

    #[test]
    fn no_bytes_is_empty_not_unknown() {
        assert!(matches!(sniff(b""), Err(Error::Empty)));
    }

    #[test]
    fn format_names_round_trip_through_the_database_string() {
        for f in [Format::Jpeg, Format::Png, Format::Webp] {
            assert_eq!(f.as_str().parse::<Format>().ok(), Some(f));
            assert!(f.content_type().starts_with("image/"));
        }
        assert!("gif".parse::<Format>().is_err());
    }
}
