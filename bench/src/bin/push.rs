//! Push delivery benchmark on PostgreSQL: messages per second from the outbox to a fake WeChat,
//! and one notice fanned out to every driver of a tenant, end to end.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin push -- --database-url postgres://…
//!     [--messages 30000] [--audience 100000] [--rounds 3] [--out FILE]
//! ```
//!
//! A fresh PostgreSQL database (dropped afterwards) gets one tenant with `--audience` drivers,
//! each signed in with WeChat (a unionid) and following the tenant's official account, and a
//! template-message template for notices. The fake WeChat runs in this process, on this
//! machine's two cores like everything else, and checks the access token, the template's
//! keywords and that the openid follows the account, as WeChat does.
//!
//! * **Throughput**: `--messages` template-message deliveries (reminders, so quiet hours and the
//!   daily cap are checked for each) are written to the outbox, then `--workers` delivery workers
//!   (the service's, with its channel sender) run until none is left. Timed from its first claim to the
//!   last settled row; every round checks that the fake accepted exactly that many messages.
//! * **Fan-out**: one notice to the whole audience through `publishNotice` (GraphQL, as an
//!   operator calls it; the deliveries are written in its transaction), then the same workers
//!   until every recipient's message is settled. Timed from the request to the last row.
//!
//! Each measurement runs `--rounds` times (after a warm-up round of 2,000 messages); the report
//! gives every round and the median.

// The service's schema, executed here, nests deeper than the compiler's default query depth.
#![recursion_limit = "256"]

#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../stats.rs"]
mod stats;

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use anyhow::{Context, bail};
use chrono::{SecondsFormat, Utc};
use clap::Parser;
use minigate_fakes::wechat::FakeWechat;
use minigate_gateway::{app, config::Config};
use minigate_push::delivery::{Worker, WorkerSettings};
use minigate_resolvers::{Role, Viewer, delivery::ChannelSender};
use minigate_store::{Db, Id, testing::TestDb};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use crate::stats::{count_f64, median};

#[derive(Parser, Debug)]
#[command(about = "Push delivery: outbox to fake WeChat, and a notice fanned out to a tenant")]
struct Args {
    /// PostgreSQL server to create the benchmark's database on.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Deliveries per throughput round.
    #[arg(long, default_value_t = 30_000)]
    messages: usize,
    /// Drivers of the tenant: the notice's audience.
    #[arg(long, default_value_t = 100_000)]
    audience: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Rows a worker claims at a time.
    #[arg(long, default_value_t = 500)]
    batch: i64,
    /// Sends a worker has in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Delivery workers in the process, each claiming its own batches (the service runs 2 on
    /// PostgreSQL, each claiming 500 with 64 in flight: the defaults here).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Measure the outbox throughput only.
    #[arg(long)]
    no_fanout: bool,
    /// Append the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const OA: &str = "wxoabench000001";
const OA_SECRET: &str = "bench-official-account-secret";
const TEMPLATE: &str = "bench-notice-template";
const JWT_SECRET: &str = "bench-jwt-secret-bench-jwt-secret-0123456789";

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("push benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Setup {
    test_db: TestDb,
    pool: PgPool,
    dir: PathBuf,
    tenant: Id,
    /// The operator who publishes the notice.
    operator: Id,
    /// Drivers of the tenant.
    audience: usize,
    backend: String,
    fake: FakeWechat,
    state: Arc<app::State>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let setup = Setup::start(&args).await?;
    let result = measure(&args, &setup).await;
    setup.finish(&args.database_url).await;
    let report = result?;
    eprintln!("{report}");
    if let Some(out) = &args.out {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("opening {}", out.display()))?;
        f.write_all(report.as_bytes())?;
    }
    Ok(())
}

async fn measure(args: &Args, s: &Setup) -> anyhow::Result<String> {
    let workers = s.workers(args);
    // Warm-up: connections, prepared statements, the access token, the sender's memo.
    s.throughput_round(&workers, 2_000.min(args.audience))
        .await?;
    let mut throughput = Vec::new();
    for round in 1..=args.rounds {
        let (n, secs) = s.throughput_round(&workers, args.messages).await?;
        let rate = count_f64(n) / secs;
        eprintln!("throughput round {round}: {n} messages in {secs:.2} s = {rate:.0}/s");
        throughput.push((secs, rate));
    }
    let mut fanout = Vec::new();
    for round in (1..=args.rounds).filter(|_| !args.no_fanout) {
        let (publish, total) = s.fanout_round(&workers).await?;
        eprintln!(
            "fan-out round {round}: {} recipients, publish {publish:.2} s, all settled after {total:.2} s",
            args.audience
        );
        fanout.push((publish, total));
    }
    let mut report = format!(
        "\n### {} — {}\n\n{} · {} worker(s), each claiming {} with {} sends in flight · fake WeChat in the same process\n\n",
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        s.backend,
        machine(),
        args.workers,
        args.batch,
        args.concurrency
    );
    report.push_str("| round | throughput: messages | seconds | messages/s | fan-out: publish s | all settled s |\n|---|---|---|---|---|---|\n");
    for (i, (secs, rate)) in throughput.iter().enumerate() {
        let (publish, total) = fanout
            .get(i)
            .map_or(("–".to_owned(), "–".to_owned()), |(p, t)| {
                (format!("{p:.2}"), format!("{t:.2}"))
            });
        report.push_str(&format!(
            "| {} | {} | {secs:.2} | {rate:.0} | {publish} | {total} |\n",
            i + 1,
            args.messages
        ));
    }
    let rates: Vec<f64> = throughput.iter().map(|t| t.1).collect();
    let publishes: Vec<f64> = fanout.iter().map(|f| f.0).collect();
    let totals: Vec<f64> = fanout.iter().map(|f| f.1).collect();
    report.push_str(&format!(
        "| **median** | | | **{:.0}** | **{:.2}** | **{:.2}** |\n\nFan-out audience: {} drivers.\n",
        median(&rates),
        median(&publishes),
        median(&totals),
        args.audience
    ));
    Ok(report)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("{cpu}, {cores} cores")
}

impl Setup {
    async fn start(args: &Args) -> anyhow::Result<Self> {
        let test_db = TestDb::postgres(&args.database_url)
            .await
            .context("creating a PostgreSQL database")?;
        let Db::Postgres(pool) = &test_db.db else {
            bail!("not a PostgreSQL database");
        };
        let pool = pool.clone();
        let version: String = sqlx::query_scalar("show server_version")
            .fetch_one(&pool)
            .await?;
        let tls: bool = sqlx::query_scalar(
            "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
        )
        .fetch_one(&pool)
        .await?;
        let backend = format!(
            "PostgreSQL {version} ({} on the database connections)",
            if tls { "TLS" } else { "no TLS" }
        );
        let dir =
            std::env::temp_dir().join(format!("minigate-bench-push-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let secret_file = dir.join("oa.secret");
        std::fs::write(&secret_file, OA_SECRET)?;

        let fake = FakeWechat::start().await;
        fake.add_app(OA, OA_SECRET);
        fake.add_template(OA, TEMPLATE, &["first", "keyword1"]);
        let started = Instant::now();
        let tenant = Id::new();
        sqlx::query("insert into tenant (id, slug, name) values ($1, 'bench', 'Bench Fleet')")
            .bind(tenant.0)
            .execute(&pool)
            .await?;
        sqlx::query(
            "insert into tenant_app (id, tenant_id, kind, app_id, name, secret_ref)
             values ($1, $2, 'official_account', $3, 'bench account', $4)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant.0)
        .bind(OA)
        .bind(format!("file:{}", secret_file.display()))
        .execute(&pool)
        .await?;
        sqlx::query(
            "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields)
             values ($1, 'NOTICE', 'TEMPLATE', $2, $3, '{\"first\": \"title\", \"keyword1\": \"at\"}')",
        )
        .bind(tenant.0)
        .bind(OA)
        .bind(TEMPLATE)
        .execute(&pool)
        .await?;
        // No quiet hours (the benchmark may run at night in Beijing) and a cap no round reaches:
        // the policy is still read and checked for every message.
        sqlx::query(
            "insert into push_policy (tenant_id, quiet_start_minute, quiet_end_minute, daily_cap)
             values ($1, 0, 0, 1000)",
        )
        .bind(tenant.0)
        .execute(&pool)
        .await?;
        let n = i64::try_from(args.audience)?;
        sqlx::query(
            "insert into app_user (id, tenant_id, role, display_name, wx_unionid)
             select gen_random_uuid(), $1, 'driver', 'driver ' || g, 'union-' || g
             from generate_series(1, $2) g",
        )
        .bind(tenant.0)
        .bind(n)
        .execute(&pool)
        .await?;
        sqlx::query(
            "insert into wechat_follower (app_id, openid, tenant_id, unionid, subscribed, subscribed_at)
             select $1, 'oa-' || g, $2, 'union-' || g, true, now() from generate_series(1, $3) g",
        )
        .bind(OA)
        .bind(tenant.0)
        .bind(n)
        .execute(&pool)
        .await?;
        for g in 1..=args.audience {
            fake.add_follower(OA, &format!("oa-{g}"), Some(&format!("union-{g}")));
        }
        let operator = Id::new();
        sqlx::query(
            "insert into app_user (id, tenant_id, role, display_name) values ($1, $2, 'admin', '运营')",
        )
        .bind(operator.0)
        .bind(tenant.0)
        .execute(&pool)
        .await?;
        sqlx::query("analyze").execute(&pool).await?;
        eprintln!(
            "seeded {} drivers and followers in {:.1} s ({backend})",
            args.audience,
            started.elapsed().as_secs_f64()
        );

        let mut config = Config {
            database_url: test_db.url(),
            data_dir: dir.join("data"),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            ..Config::default()
        };
        config.wechat.api_base = fake.base_url.clone();
        config.payments.simulator = Some(false);
        config.payments.wechat_base = Some("http://127.0.0.1:9".to_owned());
        config.payments.alipay_gateway = Some("http://127.0.0.1:9/gateway.do".to_owned());
        let state = app::build(config).await.context("building minigate")?;
        Ok(Setup {
            test_db,
            pool,
            dir,
            tenant,
            operator,
            audience: args.audience,
            backend,
            fake,
            state,
        })
    }

    /// `--workers` workers sharing one sender, as the service runs them.
    fn workers(&self, args: &Args) -> Vec<Worker> {
        let sender: Arc<ChannelSender> = Arc::new(ChannelSender::new(self.state.deps.clone()));
        (0..args.workers.max(1))
            .map(|i| {
                Worker::new(
                    self.state.db.clone(),
                    format!("bench-{i}"),
                    sender.clone(),
                    WorkerSettings {
                        batch: args.batch,
                        concurrency: args.concurrency,
                        ..WorkerSettings::default()
                    },
                )
            })
            .collect()
    }

    /// Writes `n` template-message deliveries (one per driver, as a notice would), then runs the
    /// worker until none is pending. Returns (messages, seconds).
    async fn throughput_round(&self, workers: &[Worker], n: usize) -> anyhow::Result<(usize, f64)> {
        let before = self.fake.template_messages(OA).len();
        let source = Uuid::now_v7();
        let written = sqlx::query(
            "insert into push_delivery (id, tenant_id, user_id, kind, class, source_id, channel, fallback, payload, next_attempt_at)
             select gen_random_uuid(), tenant_id, id, 'NOTICE', 'REMINDER', $2, 'TEMPLATE', 'IN_APP',
                    '{\"title\": \"车辆年检提醒\", \"at\": \"2026-11-21 09:00\"}', now()
             from app_user where tenant_id = $1 limit $3",
        )
        .bind(self.tenant.0)
        .bind(source)
        .bind(i64::try_from(n)?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if written != u64::try_from(n)? {
            bail!("wrote {written} deliveries, wanted {n}");
        }
        let started = Instant::now();
        self.drain(workers).await?;
        let secs = started.elapsed().as_secs_f64();
        let accepted = self.fake.template_messages(OA).len() - before;
        if accepted != n {
            bail!("the fake accepted {accepted} messages, {n} were due");
        }
        self.check_settled(source, n).await?;
        Ok((n, secs))
    }

    /// Publishes one notice to the whole tenant, then runs the worker until every recipient's
    /// message is settled. Returns (seconds to publish, seconds to the last settled row).
    async fn fanout_round(&self, workers: &[Worker]) -> anyhow::Result<(f64, f64)> {
        let started = Instant::now();
        let notice = self.publish_notice().await?;
        let publish = started.elapsed().as_secs_f64();
        self.drain(workers).await?;
        let total = started.elapsed().as_secs_f64();
        let recipients: i64 = sqlx::query_scalar(
            "select count(distinct user_id) from push_delivery where source_id = $1",
        )
        .bind(notice)
        .fetch_one(&self.pool)
        .await?;
        let recipients = usize::try_from(recipients)?;
        if recipients < self.audience {
            bail!(
                "the notice reached {recipients} people, not all {} drivers",
                self.audience
            );
        }
        self.check_settled(notice, recipients).await?;
        Ok((publish, total))
    }

    /// Every worker claims and sends until nothing is due.
    async fn drain(&self, workers: &[Worker]) -> anyhow::Result<()> {
        futures_util::future::try_join_all(workers.iter().map(|w| self.drain_one(w))).await?;
        Ok(())
    }

    /// Claims and sends until a pass finds nothing due and nothing is pending.
    async fn drain_one(&self, worker: &Worker) -> anyhow::Result<()> {
        loop {
            let pass = worker.run_once(Utc::now()).await?;
            if pass.claimed == 0 {
                let pending: i64 = sqlx::query_scalar(
                    "select count(*) from push_delivery where status in ('PENDING', 'SENDING')",
                )
                .fetch_one(&self.pool)
                .await?;
                if pending == 0 {
                    return Ok(());
                }
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        }
    }

    /// Every delivery of `source` was sent, once per person.
    async fn check_settled(&self, source: Uuid, n: usize) -> anyhow::Result<()> {
        let sent: i64 = sqlx::query_scalar(
            "select count(distinct user_id) from push_delivery where source_id = $1 and status = 'SENT'",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await?;
        if sent != i64::try_from(n)? {
            bail!("{sent} of {n} recipients were sent their message");
        }
        Ok(())
    }

    /// `publishNotice` to the whole tenant, as its operator, through the service's GraphQL
    /// schema (what the HTTP handler runs after reading the request).
    async fn publish_notice(&self) -> anyhow::Result<Uuid> {
        let viewer = Viewer {
            user_id: self.operator,
            tenant_id: self.tenant,
            role: Role::Admin,
            branch_id: None,
            driver_id: None,
            session_id: Id::new(),
        };
        let request = async_graphql::Request::new(
            "mutation($key: String!) { publishNotice(input: {title: \"车辆年检提醒\", \
             body: \"请本周内到门店完成车辆年检，逾期将影响运营资格。\", audience: TENANT}, \
             idempotencyKey: $key) { id } }",
        )
        .variables(async_graphql::Variables::from_json(
            serde_json::json!({ "key": Uuid::new_v4().to_string() }),
        ))
        .data(minigate_resolvers::request_data(
            &self.state.deps,
            Some(&viewer),
        ))
        .data(viewer);
        let response = self.state.schema.execute(request).await;
        if !response.errors.is_empty() {
            bail!("publishNotice failed: {:?}", response.errors);
        }
        let data = response.data.into_json()?;
        let id = data
            .pointer("/publishNotice/id")
            .and_then(serde_json::Value::as_str)
            .context("publishNotice answered no id")?;
        Ok(id.parse()?)
    }

    /// Closes the pools, drops the database, removes the files.
    async fn finish(self, admin_url: &str) {
        let name = self
            .test_db
            .url()
            .rsplit('/')
            .next()
            .map(|n| n.split('?').next().unwrap_or(n).to_owned())
            .unwrap_or_default();
        self.state.db.close().await;
        self.pool.close().await;
        drop(self.state);
        if name.starts_with("minigate_test_")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && let Ok(Db::Postgres(admin)) =
                Db::connect_lazy(admin_url, &minigate_store::DbOptions::default())
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
