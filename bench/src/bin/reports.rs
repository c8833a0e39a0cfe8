//! Report creation benchmark: accident reports per second through minigate's GraphQL, each with
//! its scene and damage photos, and side by side in the same run the same report without photos
//! (what checking and attaching the photos costs).
//!
//! ```text
//! cargo run --release -p minigate-bench --bin reports -- [--reports 400] [--rounds 3] [--clients 8]
//!     [--photos 2] [--database-url postgres://…]
//! ```
//!
//! One process holds a fresh database (a temporary SQLite file by default; with
//! `--database-url`, a fresh database on that PostgreSQL server, dropped afterwards), minigate
//! built and served as the binary does it, and the load generator. Each client is a driver of
//! its own (a registry driver with a vehicle, and a bound driver user whose access token the
//! service signed). Before each round, untimed, every report of the round gets `--photos` photos
//! uploaded through `POST /media` by its driver (small JPEGs: processing is the uploads
//! benchmark's subject, not this one's).
//!
//! Each round runs both variants, in an order that alternates: `--clients` keep-alive clients
//! send `reportAccident` with a fresh `idempotencyKey` each, `--reports` in all, each client
//! sending its next report as soon as it has its answer. Every answer must be the new report in
//! status SUBMITTED with its photos; anything else fails the run. A report's transaction writes
//! the report, its photos, its first workflow step, its search entry (jieba segmentation), two
//! outbox events and the driver's message. At the end the database must hold exactly one report
//! per request and `--photos` attached photos per report of the photo variant.

#[allow(dead_code, reason = "shared with the main benchmark")]
#[path = "../bare.rs"]
mod bare;
#[path = "../publish.rs"]
mod publish;
#[allow(dead_code, reason = "shared with the main benchmark")]
#[path = "../seed.rs"]
mod seed;
#[allow(dead_code, reason = "shared with the main benchmark")]
#[path = "../servers.rs"]
mod servers;
#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../stats.rs"]
mod stats;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use clap::Parser;
use minigate_resolvers::{Role, Viewer, registry::db as registry_db};
use minigate_store::{Id, fetch_all, fetch_scalar};
use reqwest::{
    Client,
    multipart::{Form, Part},
};
use serde_json::{Value, json};

use crate::{
    servers::Servers,
    stats::{count_f64, median, percentile},
};

#[derive(Parser, Debug)]
#[command(
    name = "reports",
    about = "Accident reports with photos per second through minigate's GraphQL"
)]
struct Args {
    /// A PostgreSQL server to create a fresh database on (default: a temporary SQLite file).
    #[arg(long)]
    database_url: Option<String>,
    /// Reports per variant and round.
    #[arg(long, default_value_t = 400)]
    reports: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent clients, each a driver of its own.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Photos per report in the photo variant (scene first, then damage).
    #[arg(long, default_value_t = 2)]
    photos: usize,
}

const REPORT: &str = "mutation($i: AccidentReportInput!, $k: String) {
    reportAccident(input: $i, idempotencyKey: $k) { id status photos { role } } }";

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reports bench failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reports bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One client: a driver and its access token.
struct Driver {
    token: String,
}

async fn drivers(servers: &Servers, n: usize) -> anyhow::Result<Vec<Driver>> {
    let db = &servers.state.db;
    let mut c = db.conn().await?;
    let vehicles: Vec<(Id, Id, Id)> = fetch_all!(
        &mut c,
        (Id, Id, Id),
        "select id, tenant_id, branch_id from vehicle where status <> 'RETIRED' order by plate"
    )?;
    ensure!(vehicles.len() >= n, "not enough vehicles for {n} drivers");
    let mut out = Vec::with_capacity(n);
    for (i, (vehicle, tenant, branch)) in vehicles.into_iter().take(n).enumerate() {
        let phone = format!("1390000{i:04}");
        let id_number = format!("44030519900101{i:04}");
        let driver = registry_db::insert_driver(
            &mut c,
            tenant,
            &registry_db::DriverFields {
                branch_id: branch,
                vehicle_id: Some(vehicle),
                name: "司机",
                phone: &phone,
                id_number: &id_number,
            },
        )
        .await?;
        let user = Id::new();
        minigate_store::execute!(
            &mut c,
            "insert into app_user (id, tenant_id, role, display_name, branch_id, driver_id)
             values ($1, $2, 'driver', '司机', $3, $4)",
            user,
            tenant,
            branch,
            driver
        )?;
        let viewer = Viewer {
            user_id: user,
            tenant_id: tenant,
            role: Role::Driver,
            branch_id: Some(branch),
            driver_id: Some(driver),
            session_id: Id::new(),
        };
        let (token, _) = servers
            .state
            .deps
            .tokens
            .access_token(&viewer, Utc::now())?;
        out.push(Driver { token });
    }
    Ok(out)
}

/// A small JPEG, the same for every upload (the service stores and processes its bytes once;
/// each upload still gets a record of its own, owned by the uploader).
fn jpeg() -> Vec<u8> {
    let (w, h) = (320, 240);
    minigate_fakes::photos::jpeg(w, h, &minigate_fakes::photos::gradient(w, h))
}

async fn upload(
    http: &Client,
    base: &str,
    token: &str,
    bytes: &[u8],
    purpose: &str,
) -> anyhow::Result<String> {
    let part = Part::bytes(bytes.to_vec())
        .file_name("p.jpg")
        .mime_str("image/jpeg")?;
    let form = Form::new()
        .part("file", part)
        .text("purpose", purpose.to_owned());
    let r = http
        .post(format!("{base}/media"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    ensure!(status.as_u16() == 201, "upload answered {status}: {v}");
    v["id"]
        .as_str()
        .map(str::to_owned)
        .context("upload answer without id")
}

/// One report's input: its photos, and when the accident happened.
fn input(photos: &[String]) -> Value {
    let (scene, damage) = photos.split_at(photos.len().div_ceil(2));
    json!({
        "occurredAt": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "latitude": 22.5431,
        "longitude": 114.0579,
        "address": "深圳市南山区深南大道9678号",
        "description": "等红灯时被后车追尾，后保险杠凹陷，尾灯碎了，对方全责",
        "otherParty": "粤B·7K2Q9 平安保险",
        "scenePhotoIds": scene,
        "damagePhotoIds": damage,
    })
}

/// What one variant of one round measured.
struct Round {
    secs: f64,
    latencies_us: Vec<u32>,
}

/// Sends `work` (per client: the photos of each of its reports) with one task per client.
async fn round(
    http: &Client,
    base: &str,
    drivers: &[Driver],
    work: Vec<Vec<Vec<String>>>,
) -> anyhow::Result<Round> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (driver, reports) in drivers.iter().zip(work) {
        let http = http.clone();
        let base = base.to_owned();
        let token = driver.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(reports.len());
            for photos_of in reports {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "query": REPORT,
                        "variables": { "i": input(&photos_of), "k": Id::new().to_string() },
                    }))
                    .send()
                    .await?;
                let v: Value = r.json().await?;
                let a = &v["data"]["reportAccident"];
                ensure!(
                    a["status"] == "SUBMITTED"
                        && a["photos"].as_array().map(Vec::len) == Some(photos_of.len()),
                    "unexpected answer: {v}"
                );
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await??);
    }
    Ok(Round {
        secs: started.elapsed().as_secs_f64(),
        latencies_us,
    })
}

/// Uploads the photos of `reports` reports spread over the drivers, untimed.
async fn prepare(
    http: &Client,
    base: &str,
    drivers: &[Driver],
    reports: usize,
    photos: usize,
    bytes: &[u8],
) -> anyhow::Result<Vec<Vec<Vec<String>>>> {
    let mut work: Vec<Vec<Vec<String>>> = vec![Vec::new(); drivers.len()];
    for n in 0..reports {
        let k = n % drivers.len();
        let mut ids = Vec::with_capacity(photos);
        for p in 0..photos {
            let purpose = if p < photos.div_ceil(2) {
                "accident"
            } else {
                "damage"
            };
            ids.push(upload(http, base, &drivers[k].token, bytes, purpose).await?);
        }
        work[k].push(ids);
    }
    Ok(work)
}

async fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.reports > 0 && args.rounds > 0 && args.clients > 0 && args.photos <= 18,
        "--reports, --rounds and --clients must be at least 1, --photos at most 18"
    );
    let servers = Servers::start(args.database_url.as_deref()).await?;
    let base = format!("http://{}", servers.minigate.addr);
    let http = Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let drivers = drivers(&servers, args.clients).await?;
    let bytes = jpeg();
    eprintln!("warming up…");
    let warm = prepare(
        &http,
        &base,
        &drivers,
        args.clients * 4,
        args.photos,
        &bytes,
    )
    .await?;
    round(&http, &base, &drivers, warm).await?;
    let warm_reports = args.clients * 4;

    let mut with = Vec::new();
    let mut without = Vec::new();
    for r in 0..args.rounds {
        let photo_work = prepare(&http, &base, &drivers, args.reports, args.photos, &bytes).await?;
        let bare_work = prepare(&http, &base, &drivers, args.reports, 0, &bytes).await?;
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for photos_first in order {
            let (work, photos, into) = if photos_first {
                (photo_work.clone(), args.photos, &mut with)
            } else {
                (bare_work.clone(), 0, &mut without)
            };
            let m = round(&http, &base, &drivers, work).await?;
            eprintln!(
                "round {} {}: {:.0} reports/s",
                r + 1,
                if photos > 0 {
                    "with photos"
                } else {
                    "without photos"
                },
                count_f64(args.reports) / m.secs
            );
            into.push(m);
        }
    }

    let mut c = servers.state.db.conn().await?;
    let reports: i64 = fetch_scalar!(&mut c, i64, "select count(*) from accident_report")?;
    let attached: i64 = fetch_scalar!(&mut c, i64, "select count(*) from record_photo")?;
    drop(c);
    let expected = warm_reports + 2 * args.rounds * args.reports;
    let expected_photos = (warm_reports + args.rounds * args.reports) * args.photos;
    if usize::try_from(reports)? != expected || usize::try_from(attached)? != expected_photos {
        bail!(
            "the database holds {reports} reports and {attached} photos; expected {expected} and {expected_photos}"
        );
    }

    let mut report = summary(args, &servers.backend, &with, &without);
    report.push('\n');
    publish::publish(&report, None)?;
    for p in servers.stop().await {
        eprintln!("warning: {p}");
    }
    Ok(())
}

fn summary(args: &Args, backend: &str, with: &[Round], without: &[Round]) -> String {
    let rate = |rs: &[Round]| -> Vec<f64> {
        rs.iter()
            .map(|r| count_f64(args.reports) / r.secs)
            .collect()
    };
    let lat = |rs: &[Round], pm: usize| -> f64 {
        let mut all: Vec<u32> = rs.iter().flat_map(|r| r.latencies_us.clone()).collect();
        all.sort_unstable();
        percentile(&all, pm).map_or(0.0, |us| f64::from(us) / 1000.0)
    };
    let (w, wo) = (median(&rate(with)), median(&rate(without)));
    let rounds = |rs: &[Round]| {
        rate(rs)
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "backend: {backend}\nclients: {}, reports per variant and round: {}, rounds: {}, photos per report: {}\n\
         | variant | reports/s (median) | rounds | p50 ms | p99 ms |\n|---|---|---|---|---|\n\
         | with {} photos | {w:.0} | {} | {:.1} | {:.1} |\n\
         | without photos | {wo:.0} | {} | {:.1} | {:.1} |\n\
         with photos / without: {:.2}",
        args.clients,
        args.reports,
        args.rounds,
        args.photos,
        args.photos,
        rounds(with),
        lat(with, 500),
        lat(with, 990),
        rounds(without),
        lat(without, 500),
        lat(without, 990),
        w / wo,
    )
}
