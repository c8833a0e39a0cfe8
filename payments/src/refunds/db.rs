//! SQL of refunds.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};
use serde::{Deserialize, Serialize};

use crate::Result;

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRow {
    pub id: Id,
    pub tenant_id: Id,
    pub order_id: Id,
    pub bill_id: Id,
    pub provider: String,
    pub out_refund_no: String,
    pub provider_refund_no: Option<String>,
    pub amount_fen: i64,
    pub reason: String,
    pub status: String,
    pub failure: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub next_query_at: Option<DateTime<Utc>>,
    pub query_count: i32,
    pub requested_by: Option<Id>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! refund_columns {
    () => {
        "id, tenant_id, order_id, bill_id, provider, out_refund_no, provider_refund_no, amount_fen, reason, status, failure, accepted_at, succeeded_at, next_query_at, query_count, requested_by, created_at, updated_at"
    };
}

macro_rules! select_refund {
    ($rest:literal) => {
        concat!("select ", refund_columns!(), " from payment_refund ", $rest)
    };
}

/// A refund about to be asked for.
pub struct NewRefundRow<'a> {
    pub tenant_id: Id,
    pub order_id: Id,
    pub bill_id: Id,
    pub provider: &'a str,
    pub out_refund_no: &'a str,
    pub amount_fen: i64,
    pub reason: &'a str,
    pub next_query_at: DateTime<Utc>,
    pub requested_by: Option<Id>,
}

pub async fn insert_refund(c: &mut Conn, r: &NewRefundRow<'_>) -> Result<RefundRow> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into payment_refund (id, tenant_id, order_id, bill_id, provider, out_refund_no, amount_fen, reason, next_query_at, requested_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id,
        r.tenant_id,
        r.order_id,
        r.bill_id,
        r.provider,
        r.out_refund_no,
        r.amount_fen,
        r.reason,
        r.next_query_at,
        r.requested_by
    )?;
    get_refund(c, id).await
}

pub async fn get_refund(c: &mut Conn, id: Id) -> Result<RefundRow> {
    Ok(store::fetch_one!(
        c,
        RefundRow,
        select_refund!("where id = $1"),
        id
    )?)
}

pub async fn find_refund(c: &mut Conn, id: Id) -> Result<Option<RefundRow>> {
    Ok(store::fetch_optional!(
        c,
        RefundRow,
        select_refund!("where id = $1"),
        id
    )?)
}

pub async fn find_by_out_refund_no(c: &mut Conn, out_refund_no: &str) -> Result<Option<RefundRow>> {
    Ok(store::fetch_optional!(
        c,
        RefundRow,
        select_refund!("where out_refund_no = $1"),
        out_refund_no
    )?)
}

/// The refunds of an order, oldest first.
pub async fn list_for_order(c: &mut Conn, order_id: Id) -> Result<Vec<RefundRow>> {
    Ok(store::fetch_all!(
        c,
        RefundRow,
        select_refund!("where order_id = $1 order by created_at, id"),
        order_id
    )?)
}

/// The refunds of these orders, oldest first (for a page of payments).
pub async fn list_for_orders(c: &mut Conn, order_ids: &[Id]) -> Result<Vec<RefundRow>> {
    Ok(store::fetch_all!(
        c,
        RefundRow,
        select_refund!("where order_id = any($1) order by created_at, id"),
        store::List(order_ids.to_vec())
    )?)
}

/// The refunds with these ids.
pub async fn by_ids(c: &mut Conn, ids: &[Id]) -> Result<Vec<RefundRow>> {
    Ok(store::fetch_all!(
        c,
        RefundRow,
        select_refund!("where id = any($1)"),
        store::List(ids.to_vec())
    )?)
}

/// The refunds with these numbers (a batch of bill rows).
pub async fn by_out_refund_nos(c: &mut Conn, nos: &[String]) -> Result<Vec<RefundRow>> {
    Ok(store::fetch_all!(
        c,
        RefundRow,
        select_refund!("where out_refund_no = any($1)"),
        store::List(nos.to_vec())
    )?)
}

/// What an order's refunds hold: the sum of those that succeeded or may still succeed, and
/// whether one is under way.
pub(super) async fn committed(c: &mut Conn, order_id: Id) -> Result<(i64, bool)> {
    let (fen, processing): (i64, i64) = store::fetch_one!(
        c,
        (i64, i64),
        // PostgreSQL sums a bigint as numeric: cast back, or it does not decode as i64.
        "select cast(coalesce(sum(amount_fen), 0) as bigint), coalesce(sum(case when status = 'PROCESSING' then 1 else 0 end), 0)
         from payment_refund where order_id = $1 and status in ('PROCESSING', 'SUCCESS', 'ABNORMAL')",
        order_id
    )?;
    Ok((fen, processing > 0))
}

/// Moves a refund to `status` with what the provider said.
pub(super) async fn set_state(
    c: &mut Conn,
    id: Id,
    status: &str,
    provider_refund_no: Option<&str>,
    accepted_at: Option<DateTime<Utc>>,
    succeeded_at: Option<DateTime<Utc>>,
    failure: Option<&str>,
) -> Result<RefundRow> {
    store::execute!(
        c,
        "update payment_refund set status = $2,
             provider_refund_no = coalesce($3, provider_refund_no),
             accepted_at = coalesce($4, accepted_at),
             succeeded_at = coalesce($5, succeeded_at),
             failure = coalesce($6, failure),
             next_query_at = case when $2 = 'PROCESSING' then next_query_at else null end,
             updated_at = now()
         where id = $1",
        id,
        status,
        provider_refund_no,
        accepted_at,
        succeeded_at,
        failure
    )?;
    get_refund(c, id).await
}

/// Refunds still `PROCESSING` whose next look at the provider is due, oldest due first.
pub async fn due_refunds(c: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<RefundRow>> {
    Ok(store::fetch_all!(
        c,
        RefundRow,
        select_refund!(
            "where status = 'PROCESSING' and next_query_at <= $1 order by next_query_at limit $2"
        ),
        now,
        limit
    )?)
}

/// When to look at a processing refund next.
pub async fn reschedule(c: &mut Conn, id: Id, next: DateTime<Utc>) -> Result<()> {
    store::execute!(
        c,
        "update payment_refund set next_query_at = $2, query_count = query_count + 1, updated_at = now()
         where id = $1 and status = 'PROCESSING'",
        id,
        next
    )?;
    Ok(())
}

/// Sets an order's refund figures and status (the order is locked by the caller).
pub(super) async fn set_order_refunds(
    c: &mut Conn,
    order_id: Id,
    refunded_fen: i64,
    status: &str,
) -> Result<()> {
    store::execute!(
        c,
        "update payment_order set refunded_fen = $2, status = $3, updated_at = now() where id = $1",
        order_id,
        refunded_fen,
        status
    )?;
    Ok(())
}
