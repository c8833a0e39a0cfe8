//! Reconciliation benchmark: one pass of `minigate_resolvers::reconcile::reconcile` over a
//! WeChat Pay trade bill of `--rows` payments (100,000 by default) on PostgreSQL, timed, with
//! the process's resident memory sampled during the pass.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin reconcile -- --database-url postgres://…
//!     [--rows 100000] [--small-rows 10000] [--rounds 3] [--out FILE]
//! ```
//!
//! A fresh PostgreSQL database (dropped afterwards) gets one tenant whose WeChat Pay merchant
//! (public-key mode, keys generated for the run, stored as files) points at a fake WeChat Pay.
//! Three business days (Asia/Shanghai) are seeded, locally with plain SQL and at the fake with
//! its seeding knobs: yesterday with `--rows` payments, the day before with `--small-rows`
//! (the same measurement at a tenth of the size, to see whether memory follows the bill), and
//! the day before that with a few hundred, whose pass takes the one-time costs (merchant keys,
//! connections, prepared statements) before anything is measured. Each day has about 1 %
//! refunds on both sides and the same handful of deliberate differences, so every pass does
//! real matching work and must find exactly them.
//!
//! The fake runs in a child process (this binary with `--fake-wechat-pay`): it makes the bill
//! file again for every `tradebill` request and keeps each one it hands out, so in this process
//! it would add about the bill's size to the memory measured during every pass.
//!
//! Each day first gets one unmeasured pass (it also repairs the missed callbacks), then every
//! round runs a new pass of the small day and of the large day, as an operator re-running a
//! day does. Each pass is timed from the call to its answer; a background thread reads `VmRSS`
//! every 10 ms meanwhile, and the report gives the peak minus the reading just before the call.

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
#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../stats.rs"]
mod stats;

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use clap::Parser;
use minigate_fakes::{
    keys::RsaPem,
    wechat_pay::{FakeWechatPay, RefundStatus, WechatPayMerchant, WechatPaySigner},
};
use minigate_gateway::{app, config::Config};
use minigate_payments::{bill::WechatBill, notification::Provider};
use minigate_resolvers::{
    Deps,
    reconcile::{Stage, compare::expected_fee_fen, day_bounds, db::RunRow, reconcile},
};
use minigate_store::{Db, Id, testing::TestDb};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    merchant::{APIV3_KEY, APP_ID, JWT_SECRET, MCH_ID, MERCHANT_SERIAL, PUB_KEY_ID},
    stats::{count_f64, median, u64_f64},
};

#[derive(Parser, Debug)]
#[command(
    name = "reconcile",
    about = "Reconciling a WeChat Pay trade bill against PostgreSQL: time and memory of a pass"
)]
struct Args {
    /// A PostgreSQL server (`postgres://user@host:port/db`) to create a fresh database on.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Payments in the bill of the large day (yesterday, Beijing time).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Payments in the bill of the small day (the day before), the comparison for memory.
    #[arg(long, default_value_t = 10_000)]
    small_rows: usize,
    /// Timed passes of each day, after one unmeasured pass of each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: serve the fake WeChat Pay for a parent benchmark, seeded over stdin.
    #[arg(long, hide = true)]
    fake_wechat_pay: bool,
}

/// The fee rate of the merchant, the same at the fake (its default) and here (the column's).
const FEE_RATE_BP: i64 = 60;
/// Payments of the day that takes the one-time costs.
const INIT_ROWS: usize = 300;
/// Seeding batch size (rows per `insert … select from unnest`).
const BATCH: usize = 5_000;
/// How often the memory sampler reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

// The deliberate differences of every day.
/// Payments in the bill that have no order here: `MISSING_LOCALLY`.
const ONLY_AT_PROVIDER: usize = 5;
/// Orders paid here that the bill lacks: `MISSING_AT_PROVIDER`.
const ONLY_HERE: usize = 3;
/// Orders still `CREATED` here that the bill has paid (a callback that never came): the pass
/// queries the fake and credits them, a repaired `MISSING_LOCALLY`. Only the first pass of a
/// day finds them unpaid.
const MISSED_CALLBACKS: usize = 2;
/// Payments whose amount in the bill is 1 yuan more than ours: `AMOUNT_MISMATCH`.
const AMOUNT_DIFFERS: usize = 2;
/// Payments whose fee in the bill is 1 fen more than the rate gives: `FEE_MISMATCH`.
const FEE_DIFFERS: usize = 1;
/// Refunds done here that the bill lacks: `MISSING_AT_PROVIDER`.
const REFUNDS_ONLY_HERE: usize = 2;
/// One order in this many is half refunded on the same day, on both sides.
const REFUND_EVERY: usize = 100;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.fake_wechat_pay {
        fake_child()
    } else {
        run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reconcile bench failed: {e:#}");
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
    if args.rows < 2 * REFUND_EVERY || args.small_rows < 2 * REFUND_EVERY || args.rounds == 0 {
        bail!(
            "--rows and --small-rows must be at least {}, --rounds at least 1",
            2 * REFUND_EVERY
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("bench-minigate")
        .enable_all()
        .build()?;
    let mut fake = FakeProcess::spawn()?;
    let setup = rt.block_on(Setup::start(url, args, &mut fake))?;
    let measured = measure(args, &rt, &setup, &fake);
    let bill_parse = measured
        .as_ref()
        .ok()
        .map(|_| parse_once(&mut fake, setup.large.date, &setup.dir));
    let fake_rss = fake.rss_kib();
    fake.finish();
    rt.block_on(setup.finish());
    let mut results = measured?;
    results.bill = bill_parse.transpose()?;
    results.fake_rss_end = fake_rss;

    let report = render(args, cores, &results);
    publish::publish(&report, args.out.as_deref())?;
    if !results.problems.is_empty() {
        bail!("wrong results: {}", results.problems.join("; "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The fake WeChat Pay in a child process.

/// What the parent tells the fake, one JSON object per line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ToFake {
    Merchant {
        merchant_public_pem: String,
        wxpay_private_pem: String,
    },
    Paid {
        out_trade_no: String,
        fen: i64,
        /// RFC 3339.
        at: String,
    },
    Refund {
        out_trade_no: String,
        out_refund_no: String,
        fen: i64,
        at: String,
    },
    Fee {
        reference: String,
        millifen: i64,
    },
    Ready {
        /// `YYYY-MM-DD`.
        date: String,
    },
    /// Answer with the count of orders and refunds seeded so far.
    Sync,
    /// Write the bill of `date` (as the download serves it) to `path` and say how long making
    /// it took.
    Dump {
        date: String,
        path: String,
    },
}

/// What the fake answers, one JSON object per line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum FromFake {
    Listening { base_url: String },
    Synced { seeded: u64 },
    Dumped { micros: u64, bytes: u64 },
}

/// `--fake-wechat-pay`: serves the fake until stdin closes, seeding it from stdin.
fn fake_child() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fake-wechat-pay")
        .enable_all()
        .build()?;
    let fake = rt.block_on(FakeWechatPay::start());
    let mut out = std::io::stdout().lock();
    let mut answer = |m: &FromFake| -> anyhow::Result<()> {
        serde_json::to_writer(&mut out, m)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    };
    answer(&FromFake::Listening {
        base_url: fake.base_url.clone(),
    })?;
    let mut seeded: u64 = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match serde_json::from_str::<ToFake>(&line).context("a line from the benchmark")? {
            ToFake::Merchant {
                merchant_public_pem,
                wxpay_private_pem,
            } => fake.add_merchant(WechatPayMerchant {
                mch_id: MCH_ID.into(),
                app_ids: vec![APP_ID.into()],
                merchant_serial: MERCHANT_SERIAL.into(),
                merchant_public_pem,
                apiv3_key: APIV3_KEY.into(),
                signer: WechatPaySigner::PublicKey {
                    id: PUB_KEY_ID.into(),
                    private_pem: wxpay_private_pem,
                },
            }),
            ToFake::Paid {
                out_trade_no,
                fen,
                at,
            } => {
                let at = DateTime::parse_from_rfc3339(&at)?;
                fake.seed_paid_order(MCH_ID, APP_ID, &out_trade_no, fen, at);
                seeded += 1;
            }
            ToFake::Refund {
                out_trade_no,
                out_refund_no,
                fen,
                at,
            } => {
                let at = DateTime::parse_from_rfc3339(&at)?;
                if !fake.seed_refund(
                    MCH_ID,
                    &out_trade_no,
                    &out_refund_no,
                    fen,
                    at,
                    RefundStatus::Success,
                ) {
                    bail!("the fake has no paid order {out_trade_no} to refund");
                }
                seeded += 1;
            }
            ToFake::Fee {
                reference,
                millifen,
            } => fake.set_fee_override(&reference, millifen),
            ToFake::Ready { date } => fake.set_bill_ready(date.parse()?, true),
            ToFake::Sync => answer(&FromFake::Synced { seeded })?,
            ToFake::Dump { date, path } => {
                let started = Instant::now();
                let bytes = fake.trade_bill(MCH_ID, date.parse()?);
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                std::fs::write(&path, &bytes).with_context(|| format!("writing {path}"))?;
                answer(&FromFake::Dumped {
                    micros,
                    bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                })?;
            }
        }
    }
    drop(fake);
    Ok(())
}

/// The child process serving the fake, and the pipes that seed it.
struct FakeProcess {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stdout: BufReader<ChildStdout>,
    base_url: String,
}

impl FakeProcess {
    fn spawn() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this benchmark's binary")?;
        let mut child = Command::new(exe)
            .arg("--fake-wechat-pay")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the fake WeChat Pay")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the fake's pipes are missing");
        };
        let mut fake = Self {
            child,
            stdin: Some(BufWriter::new(stdin)),
            stdout: BufReader::new(stdout),
            base_url: String::new(),
        };
        match fake.read()? {
            FromFake::Listening { base_url } => fake.base_url = base_url,
            _ => bail!("the fake did not say where it listens"),
        }
        Ok(fake)
    }

    fn send(&mut self, m: &ToFake) -> anyhow::Result<()> {
        let w = self.stdin.as_mut().context("the fake's stdin is closed")?;
        serde_json::to_writer(&mut *w, m)?;
        w.write_all(b"\n")?;
        Ok(())
    }

    fn read(&mut self) -> anyhow::Result<FromFake> {
        if let Some(w) = self.stdin.as_mut() {
            w.flush()?;
        }
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the fake WeChat Pay ended");
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Waits until the fake has taken everything sent; returns how much it seeded.
    fn sync(&mut self) -> anyhow::Result<u64> {
        self.send(&ToFake::Sync)?;
        match self.read()? {
            FromFake::Synced { seeded } => Ok(seeded),
            _ => bail!("unexpected answer from the fake"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> Option<u64> {
        cpu::vm_rss(&format!("/proc/{}/status", self.pid()))
    }

    fn cpu_ticks(&self) -> Option<u64> {
        stat_ticks(&format!("/proc/{}/stat", self.pid()))
    }

    /// Closes stdin (the fake ends), then waits for it; kills it if it does not end.
    fn finish(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What a day holds.

/// One business day's bill and orders.
#[derive(Clone, Copy)]
struct Day {
    date: NaiveDate,
    /// Payments in the bill.
    rows: usize,
}

/// What a pass of a day must find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    payments: i64,
    refunds: i64,
    differences: i32,
    repaired: i32,
}

impl Day {
    /// Orders of the bill that are ours too (the rest are only at the provider).
    fn matched(self) -> usize {
        self.rows - ONLY_AT_PROVIDER
    }

    fn expected(self) -> anyhow::Result<Expected> {
        let refunds = (0..self.matched())
            .filter(|i| i % REFUND_EVERY == REFUND_EVERY / 2)
            .count();
        Ok(Expected {
            payments: i64::try_from(self.rows)?,
            refunds: i64::try_from(refunds)?,
            differences: i32::try_from(
                ONLY_AT_PROVIDER + ONLY_HERE + AMOUNT_DIFFERS + FEE_DIFFERS + REFUNDS_ONLY_HERE,
            )?,
            repaired: i32::try_from(MISSED_CALLBACKS)?,
        })
    }
}

/// Where an order is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Here {
    Paid,
    /// `CREATED`: its callback never came.
    Created,
    Absent,
}

struct Order {
    out_trade_no: String,
    fen: i64,
    at: DateTime<Utc>,
    here: Here,
    /// The amount in the bill, or not in the bill.
    at_provider: Option<i64>,
    fee_override_millifen: Option<i64>,
    refund: Option<Refund>,
}

struct Refund {
    out_refund_no: String,
    fen: i64,
    at: DateTime<Utc>,
    at_provider: bool,
}

fn hex32() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The `k`-th order of `day`, in the order they are seeded: the bill's payments spread over
/// the day, then those only here, then those only at the provider.
fn order(day: Day, k: usize) -> anyhow::Result<Order> {
    let (start, end) = day_bounds(day.date);
    let matched = day.matched();
    let rows = i64::try_from(day.rows)?;
    let fen = 100 + i64::try_from(k * 7_919 % 200_000)?;
    let mut o = Order {
        out_trade_no: hex32(),
        fen,
        at: start,
        here: Here::Paid,
        at_provider: Some(fen),
        fee_override_millifen: None,
        refund: None,
    };
    if k >= matched {
        // Extras at noon, a second apart.
        o.at = start + chrono::Duration::seconds(43_200 + i64::try_from(k - matched)?);
        if k < matched + ONLY_HERE {
            o.at_provider = None;
        } else {
            o.here = Here::Absent;
        }
        return Ok(o);
    }
    let at = start + chrono::Duration::seconds(i64::try_from(k)? * 86_390 / rows);
    o.at = at;
    let refund = |at_provider: bool| Refund {
        out_refund_no: hex32(),
        fen: (fen / 2).max(1),
        at: at + (end - at) / 2,
        at_provider,
    };
    let mut i = 0;
    let mut next = |n: usize| {
        let range = i..i + n;
        i += n;
        range.contains(&k)
    };
    if next(MISSED_CALLBACKS) {
        o.here = Here::Created;
    } else if next(AMOUNT_DIFFERS) {
        o.at_provider = Some(fen + 100);
    } else if next(FEE_DIFFERS) {
        o.fee_override_millifen = Some((expected_fee_fen(fen, FEE_RATE_BP) + 1) * 1_000);
    } else if next(REFUNDS_ONLY_HERE) {
        o.refund = Some(refund(false));
    } else if k % REFUND_EVERY == REFUND_EVERY / 2 {
        o.refund = Some(refund(true));
    }
    Ok(o)
}

fn rfc3339(t: DateTime<Utc>, beijing: FixedOffset) -> String {
    t.with_timezone(&beijing)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

// ---------------------------------------------------------------------------------------------
// The database, the merchant and minigate.

struct Setup {
    test_db: TestDb,
    /// The fresh database's name.
    db_name: String,
    admin_url: String,
    pool: PgPool,
    dir: PathBuf,
    backend: String,
    tenant: Id,
    init: Day,
    small: Day,
    large: Day,
    state: Arc<app::State>,
    seeding_seconds: f64,
}

impl Setup {
    async fn start(url: &str, args: &Args, fake: &mut FakeProcess) -> anyhow::Result<Self> {
        let test_db = TestDb::postgres(url)
            .await
            .context("creating a PostgreSQL database")?;
        let Db::Postgres(pool) = &test_db.db else {
            bail!("not a PostgreSQL database");
        };
        let pool = pool.clone();
        let version: String = sqlx::query_scalar("select version()")
            .fetch_one(&pool)
            .await?;
        let tls: bool = sqlx::query_scalar(
            "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
        )
        .fetch_one(&pool)
        .await?;
        let backend = format!(
            "{version} (fresh database on a local server, {})",
            if tls {
                "TLS on the database connections"
            } else {
                "no TLS on the database connections"
            }
        );
        let dir = std::env::temp_dir().join(format!(
            "minigate-bench-reconcile-{}",
            Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        let beijing = FixedOffset::east_opt(8 * 3600).context("UTC+8")?;
        let today = Utc::now().with_timezone(&beijing).date_naive();
        let before = |d: NaiveDate| d.pred_opt().context("a day before");
        let large = Day {
            date: before(today)?,
            rows: args.rows,
        };
        let small = Day {
            date: before(large.date)?,
            rows: args.small_rows,
        };
        let init = Day {
            date: before(small.date)?,
            rows: INIT_ROWS,
        };

        eprintln!("seeding {backend}…");
        let started = Instant::now();
        let wxpay = RsaPem::generate();
        let merchant_key = RsaPem::generate();
        fake.send(&ToFake::Merchant {
            merchant_public_pem: merchant_key.public_pem.clone(),
            wxpay_private_pem: wxpay.private_pem.clone(),
        })?;
        let tenant = merchant(&test_db.db, &dir, &wxpay, &merchant_key).await?;
        let mut expected_at_fake: u64 = 0;
        for day in [init, small, large] {
            expected_at_fake += seed_day(&pool, fake, tenant, day, beijing).await?;
            fake.send(&ToFake::Ready {
                date: day.date.to_string(),
            })?;
        }
        let seeded = fake.sync()?;
        if seeded != expected_at_fake {
            bail!("the fake seeded {seeded} orders and refunds, {expected_at_fake} were sent");
        }
        // Statistics as autovacuum would have them for tables of this size.
        sqlx::query("analyze").execute(&pool).await?;
        let seeding_seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "seeded {} + {} + {} payments in {seeding_seconds:.1} s (fake at {})",
            init.rows, small.rows, large.rows, fake.base_url
        );

        let mut config = Config {
            database_url: test_db.url(),
            data_dir: dir.join("data"),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            ..Config::default()
        };
        config.payments.simulator = Some(false);
        config.payments.wechat_base = Some(fake.base_url.clone());
        config.payments.alipay_gateway = Some("http://127.0.0.1:9/gateway.do".to_owned());
        // Nothing but the reconciliation calls a provider.
        config.payments.first_query_seconds = 365 * 24 * 3600;
        let state = app::build(config).await.context("building minigate")?;
        let db_name = database_name(&test_db.url());
        Ok(Self {
            test_db,
            db_name,
            admin_url: url.to_owned(),
            pool,
            dir,
            backend,
            tenant,
            init,
            small,
            large,
            state,
            seeding_seconds,
        })
    }

    fn deps(&self) -> &Deps {
        &self.state.deps
    }

    /// Closes the pools, drops the database, removes the key files.
    async fn finish(self) {
        let name = self.db_name.clone();
        self.state.db.close().await;
        self.pool.close().await;
        drop(self.state);
        if name.starts_with("minigate_test_")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && let Ok(Db::Postgres(admin)) =
                Db::connect_lazy(&self.admin_url, &minigate_store::DbOptions::default())
        {
            let drop = format!("drop database if exists {name} with (force)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await {
                eprintln!("could not drop {name}: {e}");
            }
            admin.close().await;
        }
        drop(self.test_db);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database of a PostgreSQL URL.
fn database_name(url: &str) -> String {
    url.split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// The tenant and its WeChat Pay merchant, whose agreed fee rate must be the fake's.
async fn merchant(
    db: &Db,
    dir: &Path,
    wxpay: &RsaPem,
    merchant_key: &RsaPem,
) -> anyhow::Result<Id> {
    let tenant = merchant::wechat_pay_tenant(db, dir, wxpay, merchant_key).await?;
    let rate: i32 =
        sqlx::query_scalar("select fee_rate_bp from tenant_wechat_pay where tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(match db {
                Db::Postgres(p) => p,
                Db::Sqlite(..) => bail!("not PostgreSQL"),
            })
            .await?;
    if i64::from(rate) != FEE_RATE_BP {
        bail!("the merchant's fee rate is {rate} bp, the fake charges {FEE_RATE_BP}");
    }
    Ok(tenant)
}

/// Seeds `day` here (bills, orders, refunds, in batches) and at the fake; returns how many
/// orders and refunds the fake was sent.
async fn seed_day(
    pool: &PgPool,
    fake: &mut FakeProcess,
    tenant: Id,
    day: Day,
    beijing: FixedOffset,
) -> anyhow::Result<u64> {
    let total = day.matched() + ONLY_HERE + ONLY_AT_PROVIDER;
    let mut at_fake: u64 = 0;
    let mut start = 0;
    while start < total {
        let end = (start + BATCH).min(total);
        let orders = (start..end)
            .map(|k| order(day, k))
            .collect::<anyhow::Result<Vec<Order>>>()?;
        let mut b = Batch::default();
        for o in &orders {
            if o.here != Here::Absent {
                b.push(o);
            }
            if let Some(fen) = o.at_provider {
                fake.send(&ToFake::Paid {
                    out_trade_no: o.out_trade_no.clone(),
                    fen,
                    at: rfc3339(o.at, beijing),
                })?;
                at_fake += 1;
            }
            if let Some(millifen) = o.fee_override_millifen {
                fake.send(&ToFake::Fee {
                    reference: o.out_trade_no.clone(),
                    millifen,
                })?;
            }
            if let Some(r) = o.refund.as_ref().filter(|r| r.at_provider) {
                fake.send(&ToFake::Refund {
                    out_trade_no: o.out_trade_no.clone(),
                    out_refund_no: r.out_refund_no.clone(),
                    fen: r.fen,
                    at: rfc3339(r.at, beijing),
                })?;
                at_fake += 1;
            }
        }
        b.insert(pool, tenant, day.date).await?;
        start = end;
    }
    Ok(at_fake)
}

/// One batch of rows for `insert … select from unnest`.
#[derive(Default)]
struct Batch {
    bills: Vec<Uuid>,
    orders: Vec<Uuid>,
    nos: Vec<String>,
    fen: Vec<i64>,
    paid: Vec<bool>,
    at: Vec<DateTime<Utc>>,
    refunded: Vec<i64>,
    refund_ids: Vec<Uuid>,
    refund_orders: Vec<Uuid>,
    refund_bills: Vec<Uuid>,
    refund_nos: Vec<String>,
    refund_fen: Vec<i64>,
    refund_at: Vec<DateTime<Utc>>,
}

impl Batch {
    fn push(&mut self, o: &Order) {
        let (bill, order) = (Uuid::now_v7(), Uuid::now_v7());
        self.bills.push(bill);
        self.orders.push(order);
        self.nos.push(o.out_trade_no.clone());
        self.fen.push(o.fen);
        self.paid.push(o.here == Here::Paid);
        self.at.push(o.at);
        self.refunded.push(o.refund.as_ref().map_or(0, |r| r.fen));
        if let Some(r) = &o.refund {
            self.refund_ids.push(Uuid::now_v7());
            self.refund_orders.push(order);
            self.refund_bills.push(bill);
            self.refund_nos.push(r.out_refund_no.clone());
            self.refund_fen.push(r.fen);
            self.refund_at.push(r.at);
        }
    }

    async fn insert(&self, pool: &PgPool, tenant: Id, due: NaiveDate) -> anyhow::Result<()> {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into bill (id, tenant_id, payer_name, kind, title, amount_fen, due_date, status,
                 paid_at)
             select b, $1, 'Bench driver ' || left(n, 8), 'rent', 'Rent', a, $2,
                 case when p then 'PAID' else 'OPEN' end, case when p then t end
             from unnest($3::uuid[], $4::text[], $5::int8[], $6::bool[], $7::timestamptz[])
                 as x(b, n, a, p, t)",
        )
        .bind(tenant.0)
        .bind(due)
        .bind(&self.bills)
        .bind(&self.nos)
        .bind(&self.fen)
        .bind(&self.paid)
        .bind(&self.at)
        .execute(&mut *tx)
        .await
        .context("inserting bills")?;
        sqlx::query(
            "insert into payment_order (id, tenant_id, bill_id, provider, channel, out_trade_no,
                 merchant_id, app_id, amount_fen, description, status, paid_fen, paid_at,
                 refunded_fen, expires_at, next_query_at)
             select o, $1, b, 'wechat', 'WECHAT_JSAPI', n, $2, $3, a, 'Rent',
                 case when not p then 'CREATED' when r > 0 then 'PARTIALLY_REFUNDED' else 'PAID' end,
                 case when p then a end, case when p then t end, r,
                 case when p then t + interval '30 minutes' else now() + interval '1 day' end,
                 now() + interval '1 day'
             from unnest($4::uuid[], $5::uuid[], $6::text[], $7::int8[], $8::bool[],
                 $9::timestamptz[], $10::int8[]) as x(o, b, n, a, p, t, r)",
        )
        .bind(tenant.0)
        .bind(MCH_ID)
        .bind(APP_ID)
        .bind(&self.orders)
        .bind(&self.bills)
        .bind(&self.nos)
        .bind(&self.fen)
        .bind(&self.paid)
        .bind(&self.at)
        .bind(&self.refunded)
        .execute(&mut *tx)
        .await
        .context("inserting payment orders")?;
        sqlx::query(
            "insert into payment_refund (id, tenant_id, order_id, bill_id, provider, out_refund_no,
                 amount_fen, reason, status, accepted_at, succeeded_at)
             select i, $1, o, b, 'wechat', n, a, 'Bench refund', 'SUCCESS', t, t
             from unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::int8[],
                 $7::timestamptz[]) as x(i, o, b, n, a, t)",
        )
        .bind(tenant.0)
        .bind(&self.refund_ids)
        .bind(&self.refund_orders)
        .bind(&self.refund_bills)
        .bind(&self.refund_nos)
        .bind(&self.refund_fen)
        .bind(&self.refund_at)
        .execute(&mut *tx)
        .await
        .context("inserting refunds")?;
        tx.commit().await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring a pass.

/// User plus system clock ticks of a `/proc/…/stat` file.
fn stat_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    ticks_of_stat(&stat)
}

fn ticks_of_stat(stat: &str) -> Option<u64> {
    // After the parenthesised command name: state is field 3, utime 14 and stime 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks of the PostgreSQL server's processes that work for database `db`: its
/// backends and autovacuum workers (their titles name it), and the server's own processes (WAL
/// writer, checkpointer, …); backends of other databases are left out.
fn postgres_ticks(db: &str) -> Option<u64> {
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
        if !stat
            .split_once(" (")
            .is_some_and(|(_, rest)| rest.starts_with("postgres)"))
        {
            continue;
        }
        let title = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&title);
        let someone_elses = title.contains('(')
            || title.contains("[local]")
            || title.contains("autovacuum worker")
            || title.contains("parallel worker");
        if title.contains(db) || !someone_elses {
            total += ticks_of_stat(&stat).unwrap_or(0);
        }
    }
    Some(total)
}

/// CPU ticks of this process, PostgreSQL and the fake.
#[derive(Clone, Copy)]
struct Ticks {
    minigate: Option<u64>,
    postgres: Option<u64>,
    fake: Option<u64>,
}

impl Ticks {
    fn now(fake: &FakeProcess, db: &str) -> Self {
        Self {
            minigate: stat_ticks("/proc/self/stat"),
            postgres: postgres_ticks(db),
            fake: fake.cpu_ticks(),
        }
    }

    /// Seconds of CPU from `self` to `later`, (minigate, PostgreSQL, fake).
    fn until(self, later: Ticks) -> [Option<f64>; 3] {
        // USER_HZ is 100 on every Linux architecture in use.
        let delta = |a: Option<u64>, b: Option<u64>| Some(u64_f64(b?.saturating_sub(a?)) / 100.0);
        [
            delta(self.minigate, later.minigate),
            delta(self.postgres, later.postgres),
            delta(self.fake, later.fake),
        ]
    }
}

/// Reads `VmRSS` every [`SAMPLE_EVERY`] on a thread of its own until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
}

impl Sampler {
    fn start() -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let (mut peak, mut samples) = (0, 0);
                loop {
                    if let Some(rss) = cpu::rss_kib() {
                        peak = peak.max(rss);
                        samples += 1;
                    }
                    if flag.load(Ordering::Relaxed) {
                        return (peak, samples);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// The peak `VmRSS` seen, in KiB, and the number of readings.
    fn stop(self) -> anyhow::Result<(u64, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the memory sampler panicked"))
    }
}

/// When a pass reached each stage.
#[derive(Default)]
struct Marks {
    downloading: Option<Instant>,
    checked: Option<Instant>,
    finishing: Option<Instant>,
    batches: u64,
}

impl Marks {
    fn note(&mut self, stage: Stage, at: Instant) {
        match stage {
            Stage::Downloading => self.downloading = Some(at),
            Stage::Checked { .. } => self.checked = Some(at),
            Stage::Matching { .. } => self.batches += 1,
            Stage::Finishing => self.finishing = Some(at),
        }
    }
}

/// One pass, measured.
struct Pass {
    seconds: f64,
    /// Call → download starts (job lock, the run's row); download + whole-file check; matching
    /// in batches; finishing (what the bill lacks, the counts), in seconds.
    stages: [Option<f64>; 4],
    batches: u64,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    samples: usize,
    /// CPU seconds: minigate (this process), PostgreSQL, the fake.
    cpu: [Option<f64>; 3],
    run: RunRow,
}

impl Pass {
    fn rss_delta_kib(&self) -> u64 {
        self.rss_peak_kib.saturating_sub(self.rss_before_kib)
    }
}

fn measure_pass(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    fake: &FakeProcess,
    day: Day,
) -> anyhow::Result<Pass> {
    let marks = Mutex::new(Marks::default());
    let progress = |stage: Stage| {
        let now = Instant::now();
        if let Ok(mut m) = marks.lock() {
            m.note(stage, now);
        }
    };
    let sampler = Sampler::start()?;
    let rss_before_kib = cpu::rss_kib().unwrap_or(0);
    let ticks = Ticks::now(fake, &setup.db_name);
    let started = Instant::now();
    let run = rt.block_on(reconcile(
        setup.deps(),
        setup.tenant,
        Provider::Wechat,
        day.date,
        &progress,
    ));
    let ended = Instant::now();
    let cpu = ticks.until(Ticks::now(fake, &setup.db_name));
    let (peak, samples) = sampler.stop()?;
    let rss_after = cpu::rss_kib().unwrap_or(0);
    let run = run.with_context(|| format!("reconciling {}", day.date))?;
    let m = marks
        .into_inner()
        .map_err(|_| anyhow::anyhow!("progress marks poisoned"))?;
    let span = |a: Option<Instant>, b: Option<Instant>| Some(b?.duration_since(a?).as_secs_f64());
    Ok(Pass {
        seconds: ended.duration_since(started).as_secs_f64(),
        stages: [
            span(Some(started), m.downloading),
            span(m.downloading, m.checked),
            span(m.checked, m.finishing),
            span(m.finishing, Some(ended)),
        ],
        batches: m.batches,
        rss_before_kib,
        rss_peak_kib: peak.max(rss_after),
        samples,
        cpu,
        run,
    })
}

/// What a pass should have found, or what is wrong with it.
fn check(pass: &Pass, expected: Expected) -> Option<String> {
    let r = &pass.run;
    let got = Expected {
        payments: r.payment_count,
        refunds: r.refund_count,
        differences: r.difference_count,
        repaired: r.repaired_count,
    };
    if r.status == "DONE" && got == expected {
        return None;
    }
    Some(format!(
        "{} pass {}: status {} ({}), {} payments, {} refunds, {} differences, {} repaired; \
         expected DONE, {} payments, {} refunds, {} differences, {} repaired",
        r.bill_date,
        r.passes,
        r.status,
        r.error_detail.as_deref().unwrap_or(""),
        got.payments,
        got.refunds,
        got.differences,
        got.repaired,
        expected.payments,
        expected.refunds,
        expected.differences,
        expected.repaired
    ))
}

struct Results {
    backend: String,
    seeding_seconds: f64,
    large: Day,
    small: Day,
    expected_large: Expected,
    expected_small: Expected,
    init: Pass,
    first_small: Pass,
    first_large: Pass,
    small_passes: Vec<Pass>,
    large_passes: Vec<Pass>,
    /// Differences by kind after the last pass of the large day.
    kinds: Vec<(String, bool, i64)>,
    problems: Vec<String>,
    rss_start_kib: u64,
    rss_end_kib: u64,
    fake_rss_start: Option<u64>,
    fake_rss_end: Option<u64>,
    bill: Option<BillParse>,
}

fn measure(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    fake: &FakeProcess,
) -> anyhow::Result<Results> {
    let expected_large = setup.large.expected()?;
    let expected_small = setup.small.expected()?;
    let expected_init = setup.init.expected()?;
    let mut problems = Vec::new();
    let rss_start_kib = cpu::rss_kib().unwrap_or(0);
    let fake_rss_start = fake.rss_kib();
    let mut pass = |day: Day, expected: Expected, label: &str| -> anyhow::Result<Pass> {
        let p = measure_pass(rt, setup, fake, day)?;
        eprintln!(
            "{label}: {} rows in {:.2} s, peak RSS +{} KiB over {} KiB ({} samples)",
            day.rows,
            p.seconds,
            p.rss_delta_kib(),
            p.rss_before_kib,
            p.samples
        );
        if let Some(problem) = check(&p, expected) {
            eprintln!("  {problem}");
            problems.push(problem);
        }
        Ok(p)
    };
    let init = pass(setup.init, expected_init, "one-time costs")?;
    let first_small = pass(setup.small, expected_small, "first pass, small day")?;
    let first_large = pass(setup.large, expected_large, "first pass, large day")?;
    let mut small_passes = Vec::with_capacity(args.rounds);
    let mut large_passes = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        small_passes.push(pass(
            setup.small,
            expected_small,
            &format!("round {round}, small day"),
        )?);
        large_passes.push(pass(
            setup.large,
            expected_large,
            &format!("round {round}, large day"),
        )?);
    }
    let kinds = rt.block_on(differences_by_kind(&setup.pool, setup.large.date))?;
    Ok(Results {
        backend: setup.backend.clone(),
        seeding_seconds: setup.seeding_seconds,
        large: setup.large,
        small: setup.small,
        expected_large,
        expected_small,
        init,
        first_small,
        first_large,
        small_passes,
        large_passes,
        kinds,
        problems,
        rss_start_kib,
        rss_end_kib: cpu::rss_kib().unwrap_or(0),
        fake_rss_start,
        fake_rss_end: None,
        bill: None,
    })
}

async fn differences_by_kind(
    pool: &PgPool,
    date: NaiveDate,
) -> anyhow::Result<Vec<(String, bool, i64)>> {
    Ok(sqlx::query_as(
        "select d.kind, d.repaired, count(*) from reconciliation_difference d
         join reconciliation_run r on r.id = d.run_id
         where r.bill_date = $1 group by d.kind, d.repaired order by d.kind, d.repaired",
    )
    .bind(date)
    .fetch_all(pool)
    .await?)
}

/// The large day's bill file, and one read of it by minigate's parser (the pass reads it
/// twice: once whole to check it, once in batches).
struct BillParse {
    bytes: u64,
    render_seconds: f64,
    parse_seconds: f64,
    rows: u64,
}

fn parse_once(fake: &mut FakeProcess, date: NaiveDate, dir: &Path) -> anyhow::Result<BillParse> {
    let path = dir.join("bill.csv");
    fake.send(&ToFake::Dump {
        date: date.to_string(),
        path: path.display().to_string(),
    })?;
    let FromFake::Dumped { micros, bytes } = fake.read()? else {
        bail!("unexpected answer from the fake");
    };
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let started = Instant::now();
    let mut bill = WechatBill::new(BufReader::new(file))?;
    let mut rows: u64 = 0;
    while bill.next_row()?.is_some() {
        rows += 1;
    }
    let parse_seconds = started.elapsed().as_secs_f64();
    bill.totals().context("the bill has no totals")?;
    let _ = std::fs::remove_file(&path);
    Ok(BillParse {
        bytes,
        render_seconds: u64_f64(micros) / 1e6,
        parse_seconds,
        rows,
    })
}

// ---------------------------------------------------------------------------------------------
// The report.

fn mib(kib: u64) -> String {
    format!("{:.1}", u64_f64(kib) / 1024.0)
}

fn each(values: &[f64], digits: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn median_of(passes: &[Pass], pick: impl Fn(&Pass) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = passes.iter().filter_map(pick).collect();
    (v.len() == passes.len() && !v.is_empty()).then(|| median(&v))
}

fn secs(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |s| format!("{s:.digits$}"))
}

fn day_row(s: &mut String, name: &str, e: Expected, first: &Pass, timed: &[Pass]) {
    let seconds: Vec<f64> = timed.iter().map(|p| p.seconds).collect();
    let med = median(&seconds);
    let detail_rows = e.payments + e.refunds;
    let deltas: Vec<f64> = timed.iter().map(|p| u64_f64(p.rss_delta_kib())).collect();
    let delta_text: Vec<String> = timed.iter().map(|p| mib(p.rss_delta_kib())).collect();
    let _ = writeln!(
        s,
        "| {name} | {} + {} | {:.2} | **{med:.2}** ({}) | {:.0} | {} | {} ({}) | {} / {} / {} |",
        thousands(e.payments),
        thousands(e.refunds),
        first.seconds,
        each(&seconds, 2),
        count_f64(usize::try_from(detail_rows).unwrap_or(0)) / med,
        mib(first.rss_delta_kib()),
        format_args!("{:.1}", median(&deltas) / 1024.0),
        delta_text.join(", "),
        secs(median_of(timed, |p| p.cpu[0]), 2),
        secs(median_of(timed, |p| p.cpu[1]), 2),
        secs(median_of(timed, |p| p.cpu[2]), 2),
    );
}

fn render(args: &Args, cores: usize, r: &Results) -> String {
    let mut s = String::new();
    let date = Utc::now().format("%Y-%m-%d %H:%M UTC");
    let model = cpu::cpu_model().map_or_else(String::new, |m| format!(", {m}"));
    let _ = writeln!(s, "### {}\n", r.backend);
    let _ = writeln!(
        s,
        "{date}; {} {}, {cores} logical cores{model}; one tenant, WeChat Pay (fake in a child \
         process). Large day {} ({} payments in the bill), small day {} ({}); 1 unmeasured pass \
         of each, then {} rounds of one pass of each. Seeding took {:.1} s.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        r.large.date,
        thousands(i64::try_from(r.large.rows).unwrap_or(0)),
        r.small.date,
        thousands(i64::try_from(r.small.rows).unwrap_or(0)),
        args.rounds,
        r.seeding_seconds,
    );
    let _ = writeln!(
        s,
        "| bill | payments + refunds | first pass s | s per pass, median (each round) | detail rows/s | peak RSS Δ MiB, first pass | peak RSS Δ MiB, median (each round) | CPU s per pass: minigate / PostgreSQL / fake |"
    );
    let _ = writeln!(s, "|---|--:|--:|---|--:|--:|---|--:|");
    day_row(
        &mut s,
        "large day",
        r.expected_large,
        &r.first_large,
        &r.large_passes,
    );
    day_row(
        &mut s,
        "small day",
        r.expected_small,
        &r.first_small,
        &r.small_passes,
    );

    let large: Vec<f64> = r.large_passes.iter().map(|p| p.seconds).collect();
    let med = median(&large);
    let _ = writeln!(
        s,
        "\n**Target (< 10 s for 100,000 rows): {}** — median {med:.2} s for {} payments.",
        if med < 10.0 { "met" } else { "not met" },
        thousands(i64::try_from(r.large.rows).unwrap_or(0)),
    );
    let (d_large, d_small) = (r.first_large.rss_delta_kib(), r.first_small.rss_delta_kib());
    let ratio = u64_f64(d_large) / u64_f64(d_small.max(1));
    let _ = writeln!(
        s,
        "Memory: the first pass of the large day peaked {} MiB above the RSS before it, the small \
         day's {} MiB (×{ratio:.1} for ×{:.0} the rows); in the timed rounds {} and {} MiB \
         (medians).",
        mib(d_large),
        mib(d_small),
        count_f64(r.large.rows) / count_f64(r.small.rows),
        format_args!(
            "{:.1}",
            median(
                &r.large_passes
                    .iter()
                    .map(|p| u64_f64(p.rss_delta_kib()))
                    .collect::<Vec<_>>()
            ) / 1024.0
        ),
        format_args!(
            "{:.1}",
            median(
                &r.small_passes
                    .iter()
                    .map(|p| u64_f64(p.rss_delta_kib()))
                    .collect::<Vec<_>>()
            ) / 1024.0
        ),
    );

    let _ = writeln!(
        s,
        "\nWhere a pass's time goes (median s of the timed rounds):\n"
    );
    let _ = writeln!(
        s,
        "| bill | start (job lock, run row) | download + whole-file check | matching ({} batches) | finishing (what the bill lacks, counts) |",
        r.large_passes.first().map_or(0, |p| p.batches)
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|");
    for (name, passes) in [
        ("large day", &r.large_passes),
        ("small day", &r.small_passes),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} |",
            secs(median_of(passes, |p| p.stages[0]), 3),
            secs(median_of(passes, |p| p.stages[1]), 2),
            secs(median_of(passes, |p| p.stages[2]), 2),
            secs(median_of(passes, |p| p.stages[3]), 2),
        );
    }
    if let Some(b) = &r.bill {
        let _ = writeln!(
            s,
            "\nThe large day's bill file: {:.1} MB, {} detail rows; the fake makes it in {:.2} s \
             (on every `tradebill` request); minigate's parser reads it once in {:.2} s, \
             and a pass reads it twice.",
            u64_f64(b.bytes) / 1e6,
            thousands(i64::try_from(b.rows).unwrap_or(0)),
            b.render_seconds,
            b.parse_seconds,
        );
    }
    let _ = writeln!(
        s,
        "\nThis process's RSS: {} MiB before the first pass (after a {}-payment pass that took \
         the one-time costs, {:.2} s, +{} MiB), {} MiB at the end. RSS read every {} ms during \
         each pass ({} readings in the median large pass). The fake's RSS (child process, not \
         counted): {} MiB after seeding, {} MiB at the end; it keeps every bill it issued.",
        mib(r.rss_start_kib),
        INIT_ROWS,
        r.init.seconds,
        mib(r.init.rss_delta_kib()),
        mib(r.rss_end_kib),
        SAMPLE_EVERY.as_millis(),
        {
            let mut n: Vec<usize> = r.large_passes.iter().map(|p| p.samples).collect();
            n.sort_unstable();
            n.get(n.len() / 2).copied().unwrap_or(0)
        },
        r.fake_rss_start.map_or_else(|| "–".to_owned(), mib),
        r.fake_rss_end.map_or_else(|| "–".to_owned(), mib),
    );
    let kinds: Vec<String> = r
        .kinds
        .iter()
        .map(|(k, repaired, n)| format!("{k}{} {n}", if *repaired { " (repaired)" } else { "" }))
        .collect();
    let _ = writeln!(
        s,
        "Check of every pass: status DONE, payments and refunds as in the bill ({} + {} large, \
         {} + {} small), {} differences, {} repaired (missed callbacks credited after a query, \
         in each day's first pass): {}. The large day's differences: {}.",
        r.expected_large.payments,
        r.expected_large.refunds,
        r.expected_small.payments,
        r.expected_small.refunds,
        r.expected_large.differences,
        r.expected_large.repaired,
        if r.problems.is_empty() {
            "passed".to_owned()
        } else {
            format!("FAILED ({})", r.problems.join("; "))
        },
        kinds.join(", "),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_has_its_differences_and_one_refund_in_a_hundred() {
        let day = Day {
            date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            rows: 1_000,
        };
        let orders: Vec<Order> = (0..day.matched() + ONLY_HERE + ONLY_AT_PROVIDER)
            .map(|k| order(day, k).unwrap())
            .collect();
        let (start, end) = day_bounds(day.date);
        assert!(orders.iter().all(|o| o.at >= start && o.at < end));
        assert!(
            orders
                .iter()
                .filter_map(|o| o.refund.as_ref())
                .all(|r| r.at >= start && r.at < end)
        );
        let in_bill = orders.iter().filter(|o| o.at_provider.is_some()).count();
        assert_eq!(in_bill, day.rows);
        let absent = orders.iter().filter(|o| o.here == Here::Absent).count();
        assert_eq!(absent, ONLY_AT_PROVIDER);
        let created = orders.iter().filter(|o| o.here == Here::Created).count();
        assert_eq!(created, MISSED_CALLBACKS);
        let refunds_both = orders
            .iter()
            .filter_map(|o| o.refund.as_ref())
            .filter(|r| r.at_provider)
            .count();
        assert_eq!(
            i64::try_from(refunds_both).unwrap(),
            day.expected().unwrap().refunds
        );
        assert_eq!(day.expected().unwrap().differences, 13);
        assert!(
            orders.iter().all(|o| o.out_trade_no.len() == 32
                && o.out_trade_no.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }
}
