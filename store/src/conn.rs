use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction,
    pool::{PoolConnection, PoolOptions},
    postgres::PgConnectOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
};

use crate::{Error, Result};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// How to open the pool.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before failing fast with `DATABASE_UNAVAILABLE`.
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The database handle, cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool, WriteGate),
}

/// SQLite's writers, one at a time and first come, first served, within this process.
///
/// SQLite has one writer; a transaction that finds the lock taken waits in its busy handler,
/// which sleeps and polls. Under a steady stream of short writes (the delivery worker's settles)
/// a poller can miss every gap until its busy timeout ends in `SQLITE_BUSY`, and each waiter
/// holds a pooled connection meanwhile, so reads starve too. Queueing writers here, before they
/// take a connection, makes the wait fair and leaves the pool to readers. (Another process on
/// the same file still meets the busy handler, as before.)
#[derive(Debug, Clone)]
pub struct WriteGate {
    permits: Arc<tokio::sync::Semaphore>,
    /// How long a writer queues before the database counts as unavailable.
    wait: Duration,
}

impl WriteGate {
    fn new(wait: Duration) -> Self {
        WriteGate {
            permits: Arc::new(tokio::sync::Semaphore::new(1)),
            wait,
        }
    }

    async fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::Unavailable(sqlx::Error::PoolClosed)),
            Err(_) => Err(Error::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }
}

/// SQLite's busy handler, for writers of another process (this one's queue at [`WriteGate`]).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: usize,
}

impl Db {
    /// Opens a pool for `postgres://…` or `sqlite:path` (the file is created if missing).
    /// Does not wait for the database to be reachable: the pool connects lazily, so a service can
    /// start while PostgreSQL is down and report it on `/readyz`.
    pub fn connect_lazy(url: &str, opts: &DbOptions) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(Error::Query)?;
            let pool = PoolOptions::<Postgres>::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(Error::Query)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = PoolOptions::<Sqlite>::new()
                .max_connections(opts.max_connections.min(8))
                .acquire_timeout(opts.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Db::Sqlite(pool, WriteGate::new(SQLITE_BUSY_TIMEOUT)))
        } else {
            Err(Error::UnsupportedUrl)
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// A pooled connection outside any transaction (each statement commits on its own). Any
    /// failure to obtain one means the database cannot be reached: refused, timed out, or a
    /// connection dropped during its handshake (sqlx reports some of those as protocol errors).
    pub async fn conn(&self) -> Result<Conn> {
        Ok(Conn(
            match self {
                Db::Postgres(p) => Inner::Pg(p.acquire().await.map_err(Error::Unavailable)?),
                Db::Sqlite(p, _) => Inner::Lite(p.acquire().await.map_err(Error::Unavailable)?),
            },
            Vec::new(),
            None,
        ))
    }

    /// A write transaction. On SQLite it waits its turn at the [`WriteGate`] and starts with
    /// `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that reads and
    /// then writes can fail with `SQLITE_BUSY` instead of waiting, and the lock is what stands in
    /// for PostgreSQL's row locks. The turn lasts until the transaction ends.
    pub async fn begin(&self) -> Result<Conn> {
        let (started, turn) = match self {
            Db::Postgres(p) => (p.begin().await.map(Inner::PgTx), None),
            Db::Sqlite(p, gate) => {
                let turn = gate.enter().await?;
                (
                    p.begin_with("BEGIN IMMEDIATE").await.map(Inner::LiteTx),
                    Some(turn),
                )
            }
        };
        // Any failure to start (no connection, or SQLite still busy past its timeout because
        // another process writes) means the database cannot take the write now: worth a retry.
        let inner = started.map_err(Error::Unavailable)?;
        Ok(Conn(inner, Vec::new(), turn))
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn().await?;
        let one: i32 = crate::fetch_scalar!(&mut c, i32, "select 1")?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Db::Postgres(p) => PoolStats {
                size: p.size(),
                idle: p.num_idle(),
            },
            Db::Sqlite(p, _) => PoolStats {
                size: p.size(),
                idle: p.num_idle(),
            },
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p, _) => p.close().await,
        }
    }
}

/// A connection, either on its own or inside a write transaction from [`Db::begin`].
/// Query functions take `&mut Conn`, so the caller decides which. A SQLite transaction holds its
/// turn at the [`WriteGate`] until it is committed, rolled back or dropped.
pub struct Conn(
    Inner,
    Vec<Box<dyn FnOnce() + Send>>,
    #[expect(
        dead_code,
        reason = "held for its drop: the turn ends with the transaction"
    )]
    Option<tokio::sync::OwnedSemaphorePermit>,
);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Conn")
            .field(&self.0)
            .field(&self.1.len())
            .finish()
    }
}

#[derive(Debug)]
enum Inner {
    Pg(PoolConnection<Postgres>),
    PgTx(Transaction<'static, Postgres>),
    Lite(PoolConnection<Sqlite>),
    LiteTx(Transaction<'static, Sqlite>),
}

/// The driver connection behind a [`Conn`], for the query macros.
pub enum Raw<'c> {
    Pg(&'c mut PgConnection),
    Lite(&'c mut SqliteConnection),
}

impl Conn {
    pub fn raw(&mut self) -> Raw<'_> {
        match &mut self.0 {
            Inner::Pg(c) => Raw::Pg(c),
            Inner::PgTx(t) => Raw::Pg(t),
            Inner::Lite(c) => Raw::Lite(c),
            Inner::LiteTx(t) => Raw::Lite(t),
        }
    }

    pub fn backend(&self) -> Backend {
        match &self.0 {
            Inner::Pg(_) | Inner::PgTx(_) => Backend::Postgres,
            Inner::Lite(_) | Inner::LiteTx(_) => Backend::Sqlite,
        }
    }

    /// Runs `f` once the transaction has committed, never if it rolls back; on a plain
    /// connection, whose statements are already committed, at once. For signals that must only
    /// fire for durable changes, such as waking the outbox dispatcher.
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        if self.in_transaction() {
            self.1.push(Box::new(f));
        } else {
            f();
        }
    }

    /// Whether statements on this connection run inside a write transaction.
    pub fn in_transaction(&self) -> bool {
        matches!(self.0, Inner::PgTx(_) | Inner::LiteTx(_))
    }

    /// Commits a transaction; on a plain connection there is nothing to commit.
    pub async fn commit(self) -> Result<()> {
        match self.0 {
            Inner::PgTx(t) => t.commit().await?,
            Inner::LiteTx(t) => t.commit().await?,
            Inner::Pg(_) | Inner::Lite(_) => {}
        }
        for f in self.1 {
            f();
        }
        Ok(())
    }

    /// Rolls a transaction back explicitly (dropping it does the same, later).
    pub async fn rollback(self) -> Result<()> {
        match self.0 {
            Inner::PgTx(t) => t.rollback().await?,
            Inner::LiteTx(t) => t.rollback().await?,
            Inner::Pg(_) | Inner::Lite(_) => {}
        }
        Ok(())
    }
}
