//! SQL of reconciliation runs, their differences, and the items a pass found in the bill.

use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::{Result, orders::OrderRow, refunds::RefundRow};

#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: Id,
    pub tenant_id: Id,
    pub provider: String,
    pub bill_date: NaiveDate,
    pub status: String,
    pub passes: i32,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub bill_digest: Option<String>,
    pub payment_count: i64,
    pub payment_fen: i64,
    pub refund_count: i64,
    pub refund_fen: i64,
    pub fee_millifen: i64,
    pub difference_count: i32,
    pub repaired_count: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! select_run {
    ($rest:literal) => {
        concat!(
            "select id, tenant_id, provider, bill_date, status, passes, attempts, next_attempt_at, error_code, error_detail, bill_digest, payment_count, payment_fen, refund_count, refund_fen, fee_millifen, difference_count, repaired_count, started_at, finished_at, created_at, updated_at from reconciliation_run ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct DifferenceRow {
    pub id: Id,
    pub run_id: Id,
    pub tenant_id: Id,
    pub kind: String,
    pub reference: String,
    pub out_trade_no: Option<String>,
    pub order_id: Option<Id>,
    pub refund_id: Option<Id>,
    pub local_fen: Option<i64>,
    pub provider_fen: Option<i64>,
    pub local_status: Option<String>,
    pub provider_status: Option<String>,
    pub detail: String,
    pub repaired: bool,
    pub pass: i32,
    pub status: String,
    pub resolution: Option<String>,
    pub note: Option<String>,
    pub resolved_by: Option<Id>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! select_difference {
    ($rest:literal) => {
        concat!(
            "select id, run_id, tenant_id, kind, reference, out_trade_no, order_id, refund_id, local_fen, provider_fen, local_status, provider_status, detail, repaired, pass, status, resolution, note, resolved_by, resolved_at, created_at from reconciliation_difference ",
            $rest
        )
    };
}

/// A difference as a pass finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDifference {
    pub kind: &'static str,
    pub reference: String,
    pub out_trade_no: Option<String>,
    pub order_id: Option<Id>,
    pub refund_id: Option<Id>,
    pub local_fen: Option<i64>,
    pub provider_fen: Option<i64>,
    pub local_status: Option<String>,
    pub provider_status: Option<String>,
    pub detail: String,
    pub repaired: bool,
}

/// A pass that has not ended after this long is taken for dead (its process crashed) and may
/// be started again.
pub const STALE_PASS_MINUTES: i64 = 60;

/// Starts a pass of the run of (tenant, provider, day), creating the run the first time, and
/// returns it `RUNNING` with its pass number; `None` while another pass of it is running. The
/// claim is a conditional update, so it holds between processes on either backend (a CLI next
/// to the service's job on one SQLite file too).
pub async fn start_run(
    c: &mut Conn,
    tenant_id: Id,
    provider: &str,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Option<RunRow>> {
    store::execute!(
        c,
        "insert into reconciliation_run (id, tenant_id, provider, bill_date) values ($1, $2, $3, $4)
         on conflict (tenant_id, provider, bill_date) do nothing",
        Id::new(),
        tenant_id,
        provider,
        day
    )?;
    Ok(store::fetch_optional!(
        c,
        RunRow,
        concat!(
            "update reconciliation_run set status = 'RUNNING', passes = passes + 1, attempts = attempts + 1,
                 started_at = $4, finished_at = null, error_code = null, error_detail = null, updated_at = now()
             where tenant_id = $1 and provider = $2 and bill_date = $3
               and (status <> 'RUNNING' or started_at < $5) returning ",
            "id, tenant_id, provider, bill_date, status, passes, attempts, next_attempt_at, error_code, error_detail, bill_digest, payment_count, payment_fen, refund_count, refund_fen, fee_millifen, difference_count, repaired_count, started_at, finished_at, created_at, updated_at"
        ),
        tenant_id,
        provider,
        day,
        now,
        now - chrono::Duration::minutes(STALE_PASS_MINUTES)
    )?)
}

/// Creates the run of a day if there is none yet (for the daily job), as `PENDING`, due at
/// `due` (the job's own clock, so that the tick that creates it also runs it).
pub async fn ensure_run(
    c: &mut Conn,
    tenant_id: Id,
    provider: &str,
    day: NaiveDate,
    due: DateTime<Utc>,
) -> Result<()> {
    store::execute!(
        c,
        "insert into reconciliation_run (id, tenant_id, provider, bill_date, next_attempt_at) values ($1, $2, $3, $4, $5)
         on conflict (tenant_id, provider, bill_date) do nothing",
        Id::new(),
        tenant_id,
        provider,
        day,
        due
    )?;
    Ok(())
}

/// Ends a pass that could not run yet or failed: `WAITING` (the bill is not there) or `FAILED`
/// (the bill was refused), to be tried again at `next`.
pub async fn end_run_unfinished(
    c: &mut Conn,
    id: Id,
    status: &str,
    code: &str,
    detail: &str,
    next: Option<DateTime<Utc>>,
) -> Result<RunRow> {
    store::execute!(
        c,
        "update reconciliation_run set status = $2, error_code = $3, error_detail = $4, next_attempt_at = $5,
             finished_at = now(), updated_at = now() where id = $1",
        id,
        status,
        code,
        detail,
        next
    )?;
    get_run(c, id).await
}

/// The figures of a finished pass.
pub struct Finished<'a> {
    pub digest: &'a str,
    pub payment_count: i64,
    pub payment_fen: i64,
    pub refund_count: i64,
    pub refund_fen: i64,
    pub fee_millifen: i64,
}

/// Ends a pass `DONE`: drops the open differences it did not find again, counts the rest.
pub async fn finish_run(c: &mut Conn, run: &RunRow, f: &Finished<'_>) -> Result<RunRow> {
    store::execute!(
        c,
        "delete from reconciliation_difference where run_id = $1 and status = 'OPEN' and pass < $2",
        run.id,
        run.passes
    )?;
    store::execute!(
        c,
        "update reconciliation_run set status = 'DONE', bill_digest = $2, payment_count = $3, payment_fen = $4,
             refund_count = $5, refund_fen = $6, fee_millifen = $7,
             difference_count = (select count(*) from reconciliation_difference d where d.run_id = $1 and not d.repaired),
             repaired_count = (select count(*) from reconciliation_difference d where d.run_id = $1 and d.repaired),
             next_attempt_at = null, finished_at = now(), updated_at = now()
         where id = $1",
        run.id,
        f.digest,
        f.payment_count,
        f.payment_fen,
        f.refund_count,
        f.refund_fen,
        f.fee_millifen
    )?;
    clear_seen(c, run.id).await?;
    get_run(c, run.id).await
}

pub async fn get_run(c: &mut Conn, id: Id) -> Result<RunRow> {
    Ok(store::fetch_one!(
        c,
        RunRow,
        select_run!("where id = $1"),
        id
    )?)
}

pub async fn find_run(c: &mut Conn, tenant_id: Id, id: Id) -> Result<Option<RunRow>> {
    Ok(store::fetch_optional!(
        c,
        RunRow,
        select_run!("where id = $1 and tenant_id = $2"),
        id,
        tenant_id
    )?)
}

/// A tenant's runs, newest day first.
pub async fn list_runs(
    c: &mut Conn,
    tenant_id: Id,
    provider: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>> {
    Ok(match provider {
        Some(p) => store::fetch_all!(
            c,
            RunRow,
            select_run!(
                "where tenant_id = $1 and provider = $2 order by bill_date desc, provider limit $3"
            ),
            tenant_id,
            p,
            limit
        )?,
        None => store::fetch_all!(
            c,
            RunRow,
            select_run!("where tenant_id = $1 order by bill_date desc, provider limit $2"),
            tenant_id,
            limit
        )?,
    })
}

/// Runs the daily job should start or try again now (and passes left running by a process that
/// died).
pub async fn due_runs(c: &mut Conn, now: DateTime<Utc>, max_attempts: i32) -> Result<Vec<RunRow>> {
    Ok(store::fetch_all!(
        c,
        RunRow,
        select_run!(
            "where ((status in ('PENDING', 'WAITING', 'FAILED') and next_attempt_at <= $1)
                    or (status = 'RUNNING' and started_at < $3))
               and attempts < $2
             order by bill_date, created_at limit 50"
        ),
        now,
        max_attempts,
        now - chrono::Duration::minutes(STALE_PASS_MINUTES)
    )?)
}

/// Records a difference of this pass; one already known keeps its resolution.
pub async fn upsert_difference(
    c: &mut Conn,
    run: &RunRow,
    d: &NewDifference,
    resolved_by_system: bool,
) -> Result<()> {
    let (status, resolution, resolved_at): (&str, Option<&str>, Option<DateTime<Utc>>) =
        if resolved_by_system {
            ("RESOLVED", Some("REPAIRED"), Some(Utc::now()))
        } else {
            ("OPEN", None, None)
        };
    store::execute!(
        c,
        "insert into reconciliation_difference (id, run_id, tenant_id, kind, reference, out_trade_no, order_id, refund_id,
             local_fen, provider_fen, local_status, provider_status, detail, repaired, pass, status, resolution, resolved_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         on conflict (run_id, kind, reference) do update set
             local_fen = excluded.local_fen, provider_fen = excluded.provider_fen,
             local_status = excluded.local_status, provider_status = excluded.provider_status,
             detail = excluded.detail, pass = excluded.pass,
             -- Left open by an earlier pass (the provider could not be asked then), repaired now.
             repaired = reconciliation_difference.repaired or excluded.repaired,
             resolution = case when excluded.repaired and reconciliation_difference.status = 'OPEN'
                 then 'REPAIRED' else reconciliation_difference.resolution end,
             resolved_at = case when excluded.repaired and reconciliation_difference.status = 'OPEN'
                 then excluded.resolved_at else reconciliation_difference.resolved_at end,
             status = case when excluded.repaired then 'RESOLVED' else reconciliation_difference.status end",
        Id::new(),
        run.id,
        run.tenant_id,
        d.kind,
        &d.reference,
        d.out_trade_no.as_deref(),
        d.order_id,
        d.refund_id,
        d.local_fen,
        d.provider_fen,
        d.local_status.as_deref(),
        d.provider_status.as_deref(),
        &d.detail,
        d.repaired,
        run.passes,
        status,
        resolution,
        resolved_at
    )?;
    Ok(())
}

pub async fn list_differences(
    c: &mut Conn,
    tenant_id: Id,
    run_id: Id,
    open_only: bool,
) -> Result<Vec<DifferenceRow>> {
    Ok(store::fetch_all!(
        c,
        DifferenceRow,
        select_difference!(
            "where run_id = $1 and tenant_id = $2 and (not $3 or status = 'OPEN') order by created_at, reference"
        ),
        run_id,
        tenant_id,
        open_only
    )?)
}

pub async fn find_difference(c: &mut Conn, tenant_id: Id, id: Id) -> Result<Option<DifferenceRow>> {
    Ok(store::fetch_optional!(
        c,
        DifferenceRow,
        select_difference!("where id = $1 and tenant_id = $2"),
        id,
        tenant_id
    )?)
}

/// Resolves an open difference; `false` when it was no longer open.
pub async fn resolve_difference(
    c: &mut Conn,
    id: Id,
    user: Id,
    resolution: &str,
    note: &str,
) -> Result<bool> {
    let n = store::execute!(
        c,
        "update reconciliation_difference set status = 'RESOLVED', resolution = $2, note = $3, resolved_by = $4, resolved_at = now()
         where id = $1 and status = 'OPEN'",
        id,
        resolution,
        note,
        user
    )?;
    Ok(n == 1)
}

/// Remembers that the bill holds these local orders or refunds.
pub async fn mark_seen(c: &mut Conn, run_id: Id, ids: &[Id]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    store::execute!(
        c,
        // The run's id comes from its row so that PostgreSQL knows its type; SQLite wants a
        // WHERE before an upsert's ON CONFLICT.
        "insert into reconciliation_seen (run_id, item_id)
         select r.id, x.id from reconciliation_run r,
             (select id from payment_order where id = any($2)
              union all select id from payment_refund where id = any($2)) x
         where r.id = $1
         on conflict do nothing",
        run_id,
        store::List(ids.to_vec())
    )?;
    Ok(())
}

async fn clear_seen(c: &mut Conn, run_id: Id) -> Result<()> {
    store::execute!(
        c,
        "delete from reconciliation_seen where run_id = $1",
        run_id
    )?;
    Ok(())
}

/// Rows of "missing at the provider" read per query.
pub const UNSEEN_PAGE: i64 = 1_000;

/// Orders paid in `[from, to)` to this provider that the bill did not hold: a page of at most
/// [`UNSEEN_PAGE`] in id order, after `after` (the last id of the previous page).
pub async fn unseen_paid_orders(
    c: &mut Conn,
    run: &RunRow,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    after: Option<Id>,
) -> Result<Vec<OrderRow>> {
    let ids: Vec<(Id,)> = store::fetch_all!(
        c,
        (Id,),
        "select o.id from payment_order o
         where o.tenant_id = $1 and o.provider = $2 and o.paid_at >= $3 and o.paid_at < $4 and o.paid_fen is not null
           and ($6 is null or o.id > $6)
           and not exists (select 1 from reconciliation_seen s where s.run_id = $5 and s.item_id = o.id)
         order by o.id limit $7",
        run.tenant_id,
        &run.provider,
        from,
        to,
        run.id,
        after,
        UNSEEN_PAGE
    )?;
    let ids: Vec<Id> = ids.into_iter().map(|(id,)| id).collect();
    let mut rows = crate::orders::db::by_ids(c, &ids).await?;
    rows.sort_by_key(|o| o.id);
    Ok(rows)
}

/// Refunds the provider accepted in `[from, to)` that the bill did not hold, paged like
/// [`unseen_paid_orders`].
pub async fn unseen_refunds(
    c: &mut Conn,
    run: &RunRow,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    after: Option<Id>,
) -> Result<Vec<RefundRow>> {
    let ids: Vec<(Id,)> = store::fetch_all!(
        c,
        (Id,),
        "select r.id from payment_refund r
         where r.tenant_id = $1 and r.provider = $2 and r.accepted_at >= $3 and r.accepted_at < $4
           and r.status in ('PROCESSING', 'SUCCESS', 'ABNORMAL')
           and ($6 is null or r.id > $6)
           and not exists (select 1 from reconciliation_seen s where s.run_id = $5 and s.item_id = r.id)
         order by r.id limit $7",
        run.tenant_id,
        &run.provider,
        from,
        to,
        run.id,
        after,
        UNSEEN_PAGE
    )?;
    let ids: Vec<Id> = ids.into_iter().map(|(id,)| id).collect();
    let mut rows = crate::refunds::db::by_ids(c, &ids).await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// The fee rate agreed with the provider, in basis points.
pub async fn fee_rate_bp(c: &mut Conn, tenant_id: Id, provider: &str) -> Result<i64> {
    let rate: Option<i32> = if provider == "wechat" {
        store::fetch_scalar_optional!(
            c,
            i32,
            "select fee_rate_bp from tenant_wechat_pay where tenant_id = $1",
            tenant_id
        )?
    } else {
        store::fetch_scalar_optional!(
            c,
            i32,
            "select fee_rate_bp from tenant_alipay where tenant_id = $1",
            tenant_id
        )?
    };
    Ok(i64::from(rate.unwrap_or(60)))
}
