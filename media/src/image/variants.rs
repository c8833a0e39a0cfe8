//! Resizing (fast_image_resize) and encoding (jpeg-encoder) the variants.
//!
//! The JPEGs are written from pixels by an encoder that is given nothing else: SOI, the JFIF
//! header (version and a 1:1 pixel density), tables, the scan, EOI. No EXIF, GPS, XMP, comment or
//! ICC profile can reach a variant. Dropping the ICC profile is deliberate: phone photos are sRGB
//! or Display P3, and a P3 photo shown as sRGB is slightly less saturated, which matters less for
//! a damage photo than a profile (sometimes a device-specific one) leaking into public files.

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images};
use jpeg_encoder::{ColorType, Encoder};

use super::{Rgb, idx};
use crate::{Error, Result};

/// The resampling filter: Lanczos3, the sharpest of the usual ones and libvips' default. With the
/// AVX2 kernels on the bench machine it cost 6.7 ms for 2000×1500 → 1600×1200 and 1.4 ms for
/// 1600×1200 → 320×240, against Catmull-Rom's 6.5 and 0.8 ms: not worth the softer result.
const FILTER: FilterType = FilterType::Lanczos3;

/// The size that fits `width`×`height` into an `edge`-pixel square, keeping the aspect ratio and
/// never enlarging.
pub(crate) fn fit(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= edge {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(edge) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(edge).clamp(1, edge)
    };
    (scale(width), scale(height))
}

/// `img` resized to `width`×`height` (or returned as is when it already has that size).
pub(crate) fn resize(img: Rgb, width: u32, height: u32) -> Result<Rgb> {
    if (img.width, img.height) == (width, height) {
        return Ok(img);
    }
    resize_ref(&img, width, height)
}

/// A resized copy of `img`.
pub(crate) fn resize_ref(img: &Rgb, width: u32, height: u32) -> Result<Rgb> {
    if (img.width, img.height) == (width, height) {
        return Ok(Rgb {
            width,
            height,
            data: img.data.clone(),
        });
    }
    let internal = |e: &dyn std::fmt::Display| Error::Corrupt(format!("resize: {e}"));
    let src = images::ImageRef::new(img.width, img.height, &img.data, PixelType::U8x3)
        .map_err(|e| internal(&e))?;
    let mut dst = images::Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FILTER));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| internal(&e))?;
    Ok(Rgb {
        width,
        height,
        data: dst.into_vec(),
    })
}

/// A baseline JPEG of `img` (4:2:0 chroma below quality 90, as libjpeg and libvips do).
pub(crate) fn encode(img: &Rgb, quality: u8) -> Result<Vec<u8>> {
    let too_big = || Error::DimensionsExceeded {
        width: img.width,
        height: img.height,
    };
    let width = u16::try_from(img.width).map_err(|_| too_big())?;
    let height = u16::try_from(img.height).map_err(|_| too_big())?;
    let mut out = Vec::with_capacity(idx(img.width) * idx(img.height) / 4);
    Encoder::new(&mut out, quality)
        .encode(&img.data, width, height, ColorType::Rgb)
        .map_err(|e| Error::Corrupt(format!("encoding the variant: {e}")))?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fitting_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 1600), (1600, 1200));
        assert_eq!(fit(3000, 4000, 1600), (1200, 1600));
        assert_eq!(fit(4000, 3000, 320), (320, 240));
        assert_eq!(fit(1600, 900, 1600), (1600, 900));
        assert_eq!(fit(640, 480, 1600), (640, 480));
        assert_eq!(fit(30_000, 10, 320), (320, 1));
        assert_eq!(fit(4032, 3024, 1600), (1600, 1200));
        assert_eq!(fit(3000, 2001, 1600), (1600, 1067));
    }

    #[test]
    fn a_resized_flat_colour_keeps_its_colour_and_encodes_as_jpeg() {
        let img = Rgb {
            width: 100,
            height: 60,
            data: [200u8, 40, 90].repeat(6000),
        };
        let small = resize_ref(&img, 50, 30).unwrap();
        assert_eq!(small.data.len(), 50 * 30 * 3);
        assert!(small.data.chunks_exact(3).all(|p| p == [200, 40, 90]));
        let jpeg = encode(&small, 85).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        assert!(jpeg.ends_with(&[0xFF, 0xD9]));
    }
}
