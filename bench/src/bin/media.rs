//! Photo benchmark: `minigate_media::image::process` (both variants of one upload) against
//! libvips' `vipsthumbnail` making the same two files, side by side in one run.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin media -- [--iterations 15] [--orientation 6]
//!     [--quality 92] [--keep DIR] [--out FILE]
//! ```
//!
//! The photo is made here, not downloaded: 4000×3000 pixels (12 MP, a phone's main camera) of a
//! synthetic street scene — sky with clouds, a car with glossy paint, wheels and a number plate,
//! textured ground, and per-pixel sensor noise — encoded at quality 92 with 4:2:0 chroma as phone
//! cameras do, with an EXIF block like a phone's (orientation 6 by default, i.e. shot upright,
//! maker, model, capture time, GPS, a 16 KiB maker note).
//!
//! Each iteration runs, in an order that rotates every iteration:
//!
//! * **ours**: `process(photo)` in this process on this thread (decode at 1/2 scale, orient,
//!   display 1600 px q85, thumbnail 320 px q80 from the display image, no metadata);
//! * **vips, 1 thread**: `vipsthumbnail photo.jpg -s 1600 -o display.jpg[Q=85,strip]` then
//!   `vipsthumbnail photo.jpg -s 320 -o thumb.jpg[Q=80,strip]`, with `VIPS_CONCURRENCY=1`;
//! * **vips, default threads**: the same two commands with libvips' default concurrency.
//!
//! Wall time is per iteration; CPU time is this process's own (`/proc/self/stat` utime + stime)
//! for ours and the waited-for children's (cutime + cstime) for vips, summed over the iterations
//! (the kernel counts in 10 ms ticks). The cost of merely starting `vipsthumbnail` is measured
//! apart (`--version`, and a 64×48 photo), since a server would not pay it per photo if it linked
//! libvips instead.

#[allow(
    dead_code,
    reason = "shared with the main benchmark; only the CPU model is used here"
)]
#[path = "../cpu.rs"]
mod cpu;
#[allow(
    dead_code,
    reason = "shared with the main benchmark; percentiles are not used here"
)]
#[path = "../stats.rs"]
mod stats;

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use minigate_media::image::{Limits, Processed, Timings, process};

use crate::stats::{count_f64, median, u64_f64};

#[derive(Parser, Debug)]
#[command(
    name = "media",
    about = "Photo variants: minigate's process() against vipsthumbnail"
)]
struct Args {
    /// Measured iterations of each contender.
    #[arg(long, default_value_t = 15)]
    iterations: usize,
    /// EXIF orientation of the test photo (6: a phone held upright).
    #[arg(long, default_value_t = 6)]
    orientation: u16,
    /// JPEG quality of the test photo.
    #[arg(long, default_value_t = 92)]
    quality: u8,
    /// Keep the photo and every output in this folder instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;
/// Warm-up runs of each contender before measuring (page cache, CPU frequency, allocator).
const WARMUP: usize = 2;

fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("media bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    Ours,
    VipsOneThread,
    VipsDefault,
}

fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.iterations > 0, "--iterations must be at least 1");
    let version = vips_version()
        .context("vipsthumbnail not found; install it with `apt-get install -y libvips-tools`")?;
    let temp = tempfile::tempdir()?;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => temp.path().to_owned(),
    };
    let started_at = chrono::Utc::now();
    let load_before = load_average();

    eprintln!("making the {WIDTH}×{HEIGHT} test photo…");
    let t = Instant::now();
    let photo_bytes = photo::jpeg(WIDTH, HEIGHT, args.quality, args.orientation)?;
    let make_time = t.elapsed();
    let photo = dir.join("photo.jpg");
    std::fs::write(&photo, &photo_bytes)?;
    let tiny = dir.join("tiny.jpg");
    std::fs::write(&tiny, photo::jpeg(64, 48, 92, 1)?)?;

    let limits = Limits::default();
    let ours_once = process(&photo, &limits)?;
    std::fs::write(dir.join("ours-display.jpg"), &ours_once.display.bytes)?;
    std::fs::write(dir.join("ours-thumb.jpg"), &ours_once.thumbnail.bytes)?;
    vips_pair(&photo, &dir, Some("1"))?;

    eprintln!("warming up…");
    for _ in 0..WARMUP {
        process(&photo, &limits)?;
        vips_pair(&photo, &dir, Some("1"))?;
        vips_pair(&photo, &dir, None)?;
    }

    let contenders = [
        Contender::Ours,
        Contender::VipsOneThread,
        Contender::VipsDefault,
    ];
    let mut wall: [Vec<f64>; 3] = Default::default();
    let mut cpu_ticks = [0u64; 3];
    let mut stages: Vec<Timings> = Vec::new();
    let mut ratios_one = Vec::new();
    let mut ratios_default = Vec::new();
    for i in 0..args.iterations {
        eprint!("\riteration {}/{}", i + 1, args.iterations);
        let mut this = [0.0f64; 3];
        for k in 0..contenders.len() {
            let slot = (i + k) % contenders.len();
            let before = cpu_stat()?;
            let elapsed = match contenders[slot] {
                Contender::Ours => {
                    let t = Instant::now();
                    let p: Processed = process(&photo, &limits)?;
                    let e = t.elapsed();
                    stages.push(p.timings);
                    e
                }
                Contender::VipsOneThread => vips_pair(&photo, &dir, Some("1"))?,
                Contender::VipsDefault => vips_pair(&photo, &dir, None)?,
            };
            let after = cpu_stat()?;
            cpu_ticks[slot] += match contenders[slot] {
                Contender::Ours => after.own.saturating_sub(before.own),
                _ => after.children.saturating_sub(before.children),
            };
            this[slot] = ms(elapsed);
            wall[slot].push(ms(elapsed));
        }
        ratios_one.push(this[0] / this[1]);
        ratios_default.push(this[0] / this[2]);
    }
    eprintln!();

    eprintln!("measuring vipsthumbnail start-up…");
    let mut start_version = Vec::new();
    let mut start_tiny = Vec::new();
    for _ in 0..args.iterations {
        let t = Instant::now();
        vips_version()?;
        start_version.push(ms(t.elapsed()));
        let t = Instant::now();
        vips(&tiny, 32, 85, &dir.join("tiny-out.jpg"), Some("1"))?;
        start_tiny.push(ms(t.elapsed()));
    }
    let load_after = load_average();

    let check = compare_outputs(&dir, &ours_once)?;
    let report = report(&Report {
        args,
        vips_version: &version,
        started_at,
        load: (load_before, load_after),
        photo_len: photo_bytes.len(),
        make_time,
        ours: &ours_once,
        wall: &wall,
        cpu_ticks: &cpu_ticks,
        stages: &stages,
        ratios_one: &ratios_one,
        ratios_default: &ratios_default,
        start_version: &start_version,
        start_tiny: &start_tiny,
        check: &check,
    });
    out(&report);
    if let Some(path) = &args.out {
        std::fs::write(path, &report)?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn vips_version() -> anyhow::Result<String> {
    let output = Command::new("vipsthumbnail")
        .arg("--version")
        .stderr(Stdio::null())
        .output()?;
    ensure!(output.status.success(), "vipsthumbnail --version failed");
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// One `vipsthumbnail` run: the photo into a `size`-pixel box at quality `q`, metadata stripped.
fn vips(
    photo: &Path,
    size: u32,
    q: u8,
    target: &Path,
    concurrency: Option<&str>,
) -> anyhow::Result<()> {
    let mut cmd = Command::new("vipsthumbnail");
    cmd.arg(photo)
        .arg("-s")
        .arg(size.to_string())
        .arg("-o")
        .arg(format!("{}[Q={q},strip]", target.display()))
        .stdout(Stdio::null());
    match concurrency {
        Some(n) => cmd.env("VIPS_CONCURRENCY", n),
        None => cmd.env_remove("VIPS_CONCURRENCY"),
    };
    let status = cmd.status()?;
    ensure!(status.success(), "vipsthumbnail failed: {status}");
    Ok(())
}

/// Both variants with libvips, the way the issue states it: two commands, one after the other.
fn vips_pair(photo: &Path, dir: &Path, concurrency: Option<&str>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    vips(photo, 1600, 85, &dir.join("vips-display.jpg"), concurrency)?;
    vips(photo, 320, 80, &dir.join("vips-thumb.jpg"), concurrency)?;
    Ok(t.elapsed())
}

/// CPU ticks of this process and of its waited-for children, from `/proc/self/stat`.
struct CpuStat {
    own: u64,
    children: u64,
}

fn cpu_stat() -> anyhow::Result<CpuStat> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let (_, rest) = stat.rsplit_once(')').context("odd /proc/self/stat")?;
    // Fields from 3 (state) on; utime, stime, cutime, cstime are fields 14–17.
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        bail!("odd /proc/self/stat");
    };
    Ok(CpuStat {
        own: utime + stime,
        children: cutime + cstime,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let v: Vec<&str> = l.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// How our variants compare with libvips' on the same photo.
struct Check {
    ours_display: (u32, u32, usize),
    ours_thumb: (u32, u32, usize),
    vips_display: (u32, u32, usize),
    vips_thumb: (u32, u32, usize),
    /// PSNR between the two display images, when they have the same size.
    display_psnr: Option<f64>,
    thumb_psnr: Option<f64>,
    vips_markers: Vec<u8>,
    ours_markers: Vec<u8>,
}

fn compare_outputs(dir: &Path, ours: &Processed) -> anyhow::Result<Check> {
    let vips_display = std::fs::read(dir.join("vips-display.jpg"))?;
    let vips_thumb = std::fs::read(dir.join("vips-thumb.jpg"))?;
    let (ow, oh, od) = decode(&ours.display.bytes)?;
    let (tw, th, td) = decode(&ours.thumbnail.bytes)?;
    let (vw, vh, vd) = decode(&vips_display)?;
    let (uw, uh, ud) = decode(&vips_thumb)?;
    Ok(Check {
        ours_display: (ow, oh, ours.display.bytes.len()),
        ours_thumb: (tw, th, ours.thumbnail.bytes.len()),
        vips_display: (vw, vh, vips_display.len()),
        vips_thumb: (uw, uh, vips_thumb.len()),
        display_psnr: ((ow, oh) == (vw, vh)).then(|| psnr(&od, &vd)),
        thumb_psnr: ((tw, th) == (uw, uh)).then(|| psnr(&td, &ud)),
        vips_markers: markers(&vips_display),
        ours_markers: markers(&ours.display.bytes),
    })
}

fn decode(jpeg: &[u8]) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let data = d.decode()?;
    let info = d.info().context("no JPEG header")?;
    ensure!(
        info.pixel_format == jpeg_decoder::PixelFormat::RGB24,
        "not RGB"
    );
    Ok((u32::from(info.width), u32::from(info.height), data))
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)).pow(2))
        .sum();
    let mse = u64_f64(sum) / count_f64(a.len().max(1));
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// The marker codes of a JPEG's segments before the scan (APPn, DQT, SOF, DHT, SOS…).
fn markers(jpeg: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    let mut i = 2;
    while let (Some(&0xFF), Some(&m)) = (jpeg.get(i), jpeg.get(i + 1)) {
        found.push(m);
        if m == 0xDA {
            break;
        }
        let Some(len) = jpeg.get(i + 2..i + 4) else {
            break;
        };
        i += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
    found
}

fn marker_names(m: &[u8]) -> String {
    m.iter()
        .map(|&c| match c {
            0xE0..=0xEF => format!("APP{}", c - 0xE0),
            0xDB => "DQT".to_owned(),
            0xC0 => "SOF0".to_owned(),
            0xC2 => "SOF2".to_owned(),
            0xC4 => "DHT".to_owned(),
            0xDD => "DRI".to_owned(),
            0xDA => "SOS".to_owned(),
            0xFE => "COM".to_owned(),
            other => format!("FF{other:02X}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Report<'a> {
    args: &'a Args,
    vips_version: &'a str,
    started_at: chrono::DateTime<chrono::Utc>,
    load: (String, String),
    photo_len: usize,
    make_time: Duration,
    ours: &'a Processed,
    wall: &'a [Vec<f64>; 3],
    cpu_ticks: &'a [u64; 3],
    stages: &'a [Timings],
    ratios_one: &'a [f64],
    ratios_default: &'a [f64],
    start_version: &'a [f64],
    start_tiny: &'a [f64],
    check: &'a Check,
}

fn report(r: &Report<'_>) -> String {
    let n = r.args.iterations;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cpu = cpu::cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    let med = |i: usize| median(&r.wall[i]);
    let cpu_ms = |i: usize| u64_f64(r.cpu_ticks[i]) * 10.0 / count_f64(n);
    let ratio_one = med(0) / med(1);
    let ratio_default = med(0) / med(2);
    let verdict = |ratio: f64| if ratio <= 1.5 { "met" } else { "**not met**" };
    let stage = |f: fn(&Timings) -> Duration| {
        median(&r.stages.iter().map(|t| ms(f(t))).collect::<Vec<_>>())
    };
    let px = f64::from(WIDTH) * f64::from(HEIGHT);
    let c = r.check;
    let psnr =
        |p: Option<f64>| p.map_or_else(|| "sizes differ".to_owned(), |v| format!("{v:.1} dB"));

    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} UTC; linux x86_64, {cores} logical cores, {cpu}; {}; load average {} before, {} after.\n",
        r.started_at.format("%Y-%m-%d %H:%M"),
        r.vips_version,
        r.load.0,
        r.load.1,
    );
    let _ = writeln!(
        s,
        "Test photo: {WIDTH}×{HEIGHT} ({:.0} MP), quality {}, 4:2:0, EXIF orientation {}; \
         {:.2} MiB ({:.2} bits per pixel); made in {:.1} s.\n",
        px / 1e6,
        r.args.quality,
        r.args.orientation,
        count_f64(r.photo_len) / 1_048_576.0,
        count_f64(r.photo_len) * 8.0 / px,
        r.make_time.as_secs_f64(),
    );
    let _ = writeln!(
        s,
        "| both variants of one photo | wall ms, median of {n} | ours ÷ this, median of per-iteration ratios | CPU ms per photo (mean) |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|");
    let _ = writeln!(
        s,
        "| **ours**, `process()` in-process, 1 calling thread | {:.1} | 1 | {:.0} |",
        med(0),
        cpu_ms(0)
    );
    let _ = writeln!(
        s,
        "| vipsthumbnail ×2, `VIPS_CONCURRENCY=1` | {:.1} | **{:.2}** (of medians {ratio_one:.2}) | {:.0} |",
        med(1),
        median(r.ratios_one),
        cpu_ms(1)
    );
    let _ = writeln!(
        s,
        "| vipsthumbnail ×2, default concurrency | {:.1} | **{:.2}** (of medians {ratio_default:.2}) | {:.0} |",
        med(2),
        median(r.ratios_default),
        cpu_ms(2)
    );
    let _ = writeln!(
        s,
        "\nTarget ours ≤ 1.5 × vips: **{}** against `VIPS_CONCURRENCY=1` ({:.2}), **{}** against \
         the default ({:.2}).\n",
        verdict(median(r.ratios_one)),
        median(r.ratios_one),
        verdict(median(r.ratios_default)),
        median(r.ratios_default),
    );
    let fmt_all = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "Wall ms per iteration — ours: {}; vips 1 thread: {}; vips default: {}.\n",
        fmt_all(&r.wall[0]),
        fmt_all(&r.wall[1]),
        fmt_all(&r.wall[2]),
    );
    let _ = writeln!(
        s,
        "Starting vipsthumbnail (median of {n}): `--version` {:.1} ms; a 64×48 photo {:.1} ms. \
         The two commands pay this twice.\n",
        median(r.start_version),
        median(r.start_tiny),
    );
    let _ = writeln!(s, "Where our time goes (median ms of {n}):\n");
    let _ = writeln!(
        s,
        "| read + sniff + header + EXIF | decode (1/2 scale) | orient | resize → display | encode display | resize → thumbnail | encode thumbnail |"
    );
    let _ = writeln!(s, "|--:|--:|--:|--:|--:|--:|--:|");
    let _ = writeln!(
        s,
        "| {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        stage(|t| t.inspect),
        stage(|t| t.decode),
        stage(|t| t.orient),
        stage(|t| t.resize_display),
        stage(|t| t.encode_display),
        stage(|t| t.resize_thumbnail),
        stage(|t| t.encode_thumbnail),
    );
    let _ = writeln!(
        s,
        "Outputs — ours: display {}×{} ({} bytes), thumbnail {}×{} ({} bytes); vips: display {}×{} \
         ({} bytes), thumbnail {}×{} ({} bytes). PSNR ours vs vips: display {}, thumbnail {}. \
         Segments before the scan — ours: {}; vips: {}. Claims read: orientation {}, taken {}, \
         camera {}.",
        c.ours_display.0,
        c.ours_display.1,
        c.ours_display.2,
        c.ours_thumb.0,
        c.ours_thumb.1,
        c.ours_thumb.2,
        c.vips_display.0,
        c.vips_display.1,
        c.vips_display.2,
        c.vips_thumb.0,
        c.vips_thumb.1,
        c.vips_thumb.2,
        psnr(c.display_psnr),
        psnr(c.thumb_psnr),
        marker_names(&c.ours_markers),
        marker_names(&c.vips_markers),
        r.ours.orientation,
        r.ours
            .claims
            .taken_at
            .map_or_else(|| "-".to_owned(), |t| t.to_string()),
        r.ours.claims.camera.as_deref().unwrap_or("-"),
    );
    s
}

#[path = "../photo.rs"]
mod photo;
