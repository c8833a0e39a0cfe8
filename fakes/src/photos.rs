//! Phone photos built in code for tests: JPEG, PNG and WebP from the encoders at hand, and EXIF
//! blocks written byte by byte, so every test says exactly what its input holds.

// Test tooling: a fixture that cannot be built is a broken test, so it panics; the sizes are
// small constants of the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::as_conversions)]

use image::ImageEncoder;

/// What goes into a hand-made EXIF block.
#[derive(Clone)]
pub struct ExifSpec {
    pub orientation: u16,
    pub make: String,
    pub model: String,
    /// `DateTimeOriginal`, `YYYY:MM:DD HH:MM:SS`.
    pub date: String,
    /// `OffsetTimeOriginal`, `+HH:MM`.
    pub offset: Option<String>,
    /// Degrees, minutes, seconds as rationals.
    pub lat: [(u32, u32); 3],
    pub lat_ref: u8,
    pub lon: [(u32, u32); 3],
    pub lon_ref: u8,
}

impl ExifSpec {
    /// A phone photo held upright: orientation 6, taken at 31° 13' 50.4" S, 121° 28' 12" W.
    pub fn phone() -> Self {
        Self {
            orientation: 6,
            make: "Apple".into(),
            model: "iPhone 15".into(),
            date: "2024:05:01 14:23:05".into(),
            offset: Some("+08:00".into()),
            lat: [(31, 1), (13, 1), (504, 10)],
            lat_ref: b'S',
            lon: [(121, 1), (28, 1), (12, 1)],
            lon_ref: b'W',
        }
    }

    pub fn orientation(orientation: u16) -> Self {
        Self {
            orientation,
            ..Self::phone()
        }
    }
}

const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;

/// One IFD entry: tag, type, count, value bytes (little-endian).
struct Entry(u16, u16, u32, Vec<u8>);

fn ascii(tag: u16, s: &str) -> Entry {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    Entry(tag, ASCII, v.len() as u32, v)
}

fn short(tag: u16, v: u16) -> Entry {
    Entry(tag, SHORT, 1, v.to_le_bytes().to_vec())
}

fn long(tag: u16, v: u32) -> Entry {
    Entry(tag, LONG, 1, v.to_le_bytes().to_vec())
}

fn rationals(tag: u16, values: &[(u32, u32)]) -> Entry {
    let bytes = values
        .iter()
        .flat_map(|(n, d)| [n.to_le_bytes(), d.to_le_bytes()].concat())
        .collect();
    Entry(tag, RATIONAL, values.len() as u32, bytes)
}

fn ifd_len(entries: &[Entry]) -> u32 {
    let data: usize = entries
        .iter()
        .filter(|e| e.3.len() > 4)
        .map(|e| e.3.len().next_multiple_of(2))
        .sum();
    (2 + 12 * entries.len() + 4 + data) as u32
}

/// An IFD that starts `start` bytes into the TIFF structure, followed by its out-of-line values.
fn ifd(start: u32, entries: &[Entry]) -> Vec<u8> {
    let mut head = (entries.len() as u16).to_le_bytes().to_vec();
    let mut data = Vec::new();
    let data_start = start + 2 + 12 * entries.len() as u32 + 4;
    for Entry(tag, kind, count, value) in entries {
        head.extend_from_slice(&tag.to_le_bytes());
        head.extend_from_slice(&kind.to_le_bytes());
        head.extend_from_slice(&count.to_le_bytes());
        if value.len() <= 4 {
            let mut inline = value.clone();
            inline.resize(4, 0);
            head.extend_from_slice(&inline);
        } else {
            head.extend_from_slice(&(data_start + data.len() as u32).to_le_bytes());
            data.extend_from_slice(value);
            if data.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    head.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    head.extend_from_slice(&data);
    head
}

/// A little-endian TIFF structure: IFD0 (Make, Model, Orientation, pointers), the Exif IFD
/// (DateTimeOriginal, OffsetTimeOriginal) and the GPS IFD (latitude and longitude).
pub fn tiff(spec: &ExifSpec) -> Vec<u8> {
    let ifd0 = |exif_at: u32, gps_at: u32| {
        vec![
            ascii(0x010F, &spec.make),
            ascii(0x0110, &spec.model),
            short(0x0112, spec.orientation),
            long(0x8769, exif_at),
            long(0x8825, gps_at),
        ]
    };
    let mut exif = vec![ascii(0x9003, &spec.date)];
    if let Some(offset) = &spec.offset {
        exif.push(ascii(0x9011, offset));
    }
    let gps = vec![
        Entry(0x0001, ASCII, 2, vec![spec.lat_ref, 0]),
        rationals(0x0002, &spec.lat),
        Entry(0x0003, ASCII, 2, vec![spec.lon_ref, 0]),
        rationals(0x0004, &spec.lon),
    ];
    let exif_at = 8 + ifd_len(&ifd0(0, 0));
    let gps_at = exif_at + ifd_len(&exif);
    let mut out = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    out.extend(ifd(8, &ifd0(exif_at, gps_at)));
    out.extend(ifd(exif_at, &exif));
    out.extend(ifd(gps_at, &gps));
    out
}

/// A JPEG APP1 segment carrying `tiff`.
pub fn app1(tiff: &[u8]) -> Vec<u8> {
    let len = (2 + 6 + tiff.len()) as u16;
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(tiff);
    seg
}

/// `jpeg` with an APP1 segment carrying `tiff` spliced in right after SOI.
pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    [&jpeg[..2], &app1(tiff), &jpeg[2..]].concat()
}

/// RGB pixels from a function of (x, y).
pub fn pixels(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| f(x, y))
        .collect()
}

pub const RED: [u8; 3] = [230, 20, 20];
pub const GREEN: [u8; 3] = [20, 160, 40];

/// A `w`×`h` green picture whose top-left `w/4`×`h/4` corner is red: where the red corner ends
/// up shows how the picture was turned.
pub fn red_corner(w: u32, h: u32) -> Vec<u8> {
    pixels(
        w,
        h,
        |x, y| if x < w / 4 && y < h / 4 { RED } else { GREEN },
    )
}

/// A photo-like picture: gradients with some texture, not one flat colour.
pub fn gradient(w: u32, h: u32) -> Vec<u8> {
    pixels(w, h, |x, y| {
        let t = ((x * 7 + y * 13) % 32) as u8;
        [(x * 255 / w) as u8, (y * 255 / h) as u8, 100 + t]
    })
}

pub fn jpeg(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

pub fn jpeg_progressive(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(true);
    encoder
        .encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

pub fn jpeg_of(w: u32, h: u32, data: &[u8], color: jpeg_encoder::ColorType) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(data, w as u16, h as u16, color)
        .unwrap();
    out
}

pub fn png(
    w: u32,
    h: u32,
    data: &[u8],
    color: image::ExtendedColorType,
    exif: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder.write_image(data, w, h, color).unwrap();
    out
}

pub fn webp(
    w: u32,
    h: u32,
    data: &[u8],
    color: image::ExtendedColorType,
    exif: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder.write_image(data, w, h, color).unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&[&kind[..], data].concat()).to_be_bytes());
    chunk
}

/// A valid PNG header claiming `w`×`h` RGB, followed by a tiny IDAT: a decompression bomb's
/// shape, a few dozen bytes long.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    png_header_only(w, h, 8, 2)
}

/// Like [`png_claiming`], with any bit depth and colour type (6: RGBA).
pub fn png_header_only(w: u32, h: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    // zlib: an empty stored block.
    let idat = [
        0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
    ];
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &png_chunk(b"IHDR", &ihdr),
        &png_chunk(b"IDAT", &idat),
        &png_chunk(b"IEND", &[]),
    ]
    .concat()
}

/// The RGB pixels of a JPEG (a variant), decoded at full size.
pub fn decode_jpeg(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let data = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (u32::from(info.width), u32::from(info.height), data)
}

/// Pixel (x, y) of RGB data `w` wide.
pub fn at(data: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 3) as usize;
    [data[i], data[i + 1], data[i + 2]]
}

/// Whether two colours are within `tolerance` on every channel (JPEG is lossy).
pub fn near(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_crc_is_the_png_one() {
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
    }
}
