//! The QR a counter shows: the provider's `code_url` / `qr_code` drawn as a PNG, black on
//! white, 8 pixels per module with the 4-module quiet zone scanners need.

use base64::{Engine, engine::general_purpose::STANDARD};
use qrcode::{Color, EcLevel, QrCode};

use crate::{Error, Result};

const SCALE: usize = 8;
const QUIET: usize = 4;

/// A `data:image/png;base64,…` URL of `text` as a QR code.
pub fn png_data_url(text: &str) -> Result<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| Error::Internal(format!("QR: {e}")))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            let row = y * side;
            pixels[row + mx * SCALE..row + (mx + 1) * SCALE].fill(0);
        }
    }
    let side32 = u32::try_from(side).map_err(|_| Error::Internal("QR too large".into()))?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Internal(format!("PNG: {e}")))?;
        w.write_image_data(&pixels)
            .map_err(|e| Error::Internal(format!("PNG: {e}")))?;
    }
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_url_becomes_a_png_with_a_quiet_zone() {
        let url = png_data_url("weixin://wxpay/bizpayurl?pr=abc123").unwrap();
        let bytes = STANDARD
            .decode(url.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, info.height);
        // Version 3 or so: 29 modules plus two quiet zones of 4, 8 px each.
        assert_eq!(info.width % 8, 0);
        // The quiet zone is white, the finder pattern's corner black.
        assert_eq!(buf[0], 255);
        let side = usize::try_from(info.width).unwrap();
        assert_eq!(buf[(QUIET * SCALE) * side + QUIET * SCALE], 0);
    }
}
