//! What an uploaded photo is, what it claims, and the two variants we serve from it.
//!
//! [`process`] is blocking and CPU-bound: the caller runs it in `spawn_blocking` under a
//! semaphore. It never trusts the file:
//!
//! 1. the magic bytes decide the format ([`sniff`]), never the file name or the content type;
//! 2. the dimensions are read from the header alone and checked against [`Limits`] before any
//!    pixel buffer exists (decompression bombs stop here), and the decoders get the same limits
//!    again;
//! 3. decoding runs under `catch_unwind`: a decoder that panics on hostile input makes the upload
//!    [`Error::Corrupt`], not a dead worker;
//! 4. EXIF is read for its orientation and for what the photo *claims* ([`Claims`]); EXIF we cannot
//!    parse never rejects a photo;
//! 5. the variants are new JPEGs encoded from pixels, so nothing of the original's metadata (EXIF,
//!    GPS, XMP, ICC, comments) can reach them.
//!
//! JPEGs are decoded at 1/2, 1/4 or 1/8 of their size when that still covers [`DISPLAY_EDGE`]
//! (DCT-domain scaling while decoding, like libvips' shrink-on-load): a 12-megapixel photo is
//! decoded at 3 megapixels, which is most of the speed.

mod container;
mod decode;
mod exif;
mod orient;
mod probe;
mod sniff;
#[cfg(test)]
mod tests;
mod variants;

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    str::FromStr,
    time::{Duration, Instant},
};

use crate::{Error, Result};

pub use self::sniff::sniff;

/// Long edge of the display variant, in pixels (never upscaled).
pub const DISPLAY_EDGE: u32 = 1600;
/// Long edge of the thumbnail, in pixels (never upscaled).
pub const THUMBNAIL_EDGE: u32 = 320;
/// JPEG quality of the display variant.
pub const DISPLAY_QUALITY: u8 = 85;
/// JPEG quality of the thumbnail.
pub const THUMBNAIL_QUALITY: u8 = 80;

/// How large a photo we agree to decode. The gateway builds this from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Width × height, from the header.
    pub max_pixels: u64,
    /// Longest side, from the header.
    pub max_side: u32,
    /// Bytes a decoder may allocate for one photo.
    pub max_alloc: u64,
}

impl Default for Limits {
    /// 100 megapixels, 30,000 px on a side, 1 GiB of decoder memory: well above any phone camera
    /// (a 200 MP sensor bins to 12–50 MP photos), far below what a bomb claims.
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_side: 30_000,
            max_alloc: 1 << 30,
        }
    }
}

/// The formats we accept. Everything else is refused by [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    /// The MIME type of the original.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    /// The name stored in the database; [`FromStr`] reads it back.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "jpeg" => Ok(Format::Jpeg),
            "png" => Ok(Format::Png),
            "webp" => Ok(Format::Webp),
            other => Err(Error::UnsupportedFormat(other.to_owned())),
        }
    }
}

/// When the photo says it was taken: EXIF `DateTimeOriginal`, a wall-clock time, plus
/// `OffsetTimeOriginal` when the camera wrote one (most phones since 2017 do).
///
/// This is what the file claims, not a fact: anyone can write any EXIF. Its [`fmt::Display`] is
/// ISO 8601, `2024-05-01T14:23:05` or `2024-05-01T14:23:05+08:00`, which is how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenAt {
    pub local: chrono::NaiveDateTime,
    pub offset: Option<chrono::FixedOffset>,
}

impl TakenAt {
    /// The instant, when the offset is known.
    pub fn to_fixed(self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        self.offset
            .and_then(|o| self.local.and_local_timezone(o).single())
    }
}

impl fmt::Display for TakenAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.local.format("%Y-%m-%dT%H:%M:%S"))?;
        match self.offset {
            Some(o) => write!(f, "{o}"),
            None => Ok(()),
        }
    }
}

/// What the photo's EXIF claims about itself (shown to staff only, never copied to a variant).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    pub taken_at: Option<TakenAt>,
    /// Signed decimal degrees, south negative.
    pub latitude: Option<f64>,
    /// Signed decimal degrees, west negative.
    pub longitude: Option<f64>,
    /// `Make` and `Model`, e.g. `Apple iPhone 15`.
    pub camera: Option<String>,
    /// The photo had an EXIF block we could not parse; it was processed as orientation 1 and
    /// claims nothing.
    pub exif_unreadable: bool,
}

/// One re-encoded variant: always a baseline RGB JPEG without any metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct Variant {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variant")
            .field("bytes", &self.bytes.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Where the time of one [`process`] call went (for metrics and the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Reading the file, sniffing, the header and EXIF.
    pub inspect: Duration,
    /// Decoding (scaled, for JPEG) to RGB, alpha flattened.
    pub decode: Duration,
    /// Applying the EXIF orientation.
    pub orient: Duration,
    /// Resizing to the display size.
    pub resize_display: Duration,
    pub encode_display: Duration,
    /// Resizing the display image to the thumbnail size.
    pub resize_thumbnail: Duration,
    pub encode_thumbnail: Duration,
}

/// The result of [`process`].
#[derive(Debug, Clone)]
pub struct Processed {
    pub format: Format,
    /// Of the original, after orientation (what a viewer sees).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation applied, 1–8 (1 when there was none or it was unreadable).
    pub orientation: u16,
    pub claims: Claims,
    /// Long edge at most [`DISPLAY_EDGE`].
    pub display: Variant,
    /// Long edge at most [`THUMBNAIL_EDGE`], made from the display image.
    pub thumbnail: Variant,
    pub timings: Timings,
}

/// Decoded pixels: 8-bit RGB, rows top to bottom, no padding.
pub(crate) struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Checks, decodes and re-encodes the photo at `path`. Blocking.
///
/// Errors: [`Error::Empty`], [`Error::UnsupportedFormat`], [`Error::DimensionsExceeded`],
/// [`Error::Corrupt`]; [`Error::Storage`] if the file cannot be read.
pub fn process(path: &Path, limits: &Limits) -> Result<Processed> {
    let started = Instant::now();
    let bytes = std::fs::read(path).map_err(|e| Error::Storage(format!("reading upload: {e}")))?;
    process_bytes(&bytes, limits, started)
}

fn process_bytes(bytes: &[u8], limits: &Limits, started: Instant) -> Result<Processed> {
    let format = sniff(bytes)?;
    let stored = guarded(|| probe::dimensions(bytes, format))?;
    probe::check(stored.0, stored.1, limits)?;
    let (orientation, claims) = exif::read(bytes, format);
    let (width, height) = if orient::swaps_sides(orientation) {
        (stored.1, stored.0)
    } else {
        stored
    };
    let mut timings = Timings {
        inspect: started.elapsed(),
        ..Timings::default()
    };

    let t = Instant::now();
    let decoded = guarded(|| decode::decode(bytes, format, stored, DISPLAY_EDGE, limits))?;
    timings.decode = t.elapsed();

    let t = Instant::now();
    let upright = orient::apply(decoded, orientation);
    timings.orient = t.elapsed();

    // Both sizes come from the original's dimensions, not from the (scaled) decode, so the
    // aspect ratio is the original's.
    let (display_width, display_height) = variants::fit(width, height, DISPLAY_EDGE);
    let t = Instant::now();
    let display = variants::resize(upright, display_width, display_height)?;
    timings.resize_display = t.elapsed();
    let t = Instant::now();
    let display_bytes = variants::encode(&display, DISPLAY_QUALITY)?;
    timings.encode_display = t.elapsed();

    let (thumb_width, thumb_height) = variants::fit(width, height, THUMBNAIL_EDGE);
    let t = Instant::now();
    let thumbnail = variants::resize_ref(&display, thumb_width, thumb_height)?;
    timings.resize_thumbnail = t.elapsed();
    let t = Instant::now();
    let thumbnail_bytes = variants::encode(&thumbnail, THUMBNAIL_QUALITY)?;
    timings.encode_thumbnail = t.elapsed();

    tracing::debug!(
        format = format.as_str(),
        width,
        height,
        orientation,
        exif_unreadable = claims.exif_unreadable,
        ?timings,
        "photo processed"
    );
    Ok(Processed {
        format,
        width,
        height,
        orientation,
        claims,
        display: Variant {
            bytes: display_bytes,
            width: display.width,
            height: display.height,
        },
        thumbnail: Variant {
            bytes: thumbnail_bytes,
            width: thumbnail.width,
            height: thumbnail.height,
        },
        timings,
    })
}

/// Runs decoder code that may panic on hostile input; a panic becomes [`Error::Corrupt`].
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::warn!(panic = %what, "image decoder panicked");
        Err(Error::Corrupt(
            "the decoder gave up on this file".to_owned(),
        ))
    })
}

/// A `u32` as an index. Every target we build for has at least 32-bit pointers.
pub(crate) fn idx(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
