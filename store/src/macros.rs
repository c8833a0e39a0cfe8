//! The query macros run one PostgreSQL-spelled statement on either backend.
//!
//! ```ignore
//! let v: Option<Vehicle> = store::fetch_optional!(conn, Vehicle,
//!     "select * from vehicle where tenant_id = $1 and id = $2", tenant, id)?;
//! ```
//! The statement must be a `&'static str`; each argument is bound with sqlx, so it must encode on
//! both backends (see [`crate::Id`] and [`crate::List`]). Results map errors into [`crate::Error`].

#[doc(hidden)]
#[macro_export]
macro_rules! __run {
    ($conn:expr, $sql:expr, |$q:ident| $build:expr, $finish:ident) => {{
        let sql: &'static str = $sql;
        match $crate::Conn::raw($conn) {
            $crate::Raw::Pg(c) => {
                let $q = sql;
                $build.$finish(c).await
            }
            $crate::Raw::Lite(c) => {
                let $q = $crate::dialect::to_sqlite(sql);
                $build.$finish(c).await
            }
        }
        .map_err($crate::Error::from)
    }};
}

/// Exactly one row, decoded with `sqlx::FromRow`; none is `sqlx::Error::RowNotFound`.
#[macro_export]
macro_rules! fetch_one {
    ($conn:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::__run!($conn, $sql, |q| $crate::sqlx::query_as::<_, $ty>(q)$(.bind($arg))*, fetch_one)
    };
}

/// At most one row.
#[macro_export]
macro_rules! fetch_optional {
    ($conn:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::__run!($conn, $sql, |q| $crate::sqlx::query_as::<_, $ty>(q)$(.bind($arg))*, fetch_optional)
    };
}

/// All rows.
#[macro_export]
macro_rules! fetch_all {
    ($conn:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::__run!($conn, $sql, |q| $crate::sqlx::query_as::<_, $ty>(q)$(.bind($arg))*, fetch_all)
    };
}

/// The first column of exactly one row.
#[macro_export]
macro_rules! fetch_scalar {
    ($conn:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::__run!($conn, $sql, |q| $crate::sqlx::query_scalar::<_, $ty>(q)$(.bind($arg))*, fetch_one)
    };
}

/// The first column of at most one row.
#[macro_export]
macro_rules! fetch_scalar_optional {
    ($conn:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::__run!($conn, $sql, |q| $crate::sqlx::query_scalar::<_, $ty>(q)$(.bind($arg))*, fetch_optional)
    };
}

/// Runs a statement and returns the number of rows it touched.
#[macro_export]
macro_rules! execute {
    ($conn:expr, $sql:expr $(, $arg:expr)* $(,)?) => {{
        let sql: &'static str = $sql;
        match $crate::Conn::raw($conn) {
            $crate::Raw::Pg(c) => $crate::sqlx::query(sql)$(.bind($arg))*
                .execute(c).await.map(|d| d.rows_affected()),
            $crate::Raw::Lite(c) => $crate::sqlx::query($crate::dialect::to_sqlite(sql))$(.bind($arg))*
                .execute(c).await.map(|d| d.rows_affected()),
        }
        .map_err($crate::Error::from)
    }};
}
