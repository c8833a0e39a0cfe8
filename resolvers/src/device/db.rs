use chrono::{DateTime, Utc};
use minigate_push::app::{Environment, Provider};
use minigate_store::{self as store, Conn, Id};

use crate::Result;

/// Devices kept per person: the oldest are let go beyond this (phones replaced, apps
/// reinstalled without a sign-out).
pub const MAX_PER_USER: i64 = 10;

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: Id,
    pub tenant_id: Id,
    pub user_id: Id,
    pub provider: String,
    pub environment: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

impl DeviceRow {
    pub fn provider(&self) -> Option<Provider> {
        Provider::parse(&self.provider)
    }

    pub fn environment(&self) -> Option<Environment> {
        Environment::parse(&self.environment)
    }
}

macro_rules! select_device {
    ($rest:literal) => {
        concat!(
            "select id, tenant_id, user_id, provider, environment, token, created_at, seen_at
             from push_device ",
            $rest
        )
    };
}

/// Registers `token` as `user`'s device: a token already known (even as someone else's) moves
/// to them and is marked seen. Keeps the person's newest [`MAX_PER_USER`].
pub async fn register(
    c: &mut Conn,
    tenant: Id,
    user: Id,
    provider: Provider,
    environment: Environment,
    token: &str,
    now: DateTime<Utc>,
) -> Result<DeviceRow> {
    let row = store::fetch_one!(
        c,
        DeviceRow,
        "insert into push_device (id, tenant_id, user_id, provider, environment, token, created_at, seen_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7)
         on conflict (provider, environment, token)
         do update set tenant_id = excluded.tenant_id, user_id = excluded.user_id, seen_at = excluded.seen_at
         returning id, tenant_id, user_id, provider, environment, token, created_at, seen_at",
        Id::new(),
        tenant,
        user,
        provider.as_str(),
        environment.as_str(),
        token,
        now
    )?;
    store::execute!(
        c,
        "delete from push_device where user_id = $1 and id not in
           (select id from push_device where user_id = $1 order by seen_at desc, id limit $2)",
        user,
        MAX_PER_USER
    )?;
    Ok(row)
}

/// Removes `user`'s registration of `token`; whether there was one.
pub async fn unregister(
    c: &mut Conn,
    user: Id,
    provider: Provider,
    environment: Environment,
    token: &str,
) -> Result<bool> {
    let n = store::execute!(
        c,
        "delete from push_device where user_id = $1 and provider = $2 and environment = $3 and token = $4",
        user,
        provider.as_str(),
        environment.as_str(),
        token
    )?;
    Ok(n > 0)
}

/// Removes a token its provider disowned, in that provider and environment only.
pub async fn remove_token(
    c: &mut Conn,
    provider: &str,
    environment: &str,
    token: &str,
) -> Result<bool> {
    let n = store::execute!(
        c,
        "delete from push_device where provider = $1 and environment = $2 and token = $3",
        provider,
        environment,
        token
    )?;
    Ok(n > 0)
}

/// The devices of `user`, newest first.
pub async fn of_user(c: &mut Conn, user: Id) -> Result<Vec<DeviceRow>> {
    Ok(store::fetch_all!(
        c,
        DeviceRow,
        select_device!("where user_id = $1 order by seen_at desc, id"),
        user
    )?)
}

/// The devices of every one of `users`, in one query.
pub async fn of_users(c: &mut Conn, users: Vec<Id>) -> Result<Vec<DeviceRow>> {
    Ok(store::fetch_all!(
        c,
        DeviceRow,
        select_device!("where user_id = any($1) order by seen_at desc, id"),
        store::List(users)
    )?)
}
