use std::fmt;

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached (connection refused, pool timed out, I/O).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A query failed for any other reason (constraint, syntax, decoding).
    #[error("database error")]
    Query(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The connection URL names no backend we speak.
    #[error("unsupported database url (expected postgres:// or sqlite:)")]
    UnsupportedUrl,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e),
            sqlx::Error::Database(ref db) if is_sqlite_busy(db.as_ref()) => Error::Unavailable(e),
            other => Error::Query(other),
        }
    }
}

/// SQLite's "database is locked" (`SQLITE_BUSY` and its extended codes, whose low byte is 5):
/// another writer held on past the busy timeout. The write may succeed if tried again.
fn is_sqlite_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5)
}

/// A unique constraint, named the way each backend reports it: PostgreSQL by constraint name,
/// SQLite by `table.column` list (it never reports a constraint's name).
#[derive(Debug, Clone, Copy)]
pub struct Unique {
    pub name: &'static str,
    pub table: &'static str,
    pub columns: &'static [&'static str],
}

impl Error {
    /// Stable code for the GraphQL boundary.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "DATABASE_UNAVAILABLE",
            _ => "INTERNAL",
        }
    }

    /// Whether this error is a violation of `constraint`, on either backend.
    pub fn is_unique(&self, constraint: &Unique) -> bool {
        let Error::Query(sqlx::Error::Database(db)) = self else {
            return false;
        };
        if !matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation) {
            return false;
        }
        if let Some(name) = db.constraint() {
            return name == constraint.name;
        }
        sqlite_columns_match(db.message(), constraint)
    }

    /// A copy that keeps the classification (for reporting an error seen only by reference).
    pub fn from_ref(e: &Error) -> Error {
        match e {
            Error::Unavailable(_) => Error::Unavailable(sqlx::Error::PoolTimedOut),
            Error::UnsupportedUrl => Error::UnsupportedUrl,
            other => Error::Query(sqlx::Error::Protocol(other.to_string())),
        }
    }

    /// Whether the error is any unique violation (used where a table has a single one).
    pub fn is_any_unique(&self) -> bool {
        matches!(self, Error::Query(sqlx::Error::Database(db))
            if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation))
    }
}

/// SQLite says `UNIQUE constraint failed: vehicle.tenant_id, vehicle.plate`.
fn sqlite_columns_match(message: &str, c: &Unique) -> bool {
    let Some((_, cols)) = message.split_once("failed:") else {
        return false;
    };
    let reported: Vec<&str> = cols.split(',').map(str::trim).collect();
    reported.len() == c.columns.len()
        && c.columns.iter().all(|col| {
            reported
                .iter()
                .any(|r| r.split_once('.') == Some((c.table, col)))
        })
}

impl fmt::Display for Unique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLATE: Unique = Unique {
        name: "vehicle_tenant_plate_key",
        table: "vehicle",
        columns: &["tenant_id", "plate"],
    };

    #[test]
    fn sqlite_message_matches_by_table_and_columns_in_any_order() {
        assert!(sqlite_columns_match(
            "UNIQUE constraint failed: vehicle.plate, vehicle.tenant_id",
            &PLATE
        ));
        assert!(!sqlite_columns_match(
            "UNIQUE constraint failed: vehicle.tenant_id, vehicle.vin",
            &PLATE
        ));
        assert!(!sqlite_columns_match(
            "UNIQUE constraint failed: driver.tenant_id, driver.plate",
            &PLATE
        ));
        assert!(!sqlite_columns_match(
            "UNIQUE constraint failed: vehicle.tenant_id",
            &PLATE
        ));
    }
}
