use sqlx::{
    Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo},
};

/// A list parameter, written `col = any($1)` in the SQL. PostgreSQL receives an array; SQLite,
/// which has no arrays, receives a JSON array that the translated SQL reads with `json_each`.
#[derive(Debug, Clone)]
pub struct List<T>(pub Vec<T>);

impl<T> Type<Postgres> for List<T>
where
    Vec<T>: Type<Postgres>,
{
    fn type_info() -> PgTypeInfo {
        <Vec<T> as Type<Postgres>>::type_info()
    }
}

impl<T> Encode<'_, Postgres> for List<T>
where
    for<'a> Vec<T>: Encode<'a, Postgres>,
{
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<T> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<T> Type<Sqlite> for List<T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<T: serde::Serialize> Encode<'_, Sqlite> for List<T> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}
