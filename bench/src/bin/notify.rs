//! Payment-notification benchmark: verified WeChat Pay notifications per second through minigate's
//! real `POST /pay/wechat/notify` on PostgreSQL, with a share of duplicates, and the latency of
//! each answer.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin notify -- --database-url postgres://… [--orders 20000]
//!     [--rounds 3] [--connections 32] [--duplicates 20] [--duplicate-lag 1000]
//!     [--warmup-orders 1000] [--healthz-seconds 5] [--server-threads N] [--out FILE]
//! ```
//!
//! One process holds a fresh PostgreSQL database (dropped afterwards), minigate built and served
//! the way the binary does it, and the load generator. The database gets one tenant whose WeChat
//! Pay merchant is in public-key mode, with keys generated for the run, and `--orders` unpaid
//! orders (each with its bill) for every round, seeded with plain SQL before anything is timed.
//! Statistics are taken after the warm-up, when every table holds rows.
//!
//! Right before each round, one genuine notification per order of that round is built as WeChat
//! Pay sends it: the transaction JSON sealed with AEAD_AES_256_GCM under the APIv3 key inside the
//! JSON envelope, signed SHA256-RSA over `timestamp\nnonce\nbody\n` with WeChat Pay's key. The
//! round sends them over `--connections` keep-alive connections; a share of the requests
//! (`--duplicates` percent) are re-sends of a notification already sent (same body and headers),
//! each `--duplicate-lag` notifications after its original. Every answer must be 204 without a
//! body (duplicates too); anything else fails the run. `--healthz-seconds` of `GET /healthz`
//! against the same server in each round give a baseline measured seconds apart. At the end the
//! database must show exactly one credit per notification sent.

#[allow(
    dead_code,
    reason = "shared with the main benchmark; not every helper is used here"
)]
#[path = "../cpu.rs"]
mod cpu;
#[path = "../merchant.rs"]
mod merchant;
#[path = "../publish.rs"]
mod publish;
#[path = "../stats.rs"]
mod stats;

use std::{
    collections::VecDeque,
    fmt::Write as _,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use clap::Parser;
use minigate_fakes::keys::{RsaPem, pem_decode};
use minigate_gateway::{app, config::Config};
use minigate_store::{Db, testing::TestDb};
use reqwest::{
    Client, StatusCode, Url,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use tokio::{sync::oneshot, task::JoinHandle};
use uuid::Uuid;

use crate::{
    cpu::{ClientThreads, Sample},
    merchant::{APIV3_KEY, APP_ID, JWT_SECRET, MCH_ID, PUB_KEY_ID},
    stats::{count_f64, median, percentile, u64_f64},
};

#[derive(Parser, Debug)]
#[command(
    name = "notify",
    about = "WeChat Pay payment notifications per second through minigate on PostgreSQL"
)]
struct Args {
    /// A PostgreSQL server (`postgres://user@host:port/db`) to create a fresh database on.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Unpaid orders credited in each round, one notification each (every round has its own).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Rounds; each sends its own orders' notifications, then the healthz baseline (or the other
    /// way round, alternating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Share of the requests, in percent, that re-send a notification already sent.
    #[arg(long, default_value_t = 20)]
    duplicates: usize,
    /// How many notifications after its original a duplicate is sent.
    #[arg(long, default_value_t = 1_000)]
    duplicate_lag: usize,
    /// Orders credited (with duplicates) before the first round, unmeasured.
    #[arg(long, default_value_t = 1_000)]
    warmup_orders: usize,
    /// Seconds of `GET /healthz` against the same server in each round (the baseline).
    #[arg(long, default_value_t = 5)]
    healthz_seconds: u64,
    /// Worker threads of the server's runtime (default: one per core).
    #[arg(long)]
    server_threads: Option<usize>,
    /// The server's database pool (`database_max_connections`; default: the service's default).
    #[arg(long)]
    pool: Option<u32>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const AMOUNT_FEN: i64 = 1_000;
/// A notification older than this (WeChat Pay's window is 5 minutes) is not sent.
const FRESH_SECONDS: i64 = 280;
/// Seeding batch size (rows per `insert … select from unnest`).
const BATCH: usize = 5_000;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notify bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let Some(url) = args.database_url.as_deref() else {
        bail!("this benchmark needs PostgreSQL: --database-url postgres://… (or DATABASE_URL)");
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--database-url must be a postgres:// URL");
    }
    if args.orders == 0
        || args.rounds == 0
        || args.connections == 0
        || args.healthz_seconds == 0
        || args.duplicates >= 100
    {
        bail!(
            "--orders, --rounds, --connections and --healthz-seconds must be at least 1, \
             --duplicates below 100"
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let server_threads = args.server_threads.unwrap_or(cores).max(1);
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

    let setup = server_rt.block_on(Setup::start(url, args))?;
    let measured = measure(args, cores, &setup, &client_rt, &client_threads).map(|r| Results {
        server_threads,
        ..r
    });
    drop(client_rt);
    let (verdict, problems) = server_rt.block_on(setup.finish(measured.as_ref().ok()));
    let mut results = measured?;
    results.check = verdict?;

    let report = render(args, cores, &results, &problems);
    publish::publish(&report, args.out.as_deref())?;
    if !results.check.passed {
        bail!("the database does not show exactly one credit per notification");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The database, the merchant and the server.

struct Setup {
    test_db: TestDb,
    pool: PgPool,
    dir: PathBuf,
    backend: String,
    pool_size: u32,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    /// WeChat Pay's own key (public-key mode), which signs the notifications.
    wxpay: RsaPem,
    /// The orders of the warm-up (index 0) and of each round.
    sets: Vec<Vec<String>>,
}

impl Setup {
    async fn start(url: &str, args: &Args) -> anyhow::Result<Self> {
        let test_db = TestDb::postgres(url)
            .await
            .context("creating a PostgreSQL database")?;
        let Db::Postgres(pool) = &test_db.db else {
            bail!("not a PostgreSQL database");
        };
        let pool = pool.clone();
        let version: String = sqlx::query_scalar("select current_setting('server_version')")
            .fetch_one(&pool)
            .await?;
        // sqlx's default `sslmode=prefer` negotiates TLS when the server offers it, even on
        // 127.0.0.1; minigate's pool uses the same URL.
        let tls: bool = sqlx::query_scalar(
            "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
        )
        .fetch_one(&pool)
        .await?;
        let backend = format!(
            "PostgreSQL {version} (fresh database on a local server, {})",
            if tls {
                "TLS on the database connections"
            } else {
                "no TLS on the database connections"
            }
        );
        let dir =
            std::env::temp_dir().join(format!("minigate-bench-notify-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        eprintln!("seeding {backend}…");
        let wxpay = RsaPem::generate();
        let tenant = merchant::wechat_pay_tenant(&test_db.db, &dir, &wxpay, &RsaPem::generate())
            .await?
            .0;
        let mut sets = Vec::with_capacity(args.rounds + 1);
        let started = Instant::now();
        for set in 0..=args.rounds {
            let n = if set == 0 {
                args.warmup_orders
            } else {
                args.orders
            };
            sets.push(seed_orders(&pool, tenant, set, n).await?);
        }
        let seeded: usize = sets.iter().map(Vec::len).sum();
        eprintln!(
            "seeded {seeded} orders with their bills in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let mut config = Config {
            database_url: test_db.url(),
            data_dir: dir.join("data"),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            ..Config::default()
        };
        config.limits.per_ip_per_minute = u32::MAX;
        config.limits.per_user_per_minute = u32::MAX;
        config.limits.subscribes_per_minute = u32::MAX;
        // Nothing here calls a provider: notifications need no outgoing request, and the
        // active query is kept idle (the seeded orders are not due either).
        config.payments.simulator = Some(false);
        config.payments.wechat_base = Some("http://127.0.0.1:9".to_owned());
        config.payments.alipay_gateway = Some("http://127.0.0.1:9/gateway.do".to_owned());
        config.payments.first_query_seconds = 365 * 24 * 3600;
        config.payments.qr_minutes = 24 * 60;
        if let Some(pool) = args.pool {
            config.database_max_connections = pool;
        }
        let pool_size = config.database_max_connections;
        let state = app::build(config).await.context("building minigate")?;
        let (acceptor, addr) = app::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::serve(state, acceptor, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            test_db,
            pool,
            dir,
            backend,
            pool_size,
            addr,
            stop,
            task,
            wxpay,
            sets,
        })
    }

    /// Stops the server, checks the database, removes it and the key files.
    async fn finish(self, results: Option<&Results>) -> (anyhow::Result<Check>, Vec<String>) {
        let mut problems = Vec::new();
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => problems.push(format!("minigate failed: {e:#}")),
            Ok(Err(e)) => problems.push(format!("minigate's task failed: {e}")),
            Err(_) => problems.push("minigate did not stop within 10 s".to_owned()),
        }
        let check = match results {
            Some(r) => check(&self.pool, r.unique_sent).await,
            None => Err(anyhow::anyhow!("nothing was measured")),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        drop(self.test_db);
        (check, problems)
    }
}

/// `n` bills of one payer each, with one unpaid WeChat Native order each; returns the orders'
/// `out_trade_no`s.
async fn seed_orders(
    pool: &PgPool,
    tenant: Uuid,
    set: usize,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let bills: Vec<Uuid> = (start..end).map(|_| Uuid::now_v7()).collect();
        let orders: Vec<Uuid> = (start..end).map(|_| Uuid::now_v7()).collect();
        let payers: Vec<String> = (start..end)
            .map(|i| format!("Bench driver {set}-{i}"))
            .collect();
        let trade_nos: Vec<String> = (start..end).map(|i| out_trade_no(set, i)).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into bill (id, tenant_id, payer_name, kind, title, amount_fen, due_date)
             select b, $2, p, 'rent', 'Rent, week 47', $4, date '2026-11-30'
             from unnest($1::uuid[], $3::text[]) as t(b, p)",
        )
        .bind(&bills)
        .bind(tenant)
        .bind(&payers)
        .bind(AMOUNT_FEN)
        .execute(&mut *tx)
        .await
        .context("inserting bills")?;
        sqlx::query(
            "insert into payment_order (id, tenant_id, bill_id, provider, channel, out_trade_no,
                 merchant_id, app_id, amount_fen, description, expires_at, next_query_at)
             select o, $1, b, 'wechat', 'WECHAT_NATIVE', n, $5, $6, $7, 'Rent, week 47',
                 now() + interval '1 day', now() + interval '1 day'
             from unnest($2::uuid[], $3::uuid[], $4::text[]) as t(o, b, n)",
        )
        .bind(tenant)
        .bind(&orders)
        .bind(&bills)
        .bind(&trade_nos)
        .bind(MCH_ID)
        .bind(APP_ID)
        .bind(AMOUNT_FEN)
        .execute(&mut *tx)
        .await
        .context("inserting payment orders")?;
        tx.commit().await?;
        all.extend(trade_nos);
        start = end;
    }
    Ok(all)
}

/// At most 32 characters of `[0-9A-Za-z_-]`.
fn out_trade_no(set: usize, i: usize) -> String {
    format!("NB{set:02}{i:08}")
}

// ---------------------------------------------------------------------------------------------
// Notifications as WeChat Pay sends them.

/// One notification, ready to send (and to send again as a duplicate).
struct Prepared {
    body: String,
    headers: HeaderMap,
    /// `Wechatpay-Timestamp`.
    timestamp: i64,
}

struct WechatPay {
    key: RsaKeyPair,
    apiv3: LessSafeKey,
    rng: SystemRandom,
    beijing: FixedOffset,
}

impl WechatPay {
    fn new(wxpay: &RsaPem) -> anyhow::Result<Self> {
        let der = pem_decode(&wxpay.private_pem, "PRIVATE KEY")
            .context("WeChat Pay's key is not PKCS#8 PEM")?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("RSA key: {e}"))?;
        let apiv3 = UnboundKey::new(&AES_256_GCM, APIV3_KEY.as_bytes())
            .map(LessSafeKey::new)
            .map_err(|e| anyhow::anyhow!("APIv3 key: {e}"))?;
        Ok(Self {
            key,
            apiv3,
            rng: SystemRandom::new(),
            beijing: FixedOffset::east_opt(8 * 3600).context("UTC+8")?,
        })
    }

    fn rfc3339(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.beijing)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// The `TRANSACTION.SUCCESS` notification of order `out_trade_no` paid in full.
    fn notification(&self, out_trade_no: &str, serial_no: usize) -> anyhow::Result<Prepared> {
        let now = Utc::now();
        let transaction = json!({
            "appid": APP_ID,
            "mchid": MCH_ID,
            "out_trade_no": out_trade_no,
            "transaction_id": format!("42{serial_no:026}"),
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": self.rfc3339(now),
            "payer": { "openid": format!("oBench{serial_no:022}") },
            "amount": {
                "total": AMOUNT_FEN,
                "payer_total": AMOUNT_FEN,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        });
        let resource_nonce = Uuid::new_v4().simple().to_string();
        let resource_nonce = resource_nonce.get(..12).context("nonce")?;
        let associated_data = "transaction";
        let mut sealed = transaction.to_string().into_bytes();
        self.apiv3
            .seal_in_place_append_tag(
                Nonce::try_assume_unique_for_key(resource_nonce.as_bytes())
                    .map_err(|e| anyhow::anyhow!("nonce: {e}"))?,
                Aad::from(associated_data.as_bytes()),
                &mut sealed,
            )
            .map_err(|e| anyhow::anyhow!("AES-GCM: {e}"))?;
        let body = json!({
            "id": Uuid::new_v4().to_string(),
            "create_time": self.rfc3339(now),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": STANDARD.encode(&sealed),
                "associated_data": associated_data,
                "nonce": resource_nonce,
            },
        })
        .to_string();
        let timestamp = now.timestamp();
        let nonce = Uuid::new_v4().simple().to_string().to_uppercase();
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                format!("{timestamp}\n{nonce}\n{body}\n").as_bytes(),
                &mut signature,
            )
            .map_err(|e| anyhow::anyhow!("RSA signing: {e}"))?;
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| -> anyhow::Result<()> {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value)?);
            Ok(())
        };
        put("wechatpay-timestamp", &timestamp.to_string())?;
        put("wechatpay-nonce", &nonce)?;
        put("wechatpay-signature", &STANDARD.encode(&signature))?;
        put("wechatpay-serial", PUB_KEY_ID)?;
        put("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048")?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Prepared {
            body,
            headers,
            timestamp,
        })
    }
}

/// One notification per order of `set`, built on every core.
fn build_set(
    wechat: &WechatPay,
    orders: &[String],
    set: usize,
    cores: usize,
) -> anyhow::Result<Vec<Prepared>> {
    let chunk = orders.len().div_ceil(cores.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = orders
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, no)| wechat.notification(no, set * 10_000_000 + c * chunk + i))
                        .collect::<anyhow::Result<Vec<Prepared>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(orders.len());
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a builder thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// One request of a round: which notification, and whether it is a re-send.
#[derive(Clone, Copy)]
struct Step {
    note: usize,
    duplicate: bool,
}

/// Every original in order, with `duplicates` percent of the requests re-sending an original
/// `lag` originals after it was sent (the last ones at the end), spread evenly over the originals.
fn sequence(unique: usize, duplicates_percent: usize, lag: usize) -> Vec<Step> {
    let dups = unique * duplicates_percent / (100 - duplicates_percent);
    let mut steps = Vec::with_capacity(unique + dups);
    let mut pending: VecDeque<(usize, usize)> = VecDeque::new();
    for k in 0..unique {
        steps.push(Step {
            note: k,
            duplicate: false,
        });
        // Original k is re-sent when the running count of duplicates steps up at k.
        if (k + 1) * dups / unique > k * dups / unique {
            pending.push_back((k + lag, k));
        }
        while pending.front().is_some_and(|&(due, _)| due <= k) {
            if let Some((_, note)) = pending.pop_front() {
                steps.push(Step {
                    note,
                    duplicate: true,
                });
            }
        }
    }
    steps.extend(pending.into_iter().map(|(_, note)| Step {
        note,
        duplicate: true,
    }));
    steps
}

// ---------------------------------------------------------------------------------------------
// Load.

enum Load {
    Notify {
        url: Url,
        notes: Arc<Vec<Prepared>>,
        steps: Arc<Vec<Step>>,
    },
    /// As many requests as `time` allows.
    Healthz { url: Url, time: Duration },
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    /// Microseconds per answered request, and whether it was a duplicate.
    latencies: Vec<(u32, bool)>,
    errors: usize,
    stale: usize,
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

async fn connection(
    client: Client,
    load: Arc<Load>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> Seen {
    let mut seen = Seen {
        latencies: Vec::with_capacity(4_096),
        ..Seen::default()
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let (request, expected, duplicate) = match &*load {
            Load::Notify { url, notes, steps } => {
                let Some(step) = steps.get(i) else { break };
                let Some(note) = notes.get(step.note) else {
                    seen.fail(format!("no notification {}", step.note));
                    break;
                };
                if Utc::now().timestamp() - note.timestamp > FRESH_SECONDS {
                    seen.stale += 1;
                    continue;
                }
                let req = client
                    .post(url.clone())
                    .headers(note.headers.clone())
                    .body(note.body.clone());
                (req, StatusCode::NO_CONTENT, step.duplicate)
            }
            Load::Healthz { url, .. } => {
                if Instant::now() >= deadline {
                    break;
                }
                (client.get(url.clone()), StatusCode::OK, false)
            }
        };
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
            Ok((status, body)) if status == expected => {
                let empty_as_expected = (expected == StatusCode::NO_CONTENT) == body.is_empty();
                if empty_as_expected {
                    seen.latencies.push((took, duplicate));
                } else {
                    seen.fail(format!("{status} with a body of {} bytes", body.len()));
                }
            }
            Ok((status, body)) => seen.fail(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )),
            Err(e) => seen.fail(format!("request failed: {e}")),
        }
    }
    seen
}

/// CPU readings of this process, its client threads and the PostgreSQL server's processes.
struct CpuSample {
    own: Option<Sample>,
    postgres: Option<u64>,
}

impl CpuSample {
    fn take(threads: &ClientThreads) -> Self {
        Self {
            own: threads.sample(),
            postgres: postgres_ticks(),
        }
    }
}

/// User plus system ticks of every process named `postgres` (the local server's backends and
/// background processes), from `/proc`.
fn postgres_ticks() -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let mut fields = rest.split_whitespace().skip(11);
        let utime: u64 = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    Some(total)
}

/// Microseconds of CPU between two readings: minigate (this process minus the client), the
/// client, PostgreSQL.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: u64,
    client: u64,
    postgres: u64,
}

fn cpu_between(before: &CpuSample, after: &CpuSample) -> Option<Cpu> {
    let (b, a) = (before.own?, after.own?);
    Some(Cpu {
        server: b.server_micros_until(a),
        client: b.client_micros_until(a),
        postgres: after.postgres?.saturating_sub(before.postgres?) * 10_000,
    })
}

/// One timed run.
struct Run {
    requests: usize,
    duplicates: usize,
    elapsed: Duration,
    latencies: Vec<(u32, bool)>,
    cpu: Option<Cpu>,
}

impl Run {
    fn per_second(&self) -> f64 {
        count_f64(self.requests) / self.elapsed.as_secs_f64()
    }

    fn credits_per_second(&self) -> f64 {
        count_f64(self.requests - self.duplicates) / self.elapsed.as_secs_f64()
    }
}

async fn drive(
    client: &Client,
    load: Load,
    connections: usize,
    threads: &ClientThreads,
) -> anyhow::Result<Run> {
    let load = Arc::new(load);
    let next = Arc::new(AtomicUsize::new(0));
    let before = CpuSample::take(threads);
    let started = Instant::now();
    let deadline = match &*load {
        Load::Healthz { time, .. } => started + *time,
        Load::Notify { .. } => started + Duration::from_secs(24 * 3600),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection(
            client.clone(),
            Arc::clone(&load),
            Arc::clone(&next),
            deadline,
        ));
    }
    let mut all = Seen::default();
    while let Some(done) = tasks.join_next().await {
        let seen = done.context("a load connection panicked")?;
        all.latencies.extend(seen.latencies);
        all.errors += seen.errors;
        all.stale += seen.stale;
        if all.first_error.is_none() {
            all.first_error = seen.first_error;
        }
    }
    let elapsed = started.elapsed();
    let after = CpuSample::take(threads);
    if all.stale > 0 {
        bail!(
            "{} notifications were older than {FRESH_SECONDS} s when their turn came (WeChat Pay \
             signs within 5 minutes); run fewer --orders per round",
            all.stale
        );
    }
    if all.errors > 0 {
        bail!(
            "{} of {} answers were wrong; the first: {}",
            all.errors,
            all.errors + all.latencies.len(),
            all.first_error.unwrap_or_default()
        );
    }
    let duplicates = all.latencies.iter().filter(|(_, d)| *d).count();
    Ok(Run {
        requests: all.latencies.len(),
        duplicates,
        elapsed,
        latencies: all.latencies,
        cpu: cpu_between(&before, &after),
    })
}

/// Waits until the outbox dispatcher has published every event; returns how long that took.
/// The check reads the outbox's partial index of events waiting for a number and the publish
/// cursor against the newest id, so polling it costs the dispatcher next to nothing.
async fn drained(pool: &PgPool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let waiting: bool = sqlx::query_scalar(
            "select exists (select 1 from outbox_event where seq is null)
                 or (select published_seq from outbox_cursor where id = 1)
                    < coalesce((select max(seq) from outbox_event), 0)",
        )
        .fetch_one(pool)
        .await?;
        if !waiting {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("events still unpublished 120 s after the round");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn http_client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

struct Round {
    notify: Run,
    healthz: Run,
    build: Duration,
    drain: Duration,
}

struct Results {
    backend: String,
    pool_size: u32,
    server_threads: usize,
    rounds: Vec<Round>,
    /// Every notification sent once (warm-up included).
    unique_sent: usize,
    check: Check,
}

fn measure(
    args: &Args,
    cores: usize,
    setup: &Setup,
    rt: &tokio::runtime::Runtime,
    threads: &ClientThreads,
) -> anyhow::Result<Results> {
    let wechat = WechatPay::new(&setup.wxpay)?;
    let notify_url: Url = format!("http://{}/pay/wechat/notify", setup.addr).parse()?;
    let healthz_url: Url = format!("http://{}/healthz", setup.addr).parse()?;
    let notify_client = http_client(args.connections)?;
    let healthz_client = http_client(args.connections)?;
    let mut unique_sent = 0;
    let mut rounds = Vec::with_capacity(args.rounds);
    for set in 0..=args.rounds {
        let orders = setup.sets.get(set).context("a set of orders is missing")?;
        let started = Instant::now();
        let notes = build_set(&wechat, orders, set, cores)?;
        let build = started.elapsed();
        let steps = sequence(notes.len(), args.duplicates, args.duplicate_lag);
        let label = if set == 0 {
            "warm-up".to_owned()
        } else {
            format!("round {set}/{}", args.rounds)
        };
        eprintln!(
            "{label}: built and signed {} notifications in {:.1} s; {} requests",
            notes.len(),
            build.as_secs_f64(),
            steps.len()
        );
        let notify = Load::Notify {
            url: notify_url.clone(),
            notes: Arc::new(notes),
            steps: Arc::new(steps),
        };
        let healthz = Load::Healthz {
            url: healthz_url.clone(),
            time: Duration::from_secs(if set == 0 { 1 } else { args.healthz_seconds }),
        };
        let pool = setup.pool.clone();
        let healthz_first = set % 2 == 0;
        let (notify, healthz, drain) = rt.block_on(async {
            // Dirty pages of the previous round are written now, not during this one (needs a
            // superuser; without it checkpoints run on their own schedule).
            let _ = sqlx::query("checkpoint").execute(&pool).await;
            let mut healthz = Some(healthz);
            let mut health = None;
            if healthz_first && let Some(load) = healthz.take() {
                health = Some(drive(&healthz_client, load, args.connections, threads).await?);
            }
            let notify = drive(&notify_client, notify, args.connections, threads)
                .await
                .with_context(|| format!("{label}, POST /pay/wechat/notify"))?;
            let drain = drained(&pool).await?;
            if let Some(load) = healthz.take() {
                health = Some(drive(&healthz_client, load, args.connections, threads).await?);
            }
            let health = health.context("the healthz baseline did not run")?;
            anyhow::Ok((notify, health, drain))
        })?;
        unique_sent += notify.requests - notify.duplicates;
        eprintln!(
            "{label}: {:.0} notifications/s ({:.0} credits/s), /healthz {:.0} req/s; outbox \
             drained {} ms after the last answer",
            notify.per_second(),
            notify.credits_per_second(),
            healthz.per_second(),
            drain.as_millis()
        );
        if set == 0 {
            // Statistics as a running system has them: every table holds rows by now. Taken
            // while the outbox, ledger and notification tables were still empty, they make
            // PostgreSQL cache sequential-scan plans for single-row updates of those tables.
            rt.block_on(sqlx::query("analyze").execute(&setup.pool))?;
        } else {
            rounds.push(Round {
                notify,
                healthz,
                build,
                drain,
            });
        }
    }
    Ok(Results {
        backend: setup.backend.clone(),
        pool_size: setup.pool_size,
        server_threads: 0,
        rounds,
        unique_sent,
        check: Check::default(),
    })
}

// ---------------------------------------------------------------------------------------------
// The database afterwards.

#[derive(Default)]
struct Check {
    passed: bool,
    text: String,
}

async fn check(pool: &PgPool, unique: usize) -> anyhow::Result<Check> {
    let count = |sql: &'static str| async move {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
        anyhow::Ok(n)
    };
    let expected = i64::try_from(unique)?;
    let ledger = count("select count(*) from ledger_entry").await?;
    let paid = count("select count(*) from payment_order where status = 'PAID'").await?;
    let unpaid = count("select count(*) from payment_order where status <> 'PAID'").await?;
    let notifications = count("select count(*) from payment_notification").await?;
    let credited =
        count("select count(*) from payment_notification where outcome = 'CREDITED'").await?;
    let not_once = count(
        "select count(*) from payment_order o where (select count(*) from ledger_entry l
         where l.order_id = o.id) <> 1",
    )
    .await?;
    let bills = count("select count(*) from bill where status = 'PAID'").await?;
    let flags = count("select count(*) from payment_flag").await?;
    let passed = ledger == expected
        && paid == expected
        && unpaid == 0
        && notifications == expected
        && credited == expected
        && not_once == 0
        && bills == expected
        && flags == 0;
    let text = format!(
        "{unique} distinct notifications sent (warm-up included): ledger_entry {ledger}, \
         payment_order PAID {paid} (other {unpaid}), payment_notification {notifications} \
         ({credited} CREDITED), bills PAID {bills}, orders without exactly one ledger entry \
         {not_once}, payment_flag {flags}: {}",
        if passed { "passed" } else { "FAILED" }
    );
    eprintln!("database check: {text}");
    Ok(Check { passed, text })
}

// ---------------------------------------------------------------------------------------------
// The report.

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "–".to_owned(),
        |u| format!("{:.2}", f64::from(u) / 1000.0),
    )
}

fn sorted(runs: &[&Run], keep: impl Fn(bool) -> bool) -> Vec<u32> {
    let mut v: Vec<u32> = runs
        .iter()
        .flat_map(|r| r.latencies.iter())
        .filter(|(_, d)| keep(*d))
        .map(|(us, _)| *us)
        .collect();
    v.sort_unstable();
    v
}

fn per_request(runs: &[&Run], pick: impl Fn(&Cpu) -> u64) -> String {
    let mut total = 0;
    for r in runs {
        match &r.cpu {
            Some(c) => total += pick(c),
            None => return "–".to_owned(),
        }
    }
    let n: usize = runs.iter().map(|r| r.requests).sum();
    if n == 0 {
        return "–".to_owned();
    }
    format!("{:.0}", u64_f64(total) / count_f64(n))
}

fn each(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(args: &Args, cores: usize, r: &Results, problems: &[String]) -> String {
    let mut s = String::new();
    let date = Utc::now().format("%Y-%m-%d %H:%M UTC");
    let model = cpu::cpu_model().map_or_else(String::new, |m| format!(", {m}"));
    let per_round = r.rounds.first().map_or(0, |x| x.notify.requests);
    let _ = writeln!(s, "### {}\n", r.backend);
    let _ = writeln!(
        s,
        "{date}; {} {}, {cores} logical cores{model}; {} server worker threads, {} pooled database \
         connections; {} keep-alive connections; rounds: {}, each of {} orders ({per_round} requests, \
         {} % duplicates, each sent {} notifications after its original), {} orders of warm-up; \
         {} s of `/healthz` per round.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        r.server_threads,
        r.pool_size,
        args.connections,
        args.rounds,
        args.orders,
        args.duplicates,
        args.duplicate_lag,
        args.warmup_orders,
        args.healthz_seconds,
    );
    let notify: Vec<&Run> = r.rounds.iter().map(|x| &x.notify).collect();
    let healthz: Vec<&Run> = r.rounds.iter().map(|x| &x.healthz).collect();
    let notify_rates: Vec<f64> = notify.iter().map(|x| x.per_second()).collect();
    let credit_rates: Vec<f64> = notify.iter().map(|x| x.credits_per_second()).collect();
    let healthz_rates: Vec<f64> = healthz.iter().map(|x| x.per_second()).collect();
    let ratios: Vec<f64> = notify_rates
        .iter()
        .zip(&healthz_rates)
        .map(|(n, h)| n / h)
        .collect();
    let _ = writeln!(
        s,
        "| request | req/s (median) | credits/s (median) | ÷ `/healthz` req/s, median of rounds (each round) | p50 ms | p99 ms | max ms | minigate CPU µs/req | PostgreSQL CPU µs/req | client CPU µs/req |"
    );
    let _ = writeln!(s, "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|");
    let all = sorted(&notify, |_| true);
    let _ = writeln!(
        s,
        "| `POST /pay/wechat/notify`, all | {:.0} | {:.0} | **{:.2}** ({}) | {} | {} | {} | {} | {} | {} |",
        median(&notify_rates),
        median(&credit_rates),
        median(&ratios),
        each(&ratios, 2),
        ms(percentile(&all, 500)),
        ms(percentile(&all, 990)),
        ms(all.last().copied()),
        per_request(&notify, |c| c.server),
        per_request(&notify, |c| c.postgres),
        per_request(&notify, |c| c.client),
    );
    for (label, dup) in [("first deliveries", false), ("duplicates", true)] {
        let v = sorted(&notify, |d| d == dup);
        let _ = writeln!(
            s,
            "| … {label} ({}) | | | | {} | {} | {} | | | |",
            v.len(),
            ms(percentile(&v, 500)),
            ms(percentile(&v, 990)),
            ms(v.last().copied()),
        );
    }
    let h = sorted(&healthz, |_| true);
    let _ = writeln!(
        s,
        "| `GET /healthz`, same server | {:.0} | – | 1 | {} | {} | {} | {} | {} | {} |",
        median(&healthz_rates),
        ms(percentile(&h, 500)),
        ms(percentile(&h, 990)),
        ms(h.last().copied()),
        per_request(&healthz, |c| c.server),
        per_request(&healthz, |c| c.postgres),
        per_request(&healthz, |c| c.client),
    );
    let builds: Vec<f64> = r.rounds.iter().map(|x| x.build.as_secs_f64()).collect();
    let drains: Vec<f64> = r
        .rounds
        .iter()
        .map(|x| x.drain.as_secs_f64() * 1000.0)
        .collect();
    let _ = writeln!(
        s,
        "\nPer round — notifications/s: {}; credits/s: {}; `/healthz` req/s: {}.",
        each(&notify_rates, 0),
        each(&credit_rates, 0),
        each(&healthz_rates, 0),
    );
    let _ = writeln!(
        s,
        "Building and signing each round's notifications (untimed, on {cores} threads): {} s. \
         Outbox drained after each round's last answer: {} ms.",
        each(&builds, 1),
        each(&drains, 0),
    );
    let _ = writeln!(s, "Database check: {}.", r.check.text);
    for p in problems {
        let _ = writeln!(s, "Shutdown: {p}.");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merchant::MERCHANT_SERIAL;

    #[test]
    fn a_fifth_are_duplicates_each_after_its_original() {
        let steps = sequence(1_000, 20, 100);
        let dups: Vec<&Step> = steps.iter().filter(|s| s.duplicate).collect();
        assert_eq!(steps.len(), 1_250);
        assert_eq!(dups.len(), 250);
        let mut seen = std::collections::HashSet::new();
        for s in &steps {
            if s.duplicate {
                assert!(seen.contains(&s.note));
            } else {
                assert!(seen.insert(s.note));
            }
        }
        assert_eq!(seen.len(), 1_000);
    }

    #[test]
    fn minigate_opens_the_notifications() {
        let wxpay = RsaPem::generate();
        let merchant_key = RsaPem::generate();
        let w = WechatPay::new(&wxpay).unwrap();
        let n = w.notification("NB0100000001", 7).unwrap();
        let m = minigate_payments::WechatMerchant::new(
            minigate_store::Id::new(),
            MCH_ID,
            APP_ID,
            &minigate_payments::WechatKeys {
                merchant_serial: MERCHANT_SERIAL,
                private_key_pem: &merchant_key.private_pem,
                apiv3_key: APIV3_KEY,
                public_key: Some((PUB_KEY_ID, &wxpay.public_pem)),
                platform_certificates: None,
            },
        )
        .unwrap();
        let headers: Vec<(String, String)> = n
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let opened = minigate_payments::wechat::notify::open(
            &m,
            &headers,
            n.body.as_bytes(),
            Some(Utc::now().timestamp()),
        )
        .unwrap();
        assert_eq!(opened.event_type, "TRANSACTION.SUCCESS");
        assert_eq!(opened.merchant_id, MCH_ID);
        assert_eq!(opened.app_id, APP_ID);
        assert_eq!(opened.trade.out_trade_no, "NB0100000001");
        assert_eq!(opened.trade.amount_fen, Some(AMOUNT_FEN));
    }
}
