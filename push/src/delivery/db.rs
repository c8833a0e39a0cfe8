//! SQL of deliveries and their attempts.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};
use serde::Serialize;
use sqlx::types::Json;

use super::{Channel, Class, DEAD, PENDING};
use crate::Result;

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: Id,
    pub tenant_id: Id,
    pub user_id: Id,
    pub kind: String,
    pub class: String,
    pub source_id: Id,
    pub channel: String,
    pub fallback: String,
    pub payload: Json<serde_json::Value>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_code: Option<String>,
    pub last_detail: Option<String>,
    pub provider_msg_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! delivery_columns {
    () => {
        "id, tenant_id, user_id, kind, class, source_id, channel, fallback, payload, status, attempts, next_attempt_at, claimed_by, lease_until, last_code, last_detail, provider_msg_id, sent_at, created_at, updated_at"
    };
}

macro_rules! select_delivery {
    ($rest:literal) => {
        concat!(
            "select ",
            delivery_columns!(),
            " from push_delivery ",
            $rest
        )
    };
}

/// A message for one person: its first channel gets a row now, the rest are its fallback.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub tenant_id: Id,
    pub user_id: Id,
    pub kind: &'a str,
    pub class: Class,
    pub source_id: Id,
    /// The channel order, first first; at least one.
    pub channels: &'a [Channel],
    pub payload: &'a serde_json::Value,
    pub not_before: DateTime<Utc>,
}

/// Writes the message's first row in the caller's transaction. The same (kind, source, person)
/// again writes nothing: an event handled twice sends once. Returns the row's id when written.
pub async fn enqueue(tx: &mut Conn, d: &NewDelivery<'_>) -> Result<Option<Id>> {
    let Some((first, rest)) = d.channels.split_first() else {
        return Ok(None);
    };
    let fallback = rest
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    insert(tx, d, *first, &fallback).await
}

async fn insert(
    tx: &mut Conn,
    d: &NewDelivery<'_>,
    channel: Channel,
    fallback: &str,
) -> Result<Option<Id>> {
    let id = Id::new();
    let n = store::execute!(
        tx,
        "insert into push_delivery (id, tenant_id, user_id, kind, class, source_id, channel, fallback, payload, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (kind, source_id, user_id, channel) do nothing",
        id,
        d.tenant_id,
        d.user_id,
        d.kind,
        d.class.as_str(),
        d.source_id,
        channel.as_str(),
        fallback,
        Json(d.payload),
        d.not_before
    )?;
    Ok((n == 1).then_some(id))
}

/// Takes back what workers held past their lease (they died, or hang): due again now. Returns
/// (id, attempt, channel) of each row taken back.
///
/// A row whose attempts are used up is dead-lettered instead: a message whose sending keeps
/// hanging (or killing its worker) must not hold a worker for a lease forever.
pub(super) async fn reclaim(
    c: &mut Conn,
    now: DateTime<Utc>,
    max_attempts: i32,
) -> Result<Vec<(Id, i32, String)>> {
    Ok(store::fetch_all!(
        c,
        (Id, i32, String),
        "update push_delivery set status = case when attempts >= $2 then 'DEAD' else 'PENDING' end,
             claimed_by = null, lease_until = null,
             next_attempt_at = $1, last_code = 'LEASE_EXPIRED',
             last_detail = 'the worker holding it did not settle it in time', updated_at = now()
         where status = 'SENDING' and lease_until < $1
         returning id, attempts, channel",
        now,
        max_attempts
    )?)
}

/// Claims up to `limit` due rows for `worker` until `lease_until`; rows another worker holds are
/// skipped (PostgreSQL: `skip locked`; SQLite has one writer at a time).
pub(super) async fn claim(
    c: &mut Conn,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    Ok(store::fetch_all!(
        c,
        Delivery,
        concat!(
            "update push_delivery set status = 'SENDING', claimed_by = $1, lease_until = $2,
                 attempts = attempts + 1, updated_at = now()
             where id in (select id from push_delivery where status = 'PENDING' and next_attempt_at <= $3
                          order by next_attempt_at limit $4 for update skip locked)
             returning ",
            delivery_columns!()
        ),
        worker,
        lease_until,
        now,
        limit
    )?)
}

/// The tenant's quiet hours and cap; the defaults when it set none.
pub(super) async fn policy(c: &mut Conn, tenant: Id) -> Result<super::policy::Policy> {
    let row: Option<(i32, i32, i32)> = store::fetch_optional!(
        c,
        (i32, i32, i32),
        "select quiet_start_minute, quiet_end_minute, daily_cap from push_policy where tenant_id = $1",
        tenant
    )?;
    Ok(match row {
        Some((s, e, cap)) => super::policy::Policy {
            quiet_start: u32::try_from(s).unwrap_or(0),
            quiet_end: u32::try_from(e).unwrap_or(0),
            daily_cap: u32::try_from(cap).unwrap_or(0),
        },
        None => super::policy::Policy::default(),
    })
}

/// Sends a dead letter again (an operator's decision): due now, attempts counted afresh.
/// `false` when it is not a dead letter of this tenant.
pub async fn retry_dead(c: &mut Conn, tenant: Id, id: Id, now: DateTime<Utc>) -> Result<bool> {
    let n = store::execute!(
        c,
        "update push_delivery set status = $4, attempts = 0, next_attempt_at = $3, updated_at = now()
         where id = $1 and tenant_id = $2 and status = $5",
        id,
        tenant,
        now,
        PENDING,
        DEAD
    )?;
    Ok(n == 1)
}

/// What operators filter deliveries by.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub status: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub user_id: Option<Id>,
    pub source_id: Option<Id>,
}

/// A tenant's deliveries, newest first.
pub async fn list(c: &mut Conn, tenant: Id, f: &Filter<'_>, limit: i64) -> Result<Vec<Delivery>> {
    Ok(store::fetch_all!(
        c,
        Delivery,
        select_delivery!(
            "where tenant_id = $1
               and ($2 = '' or status = $2) and ($3 = '' or channel = $3)
               and ($4 = '' or user_id = $5) and ($6 = '' or source_id = $7)
             order by created_at desc, id limit $8"
        ),
        tenant,
        f.status.unwrap_or(""),
        f.channel.unwrap_or(""),
        if f.user_id.is_some() { "x" } else { "" },
        f.user_id.unwrap_or(tenant),
        if f.source_id.is_some() { "x" } else { "" },
        f.source_id.unwrap_or(tenant),
        limit
    )?)
}

pub async fn get(c: &mut Conn, id: Id) -> Result<Delivery> {
    Ok(store::fetch_one!(
        c,
        Delivery,
        select_delivery!("where id = $1"),
        id
    )?)
}

/// The attempts of a delivery, oldest first: (attempt, outcome, code, worker).
pub async fn attempts(c: &mut Conn, id: Id) -> Result<Vec<(i32, String, Option<String>, String)>> {
    Ok(store::fetch_all!(
        c,
        (i32, String, Option<String>, String),
        "select attempt, outcome, code, worker from push_attempt where delivery_id = $1 order by at, attempt",
        id
    )?)
}
