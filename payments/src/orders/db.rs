//! SQL of orders, notifications, the ledger and flags.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, Unique};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use crate::{Error, Result};

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    pub id: Id,
    pub tenant_id: Id,
    pub bill_id: Id,
    pub provider: String,
    pub channel: String,
    pub out_trade_no: String,
    pub merchant_id: String,
    pub app_id: String,
    pub amount_fen: i64,
    pub description: String,
    pub status: String,
    pub payer_openid: Option<String>,
    pub code_url: Option<String>,
    pub prepay_id: Option<String>,
    pub provider_trade_no: Option<String>,
    pub paid_fen: Option<i64>,
    pub paid_at: Option<DateTime<Utc>>,
    /// What refunds have given back so far (successful refunds only).
    pub refunded_fen: i64,
    pub expires_at: DateTime<Utc>,
    pub next_query_at: DateTime<Utc>,
    pub query_count: i32,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_by: Option<Id>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`OrderRow`], for `select` and `returning`.
macro_rules! returning {
    () => {
        "id, tenant_id, bill_id, provider, channel, out_trade_no, merchant_id, app_id, amount_fen, description, status, payer_openid, code_url, prepay_id, provider_trade_no, paid_fen, paid_at, refunded_fen, expires_at, next_query_at, query_count, closed_at, created_by, created_at, updated_at"
    };
}

/// Builds `select <columns> from payment_order <rest>` once per call site.
macro_rules! select_order {
    ($rest:literal) => {
        concat!("select ", returning!(), " from payment_order ", $rest)
    };
}

const OPEN_PER_BILL: Unique = Unique {
    name: "payment_order_open_bill_key",
    table: "payment_order",
    columns: &["bill_id"],
};

/// A new order, before any provider has seen it.
pub struct NewOrderRow<'a> {
    pub tenant_id: Id,
    pub bill_id: Id,
    pub provider: &'a str,
    pub channel: &'a str,
    pub out_trade_no: &'a str,
    pub merchant_id: &'a str,
    pub app_id: &'a str,
    pub amount_fen: i64,
    pub description: &'a str,
    pub payer_openid: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub next_query_at: DateTime<Utc>,
    pub created_by: Option<Id>,
}

/// Inserts a `CREATED` order; [`Error::OrderOpen`] when the bill already has one.
pub async fn insert_order(c: &mut Conn, o: &NewOrderRow<'_>) -> Result<OrderRow> {
    let id = Id::new();
    let r = store::execute!(
        c,
        "insert into payment_order (id, tenant_id, bill_id, provider, channel, out_trade_no, merchant_id, app_id, amount_fen, description, payer_openid, expires_at, next_query_at, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        id,
        o.tenant_id,
        o.bill_id,
        o.provider,
        o.channel,
        o.out_trade_no,
        o.merchant_id,
        o.app_id,
        o.amount_fen,
        o.description,
        o.payer_openid,
        o.expires_at,
        o.next_query_at,
        o.created_by
    );
    if let Err(e) = r {
        return Err(if e.is_unique(&OPEN_PER_BILL) {
            Error::OrderOpen
        } else {
            e.into()
        });
    }
    get_order(c, id).await
}

pub async fn get_order(c: &mut Conn, id: Id) -> Result<OrderRow> {
    Ok(store::fetch_one!(
        c,
        OrderRow,
        select_order!("where id = $1"),
        id
    )?)
}

pub async fn find_order(c: &mut Conn, id: Id) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        select_order!("where id = $1"),
        id
    )?)
}

/// The orders with these ids.
pub async fn by_ids(c: &mut Conn, ids: &[Id]) -> Result<Vec<OrderRow>> {
    Ok(store::fetch_all!(
        c,
        OrderRow,
        select_order!("where id = any($1)"),
        store::List(ids.to_vec())
    )?)
}

/// The orders with these numbers (a batch of bill rows).
pub async fn by_out_trade_nos(c: &mut Conn, nos: &[String]) -> Result<Vec<OrderRow>> {
    Ok(store::fetch_all!(
        c,
        OrderRow,
        select_order!("where out_trade_no = any($1)"),
        store::List(nos.to_vec())
    )?)
}

/// The order, locked for the rest of the transaction.
pub async fn lock_order(c: &mut Conn, id: Id) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        select_order!("where id = $1 for update"),
        id
    )?)
}

/// The order with this `out_trade_no`, locked for the rest of the transaction.
pub async fn lock_by_out_trade_no(c: &mut Conn, out_trade_no: &str) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        select_order!("where out_trade_no = $1 for update"),
        out_trade_no
    )?)
}

/// The bill's open order, if any.
pub async fn find_open_for_bill(c: &mut Conn, bill_id: Id) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        select_order!("where bill_id = $1 and status = 'CREATED'"),
        bill_id
    )?)
}

/// The bill's orders, newest first.
pub async fn list_for_bill(c: &mut Conn, bill_id: Id) -> Result<Vec<OrderRow>> {
    Ok(store::fetch_all!(
        c,
        OrderRow,
        select_order!("where bill_id = $1 order by created_at desc, id desc"),
        bill_id
    )?)
}

/// Records what the provider gave for an order it accepted.
pub async fn set_opened(
    c: &mut Conn,
    id: Id,
    code_url: Option<&str>,
    prepay_id: Option<&str>,
) -> Result<OrderRow> {
    store::execute!(
        c,
        "update payment_order set code_url = $2, prepay_id = $3, updated_at = now() where id = $1",
        id,
        code_url,
        prepay_id
    )?;
    get_order(c, id).await
}

/// Closes a `CREATED` order; `None` when it was no longer `CREATED` (paid meanwhile).
pub async fn close_order(c: &mut Conn, id: Id, at: DateTime<Utc>) -> Result<Option<OrderRow>> {
    let n = store::execute!(
        c,
        "update payment_order set status = 'CLOSED', closed_at = $2, updated_at = $2 where id = $1 and status = 'CREATED'",
        id,
        at
    )?;
    if n == 0 {
        return Ok(None);
    }
    get_order(c, id).await.map(Some)
}

/// `CREATED` orders whose next query is due, oldest first.
pub async fn due_orders(c: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<OrderRow>> {
    Ok(store::fetch_all!(
        c,
        OrderRow,
        select_order!(
            "where status = 'CREATED' and next_query_at <= $1 order by next_query_at limit $2"
        ),
        now,
        limit
    )?)
}

/// Schedules the next query of a `CREATED` order.
pub async fn reschedule(c: &mut Conn, id: Id, next: DateTime<Utc>) -> Result<()> {
    store::execute!(
        c,
        "update payment_order set next_query_at = $2, query_count = query_count + 1 where id = $1 and status = 'CREATED'",
        id,
        next
    )?;
    Ok(())
}

/// A verified notification to store raw.
pub struct NotificationRecord<'a> {
    pub provider: &'a str,
    pub dedup_key: &'a str,
    pub tenant_id: Option<Id>,
    pub out_trade_no: Option<&'a str>,
    pub event_type: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a str,
    pub outcome: &'a str,
}

/// Whether this notification was stored before (a provider re-sending one it already had
/// answered). Read outside any transaction, as a cheap first answer for re-sends; the insert in
/// [`insert_notification`] stays the guard against two deliveries racing.
pub async fn notification_seen(c: &mut Conn, provider: &str, dedup_key: &str) -> Result<bool> {
    Ok(store::fetch_scalar_optional!(
        c,
        i32,
        "select 1 from payment_notification where provider = $1 and dedup_key = $2",
        provider,
        dedup_key
    )?
    .is_some())
}

/// Stores a notification once; `None` when the provider sent this one before.
pub async fn insert_notification(c: &mut Conn, n: &NotificationRecord<'_>) -> Result<Option<Id>> {
    let id = Id::new();
    let headers: serde_json::Map<String, serde_json::Value> = n
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(store::fetch_scalar_optional!(
        c,
        Id,
        "insert into payment_notification (id, provider, dedup_key, tenant_id, out_trade_no, event_type, headers, body, outcome)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (provider, dedup_key) do nothing
         returning id",
        id,
        n.provider,
        n.dedup_key,
        n.tenant_id,
        n.out_trade_no,
        n.event_type,
        Json(headers),
        n.body,
        n.outcome
    )?)
}

pub async fn set_notification_outcome(c: &mut Conn, id: Id, outcome: &str) -> Result<()> {
    store::execute!(
        c,
        "update payment_notification set outcome = $2 where id = $1",
        id,
        outcome
    )?;
    Ok(())
}

/// A flag for a person to decide on.
pub async fn insert_flag(
    c: &mut Conn,
    tenant_id: Option<Id>,
    order_id: Option<Id>,
    notification_id: Option<Id>,
    kind: &str,
    detail: &str,
) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into payment_flag (id, tenant_id, order_id, notification_id, kind, detail) values ($1, $2, $3, $4, $5, $6)",
        id,
        tenant_id,
        order_id,
        notification_id,
        kind,
        detail
    )?;
    Ok(id)
}

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagRow {
    pub id: Id,
    pub tenant_id: Option<Id>,
    pub order_id: Option<Id>,
    pub notification_id: Option<Id>,
    pub kind: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A tenant's flags not yet resolved, newest first.
pub async fn open_flags(c: &mut Conn, tenant_id: Id, limit: i64) -> Result<Vec<FlagRow>> {
    Ok(store::fetch_all!(
        c,
        FlagRow,
        "select id, tenant_id, order_id, notification_id, kind, detail, created_at, resolved_at from payment_flag
         where tenant_id = $1 and resolved_at is null order by created_at desc limit $2",
        tenant_id,
        limit
    )?)
}

/// Writes a ledger entry once per order, kind and provider transaction; `false` if it existed.
pub(crate) async fn insert_ledger(
    c: &mut Conn,
    o: &OrderRow,
    kind: &str,
    amount_fen: i64,
    provider_ref: &str,
    source: &str,
) -> Result<bool> {
    let n = store::execute!(
        c,
        "insert into ledger_entry (id, tenant_id, order_id, bill_id, kind, amount_fen, provider, provider_ref, source)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (order_id, kind, provider_ref) do nothing",
        Id::new(),
        o.tenant_id,
        o.id,
        o.bill_id,
        kind,
        amount_fen,
        &o.provider,
        provider_ref,
        source
    )?;
    Ok(n == 1)
}

/// Marks a `CREATED` order paid; `None` when it was not `CREATED`.
pub(super) async fn mark_paid(
    c: &mut Conn,
    id: Id,
    p: &super::apply::Payment,
) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        concat!(
            "update payment_order set status = 'PAID', paid_fen = $2, paid_at = $3, provider_trade_no = $4, updated_at = now()
             where id = $1 and status = 'CREATED' returning ",
            returning!()
        ),
        id,
        p.fen,
        p.at,
        &p.provider_trade_no
    )?)
}

/// Records money that reached a closed order (the order stays `CLOSED`); `None` if recorded
/// before.
pub(super) async fn record_paid_after_close(
    c: &mut Conn,
    id: Id,
    p: &super::apply::Payment,
) -> Result<Option<OrderRow>> {
    Ok(store::fetch_optional!(
        c,
        OrderRow,
        concat!(
            "update payment_order set paid_fen = $2, paid_at = $3, provider_trade_no = $4, updated_at = now()
             where id = $1 and status = 'CLOSED' and paid_fen is null returning ",
            returning!()
        ),
        id,
        p.fen,
        p.at,
        &p.provider_trade_no
    )?)
}

/// Marks the bill paid if it is still open.
pub(super) async fn mark_bill_paid(c: &mut Conn, bill_id: Id, at: DateTime<Utc>) -> Result<()> {
    store::execute!(
        c,
        "update bill set status = 'PAID', paid_at = $2, updated_at = now() where id = $1 and status = 'OPEN'",
        bill_id,
        at
    )?;
    Ok(())
}

/// Ledger entries of an order, for tests and people.
pub async fn ledger_count(c: &mut Conn, order_id: Id) -> Result<i64> {
    Ok(store::fetch_scalar!(
        c,
        i64,
        "select count(*) from ledger_entry where order_id = $1",
        order_id
    )?)
}

/// An order as tests need one: 1,000 fen by WeChat Native, in `status`, paid `paid`.
#[cfg(test)]
pub(crate) fn sample_order(status: &str, paid: Option<i64>) -> OrderRow {
    let now = Utc::now();
    OrderRow {
        id: Id::new(),
        tenant_id: Id::new(),
        bill_id: Id::new(),
        provider: "wechat".into(),
        channel: "WECHAT_NATIVE".into(),
        out_trade_no: "0123456789abcdef0123456789abcdef".into(),
        merchant_id: "1900009191".into(),
        app_id: "wx0".into(),
        amount_fen: 1_000,
        description: "Rent".into(),
        status: status.into(),
        payer_openid: None,
        code_url: None,
        prepay_id: None,
        provider_trade_no: None,
        paid_fen: paid,
        paid_at: None,
        refunded_fen: 0,
        expires_at: now + chrono::Duration::minutes(30),
        next_query_at: now,
        query_count: 0,
        closed_at: None,
        created_by: None,
        created_at: now,
        updated_at: now,
    }
}
