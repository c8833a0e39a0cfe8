//! The database and the servers under test, all in this process on `127.0.0.1:0`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use minigate_gateway::{
    app::{self, State},
    config::{Config, LimitsSection},
};
use minigate_store::{Db, testing::TestDb};
use secrecy::SecretString;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{bare::Bare, seed};

const JWT_SECRET: &str = "minigate-bench-secret-0123456789abcdef";

/// One server task and the way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

pub struct Servers {
    test_db: TestDb,
    data_dir: PathBuf,
    pub backend: String,
    pub login: seed::Login,
    /// The service's state (its database handle and token signer), for benchmarks that seed
    /// more than the shared data.
    #[allow(
        dead_code,
        reason = "read by the reports benchmark, not by every binary including this file"
    )]
    pub state: Arc<State>,
    pub minigate: Running,
    pub bare: Running,
}

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Serves minigate's routes for `state` exactly as the binary does.
async fn serve_minigate(state: Arc<State>) -> anyhow::Result<Running> {
    let (acceptor, addr) = app::bind(local()).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app::serve(state, acceptor, async {
        let _ = stopped.await;
    }));
    Ok(Running { addr, stop, task })
}

async fn serve_bare(bare: Arc<Bare>) -> anyhow::Result<Running> {
    let (acceptor, addr) = app::bind(local()).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
        crate::bare::routes(bare),
        async {
            let _ = stopped.await;
        },
        Some(Duration::from_secs(5)),
    );
    let task = tokio::spawn(async move { Ok(server.await?) });
    Ok(Running { addr, stop, task })
}

impl Servers {
    pub async fn start(database_url: Option<&str>) -> anyhow::Result<Self> {
        let test_db = match database_url {
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
        let minigate = serve_minigate(Arc::clone(&state)).await?;
        let bare = serve_bare(Arc::new(Bare {
            db: state.db.clone(),
            tokens: Arc::clone(&state.deps.tokens),
        }))
        .await?;
        Ok(Self {
            test_db,
            data_dir,
            backend,
            login,
            state,
            minigate,
            bare,
        })
    }

    /// Stops the servers (the bare one first: minigate closes the pool they share) and removes
    /// the database.
    /// Returns what went wrong on the way (a server that failed or did not stop in time).
    pub async fn stop(self) -> Vec<String> {
        const PATIENCE: Duration = Duration::from_secs(5);
        let mut problems = Vec::new();
        for (name, server) in [("the bare server", self.bare), ("minigate", self.minigate)] {
            match tokio::time::timeout(PATIENCE, server.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("{name} failed: {e:#}")),
                Err(_) => problems.push(format!(
                    "{name} did not stop within {} s of its shutdown signal",
                    PATIENCE.as_secs()
                )),
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        drop(self.test_db);
        problems
    }
}

async fn backend_name(db: &Db) -> anyhow::Result<String> {
    Ok(match db {
        Db::Sqlite(pool, _) => {
            let v: String = sqlx::query_scalar("select sqlite_version()")
                .fetch_one(pool)
                .await?;
            format!("SQLite {v} (temporary file, WAL)")
        }
        Db::Postgres(pool) => {
            let v: String = sqlx::query_scalar("select current_setting('server_version')")
                .fetch_one(pool)
                .await?;
            format!("PostgreSQL {v} (fresh database on a local server)")
        }
    })
}
