//! How big the image says it is, from its header alone, checked before any pixel is decoded.

use std::io::Cursor;

use super::{Format, Limits, decode};
use crate::{Error, Result};

/// Bytes per pixel we budget for a decoded image (RGBA, 8 bits) when checking `max_alloc`.
const BUDGET_PER_PIXEL: u64 = 4;

/// Width and height from the header; nothing else of the file is read.
pub(crate) fn dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32)> {
    match format {
        Format::Jpeg => {
            let mut decoder = jpeg_decoder::Decoder::new(bytes);
            decoder.read_info().map_err(decode::jpeg_error)?;
            let info = decoder
                .info()
                .ok_or_else(|| Error::Corrupt("no JPEG frame header".to_owned()))?;
            Ok((u32::from(info.width), u32::from(info.height)))
        }
        Format::Png | Format::Webp => {
            image::ImageReader::with_format(Cursor::new(bytes), decode::image_format(format))
                .into_dimensions()
                .map_err(|e| decode::image_error(e, (0, 0)))
        }
    }
}

/// Refuses images that claim more than `limits` allow.
pub(crate) fn check(width: u32, height: u32, limits: &Limits) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Corrupt(format!("the header says {width}×{height}")));
    }
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side
        || height > limits.max_side
        || pixels > limits.max_pixels
        || pixels.saturating_mul(BUDGET_PER_PIXEL) > limits.max_alloc
    {
        return Err(Error::DimensionsExceeded { width, height });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_to_sides_pixels_and_memory() {
        let limits = Limits::default();
        assert!(check(4000, 3000, &limits).is_ok());
        assert!(check(30_000, 3000, &limits).is_ok());
        let refused = |w, h, l: &Limits| {
            matches!(
                check(w, h, l),
                Err(Error::DimensionsExceeded { width, height }) if (width, height) == (w, h)
            )
        };
        assert!(refused(30_001, 10, &limits));
        assert!(refused(10, 30_001, &limits));
        assert!(refused(10_001, 10_000, &limits));
        let tight = Limits {
            max_alloc: 10_000_000,
            ..limits
        };
        assert!(refused(2000, 2000, &tight));
        assert!(matches!(check(0, 10, &limits), Err(Error::Corrupt(_))));
    }
}
