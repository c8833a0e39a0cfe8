//! The synthetic phone photo of the photo benchmarks (`media`, `uploads`): a street scene with
//! sensor noise, encoded as a phone camera does (4:2:0, EXIF with orientation, capture time, GPS
//! and a 16 KiB maker note).

use anyhow::Context;

/// A JPEG of the scene, `quality`, 4:2:0, with a phone-like EXIF block.
pub fn jpeg(w: u32, h: u32, quality: u8, orientation: u16) -> anyhow::Result<Vec<u8>> {
    encode(&scene(w, h), w, h, quality, orientation)
}

/// A JPEG of `rgb` (`w`×`h` pixels, from [`scene`] or changed from it), `quality`, 4:2:0, with
/// a phone-like EXIF block.
pub fn encode(
    rgb: &[u8],
    w: u32,
    h: u32,
    quality: u8,
    orientation: u16,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.add_exif_metadata(&exif(orientation))?;
    encoder.encode(
        rgb,
        u16::try_from(w).context("width")?,
        u16::try_from(h).context("height")?,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// A well-mixed 32-bit hash of a lattice point.
fn hash(x: u32, y: u32, seed: u32) -> u32 {
    let mut h = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ seed;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

/// Smooth value noise, 0..=255, on a lattice of `1 << k` pixels.
fn noise(x: u32, y: u32, k: u32, seed: u32) -> i32 {
    let cell = 1i64 << k;
    let (cx, cy) = (x >> k, y >> k);
    let smooth = |f: i64| f * f * (3 * cell - 2 * f) / (cell * cell);
    let fx = smooth(i64::from(x & ((1 << k) - 1)));
    let fy = smooth(i64::from(y & ((1 << k) - 1)));
    let v = |dx: u32, dy: u32| i64::from(hash(cx + dx, cy + dy, seed) & 0xFF);
    let top = v(0, 0) * (cell - fx) + v(1, 0) * fx;
    let bottom = v(0, 1) * (cell - fx) + v(1, 1) * fx;
    i32::try_from((top * (cell - fy) + bottom * fy) / (cell * cell)).unwrap_or(128)
}

/// Fractal noise, 0..=255: octaves on lattices of `1 << k` for each `k`, halving weights.
fn fractal(x: u32, y: u32, octaves: &[u32], seed: u32) -> i32 {
    let mut sum = 0;
    let mut total = 0;
    let mut weight = 1 << octaves.len();
    for &k in octaves {
        sum += noise(x, y, k, seed.wrapping_add(k)) * weight;
        total += weight;
        weight /= 2;
    }
    sum / total.max(1)
}

fn inside_ellipse(x: i64, y: i64, cx: i64, cy: i64, rx: i64, ry: i64) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    dx * dx * ry * ry + dy * dy * rx * rx <= rx * rx * ry * ry
}

fn byte(v: i32) -> u8 {
    u8::try_from(v.clamp(0, 255)).unwrap_or(u8::MAX)
}

/// RGB pixels of a street scene.
pub fn scene(w: u32, h: u32) -> Vec<u8> {
    let (wi, hi) = (i64::from(w), i64::from(h));
    let horizon = hi * 45 / 100;
    let (body_l, body_r) = (wi * 22 / 100, wi * 78 / 100);
    let (body_t, body_b) = (hi * 55 / 100, hi * 78 / 100);
    let (cabin_cx, cabin_cy, cabin_rx, cabin_ry) = (wi / 2, body_t, wi * 18 / 100, hi * 13 / 100);
    let wheel_r = hi * 8 / 100;
    let wheels = [(wi * 33 / 100, body_b), (wi * 67 / 100, body_b)];
    let (plate_l, plate_r, plate_t, plate_b) =
        (wi * 45 / 100, wi * 55 / 100, hi * 70 / 100, hi * 75 / 100);
    let mut rgb = Vec::with_capacity(usize::try_from(w * h * 3).unwrap_or(0));
    for y in 0..h {
        let yi = i64::from(y);
        for x in 0..w {
            let xi = i64::from(x);
            let mut c: [i32; 3];
            if let Some((wx, wy)) = wheels
                .iter()
                .find(|(cx, cy)| inside_ellipse(xi, yi, *cx, *cy, wheel_r, wheel_r))
            {
                let hub = inside_ellipse(xi, yi, *wx, *wy, wheel_r / 2, wheel_r / 2);
                let t = fractal(x, y, &[5, 3, 1], 11) / 8;
                c = if hub {
                    [150 + t, 152 + t, 158 + t]
                } else {
                    [28 + t, 28 + t, 30 + t]
                };
            } else if (plate_l..plate_r).contains(&xi) && (plate_t..plate_b).contains(&yi) {
                // White plate, dark characters with crisp edges.
                let col = (xi - plate_l) * 24 / (plate_r - plate_l);
                let inner = (plate_t + 12..plate_b - 12).contains(&yi);
                c = if inner && col % 3 != 2 && (xi + yi / 7) % 9 < 5 {
                    [20, 30, 80]
                } else {
                    [228, 228, 218]
                };
            } else if inside_ellipse(xi, yi, cabin_cx, cabin_cy, cabin_rx, cabin_ry) && yi < body_t
            {
                // Windows: dark glass with a sky reflection sweeping across.
                let sweep = i32::try_from(((xi - cabin_cx + yi - cabin_cy).rem_euclid(400)) / 8)
                    .unwrap_or(0);
                c = [40 + sweep, 55 + sweep, 70 + sweep * 2];
            } else if (body_l..body_r).contains(&xi) && (body_t..body_b).contains(&yi) {
                // Red paint, shaded top to bottom, a specular band, fine orange-peel texture.
                let v = i32::try_from((yi - body_t) * 120 / (body_b - body_t)).unwrap_or(0);
                let band = if (v - 30).abs() < 6 { 70 } else { 0 };
                let t = (fractal(x, y, &[4, 2], 5) - 128) / 10;
                c = [
                    200 - v + band + t,
                    35 - v / 4 + band + t,
                    40 - v / 4 + band + t,
                ];
            } else if yi < horizon {
                // Sky: deeper blue at the top, clouds from low-frequency noise.
                let t = i32::try_from(yi * 255 / horizon).unwrap_or(0);
                let cloud = (fractal(x, y, &[9, 8, 7, 5, 3], 1) - 135).max(0) * 3;
                c = [
                    70 + t * 110 / 255 + cloud,
                    120 + t * 90 / 255 + cloud,
                    200 + t * 35 / 255 + cloud / 2,
                ];
            } else {
                // Ground: asphalt and verges, coarser texture nearer the camera.
                let t = i32::try_from((yi - horizon) * 255 / (hi - horizon)).unwrap_or(0);
                let texture = (fractal(x, y, &[7, 5, 3, 2, 1], 3) - 128) * (24 + t / 6) / 64;
                let verge = fractal(x, y, &[8, 6], 9) > 150;
                c = if verge {
                    [70 + texture, 105 + texture + t / 10, 45 + texture]
                } else {
                    [100 + t / 8 + texture, 100 + t / 10 + texture, 98 + texture]
                };
            }
            // Sensor noise: triangular, about ±8, a little stronger in the dark.
            for (i, ch) in c.iter_mut().enumerate() {
                let seed = 100 + u32::try_from(i).unwrap_or(0);
                let a = i32::try_from(hash(x, y, seed) & 0xFF).unwrap_or(0);
                let b = i32::try_from(hash(x, y, seed + 7) & 0xFF).unwrap_or(0);
                let amp = if *ch < 80 { 20 } else { 14 };
                *ch += (a + b - 255) * amp / 255;
            }
            rgb.extend(c.map(byte));
        }
    }
    rgb
}

/// A little-endian TIFF block like a phone's: IFD0 (Make, Model, Orientation, DateTime and
/// pointers), an Exif IFD (DateTimeOriginal, OffsetTimeOriginal, a 16 KiB maker note) and a GPS
/// IFD.
fn exif(orientation: u16) -> Vec<u8> {
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    const UNDEFINED: u16 = 7;
    struct E(u16, u16, Vec<u8>);
    let ascii = |tag, s: &str| E(tag, ASCII, [s.as_bytes(), b"\0"].concat());
    let rationals = |tag, v: &[(u32, u32)]| {
        E(
            tag,
            RATIONAL,
            v.iter()
                .flat_map(|(n, d)| [n.to_le_bytes(), d.to_le_bytes()].concat())
                .collect(),
        )
    };
    let count = |e: &E| -> u32 {
        let unit = match e.1 {
            SHORT => 2,
            LONG => 4,
            RATIONAL => 8,
            _ => 1,
        };
        u32::try_from(e.2.len() / unit).unwrap_or(0)
    };
    let len = |entries: &[E]| -> u32 {
        let data: usize = entries
            .iter()
            .filter(|e| e.2.len() > 4)
            .map(|e| e.2.len().next_multiple_of(2))
            .sum();
        u32::try_from(6 + 12 * entries.len() + data).unwrap_or(0)
    };
    let ifd = |start: u32, entries: &[E]| -> Vec<u8> {
        let n = u32::try_from(entries.len()).unwrap_or(0);
        let mut head = u16::try_from(n).unwrap_or(0).to_le_bytes().to_vec();
        let mut data = Vec::new();
        let data_start = start + 6 + 12 * n;
        for e in entries {
            head.extend_from_slice(&e.0.to_le_bytes());
            head.extend_from_slice(&e.1.to_le_bytes());
            head.extend_from_slice(&count(e).to_le_bytes());
            if e.2.len() <= 4 {
                let mut v = e.2.clone();
                v.resize(4, 0);
                head.extend_from_slice(&v);
            } else {
                let at = data_start + u32::try_from(data.len()).unwrap_or(0);
                head.extend_from_slice(&at.to_le_bytes());
                data.extend_from_slice(&e.2);
                if data.len() % 2 == 1 {
                    data.push(0);
                }
            }
        }
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&data);
        head
    };
    let ifd0 = |exif_at: u32, gps_at: u32| {
        vec![
            ascii(0x010F, "Apple"),
            ascii(0x0110, "iPhone 15"),
            E(0x0112, SHORT, orientation.to_le_bytes().to_vec()),
            ascii(0x0132, "2026:11:21 09:41:07"),
            E(0x8769, LONG, exif_at.to_le_bytes().to_vec()),
            E(0x8825, LONG, gps_at.to_le_bytes().to_vec()),
        ]
    };
    let maker_note: Vec<u8> = (0..16_384u32)
        .map(|i| u8::try_from(hash(i, 0, 42) & 0xFF).unwrap_or(0))
        .collect();
    let exif_ifd = vec![
        ascii(0x9003, "2026:11:21 09:41:07"),
        ascii(0x9011, "+08:00"),
        E(0x927C, UNDEFINED, maker_note),
    ];
    let gps = vec![
        E(0x0001, ASCII, b"N\0".to_vec()),
        rationals(0x0002, &[(31, 1), (13, 1), (5040, 100)]),
        E(0x0003, ASCII, b"E\0".to_vec()),
        rationals(0x0004, &[(121, 1), (28, 1), (1200, 100)]),
    ];
    let exif_at = 8 + len(&ifd0(0, 0));
    let gps_at = exif_at + len(&exif_ifd);
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    tiff.extend(ifd(8, &ifd0(exif_at, gps_at)));
    tiff.extend(ifd(exif_at, &exif_ifd));
    tiff.extend(ifd(gps_at, &gps));
    tiff
}
