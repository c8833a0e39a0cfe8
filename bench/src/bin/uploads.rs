//! Photo upload benchmark: uploads per second through minigate's real `POST /media` with several
//! concurrent clients, the latency of each upload, and, side by side in the same run, the
//! in-process `minigate_media::image::process` time of the same photos (the throughput ceiling).
//!
//! ```text
//! cargo run --release -p minigate-bench --bin uploads -- [--photos 40] [--rounds 3] [--clients 4]
//!     [--single-photos 8] [--warmup-photos 8] [--megapixels 12] [--quality 92] [--orientation 6]
//!     [--reference-iterations 5] [--workers N] [--server-threads N]
//!     [--database-url postgres://…] [--out FILE]
//! ```
//!
//! One process holds a fresh database (a temporary SQLite file by default; with
//! `--database-url`, a fresh database on that PostgreSQL server, dropped afterwards), minigate
//! built and served the way the binary does it (`app::build`, `app::serve` on 127.0.0.1, local
//! folder storage in a temporary directory, `media.workers` one per core unless `--workers`, rate
//! limits at `u32::MAX`), and the load generator on its own runtime threads. The database gets a
//! tenant, a branch, a registry driver and the driver's user, who signs in with
//! `loginWithPassword` over GraphQL like any client: every upload carries that access token.
//!
//! The photos are 12 MP (`--megapixels`) phone JPEGs from the same synthetic street scene as the
//! `media` benchmark (quality 92, 4:2:0, EXIF orientation 6, GPS, capture time, a 16 KiB maker
//! note). Every upload is a different photo: minigate stores identical bytes once and skips
//! processing for them, so each photo gets its serial number stamped into the sky (a row of
//! blocks whose pixels are inverted or not, one per bit) before it is encoded. The pixels differ,
//! so the originals, the display images and the thumbnails all differ, while decoding costs the
//! same. Each round's photos are made right before the round, untimed, on every core.
//!
//! Each round, in an order that alternates:
//!
//! * **load:** `--clients` keep-alive HTTP/1.1 clients (reqwest, one connection each) upload the
//!   round's `--photos` photos, each taking the next photo as soon as it has its answer, in the
//!   shape `wx.uploadFile` sends: multipart/form-data with the file part `file` and the field
//!   `purpose=accident`, `Authorization: Bearer …`. Every answer must be 201 with
//!   `status: "READY"`, the upright size of the photo and both signed URLs; anything else fails
//!   the run. Then `--single-photos` more, one client, one at a time (the latency without
//!   queueing for a worker);
//! * **reference:** `process(path, &Limits::default())` on one of the round's photos
//!   `--reference-iterations` times on one thread, then the first `8 × workers` photos of the
//!   round on `workers` threads at once (what the gateway's semaphore allows), files read from the
//!   page cache.
//!
//! CPU is counted from `/proc`: the server's share is this process minus the load generator's
//! threads (poem, the blocking pool with the decoders and their helper threads, storage, SQLite);
//! PostgreSQL's own processes are not counted. At the end the database must hold exactly one
//! `media` row per upload, all `READY`, with distinct originals, and exactly three `media_blob`
//! rows (original, display, thumbnail) per photo; the storage folder, three files per photo.

#[allow(
    dead_code,
    reason = "shared with the main benchmark; not every helper is used here"
)]
#[path = "../cpu.rs"]
mod cpu;
#[allow(
    dead_code,
    reason = "shared with the media benchmark; only the scene and the encoder are used here"
)]
#[path = "../photo.rs"]
mod photo;
#[path = "../publish.rs"]
mod publish;
#[path = "../stats.rs"]
mod stats;

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use chrono::Utc;
use clap::Parser;
use minigate_gateway::{app, config::Config};
use minigate_media::image::{Limits, process};
use minigate_resolvers::{
    Role,
    auth::{create_password_user, db as auth_db},
    registry::db as registry_db,
    tenant::db as tenant_db,
    validate,
};
use minigate_store::{Db, testing::TestDb};
use reqwest::{
    Client, StatusCode, Url,
    multipart::{Form, Part},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    cpu::{ClientThreads, Sample},
    stats::{count_f64, median, percentile, u64_f64},
};

#[derive(Parser, Debug)]
#[command(
    name = "uploads",
    about = "Photo uploads per second through minigate's POST /media with concurrent clients"
)]
struct Args {
    /// A PostgreSQL server (`postgres://user@host:port/db`) to create a fresh database on
    /// (default: a temporary SQLite file). Not read from `DATABASE_URL`.
    #[arg(long)]
    database_url: Option<String>,
    /// Photos uploaded by the concurrent clients in each round (each round has its own).
    #[arg(long, default_value_t = 40)]
    photos: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive clients, one connection each.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Photos uploaded one at a time by a single client after the concurrent ones, per round
    /// (0: none).
    #[arg(long, default_value_t = 8)]
    single_photos: usize,
    /// Photos uploaded by the concurrent clients before the first round, unmeasured.
    #[arg(long, default_value_t = 8)]
    warmup_photos: usize,
    /// Size of the photos in megapixels, 4:3 landscape as stored (12: 4000×3000).
    #[arg(long, default_value_t = 12)]
    megapixels: u64,
    /// JPEG quality of the photos.
    #[arg(long, default_value_t = 92)]
    quality: u8,
    /// EXIF orientation of the photos (6: a phone held upright).
    #[arg(long, default_value_t = 6)]
    orientation: u16,
    /// Runs of the single-thread `process()` reference per round.
    #[arg(long, default_value_t = 5)]
    reference_iterations: usize,
    /// `media.workers`, photos decoded at once (default: the service's default, one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Worker threads of the server's runtime (default: one per core).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const JWT_SECRET: &str = "minigate-bench-secret-0123456789abcdef";
const TENANT: &str = "bench";
const PHONE: &str = "13800000001";
const PASSWORD: &str = "correct horse battery";
const PURPOSE: &str = "accident";
/// Photos per worker of the parallel `process()` reference of each round.
const REFERENCE_PER_WORKER: usize = 8;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uploads bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(url) = &args.database_url
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        bail!("--database-url must be a postgres:// URL (SQLite is the default)");
    }
    ensure!(
        args.photos > 0 && args.rounds > 0 && args.clients > 0 && args.reference_iterations > 0,
        "--photos, --rounds, --clients and --reference-iterations must be at least 1"
    );
    ensure!(
        (1..=100).contains(&args.megapixels),
        "--megapixels must be between 1 and 100"
    );
    ensure!(
        (1..=8).contains(&args.orientation),
        "--orientation must be 1 to 8"
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = args.workers.unwrap_or(cores).max(1);
    let server_threads = args.server_threads.unwrap_or(cores).max(1);
    let geometry = Geometry::new(args.megapixels, args.orientation)?;
    let load_before = load_average();
    let started_at = Utc::now();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let client_threads = ClientThreads::default();
    client_threads.register_current(); // this thread drives the client runtime's main future
    let registered = client_threads.clone();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("bench-client")
        .on_thread_start(move || registered.register_current())
        .enable_all()
        .build()?;

    eprintln!("making the {}×{} scene…", geometry.width, geometry.height);
    let t = Instant::now();
    let scene = photo::scene(geometry.width, geometry.height);
    let scene_time = t.elapsed();

    let setup = server_rt.block_on(Setup::start(args, workers))?;
    let measured = measure(
        args,
        cores,
        workers,
        &geometry,
        &scene,
        &setup,
        &client_rt,
        &client_threads,
    );
    drop(client_rt);
    let (verdict, problems) = server_rt.block_on(setup.finish(measured.as_ref().ok()));
    let mut results = measured?;
    results.check = verdict?;
    results.scene_time = scene_time;
    results.load = (load_before, load_average());

    let report = render(
        args,
        &Machine {
            cores,
            workers,
            server_threads,
            started_at,
        },
        &geometry,
        &results,
        &problems,
    );
    publish::publish(&report, args.out.as_deref())?;
    if !results.check.passed {
        bail!("the database or the storage folder does not hold what was uploaded");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The photos.

/// The photos' size as stored (landscape) and as seen (after the EXIF orientation).
struct Geometry {
    width: u32,
    height: u32,
    upright: (u32, u32),
    orientation: u16,
    /// Side of one stamp block, in pixels.
    block: u32,
}

/// Bits of the serial number stamped into each photo.
const STAMP_BITS: u32 = 20;

impl Geometry {
    fn new(megapixels: u64, orientation: u16) -> anyhow::Result<Self> {
        // 4:3: width² = pixels × 4 / 3.
        let width = (megapixels * 1_000_000 * 4 / 3).isqrt();
        let height = width * 3 / 4;
        let width = u32::try_from(width)?;
        let height = u32::try_from(height)?;
        ensure!(
            width <= u32::from(u16::MAX) && height <= u32::from(u16::MAX),
            "too large for a JPEG"
        );
        let upright = if orientation >= 5 {
            (height, width)
        } else {
            (width, height)
        };
        Ok(Self {
            width,
            height,
            upright,
            orientation,
            block: (width / 40).max(8),
        })
    }

    fn pixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height)
    }
}

/// Inverts the pixels of the blocks whose bit of `serial` is set (a row of [`STAMP_BITS`]
/// blocks in the sky, one block from the top left corner). Doing it twice undoes it.
fn stamp(rgb: &mut [u8], g: &Geometry, serial: u32) {
    let row_bytes = usize::try_from(g.width).unwrap_or(0) * 3;
    let block = usize::try_from(g.block).unwrap_or(8);
    for bit in 0..STAMP_BITS {
        if serial & (1 << bit) == 0 {
            continue;
        }
        let x0 = block * (1 + usize::try_from(bit).unwrap_or(0));
        for y in block..2 * block {
            let start = y * row_bytes + x0 * 3;
            if let Some(px) = rgb.get_mut(start..start + block * 3) {
                for v in px {
                    *v = 255 - *v;
                }
            }
        }
    }
}

/// Photos `first..first + n`, made from the scene on `threads` threads.
fn make_photos(
    scene: &[u8],
    g: &Geometry,
    quality: u8,
    first: u32,
    n: usize,
    threads: usize,
) -> anyhow::Result<Vec<Bytes>> {
    let serials: Vec<u32> = (0..n)
        .map(|i| u32::try_from(i).map(|i| first + i))
        .collect::<Result<_, _>>()?;
    ensure!(
        serials.last().is_none_or(|s| *s < 1 << STAMP_BITS),
        "too many photos for the stamp"
    );
    let chunk = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = serials
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut rgb = scene.to_vec();
                    part.iter()
                        .map(|&serial| {
                            stamp(&mut rgb, g, serial);
                            let jpeg =
                                photo::encode(&rgb, g.width, g.height, quality, g.orientation);
                            stamp(&mut rgb, g, serial);
                            jpeg.map(Bytes::from)
                        })
                        .collect::<anyhow::Result<Vec<Bytes>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a photo thread panicked"))??,
            );
        }
        Ok(all)
    })
}

// ---------------------------------------------------------------------------------------------
// The database, the driver and the server.

struct Setup {
    test_db: TestDb,
    dir: PathBuf,
    backend: String,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Setup {
    async fn start(args: &Args, workers: usize) -> anyhow::Result<Self> {
        let (test_db, backend) = match &args.database_url {
            Some(url) => {
                let test_db = TestDb::postgres(url)
                    .await
                    .context("creating a PostgreSQL database")?;
                let Db::Postgres(pool) = &test_db.db else {
                    bail!("not a PostgreSQL database");
                };
                let version: String =
                    sqlx::query_scalar("select current_setting('server_version')")
                        .fetch_one(pool)
                        .await?;
                (
                    test_db,
                    format!("PostgreSQL {version} (fresh database on a local server)"),
                )
            }
            None => (
                TestDb::sqlite()
                    .await
                    .context("creating a SQLite database")?,
                "SQLite (temporary file)".to_owned(),
            ),
        };
        let dir = tempfile::Builder::new()
            .prefix("minigate-bench-uploads-")
            .tempdir()?
            .keep();

        let (acceptor, addr) = app::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let mut config = Config {
            listen: addr,
            database_url: test_db.url(),
            data_dir: dir.join("data"),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            ..Config::default()
        };
        config.limits.per_ip_per_minute = u32::MAX;
        config.limits.per_user_per_minute = u32::MAX;
        config.limits.subscribes_per_minute = u32::MAX;
        // Nothing here calls a payment provider.
        config.payments.simulator = Some(false);
        config.payments.wechat_base = Some("http://127.0.0.1:9".to_owned());
        config.payments.alipay_gateway = Some("http://127.0.0.1:9/gateway.do".to_owned());
        config.media.workers = Some(workers);
        let state = app::build(config).await.context("building minigate")?;
        seed(&test_db.db).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::serve(state, acceptor, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            test_db,
            dir,
            backend,
            addr,
            stop,
            task,
        })
    }

    fn media_root(&self) -> PathBuf {
        self.dir.join("data").join("media")
    }

    /// Stops the server, checks the database and the storage folder, removes both.
    async fn finish(self, results: Option<&Results>) -> (anyhow::Result<Check>, Vec<String>) {
        let mut problems = Vec::new();
        let media_root = self.media_root();
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => problems.push(format!("minigate failed: {e:#}")),
            Ok(Err(e)) => problems.push(format!("minigate's task failed: {e}")),
            Err(_) => problems.push("minigate did not stop within 10 s".to_owned()),
        }
        let check = match results {
            Some(r) => check(&self.test_db.db, &media_root, r.uploads).await,
            None => Err(anyhow::anyhow!("nothing was measured")),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        drop(self.test_db);
        (check, problems)
    }
}

/// A tenant, a branch, a registry driver and the driver's user with a password. The user is
/// made with `create_password_user` (which makes staff) and then bound to the driver record the
/// way `bindPhone` binds a WeChat user, so the token carries the driver role, branch and driver.
async fn seed(db: &Db) -> anyhow::Result<()> {
    let mut c = db.conn().await?;
    let tenant = tenant_db::insert_tenant(&mut c, TENANT, "Bench Car Rental")
        .await
        .context("inserting the tenant")?
        .id;
    let branch = registry_db::insert_branch(&mut c, tenant, "SH", "Shanghai")
        .await
        .context("inserting the branch")?;
    let base = "11010519900101001";
    let check = validate::id_check_char(base).context("ID number check character")?;
    let driver = registry_db::insert_driver(
        &mut c,
        tenant,
        &registry_db::DriverFields {
            branch_id: branch,
            vehicle_id: None,
            name: "张伟",
            phone: PHONE,
            id_number: &format!("{base}{check}"),
        },
    )
    .await
    .context("inserting the driver")?;
    drop(c);
    let user = create_password_user(
        db,
        tenant,
        None,
        Role::Staff,
        PHONE,
        PASSWORD.to_owned(),
        "张伟",
        Some(branch),
    )
    .await
    .context("creating the user")?;
    let mut c = db.conn().await?;
    auth_db::bind_driver(&mut c, user, driver, branch, PHONE)
        .await
        .context("binding the user to the driver")?;
    Ok(())
}

/// Signs the driver in over GraphQL; returns the access token and the role it was issued for.
async fn login(base: &str) -> anyhow::Result<(String, String)> {
    let answer: Value = http_client()?
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($t: String!, $p: String!, $w: String!) { loginWithPassword(tenant: $t, phone: $p, password: $w) { accessToken user { role } } }",
            "variables": { "t": TENANT, "p": PHONE, "w": PASSWORD },
        }))
        .send()
        .await?
        .json()
        .await?;
    let payload = &answer["data"]["loginWithPassword"];
    let token = payload["accessToken"]
        .as_str()
        .with_context(|| format!("no access token: {answer}"))?;
    let role = payload["user"]["role"].as_str().unwrap_or("?");
    Ok((token.to_owned(), role.to_owned()))
}

fn http_client() -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(120))
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// Load.

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Microseconds per upload.
    latencies: Vec<u32>,
    ids: Vec<String>,
    errors: usize,
    first_error: Option<String>,
}

impl Seen {
    fn fail(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// The upload and what its answer must say.
struct Target {
    url: Url,
    token: String,
    upright: (u32, u32),
}

async fn client(
    http: Client,
    target: Arc<Target>,
    photos: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(bytes) = photos.get(i) else { break };
        let part = match Part::stream(bytes.clone())
            .file_name(format!("wxfile_tmp_{i:04}.jpg"))
            .mime_str("image/jpeg")
        {
            Ok(p) => p,
            Err(e) => {
                seen.fail(format!("building the form: {e}"));
                break;
            }
        };
        let form = Form::new().part("file", part).text("purpose", PURPOSE);
        let request = http
            .post(target.url.clone())
            .bearer_auth(&target.token)
            .multipart(form);
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                resp.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        match answer {
            Ok((StatusCode::CREATED, body)) => match accepted(&body, target.upright) {
                Ok(id) => {
                    seen.latencies.push(took);
                    seen.ids.push(id);
                }
                Err(e) => seen.fail(format!("201 but {e}")),
            },
            Ok((status, body)) => seen.fail(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            Err(e) => seen.fail(format!("request failed: {e}")),
        }
    }
    seen
}

/// The id of a 201 answer that says what the README promises.
fn accepted(body: &[u8], (w, h): (u32, u32)) -> anyhow::Result<String> {
    let v: Value = serde_json::from_slice(body)?;
    ensure!(v["status"] == "READY", "status is not READY: {v}");
    ensure!(v["width"] == w && v["height"] == h, "not {w}×{h}: {v}");
    for key in ["displayUrl", "thumbnailUrl", "receivedAt"] {
        ensure!(
            v[key].as_str().is_some_and(|s| !s.is_empty()),
            "no {key}: {v}"
        );
    }
    v["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id: {v}"))
}

/// CPU between two readings, in microseconds: the server (this process minus the client's
/// threads) and the client.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: u64,
    client: u64,
}

fn cpu_between(before: Option<Sample>, after: Option<Sample>) -> Option<Cpu> {
    let (b, a) = (before?, after?);
    Some(Cpu {
        server: b.server_micros_until(a),
        client: b.client_micros_until(a),
    })
}

/// One timed run of uploads.
struct Run {
    uploads: usize,
    elapsed: Duration,
    latencies: Vec<u32>,
    ids: Vec<String>,
    cpu: Option<Cpu>,
}

impl Run {
    fn per_second(&self) -> f64 {
        count_f64(self.uploads) / self.elapsed.as_secs_f64()
    }
}

async fn drive(
    target: &Arc<Target>,
    photos: Vec<Bytes>,
    clients: usize,
    threads: &ClientThreads,
) -> anyhow::Result<Run> {
    let photos = Arc::new(photos);
    let next = Arc::new(AtomicUsize::new(0));
    // One keep-alive connection per client, opened before the clock starts.
    let mut https = Vec::with_capacity(clients);
    let healthz = format!("http://{}/healthz", target.url.authority());
    for _ in 0..clients {
        let http = http_client()?;
        http.get(&healthz).send().await?.error_for_status()?;
        https.push(http);
    }
    let before = threads.sample();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for http in https {
        tasks.spawn(client(
            http,
            Arc::clone(target),
            Arc::clone(&photos),
            Arc::clone(&next),
        ));
    }
    let mut all = Seen::default();
    while let Some(done) = tasks.join_next().await {
        let seen = done.context("a client panicked")?;
        all.latencies.extend(seen.latencies);
        all.ids.extend(seen.ids);
        all.errors += seen.errors;
        if all.first_error.is_none() {
            all.first_error = seen.first_error;
        }
    }
    let elapsed = started.elapsed();
    let after = threads.sample();
    if all.errors > 0 {
        bail!(
            "{} of {} uploads failed; the first: {}",
            all.errors,
            all.errors + all.latencies.len(),
            all.first_error.unwrap_or_default()
        );
    }
    Ok(Run {
        uploads: all.latencies.len(),
        elapsed,
        latencies: all.latencies,
        ids: all.ids,
        cpu: cpu_between(before, after),
    })
}

/// Fetches the display image behind the signed URL of one upload: it must be a JPEG whose long
/// edge is 1600 px.
async fn fetch_display(base: &str, token: &str, id: &str) -> anyhow::Result<(u16, u16)> {
    let http = http_client()?;
    let answer: Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({
            "query": "query($id: ID!) { media(id: $id) { displayUrl } }",
            "variables": { "id": id },
        }))
        .send()
        .await?
        .json()
        .await?;
    let url = answer["data"]["media"]["displayUrl"]
        .as_str()
        .with_context(|| format!("no displayUrl: {answer}"))?;
    let resp = http.get(url).send().await?.error_for_status()?;
    let jpeg = resp.bytes().await?;
    let mut d = jpeg_decoder::Decoder::new(jpeg.as_ref());
    d.read_info()?;
    let info = d.info().context("no JPEG header")?;
    Ok((info.width, info.height))
}

// ---------------------------------------------------------------------------------------------
// The in-process reference.

struct Reference {
    /// Wall ms of each single-thread `process()`.
    single_ms: Vec<f64>,
    /// CPU µs of those runs (the decoder's helper threads included).
    single_cpu: Option<u64>,
    /// Photos processed on `workers` threads at once, and how long that took.
    parallel: usize,
    parallel_elapsed: Duration,
    parallel_cpu: Option<u64>,
}

impl Reference {
    fn parallel_per_second(&self) -> f64 {
        count_f64(self.parallel) / self.parallel_elapsed.as_secs_f64()
    }
}

/// `process()` on photos of the round, in threads of their own (not the client's, so the CPU
/// they use counts as the server's while nothing else runs).
fn reference(
    dir: &Path,
    photos: &[Bytes],
    iterations: usize,
    workers: usize,
    threads: &ClientThreads,
) -> anyhow::Result<Reference> {
    let count = (REFERENCE_PER_WORKER * workers).min(photos.len()).max(1);
    let mut paths = Vec::with_capacity(count);
    for (i, p) in photos.iter().take(count).enumerate() {
        let path = dir.join(format!("reference-{i}.jpg"));
        std::fs::write(&path, p)?;
        paths.push(path);
    }
    let limits = Limits::default();
    let first = paths.first().context("no photo")?.clone();
    let (single_ms, single_cpu) = std::thread::scope(|s| {
        s.spawn(|| {
            // One untimed run: the file into the page cache, the thread's allocator warm.
            process(&first, &limits)?;
            let mut ms = Vec::with_capacity(iterations);
            let before = threads.sample();
            for _ in 0..iterations {
                let t = Instant::now();
                process(&first, &limits)?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let cpu = cpu_between(before, threads.sample()).map(|c| c.server);
            anyhow::Ok((ms, cpu))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the reference thread panicked"))?
    })?;

    let next = AtomicUsize::new(0);
    let before = threads.sample();
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    while let Some(p) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                        process(p, &limits)?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a reference thread panicked"))??;
        }
        anyhow::Ok(())
    })?;
    let parallel_elapsed = started.elapsed();
    let parallel_cpu = cpu_between(before, threads.sample()).map(|c| c.server);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    Ok(Reference {
        single_ms,
        single_cpu,
        parallel: count,
        parallel_elapsed,
        parallel_cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Rounds.

struct Round {
    concurrent: Run,
    single: Option<Run>,
    reference: Reference,
    make: Duration,
    mean_bytes: f64,
}

impl Round {
    /// Median wall ms of the round's single-thread `process()`.
    fn process_ms(&self) -> f64 {
        median(&self.reference.single_ms)
    }

    /// Uploads per second if `process()` were all an upload cost and `workers` ran it at once.
    fn ceiling(&self, workers: usize) -> f64 {
        count_f64(workers) * 1000.0 / self.process_ms()
    }

    /// CPU ms of one single-thread `process()`.
    fn single_cpu_ms(&self) -> Option<f64> {
        let runs = count_f64(self.reference.single_ms.len());
        Some(u64_f64(self.reference.single_cpu?) / runs / 1000.0)
    }
}

#[derive(Default)]
struct Results {
    backend: String,
    role: String,
    rounds: Vec<Round>,
    /// Every upload (warm-up included); every one a distinct photo.
    uploads: usize,
    display: (u16, u16),
    scene_time: Duration,
    load: (String, String),
    check: Check,
}

#[allow(
    clippy::too_many_arguments,
    reason = "the run's fixed inputs, passed once"
)]
fn measure(
    args: &Args,
    cores: usize,
    workers: usize,
    geometry: &Geometry,
    scene: &[u8],
    setup: &Setup,
    rt: &tokio::runtime::Runtime,
    threads: &ClientThreads,
) -> anyhow::Result<Results> {
    let base = format!("http://{}", setup.addr);
    let (token, role) = rt.block_on(login(&base)).context("signing the driver in")?;
    let target = Arc::new(Target {
        url: format!("{base}/media").parse()?,
        token,
        upright: geometry.upright,
    });
    let mut serial = 0u32;
    let mut uploads = 0;
    let mut ids = std::collections::HashSet::new();
    let mut rounds = Vec::with_capacity(args.rounds);
    let mut display = (0, 0);
    for set in 0..=args.rounds {
        let (n, single) = if set == 0 {
            (args.warmup_photos.max(1), 0)
        } else {
            (args.photos, args.single_photos)
        };
        let label = if set == 0 {
            "warm-up".to_owned()
        } else {
            format!("round {set}/{}", args.rounds)
        };
        let started = Instant::now();
        let mut photos = make_photos(scene, geometry, args.quality, serial, n + single, cores)?;
        let make = started.elapsed();
        serial += u32::try_from(n + single)?;
        let mean_bytes =
            count_f64(photos.iter().map(Bytes::len).sum::<usize>()) / count_f64(photos.len());
        eprintln!(
            "{label}: made {} photos ({:.2} MiB each) in {:.1} s",
            photos.len(),
            mean_bytes / 1_048_576.0,
            make.as_secs_f64()
        );
        let singles = photos.split_off(n);
        let reference_first = set % 2 == 0;
        let mut refs = None;
        if set > 0 && reference_first {
            refs = Some(reference(
                &setup.dir,
                &photos,
                args.reference_iterations,
                workers,
                threads,
            )?);
        }
        let ref_photos = if set > 0 && !reference_first {
            photos
                .iter()
                .take(REFERENCE_PER_WORKER * workers)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let (concurrent, single) = rt.block_on(async {
            let concurrent = drive(&target, photos, args.clients, threads)
                .await
                .with_context(|| format!("{label}, {} clients", args.clients))?;
            let single = if singles.is_empty() {
                None
            } else {
                Some(
                    drive(&target, singles, 1, threads)
                        .await
                        .with_context(|| format!("{label}, one client"))?,
                )
            };
            anyhow::Ok((concurrent, single))
        })?;
        if set > 0 && !reference_first {
            refs = Some(reference(
                &setup.dir,
                &ref_photos,
                args.reference_iterations,
                workers,
                threads,
            )?);
        }
        for run in std::iter::once(&concurrent).chain(single.as_ref()) {
            uploads += run.uploads;
            ids.extend(run.ids.iter().cloned());
        }
        ensure!(ids.len() == uploads, "an upload id was answered twice");
        if set == 0 {
            let id = concurrent.ids.first().context("no upload")?;
            display = rt.block_on(fetch_display(&base, &target.token, id))?;
            eprintln!(
                "warm-up: {:.1} uploads/s; the display image behind a signed URL is {}×{}",
                concurrent.per_second(),
                display.0,
                display.1
            );
            continue;
        }
        let reference = refs.context("the reference did not run")?;
        eprintln!(
            "{label}: {:.1} uploads/s with {} clients; process() {:.1} ms on 1 thread, {:.1} \
             photos/s on {workers}",
            concurrent.per_second(),
            args.clients,
            median(&reference.single_ms),
            reference.parallel_per_second(),
        );
        rounds.push(Round {
            concurrent,
            single,
            reference,
            make,
            mean_bytes,
        });
    }
    Ok(Results {
        backend: setup.backend.clone(),
        role,
        rounds,
        uploads,
        display,
        ..Results::default()
    })
}

// ---------------------------------------------------------------------------------------------
// The database and the storage folder afterwards.

#[derive(Default)]
struct Check {
    passed: bool,
    text: String,
}

async fn check(db: &Db, media_root: &Path, uploads: usize) -> anyhow::Result<Check> {
    let mut c = db.conn().await?;
    let media = minigate_store::fetch_scalar!(&mut c, i64, "select count(*) from media")?;
    let ready = minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from media where status = 'READY'"
    )?;
    let originals = minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(distinct original_sha256) from media"
    )?;
    let displays = minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(distinct display_sha256) from media"
    )?;
    let blobs = minigate_store::fetch_scalar!(&mut c, i64, "select count(*) from media_blob")?;
    drop(c);
    let files = count_files(media_root)?;
    let expected = i64::try_from(uploads)?;
    let passed = media == expected
        && ready == expected
        && originals == expected
        && displays == expected
        && blobs == 3 * expected
        && files == 3 * uploads;
    let text = format!(
        "{uploads} uploads of distinct photos (warm-up included): media {media} rows ({ready} \
         READY, {originals} distinct originals, {displays} distinct display images), media_blob \
         {blobs} rows (expected {}), {files} files in the storage folder: {}",
        3 * expected,
        if passed { "passed" } else { "FAILED" }
    );
    eprintln!("check: {text}");
    Ok(Check { passed, text })
}

/// Regular files under `dir`, leaving out hidden ones (temporary files of interrupted writes).
fn count_files(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            n += count_files(&entry.path())?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
            n += 1;
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// The report.

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let v: Vec<&str> = l.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

struct Machine {
    cores: usize,
    workers: usize,
    server_threads: usize,
    started_at: chrono::DateTime<Utc>,
}

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "–".to_owned(),
        |u| format!("{:.0}", f64::from(u) / 1000.0),
    )
}

fn sorted(runs: &[&Run]) -> Vec<u32> {
    let mut v: Vec<u32> = runs
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    v.sort_unstable();
    v
}

/// Mean CPU ms per upload over runs, `–` when a reading is missing.
fn cpu_ms(runs: &[&Run], pick: impl Fn(&Cpu) -> u64) -> Option<f64> {
    let mut total = 0;
    for r in runs {
        total += pick(r.cpu.as_ref()?);
    }
    let n: usize = runs.iter().map(|r| r.uploads).sum();
    (n > 0).then(|| u64_f64(total) / count_f64(n) / 1000.0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn each(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(args: &Args, m: &Machine, g: &Geometry, r: &Results, problems: &[String]) -> String {
    let mut s = String::new();
    let model = cpu::cpu_model().map_or_else(String::new, |x| format!(", {x}"));
    let mean_bytes = median(&r.rounds.iter().map(|x| x.mean_bytes).collect::<Vec<_>>());
    let _ = writeln!(
        s,
        "### {}, {} concurrent clients\n",
        r.backend, args.clients
    );
    let _ = writeln!(
        s,
        "{} UTC; {} {}, {} logical cores{model}; load average {} before, {} after. {} server \
         worker threads, `media.workers` = {}, local-folder storage; {} keep-alive clients; \
         rounds: {}, each of {} photos by the {} clients then {} by one client, {} photos of \
         warm-up; the driver's token has role `{}`.\n",
        m.started_at.format("%Y-%m-%d %H:%M"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        m.cores,
        r.load.0,
        r.load.1,
        m.server_threads,
        m.workers,
        args.clients,
        args.rounds,
        args.photos,
        args.clients,
        args.single_photos,
        args.warmup_photos,
        r.role,
    );
    let _ = writeln!(
        s,
        "Photos: {}×{} ({:.0} MP) as stored, EXIF orientation {} ({}×{} upright), quality {}, \
         4:2:0, {:.2} MiB on average ({:.2} bits per pixel), each different (serial number \
         stamped into the pixels). Scene made in {:.1} s; each round's photos in {} s (untimed, \
         {} threads).\n",
        g.width,
        g.height,
        g.pixels() / 1e6,
        g.orientation,
        g.upright.0,
        g.upright.1,
        args.quality,
        mean_bytes / 1_048_576.0,
        mean_bytes * 8.0 / g.pixels(),
        r.scene_time.as_secs_f64(),
        each(
            &r.rounds
                .iter()
                .map(|x| x.make.as_secs_f64())
                .collect::<Vec<_>>(),
            1
        ),
        m.cores,
    );

    let concurrent: Vec<&Run> = r.rounds.iter().map(|x| &x.concurrent).collect();
    let singles: Vec<&Run> = r.rounds.iter().filter_map(|x| x.single.as_ref()).collect();
    let rates: Vec<f64> = concurrent.iter().map(|x| x.per_second()).collect();
    let single_rates: Vec<f64> = singles.iter().map(|x| x.per_second()).collect();
    let single_ms: Vec<f64> = r
        .rounds
        .iter()
        .flat_map(|x| x.reference.single_ms.iter().copied())
        .collect();
    let process_ms = median(&single_ms);
    let single_cpu_ms = {
        let mut total = Some(0);
        for x in &r.rounds {
            total = total.zip(x.reference.single_cpu).map(|(a, b)| a + b);
        }
        total.map(|t| u64_f64(t) / count_f64(single_ms.len()) / 1000.0)
    };
    let parallel_rates: Vec<f64> = r
        .rounds
        .iter()
        .map(|x| x.reference.parallel_per_second())
        .collect();
    let parallel_cpu_ms = {
        let mut total = Some(0);
        for x in &r.rounds {
            total = total.zip(x.reference.parallel_cpu).map(|(a, b)| a + b);
        }
        let n: usize = r.rounds.iter().map(|x| x.reference.parallel).sum();
        total.map(|t| u64_f64(t) / count_f64(n) / 1000.0)
    };
    let ceiling = count_f64(m.workers) * 1000.0 / process_ms;
    let rate = median(&rates);
    let parallel_rate = median(&parallel_rates);
    let all = sorted(&concurrent);
    let one = sorted(&singles);

    let _ = writeln!(
        s,
        "| what | uploads (photos) per s, median of rounds (each round) | p50 ms | p99 ms | max ms | server CPU ms per upload | client CPU ms per upload |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|");
    let _ = writeln!(
        s,
        "| **`POST /media`, {} clients** ({} uploads) | **{:.1}** ({}) | {} | {} | {} | {} | {} |",
        args.clients,
        all.len(),
        rate,
        each(&rates, 1),
        ms(percentile(&all, 500)),
        ms(percentile(&all, 990)),
        ms(all.last().copied()),
        opt(cpu_ms(&concurrent, |c| c.server), 0),
        opt(cpu_ms(&concurrent, |c| c.client), 1),
    );
    if !singles.is_empty() {
        let _ = writeln!(
            s,
            "| `POST /media`, 1 client, one at a time ({} uploads) | {:.1} ({}) | {} | {} | {} | {} | {} |",
            one.len(),
            median(&single_rates),
            each(&single_rates, 1),
            ms(percentile(&one, 500)),
            ms(percentile(&one, 990)),
            ms(one.last().copied()),
            opt(cpu_ms(&singles, |c| c.server), 0),
            opt(cpu_ms(&singles, |c| c.client), 1),
        );
    }
    let _ = writeln!(
        s,
        "| `process()` in-process, 1 thread ({} runs) | {:.1} ({}) | {:.0} (median) | | {:.0} | {} | |",
        single_ms.len(),
        1000.0 / process_ms,
        each(
            &r.rounds
                .iter()
                .map(|x| 1000.0 / x.process_ms())
                .collect::<Vec<_>>(),
            1
        ),
        process_ms,
        single_ms.iter().copied().fold(0.0, f64::max),
        opt(single_cpu_ms, 0),
    );
    let _ = writeln!(
        s,
        "| `process()` in-process, {} threads at once ({} photos per round) | {:.1} ({}) | | | | {} | |",
        m.workers,
        r.rounds.first().map_or(0, |x| x.reference.parallel),
        parallel_rate,
        each(&parallel_rates, 1),
        opt(parallel_cpu_ms, 0),
    );
    let _ = writeln!(
        s,
        "| ceiling: {} workers ÷ `process()` time on 1 thread | {ceiling:.1} ({}) | | | | | |",
        m.workers,
        each(
            &r.rounds
                .iter()
                .map(|x| x.ceiling(m.workers))
                .collect::<Vec<_>>(),
            1
        ),
    );
    // The machine's speed drifts between and within runs, so every comparison pairs the
    // uploads with the reference measured in the same round.
    let of_ceiling: Vec<f64> = r
        .rounds
        .iter()
        .map(|x| x.concurrent.per_second() / x.ceiling(m.workers) * 100.0)
        .collect();
    let of_parallel: Vec<f64> = r
        .rounds
        .iter()
        .map(|x| x.concurrent.per_second() / x.reference.parallel_per_second() * 100.0)
        .collect();
    let _ = writeln!(
        s,
        "\nThrough the endpoint, paired with the reference of the same round: **{:.0} %** of the \
         ceiling (each round: {}) and **{:.0} %** of `process()` on {} threads at once (each \
         round: {}).",
        median(&of_ceiling),
        each(&of_ceiling, 0),
        median(&of_parallel),
        m.workers,
        each(&of_parallel, 0),
    );
    if let Some(cpu) = single_cpu_ms {
        let _ = writeln!(
            s,
            "`process()` alone uses {cpu:.0} ms of CPU per photo ({process_ms:.0} ms wall; \
             jpeg-decoder decodes the colour components on helper threads), so {} cores are \
             full at {:.1} photos/s.",
            m.cores,
            count_f64(m.cores) * 1000.0 / cpu,
        );
    }
    let extra_cpu: Option<Vec<f64>> = r
        .rounds
        .iter()
        .map(|x| Some(cpu_ms(&[&x.concurrent], |c| c.server)? - x.single_cpu_ms()?))
        .collect();
    if let Some(extra) = extra_cpu {
        let _ = writeln!(
            s,
            "Server CPU per upload ({} clients) beyond `process()` on one thread in the same round \
             (HTTP, multipart, hashing, storage with fsync, database, helper threads competing): \
             {:.0} ms (each round: {}).",
            args.clients,
            median(&extra),
            each(&extra, 0),
        );
    }
    let extra_ms: Option<Vec<f64>> = r
        .rounds
        .iter()
        .map(|x| {
            let one = sorted(&[x.single.as_ref()?]);
            Some(f64::from(percentile(&one, 500)?) / 1000.0 - x.process_ms())
        })
        .collect();
    if let Some(extra) = extra_ms {
        let _ = writeln!(
            s,
            "One upload at a time takes longer than `process()` in the same round (p50 of the \
             round's single-client uploads minus its median `process()`) by {:.0} ms (each round: \
             {}): transfer, hashing, storage and database.",
            median(&extra),
            each(&extra, 0),
        );
    }
    let _ = writeln!(
        s,
        "With {} clients and {} workers, an upload's latency includes its wait for a worker.",
        args.clients, m.workers,
    );
    let _ = writeln!(
        s,
        "The display image behind a signed URL of the warm-up is {}×{}.",
        r.display.0, r.display.1
    );
    let _ = writeln!(s, "Check: {}.", r.check.text);
    for p in problems {
        let _ = writeln!(s, "Shutdown: {p}.");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_megapixels_are_4000_by_3000() {
        let g = Geometry::new(12, 6).unwrap();
        assert_eq!((g.width, g.height), (4000, 3000));
        assert_eq!(g.upright, (3000, 4000));
        assert_eq!(g.block, 100);
    }

    #[test]
    fn stamped_photos_differ_in_pixels_and_stamping_twice_undoes_it() {
        let g = Geometry::new(1, 1).unwrap();
        let scene = vec![40u8; usize::try_from(g.width * g.height * 3).unwrap()];
        let mut a = scene.clone();
        stamp(&mut a, &g, 5);
        let mut b = scene.clone();
        stamp(&mut b, &g, 6);
        assert_ne!(a, scene);
        assert_ne!(a, b);
        stamp(&mut a, &g, 5);
        assert_eq!(a, scene);
    }
}
