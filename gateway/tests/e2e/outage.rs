//! PostgreSQL and Redis going away and coming back, through a TCP proxy the test can cut.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use minigate_gateway::config::Config;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};

use crate::support::TestApp;

/// Forwards connections to `target` until cut: then live connections are dropped and new ones
/// refused, as when a server goes down; `restore` lets them through again.
struct FlakyProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    kill: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyProxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (kill, _) = watch::channel(0u64);
        let (up2, kill2) = (up.clone(), kill.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut killed = kill2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            kill,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.kill.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `scheme://[user@]host:port/rest` with host:port replaced.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let path = hostpart.find('/').map_or("", |i| &hostpart[i..]);
    format!("{scheme}://{userinfo}{addr}{path}")
}

fn authority(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    host.split('/').next().unwrap().to_owned()
}

async fn ready(app: &TestApp) -> u16 {
    app.get("/readyz").await.status().as_u16()
}

async fn wait_ready(app: &TestApp) {
    let until = Instant::now() + Duration::from_secs(20);
    while ready(app).await != 200 {
        assert!(Instant::now() < until, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_fast_while_postgres_or_redis_is_away_and_recover_when_it_returns() {
    let (Ok(pg_url), Ok(redis_url)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL"))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: set DATABASE_URL and REDIS_URL"
        );
        eprintln!("DATABASE_URL / REDIS_URL not set: skipped");
        return;
    };
    let pg = FlakyProxy::start(authority(&pg_url)).await;
    let redis = FlakyProxy::start(authority(&redis_url)).await;
    let (pg_addr, redis_addr) = (pg.addr, redis.addr);
    let redis_via = via(&redis_url, redis_addr);
    let app = TestApp::spawn(true, move |c: &mut Config| {
        c.database_url = via(&c.database_url, pg_addr);
        c.redis_url = Some(redis_via);
    })
    .await
    .unwrap();
    let (_, token) = app.admin("acme").await;
    app.gql(&token, "{ me { id } }", json!({})).await.ok();

    pg.cut();
    let started = Instant::now();
    let r = app.gql(&token, "{ me { id } }", json!({})).await;
    assert_eq!(r.code(), Some("DATABASE_UNAVAILABLE"), "{}", r.json);
    assert_eq!(ready(&app).await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    pg.restore();
    wait_ready(&app).await;
    app.gql(&token, "{ me { id } }", json!({})).await.ok();

    redis.cut();
    let started = Instant::now();
    let r = app.gql(&token, "{ me { id } }", json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (503, Some("CACHE_UNAVAILABLE")),
        "{}",
        r.json
    );
    assert_eq!(ready(&app).await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    redis.restore();
    wait_ready(&app).await;
    app.gql(&token, "{ me { id } }", json!({})).await.ok();
}
