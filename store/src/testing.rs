//! Fresh databases for tests: one per test, never shared.

use std::path::PathBuf;

use crate::{Backend, Db, DbOptions, Error, Result};

/// A database made for one test and removed when dropped.
pub struct TestDb {
    pub db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    /// A fresh migrated SQLite file in the system temp folder.
    pub async fn sqlite() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("minigate-test-{}.db", uuid::Uuid::new_v4()));
        let db = Db::connect_lazy(&format!("sqlite:{}", path.display()), &DbOptions::default())?;
        db.migrate().await?;
        Ok(Self {
            db,
            cleanup: Cleanup::File(path),
        })
    }

    /// A fresh migrated database on the PostgreSQL server of `admin_url`.
    pub async fn postgres(admin_url: &str) -> Result<Self> {
        let name = format!("minigate_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Db::connect_lazy(admin_url, &DbOptions::default())?;
        let Db::Postgres(pool) = &admin else {
            return Err(Error::UnsupportedUrl);
        };
        let create = format!("create database {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(pool)
            .await?;
        admin.close().await;
        let db = Db::connect_lazy(&with_database(admin_url, &name), &DbOptions::default())?;
        db.migrate().await?;
        Ok(Self {
            db,
            cleanup: Cleanup::Database {
                admin_url: admin_url.to_owned(),
                name,
            },
        })
    }

    /// Either backend.
    pub async fn new(backend: Backend, postgres_url: Option<&str>) -> Result<Self> {
        match (backend, postgres_url) {
            (Backend::Sqlite, _) => Self::sqlite().await,
            (Backend::Postgres, Some(url)) => Self::postgres(url).await,
            (Backend::Postgres, None) => Err(Error::UnsupportedUrl),
        }
    }

    /// The URL a second process (or a server under test) can use to open the same database.
    pub fn url(&self) -> String {
        match &self.cleanup {
            Cleanup::File(p) => format!("sqlite:{}", p.display()),
            Cleanup::Database { admin_url, name } => with_database(admin_url, name),
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|p| p + 3)
        .and_then(|start| base[start..].find('/').map(|p| start + p))
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let db = self.db.clone();
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::File(PathBuf::new()));
        // Drop cannot await; a short-lived runtime on its own thread closes the pool and removes
        // the database, whatever runtime the test itself used.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                db.close().await;
                match cleanup {
                    Cleanup::File(p) => {
                        for suffix in ["", "-wal", "-shm"] {
                            let mut f = p.clone().into_os_string();
                            f.push(suffix);
                            let _ = std::fs::remove_file(f);
                        }
                    }
                    Cleanup::Database { admin_url, name } => {
                        if let Ok(Db::Postgres(pool)) =
                            Db::connect_lazy(&admin_url, &DbOptions::default())
                        {
                            let drop = format!("drop database if exists {name} with (force)");
                            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
                            pool.close().await;
                        }
                    }
                }
            });
        })
        .join();
    }
}

/// A test that runs on both backends: `$name::sqlite` on a fresh SQLite file, and
/// `$name::postgres` on a fresh database of the server `DATABASE_URL` names (skipped without it,
/// except in CI, where that fails). `$body` is a closure taking the [`Db`] and returning a future.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::testing::TestDb::new($crate::Backend::Sqlite, None)
                    .await
                    .unwrap();
                ($body)(t.db.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Ok(url) = std::env::var("DATABASE_URL") else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI must run the PostgreSQL variant: set DATABASE_URL"
                    );
                    eprintln!("DATABASE_URL not set: PostgreSQL run skipped");
                    return;
                };
                let t = $crate::testing::TestDb::new($crate::Backend::Postgres, Some(&url))
                    .await
                    .unwrap();
                ($body)(t.db.clone()).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_and_options_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
