use crate::{Db, Result};

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

impl Db {
    /// Applies the migrations of this backend that have not run yet. Safe to call from several
    /// replicas at once: sqlx takes an advisory lock on PostgreSQL, and SQLite serializes writers.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Postgres(p) => POSTGRES.run(p).await?,
            Db::Sqlite(p, _) => SQLITE.run(p).await?,
        }
        Ok(())
    }
}
