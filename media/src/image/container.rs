//! Finding the EXIF block (a TIFF structure) inside a JPEG, PNG or WebP file, without decoding.
//!
//! Only the container's framing is read here; a block that is found but does not parse is the EXIF
//! reader's business (the photo is then `exif_unreadable`). A container too broken to walk simply
//! has no EXIF: the decoder will say what is wrong with it.

use super::Format;

/// The raw EXIF payload, starting at the TIFF header (`II*\0` or `MM\0*`), if the file has one.
pub(crate) fn exif_block(bytes: &[u8], format: Format) -> Option<&[u8]> {
    let block = match format {
        Format::Jpeg => jpeg(bytes),
        Format::Png => png(bytes),
        Format::Webp => webp(bytes),
    }?;
    // PNG eXIf and WebP EXIF should hold the bare TIFF structure, but some writers copy the JPEG
    // APP1 identifier along with it.
    Some(block.strip_prefix(EXIF_ID).unwrap_or(block))
}

/// The identifier that starts an EXIF APP1 segment.
const EXIF_ID: &[u8] = b"Exif\0\0";

/// JPEG: the first APP1 segment with the EXIF identifier, among the segments before the first scan.
fn jpeg(b: &[u8]) -> Option<&[u8]> {
    let mut i = 2; // after SOI
    loop {
        if *b.get(i)? != 0xFF {
            return None;
        }
        while b.get(i) == Some(&0xFF) {
            i += 1; // fill bytes
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            // Stand-alone markers: no length.
            0x01 | 0xD0..=0xD8 => continue,
            // EOI or the start of the scan: APPn segments come before these.
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
        let payload = b.get(i + 2..(i + len).min(b.len()))?;
        if marker == 0xE1
            && let Some(tiff) = payload.strip_prefix(EXIF_ID)
        {
            return Some(tiff);
        }
        i += len.max(2);
    }
}

/// PNG: the `eXIf` chunk.
fn png(b: &[u8]) -> Option<&[u8]> {
    let mut i = 8; // after the signature
    loop {
        let len = super::idx(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let kind = b.get(i + 4..i + 8)?;
        let data_start = i + 8;
        let data_end = data_start.checked_add(len)?;
        match kind {
            b"eXIf" => return b.get(data_start..data_end.min(b.len())),
            b"IEND" => return None,
            _ => i = data_end.checked_add(4)?, // data, then the CRC
        }
    }
}

/// WebP: the `EXIF` chunk of an extended (VP8X) file.
fn webp(b: &[u8]) -> Option<&[u8]> {
    let mut i = 12; // after "RIFF" size "WEBP"
    loop {
        let kind = b.get(i..i + 4)?;
        let len = super::idx(u32::from_le_bytes(b.get(i + 4..i + 8)?.try_into().ok()?));
        let data_start = i + 8;
        let data_end = data_start.checked_add(len)?;
        if kind == b"EXIF" {
            return b.get(data_start..data_end.min(b.len()));
        }
        i = data_end.checked_add(len % 2)?; // chunks are padded to an even length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_exif_is_found_after_other_app_segments_and_not_after_the_scan() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend_from_slice(&[0xFF, 0xE0, 0, 6, b'J', b'F', b'I', b'F']);
        jpeg.extend_from_slice(&[0xFF, 0xE1, 0, 12]);
        jpeg.extend_from_slice(b"Exif\0\0II*\0");
        assert_eq!(exif_block(&jpeg, Format::Jpeg), Some(&b"II*\0"[..]));

        let mut late = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2];
        late.extend_from_slice(&[0xFF, 0xE1, 0, 12]);
        late.extend_from_slice(b"Exif\0\0II*\0");
        assert_eq!(exif_block(&late, Format::Jpeg), None);
    }

    #[test]
    fn broken_framing_means_no_exif_rather_than_a_panic() {
        for bytes in [
            &b"\xFF\xD8"[..],
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xE1\x00",
            b"\xFF\xD8\xFF\xE1\x00\x00\xFF\xD9",
            b"\xFF\xD8\x00\x00",
        ] {
            assert_eq!(exif_block(bytes, Format::Jpeg), None);
        }
        let huge_png_chunk = b"\x89PNG\r\n\x1a\n\xFF\xFF\xFF\xFFIDAT";
        assert_eq!(exif_block(huge_png_chunk, Format::Png), None);
        let huge_webp_chunk = b"RIFF\0\0\0\0WEBPVP8X\xFF\xFF\xFF\xFF";
        assert_eq!(exif_block(huge_webp_chunk, Format::Webp), None);
    }

    #[test]
    fn a_copied_app1_identifier_in_webp_is_skipped() {
        let mut webp = b"RIFF\0\0\0\0WEBP".to_vec();
        webp.extend_from_slice(b"VP8X\x0a\0\0\0");
        webp.extend_from_slice(&[0; 10]);
        webp.extend_from_slice(b"EXIF\x0a\0\0\0Exif\0\0MM\0*");
        assert_eq!(exif_block(&webp, Format::Webp), Some(&b"MM\0*"[..]));
    }
}
