//! `process` end to end, on files written to a temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::as_conversions)]

use std::{sync::OnceLock, time::Instant};

use image::ExtendedColorType;

use super::*;
use minigate_fakes::photos::{self as fixtures, ExifSpec, GREEN, RED, at, near};

fn run(name: &str, bytes: &[u8]) -> Result<Processed> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    process(&path, &Limits::default())
}

fn ok(name: &str, bytes: &[u8]) -> Processed {
    match run(name, bytes) {
        Ok(p) => p,
        Err(e) => panic!("{name}: {e:?}"),
    }
}

/// A 3400×1200 photo with EXIF orientation 6: large enough for the half-scale JPEG decode, and
/// upright it is 1200×3400. Built once; encoding it unoptimised takes a moment.
fn big_phone_photo() -> &'static [u8] {
    static PHOTO: OnceLock<Vec<u8>> = OnceLock::new();
    PHOTO.get_or_init(|| {
        let jpeg = fixtures::jpeg(3400, 1200, &fixtures::gradient(3400, 1200));
        fixtures::with_exif(&jpeg, &fixtures::tiff(&ExifSpec::phone()))
    })
}

/// Walks a JPEG's marker segments up to the scan and returns their marker codes.
fn markers(jpeg: &[u8]) -> Vec<u8> {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "a variant starts with SOI");
    let mut found = Vec::new();
    let mut i = 2;
    loop {
        assert_eq!(jpeg[i], 0xFF, "marker expected at {i}");
        let marker = jpeg[i + 1];
        found.push(marker);
        if marker == 0xDA {
            return found;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        i += 2 + len;
    }
}

/// No metadata of any kind: only JFIF APP0, tables, frame and scan headers before the scan; and
/// nothing from the original's EXIF anywhere in the file.
fn assert_clean(jpeg: &[u8]) {
    for marker in markers(jpeg) {
        assert!(
            matches!(marker, 0xE0 | 0xDB | 0xC0 | 0xC4 | 0xDD | 0xDA),
            "unexpected marker FF{marker:02X}"
        );
    }
    assert!(jpeg.ends_with(&[0xFF, 0xD9]));
    for needle in [
        &b"Exif"[..],
        b"iPhone",
        b"Apple",
        b"2024:05:01",
        b"ICC_PROFILE",
        b"http://ns.adobe.com",
    ] {
        assert!(
            !jpeg.windows(needle.len()).any(|w| w == needle),
            "{:?} found in a variant",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn a_jpeg_png_and_webp_each_give_two_clean_jpeg_variants() {
    let rgb = fixtures::gradient(120, 90);
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let cases = [
        ("a.jpg", Format::Jpeg, fixtures::jpeg(120, 90, &rgb)),
        (
            "b.png",
            Format::Png,
            fixtures::png(120, 90, &rgb, ExtendedColorType::Rgb8, None),
        ),
        (
            "c.webp",
            Format::Webp,
            fixtures::webp(120, 90, &rgba, ExtendedColorType::Rgba8, None),
        ),
    ];
    for (name, format, bytes) in cases {
        let p = ok(name, &bytes);
        assert_eq!(p.format, format, "{name}");
        assert_eq!((p.width, p.height, p.orientation), (120, 90, 1), "{name}");
        assert_eq!(p.claims, Claims::default(), "{name}");
        for v in [&p.display, &p.thumbnail] {
            assert_clean(&v.bytes);
            let (w, h, data) = fixtures::decode_jpeg(&v.bytes);
            assert_eq!((w, h), (v.width, v.height));
            // The top-left corner of the gradient is dark red-free; the bottom-right is red+green.
            let (tl, br) = (at(&data, w, 0, 0), at(&data, w, w - 1, h - 1));
            assert!(tl[0] < 40 && tl[1] < 40, "{name}: {tl:?}");
            assert!(br[0] > 200 && br[1] > 200, "{name}: {br:?}");
        }
    }
}

#[test]
fn a_heic_photo_is_refused_even_when_named_jpg() {
    let mut heic = b"\0\0\0\x20ftypmif1\0\0\0\0mif1MiHEmiafheic".to_vec();
    heic.extend_from_slice(&[0; 500]);
    assert!(matches!(run("IMG_0001.jpg", &heic), Err(Error::UnsupportedFormat(n)) if n == "HEIC"));
}

#[test]
fn a_gif_or_pdf_renamed_to_jpg_is_refused_by_its_content() {
    let gif = b"GIF89a\x01\0\x01\0\x80\0\0\xff\xff\xff\0\0\0!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
    assert!(matches!(run("photo.jpg", gif), Err(Error::UnsupportedFormat(n)) if n == "GIF"));
    let pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    assert!(matches!(run("photo.jpg", pdf), Err(Error::UnsupportedFormat(n)) if n == "PDF"));
}

#[test]
fn an_empty_file_is_empty() {
    assert!(matches!(run("empty.jpg", b""), Err(Error::Empty)));
}

#[test]
fn a_missing_file_is_a_storage_failure_not_the_clients() {
    let err = process(Path::new("/nonexistent/upload"), &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::Storage(_)));
    assert!(!err.is_client_error());
}

#[test]
fn a_truncated_jpeg_is_corrupt() {
    let jpeg = fixtures::jpeg(200, 150, &fixtures::gradient(200, 150));
    for cut in [jpeg.len() / 2, jpeg.len() - 2, 20, 3] {
        let result = run("cut.jpg", &jpeg[..cut]);
        assert!(
            matches!(result, Err(Error::Corrupt(_))),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn a_truncated_png_is_corrupt() {
    let rgb = fixtures::gradient(200, 150);
    let png = fixtures::png(200, 150, &rgb, ExtendedColorType::Rgb8, None);
    for cut in [png.len() / 2, png.len() - 12, 30, 8] {
        let result = run("cut.png", &png[..cut]);
        assert!(
            matches!(result, Err(Error::Corrupt(_))),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn a_png_claiming_900_megapixels_is_refused_from_its_header() {
    let bomb = fixtures::png_claiming(30_000, 30_000);
    assert!(bomb.len() < 100);
    let started = Instant::now();
    let result = run("bomb.png", &bomb);
    assert!(
        matches!(
            result,
            Err(Error::DimensionsExceeded {
                width: 30_000,
                height: 30_000
            })
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed().as_millis() < 500,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_decoders_own_limits_are_a_second_line() {
    // 2000×2000 RGBA at 16 bits: the header check budgets 4 bytes a pixel (16 MB), the decoder
    // needs 8 (32 MB) and is told it may have 20.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.png");
    std::fs::write(&path, fixtures::png_header_only(2000, 2000, 16, 6)).unwrap();
    let tight = Limits {
        max_alloc: 20_000_000,
        ..Limits::default()
    };
    let result = process(&path, &tight);
    assert!(
        matches!(
            result,
            Err(Error::DimensionsExceeded {
                width: 2000,
                height: 2000
            })
        ),
        "{result:?}"
    );
    // With room to decode, the empty image data is what fails.
    let result = process(&path, &Limits::default());
    assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
}

#[test]
fn orientation_6_turns_the_photo_clockwise_before_the_variants_are_made() {
    let (w, h) = (160, 80);
    let jpeg = fixtures::jpeg(w, h, &fixtures::red_corner(w, h));
    let jpeg = fixtures::with_exif(&jpeg, &fixtures::tiff(&ExifSpec::orientation(6)));
    let p = ok("turned.jpg", &jpeg);
    assert_eq!(p.orientation, 6);
    assert_eq!((p.width, p.height), (80, 160));
    let (dw, dh, data) = fixtures::decode_jpeg(&p.display.bytes);
    assert_eq!((dw, dh), (80, 160));
    // Stored top-left is shown top-right after a clockwise turn.
    assert!(
        near(at(&data, dw, dw - 5, 5), RED, 40),
        "{:?}",
        at(&data, dw, dw - 5, 5)
    );
    assert!(
        near(at(&data, dw, 5, 5), GREEN, 40),
        "{:?}",
        at(&data, dw, 5, 5)
    );
    assert!(near(at(&data, dw, dw - 5, dh - 5), GREEN, 40));
    let (tw, th, _) = fixtures::decode_jpeg(&p.thumbnail.bytes);
    assert_eq!((tw, th), (80, 160));
}

#[test]
fn orientation_8_turns_it_the_other_way_and_3_upside_down() {
    let (w, h) = (160, 80);
    let jpeg = fixtures::jpeg(w, h, &fixtures::red_corner(w, h));
    let turned = fixtures::with_exif(&jpeg, &fixtures::tiff(&ExifSpec::orientation(8)));
    let p = ok("ccw.jpg", &turned);
    let (dw, dh, data) = fixtures::decode_jpeg(&p.display.bytes);
    assert_eq!((dw, dh), (80, 160));
    assert!(near(at(&data, dw, 5, dh - 5), RED, 40)); // top-left goes bottom-left
    let upside_down = fixtures::with_exif(&jpeg, &fixtures::tiff(&ExifSpec::orientation(3)));
    let p = ok("180.jpg", &upside_down);
    let (dw, dh, data) = fixtures::decode_jpeg(&p.display.bytes);
    assert_eq!((dw, dh), (160, 80));
    assert!(near(at(&data, dw, dw - 5, dh - 5), RED, 40));
}

#[test]
fn the_claims_of_the_exif_are_returned_and_kept_out_of_the_variants() {
    let jpeg = fixtures::jpeg(64, 48, &fixtures::gradient(64, 48));
    let p = ok(
        "claims.jpg",
        &fixtures::with_exif(&jpeg, &fixtures::tiff(&ExifSpec::phone())),
    );
    let c = &p.claims;
    assert_eq!(c.taken_at.unwrap().to_string(), "2024-05-01T14:23:05+08:00");
    let lat = -(31.0 + 13.0 / 60.0 + 50.4 / 3600.0);
    assert!((c.latitude.unwrap() - lat).abs() < 1e-9);
    assert!((c.longitude.unwrap() - -121.47).abs() < 1e-9);
    assert_eq!(c.camera.as_deref(), Some("Apple iPhone 15"));
    assert!(!c.exif_unreadable);
    assert_clean(&p.display.bytes);
    assert_clean(&p.thumbnail.bytes);
    // No GPS rational of the original survives either (31/1, 13/1, 504/10 little-endian).
    let rational = [31u32.to_le_bytes(), 1u32.to_le_bytes(), 13u32.to_le_bytes()].concat();
    for v in [&p.display.bytes, &p.thumbnail.bytes] {
        assert!(!v.windows(rational.len()).any(|w| w == rational));
    }
}

#[test]
fn a_malformed_exif_block_does_not_reject_the_photo() {
    let (w, h) = (160, 80);
    let jpeg = fixtures::jpeg(w, h, &fixtures::red_corner(w, h));
    let broken = fixtures::with_exif(&jpeg, b"\x13\x37 definitely not TIFF \xFF\x00\xFF");
    let p = ok("broken-exif.jpg", &broken);
    assert!(p.claims.exif_unreadable);
    assert_eq!(p.orientation, 1);
    assert_eq!((p.width, p.height), (160, 80));
    assert_eq!(p.claims.taken_at, None);
    assert_clean(&p.display.bytes);
}

#[test]
fn a_large_photo_is_scaled_down_with_its_aspect_ratio_and_turned() {
    let p = ok("big.jpg", big_phone_photo());
    assert_eq!((p.width, p.height), (1200, 3400));
    // 1200 × 1600 / 3400 = 564.7; 1200 × 320 / 3400 = 112.9.
    assert_eq!((p.display.width, p.display.height), (565, 1600));
    assert_eq!((p.thumbnail.width, p.thumbnail.height), (113, 320));
    let (w, h, data) = fixtures::decode_jpeg(&p.display.bytes);
    assert_eq!((w, h), (565, 1600));
    let (tw, th, _) = fixtures::decode_jpeg(&p.thumbnail.bytes);
    assert_eq!((tw, th), (113, 320));
    // The gradient's red grows left to right when stored; turned clockwise it grows top to bottom.
    assert!(at(&data, w, w / 2, 10)[0] < 40);
    assert!(at(&data, w, w / 2, h - 10)[0] > 215);
    assert_clean(&p.display.bytes);
    assert_clean(&p.thumbnail.bytes);
}

#[test]
fn a_large_jpeg_is_decoded_at_half_size_and_no_smaller() {
    let limits = Limits::default();
    let half = decode::decode(
        big_phone_photo(),
        Format::Jpeg,
        (3400, 1200),
        DISPLAY_EDGE,
        &limits,
    )
    .unwrap();
    assert_eq!((half.width, half.height), (1700, 600));
    let full =
        decode::decode(big_phone_photo(), Format::Jpeg, (3400, 1200), 1800, &limits).unwrap();
    assert_eq!((full.width, full.height), (3400, 1200));
}

#[test]
fn a_progressive_jpeg_is_decoded_scaled_too() {
    let jpeg = fixtures::jpeg_progressive(3300, 400, &fixtures::gradient(3300, 400));
    let p = ok("progressive.jpg", &jpeg);
    assert_eq!((p.display.width, p.display.height), (1600, 194));
    assert_eq!((p.thumbnail.width, p.thumbnail.height), (320, 39));
}

#[test]
fn a_small_photo_is_not_enlarged() {
    let jpeg = fixtures::jpeg(200, 150, &fixtures::gradient(200, 150));
    let p = ok("small.jpg", &jpeg);
    assert_eq!((p.display.width, p.display.height), (200, 150));
    assert_eq!((p.thumbnail.width, p.thumbnail.height), (200, 150));
    let p = ok(
        "wide.jpg",
        &fixtures::jpeg(1000, 150, &fixtures::gradient(1000, 150)),
    );
    assert_eq!((p.display.width, p.display.height), (1000, 150));
    assert_eq!((p.thumbnail.width, p.thumbnail.height), (320, 48));
}

#[test]
fn transparent_pixels_of_a_png_or_webp_become_white() {
    let (w, h) = (40, 40);
    // Left half transparent (black underneath), right half opaque blue.
    let rgba: Vec<u8> = (0..h)
        .flat_map(|_| {
            (0..w).map(|x| {
                if x < w / 2 {
                    [0, 0, 0, 0]
                } else {
                    [0, 0, 255, 255]
                }
            })
        })
        .flatten()
        .collect();
    for (name, bytes) in [
        (
            "alpha.png",
            fixtures::png(w, h, &rgba, ExtendedColorType::Rgba8, None),
        ),
        (
            "alpha.webp",
            fixtures::webp(w, h, &rgba, ExtendedColorType::Rgba8, None),
        ),
    ] {
        let p = ok(name, &bytes);
        let (dw, _, data) = fixtures::decode_jpeg(&p.display.bytes);
        assert!(
            near(at(&data, dw, 5, 20), [255, 255, 255], 6),
            "{name}: {:?}",
            at(&data, dw, 5, 20)
        );
        assert!(
            near(at(&data, dw, 35, 20), [0, 0, 255], 12),
            "{name}: {:?}",
            at(&data, dw, 35, 20)
        );
    }
}

#[test]
fn png_and_webp_exif_orientation_is_applied_too() {
    let (w, h) = (80, 40);
    let rgb = fixtures::red_corner(w, h);
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let tiff = fixtures::tiff(&ExifSpec::orientation(6));
    for (name, bytes) in [
        (
            "exif.png",
            fixtures::png(w, h, &rgb, ExtendedColorType::Rgb8, Some(tiff.clone())),
        ),
        (
            "exif.webp",
            fixtures::webp(w, h, &rgba, ExtendedColorType::Rgba8, Some(tiff.clone())),
        ),
    ] {
        let p = ok(name, &bytes);
        assert_eq!((p.orientation, p.width, p.height), (6, 40, 80), "{name}");
        assert_eq!(
            p.claims.camera.as_deref(),
            Some("Apple iPhone 15"),
            "{name}"
        );
        let (dw, _, data) = fixtures::decode_jpeg(&p.display.bytes);
        assert!(near(at(&data, dw, dw - 3, 3), RED, 40), "{name}");
        assert_clean(&p.display.bytes);
    }
}

#[test]
fn grayscale_and_cmyk_jpegs_come_out_as_rgb() {
    let gray: Vec<u8> = (0..64u32 * 48).map(|i| (i % 64 * 4) as u8).collect();
    let p = ok(
        "gray.jpg",
        &fixtures::jpeg_of(64, 48, &gray, jpeg_encoder::ColorType::Luma),
    );
    let (w, _, data) = fixtures::decode_jpeg(&p.display.bytes);
    let px = at(&data, w, 60, 10);
    assert!(
        px[0] > 200 && px[0].abs_diff(px[1]) < 6 && px[1].abs_diff(px[2]) < 6,
        "{px:?}"
    );

    // No ink on the left, full cyan on the right.
    let cmyk: Vec<u8> = (0..48)
        .flat_map(|_| (0..64).map(|x| if x < 32 { [0, 0, 0, 0] } else { [255, 0, 0, 0] }))
        .flatten()
        .collect();
    let p = ok(
        "cmyk.jpg",
        &fixtures::jpeg_of(64, 48, &cmyk, jpeg_encoder::ColorType::Cmyk),
    );
    let (w, _, data) = fixtures::decode_jpeg(&p.display.bytes);
    assert!(
        near(at(&data, w, 8, 24), [255, 255, 255], 12),
        "{:?}",
        at(&data, w, 8, 24)
    );
    assert!(
        near(at(&data, w, 56, 24), [0, 255, 255], 16),
        "{:?}",
        at(&data, w, 56, 24)
    );
}

#[test]
fn a_panicking_decoder_is_reported_as_corrupt() {
    let result: Result<()> = guarded(|| panic!("hostile input"));
    assert!(matches!(result, Err(Error::Corrupt(_))));
}

#[test]
fn timings_cover_the_stages() {
    let p = ok("big.jpg", big_phone_photo());
    let t = p.timings;
    assert!(t.decode > Duration::ZERO && t.encode_display > Duration::ZERO);
    assert!(t.resize_display > Duration::ZERO && t.resize_thumbnail > Duration::ZERO);
}
