//! Decoding to 8-bit RGB: JPEG with jpeg-decoder at the smallest DCT scale that still covers the
//! display size; PNG and WebP with the image crate under its own limits, alpha flattened onto
//! white.

use std::io::Cursor;

use jpeg_decoder::PixelFormat;

use super::{Format, Limits, Rgb, idx};
use crate::{Error, Result};

/// The pixels of `bytes`, upright as stored (orientation is applied later). A JPEG comes out
/// scaled by 1/2, 1/4 or 1/8 when its long edge stays at least `edge`; other formats at full size.
pub(crate) fn decode(
    bytes: &[u8],
    format: Format,
    (width, height): (u32, u32),
    edge: u32,
    limits: &Limits,
) -> Result<Rgb> {
    match format {
        Format::Jpeg => jpeg(bytes, edge, limits),
        Format::Png | Format::Webp => {
            let mut reader =
                image::ImageReader::with_format(Cursor::new(bytes), image_format(format));
            let mut image_limits = image::Limits::default();
            image_limits.max_image_width = Some(limits.max_side);
            image_limits.max_image_height = Some(limits.max_side);
            image_limits.max_alloc = Some(limits.max_alloc);
            reader.limits(image_limits);
            let img = reader
                .decode()
                .map_err(|e| image_error(e, (width, height)))?;
            let (width, height) = (img.width(), img.height());
            let data = if img.color().has_alpha() {
                flatten_onto_white(&img.into_rgba8())
            } else {
                img.into_rgb8().into_raw()
            };
            Ok(Rgb {
                width,
                height,
                data,
            })
        }
    }
}

fn jpeg(bytes: &[u8], edge: u32, limits: &Limits) -> Result<Rgb> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    // jpeg-decoder picks the smallest of 1/8, 1/4, 1/2 and 1 that keeps at least one side at the
    // requested length; asking for `edge` on both sides keeps the long edge at `edge` or more,
    // whichever way the photo is turned.
    let request = u16::try_from(edge).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(request, request).map_err(jpeg_error)?;
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::Corrupt("no JPEG frame header".to_owned()))?;
    let data = match info.pixel_format {
        PixelFormat::RGB24 => pixels,
        PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        PixelFormat::CMYK32 => cmyk_to_rgb(&pixels),
        PixelFormat::L16 => {
            return Err(Error::UnsupportedFormat(
                "JPEG with more than 8 bits per sample".to_owned(),
            ));
        }
    };
    let (width, height) = (u32::from(width), u32::from(height));
    if data.len() != idx(width) * idx(height) * 3 {
        return Err(Error::Corrupt(
            "the JPEG decoded to the wrong size".to_owned(),
        ));
    }
    Ok(Rgb {
        width,
        height,
        data,
    })
}

/// jpeg-decoder hands CMYK (and YCCK) back as ink amounts, 0 meaning none, Adobe's inversion
/// already undone. This is the naive conversion without a colour profile, as browsers do for
/// untagged CMYK.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let white = 255 - u16::from(px[3]);
        for &ink in &px[..3] {
            rgb.push(div255((255 - u16::from(ink)) * white));
        }
    }
    rgb
}

/// `rgba` composed onto a white background.
fn flatten_onto_white(rgba: &image::RgbaImage) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let alpha = u16::from(px[3]);
        for &c in &px[..3] {
            rgb.push(div255(u16::from(c) * alpha + 255 * (255 - alpha)));
        }
    }
    rgb
}

/// `v / 255`, rounded, for `v` up to 255 × 255.
fn div255(v: u16) -> u8 {
    u8::try_from((u32::from(v) + 127) / 255).unwrap_or(u8::MAX)
}

pub(crate) fn image_format(format: Format) -> image::ImageFormat {
    match format {
        Format::Jpeg => image::ImageFormat::Jpeg,
        Format::Png => image::ImageFormat::Png,
        Format::Webp => image::ImageFormat::WebP,
    }
}

pub(crate) fn jpeg_error(e: jpeg_decoder::Error) -> Error {
    match e {
        jpeg_decoder::Error::Unsupported(feature) => {
            Error::UnsupportedFormat(format!("JPEG ({feature:?})"))
        }
        other => Error::Corrupt(other.to_string()),
    }
}

/// `header` is what the header said, reported when the decoder's own limits refuse the image.
pub(crate) fn image_error(e: image::ImageError, (width, height): (u32, u32)) -> Error {
    match e {
        image::ImageError::Limits(_) => Error::DimensionsExceeded { width, height },
        other => Error::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_ink_becomes_the_colour_it_prints() {
        let rgb = cmyk_to_rgb(&[0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255, 0, 255, 255, 0]);
        assert_eq!(rgb, [255, 255, 255, 0, 255, 255, 0, 0, 0, 255, 0, 0]);
    }

    #[test]
    fn transparency_becomes_white_and_opaque_pixels_stay() {
        let rgba =
            image::RgbaImage::from_raw(3, 1, vec![0, 0, 0, 0, 10, 20, 30, 255, 0, 0, 0, 128])
                .unwrap_or_default();
        assert_eq!(
            flatten_onto_white(&rgba),
            [255, 255, 255, 10, 20, 30, 127, 127, 127]
        );
    }
}
