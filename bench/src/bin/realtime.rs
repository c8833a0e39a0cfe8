//! Realtime benchmark: memory of idle subscriptions, and commit-to-delivery latency of one event
//! broadcast to many subscribers, on one replica and across two.
//!
//! `cargo run --release -p minigate-bench --bin realtime -- [--subscriptions N] [--per-socket K]
//!  [--subscribers M] [--events E]`. With `DATABASE_URL` and `REDIS_URL` set it also measures two
//! replicas sharing them. Servers run as child processes (this binary re-run with `--serve`), so
//! their memory is measured alone from `/proc`.

use std::{
    io::Write,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use minigate_gateway::{app, config::Config};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!";
const SUB: &str = "subscription { noticePublished { eventId notice { createdAt } } }";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Child mode: serve on 127.0.0.1:0 with the database (and Redis) from the environment.
async fn serve_child() -> anyhow::Result<()> {
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: std::env::var("BENCH_DATABASE_URL")?,
        redis_url: std::env::var("BENCH_REDIS_URL").ok(),
        redis_prefix: std::env::var("BENCH_REDIS_PREFIX").unwrap_or_else(|_| "bench:".into()),
        data_dir: std::env::temp_dir(),
        jwt_secret: Some(SECRET.to_owned().into()),
        ..Config::default()
    };
    config.limits.per_ip_per_minute = u32::MAX;
    config.limits.per_user_per_minute = u32::MAX;
    config.limits.subscribes_per_minute = u32::MAX;
    let state = app::build(config.clone()).await?;
    let (acceptor, addr) = app::bind(config.listen).await?;
    out(&format!("LISTENING {addr}"));
    app::serve(state, acceptor, std::future::pending()).await
}

struct Child {
    proc: tokio::process::Child,
    addr: String,
}

impl Child {
    async fn start(db_url: &str, redis: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.arg("--serve")
            .env("BENCH_DATABASE_URL", db_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some((url, prefix)) = redis {
            cmd.env("BENCH_REDIS_URL", url)
                .env("BENCH_REDIS_PREFIX", prefix);
        }
        let mut proc = cmd.spawn()?;
        let mut lines = BufReader::new(proc.stdout.take().context("stdout")?).lines();
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                return Ok(Self {
                    proc,
                    addr: addr.to_owned(),
                });
            }
        }
        bail!("server did not start")
    }

    fn rss_mib(&self) -> f64 {
        let Some(pid) = self.proc.id() else {
            return 0.0;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

async fn gql(
    http: &reqwest::Client,
    addr: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> anyhow::Result<Value> {
    let mut req = http
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await?.json().await?;
    if v.get("errors").is_some() {
        bail!("graphql error: {v}");
    }
    Ok(v["data"].clone())
}

/// A tenant with an operator, created through the database; returns the operator's token.
async fn seed(db_url: &str, addr: &str) -> anyhow::Result<String> {
    let db = minigate_store::Db::connect_lazy(db_url, &minigate_store::DbOptions::default())?;
    let mut c = db.conn().await?;
    let t = minigate_resolvers::tenant::db::insert_tenant(&mut c, "bench", "Bench").await?;
    drop(c);
    minigate_resolvers::auth::create_password_user(
        &db,
        t.id,
        None,
        minigate_resolvers::Role::Admin,
        "13900000001",
        "bench password".into(),
        "bench",
        None,
    )
    .await?;
    let data = gql(
        &reqwest::Client::new(),
        addr,
        None,
        "mutation { loginWithPassword(tenant: \"bench\", phone: \"13900000001\", password: \"bench password\") { accessToken } }",
        json!({}),
    )
    .await?;
    Ok(data["loginWithPassword"]["accessToken"]
        .as_str()
        .context("token")?
        .to_owned())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: &str, token: &str, subscriptions: usize) -> anyhow::Result<Socket> {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let init = json!({ "type": "connection_init", "payload": { "token": token } });
    ws.send(Message::Text(init.to_string().into())).await?;
    loop {
        match ws.next().await.transpose()? {
            Some(Message::Text(t)) if t.contains("connection_ack") => break,
            Some(_) => {}
            None => bail!("socket closed before connection_ack"),
        }
    }
    for i in 0..subscriptions {
        let sub = json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": SUB } });
        ws.send(Message::Text(sub.to_string().into())).await?;
    }
    Ok(ws)
}

/// Waits until `n` subscriptions are live on the server (from its metrics).
async fn wait_live(http: &reqwest::Client, addr: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let live = text
            .lines()
            .find(|l| l.starts_with("minigate_subscriptions_live "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if live >= f64::from(u32::try_from(n).unwrap_or(u32::MAX)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {live} of {n} subscriptions became live");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0) * f64::from(u32::try_from(sorted.len() - 1).unwrap_or(0));
    let i = format!("{:.0}", rank.floor()).parse::<usize>().unwrap_or(0);
    sorted[i.min(sorted.len() - 1)]
}

/// Memory of `subs` idle subscriptions, `per_socket` to a socket.
async fn memory(db_url: &str, subs: usize, per_socket: usize) -> anyhow::Result<()> {
    let server = Child::start(db_url, None).await?;
    let token = seed(db_url, &server.addr).await?;
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_mib();
    let sockets = subs.div_ceil(per_socket);
    let mut held = Vec::with_capacity(sockets);
    for chunk in 0..sockets.div_ceil(200) {
        let mut batch = Vec::new();
        for _ in 0..200.min(sockets - chunk * 200) {
            batch.push(open(&server.addr, &token, per_socket));
        }
        for ws in futures_util::future::join_all(batch).await {
            held.push(ws?);
        }
    }
    wait_live(&http, &server.addr, sockets * per_socket).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_mib();
    let total = sockets * per_socket;
    out(&format!(
        "| {total} subscriptions on {sockets} sockets | {before:.0} MiB | {after:.0} MiB | {:.0} MiB | {:.1} KiB |",
        after - before,
        (after - before) * 1024.0 / f64::from(u32::try_from(total).unwrap_or(1))
    ));
    drop(held);
    Ok(())
}

/// One event to `subscribers` subscribers (one socket each), `events` times; commit-to-delivery.
async fn broadcast(
    label: &str,
    publisher: &Child,
    receiver: &Child,
    token: &str,
    subscribers: usize,
    events: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    // Every socket of this scenario is closed when it ends, so the next scenario measures only
    // its own subscribers.
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..subscribers {
        let mut ws = open(&receiver.addr, token, 1).await?;
        let tx = tx.clone();
        readers.spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let received = chrono::Utc::now();
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                let Some(created) =
                    v["payload"]["data"]["noticePublished"]["notice"]["createdAt"].as_str()
                else {
                    continue;
                };
                if let Ok(c) = chrono::DateTime::parse_from_rfc3339(created) {
                    let ms = (received - c.with_timezone(&chrono::Utc))
                        .num_microseconds()
                        .unwrap_or(0);
                    let _ = tx.send(f64::from(i32::try_from(ms).unwrap_or(i32::MAX)) / 1000.0);
                }
            }
        });
    }
    wait_live(&http, &receiver.addr, subscribers).await?;
    let mut samples = Vec::with_capacity(subscribers * events);
    for i in 0..events {
        let input = json!({ "title": format!("bench {i}"), "body": "x", "audience": "TENANT" });
        gql(
            &http,
            &publisher.addr,
            Some(token),
            "mutation($i: NoticeInput!) { publishNotice(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while samples.len() < (i + 1) * subscribers {
            match tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                rx.recv(),
            )
            .await
            {
                Ok(Some(ms)) => samples.push(ms),
                _ => bail!(
                    "event {i}: only {} deliveries",
                    samples.len() - i * subscribers
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    readers.abort_all();
    while readers.join_next().await.is_some() {}
    samples.sort_by(f64::total_cmp);
    out(&format!(
        "| {label} | {subscribers} | {events} | {:.1} ms | {:.1} ms | {:.1} ms |",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(f64::NAN)
    ));
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let subs = arg("--subscriptions", 10_000);
    let per_socket = arg("--per-socket", 1);
    let subscribers = arg("--subscribers", 1_000);
    let events = arg("--events", 20);
    out(&format!(
        "machine: {} {}, {} cores; date {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(0, usize::from),
        chrono::Utc::now().format("%Y-%m-%d")
    ));

    out(
        "\n| idle subscriptions | server RSS before | after | growth | per subscription |\n|---|---|---|---|---|",
    );
    let t = minigate_store::testing::TestDb::sqlite().await?;
    memory(&t.url(), subs, per_socket).await?;

    out("\n| broadcast | subscribers | events | p50 | p99 | max |\n|---|---|---|---|---|---|");
    let t = minigate_store::testing::TestDb::sqlite().await?;
    let one = Child::start(&t.url(), None).await?;
    let token = seed(&t.url(), &one.addr).await?;
    broadcast(
        "one node (SQLite, in-process bus)",
        &one,
        &one,
        &token,
        subscribers,
        events,
    )
    .await?;
    drop(one);

    if let (Ok(pg), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) {
        let t = minigate_store::testing::TestDb::postgres(&pg).await?;
        let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
        let a = Child::start(&t.url(), Some((&redis, &prefix))).await?;
        let token = seed(&t.url(), &a.addr).await?;
        broadcast(
            "one replica (PostgreSQL + Redis)",
            &a,
            &a,
            &token,
            subscribers,
            events,
        )
        .await?;
        let b = Child::start(&t.url(), Some((&redis, &prefix))).await?;
        broadcast(
            "two replicas: published on A, delivered by B",
            &a,
            &b,
            &token,
            subscribers,
            events,
        )
        .await?;
    } else {
        out("(DATABASE_URL / REDIS_URL not set: replica runs skipped)");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::args().any(|a| a == "--serve") {
        return rt.block_on(serve_child());
    }
    rt.block_on(run())
}
