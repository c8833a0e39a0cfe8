//! # minigate-bench
//!
//! Measures what minigate's GraphQL layer costs over HTTP with keep-alive: an authenticated `me`
//! and a 50-row vehicle page with a batched nested field (`branch`), each served by minigate and
//! by a bare poem handler that runs the same SQL on the same pool and writes the same JSON.
//! Everything runs in this process: a fresh seeded database, both servers on `127.0.0.1:0`, and
//! the load generator. Scenarios are interleaved in rounds so both servers meet the same
//! conditions; the report quotes medians over rounds and ratios measured side by side.
//!
//! ```text
//! cargo run --release -p minigate-bench -- [--seconds 5] [--connections 16] [--rounds 3]
//!     [--database-url postgres://…] [--out FILE]
//! ```
//! Without `--database-url` (or `DATABASE_URL`) the database is a temporary SQLite file; with a
//! PostgreSQL URL a fresh database is created on that server and dropped afterwards.

mod bare;
mod cpu;
mod load;
mod seed;
mod stats;

use std::{
    fmt::Write as _, io::Write as _, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use minigate_gateway::{
    app,
    config::{Config, LimitsSection},
};
use minigate_store::{Db, testing::TestDb};
use reqwest::{Client, Method, StatusCode, Url, header::HeaderValue};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    bare::Bare,
    cpu::{ClientThreads, Sample},
    load::{Run, Target},
    stats::{count_f64, median, percentile, u64_f64},
};

#[derive(Parser, Debug)]
#[command(
    name = "minigate-bench",
    about = "minigate against a bare poem handler, side by side"
)]
struct Args {
    /// Seconds each scenario runs in each round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Rounds; each runs every scenario once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of unmeasured warm-up per scenario before the first round.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// A PostgreSQL server (`postgres://user@host:port/db`) to create a fresh database on;
    /// without it, a temporary SQLite file.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const JWT_SECRET: &str = "minigate-bench-secret-0123456789abcdef";
const ME_QUERY: &str = "{ me { id role displayName phone } }";
const VEHICLES_QUERY: &str = "{ vehicles(first: 50) { items { id plate vin model status branch { id code name } } nextCursor } }";
const ME_BODY: &str = r#"{"query":"{ me { id role displayName phone } }"}"#;
const VEHICLES_BODY: &str = r#"{"query":"{ vehicles(first: 50) { items { id plate vin model status branch { id code name } } nextCursor } }"}"#;
const LOGIN: &str = "mutation($tenant: String!, $phone: String!, $password: String!) {
  loginWithPassword(tenant: $tenant, phone: $phone, password: $password) { accessToken }
}";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minigate-bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.seconds == 0 || args.connections == 0 || args.rounds == 0 {
        bail!("--seconds, --connections and --rounds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Servers and load generator get a runtime each, so the client's threads can be told apart
    // when CPU time is counted.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
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

    let servers = server_rt.block_on(Servers::start(args))?;
    let measured = client_rt.block_on(measure(args, &servers, &client_threads));
    drop(client_rt);
    let stopped = server_rt.block_on(servers.stop());
    let results = measured?;
    stopped?;

    let report = report(args, cores, &results);
    let mut out = std::io::stdout().lock();
    out.write_all(report.as_bytes())?;
    out.flush()?;
    if let Some(path) = &args.out {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The database and both servers.
struct Servers {
    test_db: TestDb,
    data_dir: PathBuf,
    backend: String,
    login: seed::Login,
    minigate: SocketAddr,
    bare: SocketAddr,
    stop_minigate: oneshot::Sender<()>,
    stop_bare: oneshot::Sender<()>,
    minigate_task: JoinHandle<anyhow::Result<()>>,
    bare_task: JoinHandle<std::io::Result<()>>,
}

impl Servers {
    async fn start(args: &Args) -> anyhow::Result<Self> {
        let test_db = match args.database_url.as_deref() {
            None => TestDb::sqlite()
                .await
                .context("creating a SQLite database")?,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                TestDb::postgres(url)
                    .await
                    .context("creating a PostgreSQL database")?
            }
            Some(_) => bail!("--database-url must be a postgres:// URL (SQLite is the default)"),
        };
        let backend = backend_name(&test_db.db).await?;
        eprintln!("seeding {backend}…");
        let login = seed::seed(&test_db.db).await?;

        let data_dir =
            std::env::temp_dir().join(format!("minigate-bench-{}", uuid::Uuid::new_v4().simple()));
        let config = Config {
            database_url: test_db.url(),
            data_dir: data_dir.clone(),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            limits: LimitsSection {
                per_ip_per_minute: u32::MAX,
                per_user_per_minute: u32::MAX,
                ..LimitsSection::default()
            },
            ..Config::default()
        };
        let state = app::build(config).await.context("building minigate")?;
        let local = SocketAddr::from(([127, 0, 0, 1], 0));

        let (acceptor, minigate) = app::bind(local).await?;
        let (stop_minigate, stopped) = oneshot::channel::<()>();
        let minigate_task = tokio::spawn(app::serve(Arc::clone(&state), acceptor, async {
            let _ = stopped.await;
        }));

        let (acceptor, bare) = app::bind(local).await?;
        let (stop_bare, stopped) = oneshot::channel::<()>();
        let routes = bare::routes(Arc::new(Bare {
            db: state.db.clone(),
            tokens: Arc::clone(&state.deps.tokens),
        }));
        let bare_task = tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                routes,
                async {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(5)),
            ),
        );
        Ok(Self {
            test_db,
            data_dir,
            backend,
            login,
            minigate,
            bare,
            stop_minigate,
            stop_bare,
            minigate_task,
            bare_task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_bare.send(());
        self.bare_task.await??;
        let _ = self.stop_minigate.send(());
        self.minigate_task.await??;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        drop(self.test_db);
        Ok(())
    }
}

async fn backend_name(db: &Db) -> anyhow::Result<String> {
    Ok(match db {
        Db::Sqlite(pool) => {
            let v: String = sqlx::query_scalar("select sqlite_version()")
                .fetch_one(pool)
                .await?;
            format!("SQLite {v} (temporary file, WAL)")
        }
        Db::Postgres(pool) => {
            let v: String = sqlx::query_scalar("select current_setting('server_version')")
                .fetch_one(pool)
                .await?;
            format!("PostgreSQL {v} (fresh database, local server)")
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Query {
    Me,
    Vehicles,
}

impl Query {
    fn label(self) -> &'static str {
        match self {
            Query::Me => "`me`",
            Query::Vehicles => "50 vehicles + `branch`",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Minigate,
    Bare,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Minigate => "minigate",
            Server::Bare => "bare poem",
        }
    }
}

/// One request kind against one server, with every round's measurements.
struct Scenario {
    query: Query,
    server: Server,
    target: Arc<Target>,
    runs: Vec<Run>,
    server_cpu_us: Option<u64>,
    client_cpu_us: Option<u64>,
}

impl Scenario {
    fn name(&self) -> String {
        format!("{} {}", self.server.label(), self.query.label())
    }

    fn per_second(&self) -> Vec<f64> {
        self.runs.iter().map(Run::per_second).collect()
    }

    fn requests(&self) -> usize {
        self.runs.iter().map(|r| r.requests).sum()
    }

    fn latencies(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .runs
            .iter()
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    fn cpu_per_request(&self, micros: Option<u64>) -> Option<f64> {
        let n = self.requests();
        let us = micros?;
        (n > 0).then(|| u64_f64(us) / count_f64(n))
    }
}

struct Results {
    backend: String,
    scenarios: Vec<Scenario>,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
}

async fn sign_in(client: &Client, graphql: &Url, login: &seed::Login) -> anyhow::Result<String> {
    let resp: Value = client
        .post(graphql.clone())
        .json(&json!({
            "query": LOGIN,
            "variables": {
                "tenant": login.tenant_slug,
                "phone": login.phone,
                "password": login.password,
            }
        }))
        .send()
        .await?
        .json()
        .await?;
    resp.pointer("/data/loginWithPassword/accessToken")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("sign-in failed: {resp}"))
}

fn client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Fetches the same data from both servers and fails unless the answers are equal JSON.
async fn check_equal(minigate: &Target, bare: &Target, what: &str) -> anyhow::Result<Value> {
    let (ms, mb) = minigate.fetch().await?;
    let (bs, bb) = bare.fetch().await?;
    let mv: Value = serde_json::from_slice(&mb).with_context(|| {
        format!(
            "minigate's {what} is not JSON: {}",
            String::from_utf8_lossy(&mb)
        )
    })?;
    let bv: Value = serde_json::from_slice(&bb)
        .with_context(|| format!("bare {what} is not JSON: {}", String::from_utf8_lossy(&bb)))?;
    if ms != StatusCode::OK || bs != StatusCode::OK || mv != bv {
        bail!(
            "the answers to {what} differ:\nminigate ({ms}): {}\nbare ({bs}): {}",
            String::from_utf8_lossy(&mb),
            String::from_utf8_lossy(&bb)
        );
    }
    if mb.len() != bb.len() {
        eprintln!(
            "note: {what}: equal JSON, but minigate wrote {} bytes and the bare handler {}",
            mb.len(),
            bb.len()
        );
    }
    Ok(mv)
}

async fn measure(
    args: &Args,
    servers: &Servers,
    threads: &ClientThreads,
) -> anyhow::Result<Results> {
    let graphql: Url = format!("http://{}/graphql", servers.minigate).parse()?;
    let bare_base = format!("http://{}", servers.bare);
    let minigate_client = client(args.connections)?;
    let bare_client = client(args.connections)?;
    let token = sign_in(&minigate_client, &graphql, &servers.login).await?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))?;

    let target = |client: &Client, method: Method, url: Url, body: Option<&'static str>| Target {
        client: client.clone(),
        method,
        url,
        body,
        auth: auth.clone(),
        expected_len: 0,
    };
    let mut mg_me = target(
        &minigate_client,
        Method::POST,
        graphql.clone(),
        Some(ME_BODY),
    );
    let mut mg_vehicles = target(
        &minigate_client,
        Method::POST,
        graphql.clone(),
        Some(VEHICLES_BODY),
    );
    let mut bare_me = target(
        &bare_client,
        Method::GET,
        format!("{bare_base}/me").parse()?,
        None,
    );
    let mut bare_vehicles = target(
        &bare_client,
        Method::GET,
        format!("{bare_base}/vehicles").parse()?,
        None,
    );
    debug_assert!(ME_BODY.contains(ME_QUERY) && VEHICLES_BODY.contains(VEHICLES_QUERY));

    let me = check_equal(&mg_me, &bare_me, "me").await?;
    if me.pointer("/data/me/role").and_then(Value::as_str) != Some("ADMIN") {
        bail!("unexpected answer to me: {me}");
    }
    let page = check_equal(&mg_vehicles, &bare_vehicles, "the vehicle page").await?;
    let items = page
        .pointer("/data/vehicles/items")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let cursor = page.pointer("/data/vehicles/nextCursor");
    if items != bare::PAGE || cursor.is_none_or(Value::is_null) {
        bail!(
            "expected a full page of {} with a cursor: {page}",
            bare::PAGE
        );
    }
    eprintln!("both servers give equal answers to `me` and to the vehicle page");
    for t in [
        &mut mg_me,
        &mut mg_vehicles,
        &mut bare_me,
        &mut bare_vehicles,
    ] {
        t.expected_len = t.fetch().await?.1.len();
    }

    let mut scenarios: Vec<Scenario> = [
        (Query::Me, Server::Minigate, mg_me),
        (Query::Me, Server::Bare, bare_me),
        (Query::Vehicles, Server::Minigate, mg_vehicles),
        (Query::Vehicles, Server::Bare, bare_vehicles),
    ]
    .into_iter()
    .map(|(query, server, t)| Scenario {
        query,
        server,
        target: Arc::new(t),
        runs: Vec::new(),
        server_cpu_us: Some(0),
        client_cpu_us: Some(0),
    })
    .collect();

    if args.warmup > 0 {
        eprintln!("warming up, {} s per scenario", args.warmup);
        for s in &scenarios {
            load::run(
                &s.target,
                args.connections,
                Duration::from_secs(args.warmup),
            )
            .await?;
        }
    }
    let rss_before_kib = cpu::rss_kib();
    let seconds = Duration::from_secs(args.seconds);
    for round in 0..args.rounds {
        // Within each request kind the two servers alternate who goes first, so neither always
        // runs right after the heavier one.
        let order: [usize; 4] = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [1, 0, 3, 2]
        };
        for i in order {
            let s = &mut scenarios[i];
            let before = threads.sample();
            let run = load::run(&s.target, args.connections, seconds)
                .await
                .with_context(|| s.name())?;
            let after = threads.sample();
            account(s, before, after);
            eprintln!(
                "round {}/{}: {:<32} {:>8.0} req/s",
                round + 1,
                args.rounds,
                s.name(),
                run.per_second()
            );
            s.runs.push(run);
        }
    }
    let rss_after_kib = cpu::rss_kib();
    Ok(Results {
        backend: servers.backend.clone(),
        scenarios,
        rss_before_kib,
        rss_after_kib,
    })
}

fn account(s: &mut Scenario, before: Option<Sample>, after: Option<Sample>) {
    match (before, after) {
        (Some(b), Some(a)) => {
            s.server_cpu_us = s.server_cpu_us.map(|t| t + b.server_micros_until(a));
            s.client_cpu_us = s.client_cpu_us.map(|t| t + b.client_micros_until(a));
        }
        _ => {
            s.server_cpu_us = None;
            s.client_cpu_us = None;
        }
    }
}

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "–".to_owned(),
        |u| format!("{:.2}", f64::from(u) / 1000.0),
    )
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

fn report(args: &Args, cores: usize, r: &Results) -> String {
    let mut s = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let model = cpu::cpu_model().map_or_else(String::new, |m| format!(", {m}"));
    let _ = writeln!(s, "### {}\n", r.backend);
    let _ = writeln!(
        s,
        "{date}; {} {}, {cores} logical cores{model}; {} connections, {} s per scenario, {} rounds \
         (interleaved), {} s warm-up per scenario.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        args.connections,
        args.seconds,
        args.rounds,
        args.warmup,
    );
    let _ = writeln!(
        s,
        "| request | server | req/s (median) | p50 ms | p99 ms | server CPU µs/req | client CPU µs/req | minigate ÷ bare req/s |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|");
    for q in [Query::Me, Query::Vehicles] {
        let find = |server| {
            r.scenarios
                .iter()
                .find(|x| x.query == q && x.server == server)
        };
        let (Some(mg), Some(bare)) = (find(Server::Minigate), find(Server::Bare)) else {
            continue;
        };
        let mg_rates = mg.per_second();
        let bare_rates = bare.per_second();
        let ratio = median(&mg_rates) / median(&bare_rates);
        let per_round: Vec<String> = mg_rates
            .iter()
            .zip(&bare_rates)
            .map(|(m, b)| format!("{:.2}", m / b))
            .collect();
        for sc in [mg, bare] {
            let lat = sc.latencies();
            let last = if sc.server == Server::Minigate {
                format!("**{ratio:.2}** (rounds: {})", per_round.join(", "))
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {last} |",
                q.label(),
                sc.server.label(),
                median(&sc.per_second()),
                ms(percentile(&lat, 500)),
                ms(percentile(&lat, 990)),
                opt(sc.cpu_per_request(sc.server_cpu_us)),
                opt(sc.cpu_per_request(sc.client_cpu_us)),
            );
        }
    }
    let rates: Vec<String> = r
        .scenarios
        .iter()
        .map(|sc| {
            let v: Vec<String> = sc.per_second().iter().map(|x| format!("{x:.0}")).collect();
            format!("{}: {}", sc.name(), v.join(", "))
        })
        .collect();
    let _ = writeln!(s, "\nreq/s per round — {}.", rates.join("; "));
    if let (Some(a), Some(b)) = (r.rss_before_kib, r.rss_after_kib) {
        let _ = writeln!(
            s,
            "Process memory (RSS) {} MiB after warm-up, {} MiB at the end.",
            a / 1024,
            b / 1024
        );
    }
    s
}
