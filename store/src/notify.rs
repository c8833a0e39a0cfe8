//! Wake-ups across processes and exclusive job runs, the two places PostgreSQL and SQLite differ
//! for background work.
//!
//! * PostgreSQL: `NOTIFY` inside the writing transaction is delivered at commit to every
//!   `LISTEN`ing replica; an advisory transaction lock lets one replica at a time run a job.
//! * SQLite: one process owns the file, so there is nobody else to wake (callers signal
//!   in-process with [`Conn::on_commit`]), and `BEGIN IMMEDIATE` already makes the writer
//!   exclusive.

use sqlx::postgres::PgListener;

use crate::{Conn, Db, Raw, Result};

/// Receives notifications on one channel (PostgreSQL only).
pub struct Listener(PgListener);

impl Listener {
    /// Waits for the next notification and returns its payload. After a lost connection it
    /// reconnects by itself and returns an empty payload, so the caller re-checks its work rather
    /// than missing a signal.
    pub async fn recv(&mut self) -> Result<String> {
        Ok(self
            .0
            .try_recv()
            .await?
            .map(|n| n.payload().to_owned())
            .unwrap_or_default())
    }
}

impl Db {
    /// Listens on `channel`; `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>> {
        match self {
            Db::Postgres(pool) => {
                // Its own one-connection pool: a listener holds its connection for good, and one
                // taken from the main pool would keep `Db::close` waiting forever.
                let own = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(std::time::Duration::from_secs(3))
                    .connect_lazy_with((*pool.connect_options()).clone());
                let mut l = PgListener::connect_with(&own).await?;
                l.listen(channel).await?;
                Ok(Some(Listener(l)))
            }
            Db::Sqlite(..) => Ok(None),
        }
    }
}

impl Conn {
    /// Wakes the listeners of `channel` with `payload` when this transaction commits (PostgreSQL;
    /// nothing on SQLite).
    pub async fn notify(&mut self, channel: &str, payload: &str) -> Result<()> {
        if let Raw::Pg(c) = self.raw() {
            sqlx::query("select pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(c)
                .await?;
        }
        Ok(())
    }

    /// Takes the job lock `key` for the rest of this transaction; `false` when another
    /// transaction holds it. On SQLite the write transaction already excludes every other writer.
    pub async fn try_job_lock(&mut self, key: i64) -> Result<bool> {
        match self.raw() {
            Raw::Pg(c) => Ok(
                sqlx::query_scalar::<_, bool>("select pg_try_advisory_xact_lock($1)")
                    .bind(key)
                    .fetch_one(c)
                    .await?,
            ),
            Raw::Lite(_) => Ok(true),
        }
    }
}

/// Held while one replica runs a job that talks to the outside between its database writes (an
/// active query of payment orders): on PostgreSQL an open transaction holding an advisory lock,
/// released when the guard is dropped or [`JobGuard::release`]d; on SQLite nothing, since one
/// process owns the file and an open write transaction would block the job's own writes.
pub struct JobGuard(Option<Conn>);

impl JobGuard {
    pub async fn release(self) -> Result<()> {
        match self.0 {
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        }
    }
}

impl Db {
    /// Takes the job lock `key` if no other replica holds it.
    pub async fn try_job(&self, key: i64) -> Result<Option<JobGuard>> {
        match self {
            Db::Postgres(_) => {
                let mut tx = self.begin().await?;
                if tx.try_job_lock(key).await? {
                    Ok(Some(JobGuard(Some(tx))))
                } else {
                    tx.rollback().await?;
                    Ok(None)
                }
            }
            Db::Sqlite(..) => Ok(Some(JobGuard(None))),
        }
    }
}
