//! The active query: unpaid orders are asked about at their provider on a schedule, credited
//! when the callback never came, and closed (there first, then here) once their QR expired. One
//! replica at a time runs a pass.

use chrono::{DateTime, Duration, Utc};
use minigate_payments::{
    notification::Provider,
    orders::{self, Applied, OrderRow, Source},
    trade::{Closed, Trade, TradeState},
};

use super::settle::{close_here, settle};
use crate::{Deps, Error, Result};

/// The job lock of the active query.
const JOB: i64 = 0x6d67_7061_7931; // "mgpay1"

/// Orders looked at per pass.
const BATCH: i64 = 100;

/// Asks the order's provider about it.
pub async fn query_provider(d: &Deps, o: &OrderRow) -> Result<Trade> {
    let p = &d.payments;
    Ok(match provider(o)? {
        Provider::Wechat => {
            let m = p.merchants.wechat(o.tenant_id).await?;
            p.wechat.query(&m, &o.out_trade_no).await?
        }
        Provider::Alipay => {
            let m = p.merchants.alipay(o.tenant_id).await?;
            p.alipay.query(&m, &o.out_trade_no).await?
        }
    })
}

/// Closes the order at its provider.
pub async fn close_at_provider(d: &Deps, o: &OrderRow) -> Result<Closed> {
    let p = &d.payments;
    Ok(match provider(o)? {
        Provider::Wechat => {
            let m = p.merchants.wechat(o.tenant_id).await?;
            p.wechat.close(&m, &o.out_trade_no).await?
        }
        Provider::Alipay => {
            let m = p.merchants.alipay(o.tenant_id).await?;
            p.alipay.close(&m, &o.out_trade_no).await?
        }
    })
}

fn provider(o: &OrderRow) -> Result<Provider> {
    match o.provider.as_str() {
        "wechat" => Ok(Provider::Wechat),
        "alipay" => Ok(Provider::Alipay),
        other => Err(Error::Internal(format!("order with provider {other}"))),
    }
}

/// Closes an open order at its provider and here. If the payer got there first, the order is
/// credited instead. Returns the order as it now is.
pub async fn close_everywhere(d: &Deps, o: &OrderRow) -> Result<OrderRow> {
    match close_at_provider(d, o).await? {
        Closed::Closed => match close_here(d, o.id).await? {
            Some(closed) => Ok(closed),
            // Paid meanwhile (a callback won the race): that is the order's state.
            None => current(d, o).await,
        },
        Closed::AlreadyPaid => {
            let trade = query_provider(d, o).await?;
            let (_, now) = settle(d, o.id, &trade, Source::Query).await?;
            now.map_or_else(|| Err(Error::NotFound("payment")), Ok)
        }
    }
}

async fn current(d: &Deps, o: &OrderRow) -> Result<OrderRow> {
    let mut c = d.db.conn().await?;
    Ok(orders::db::get_order(&mut c, o.id).await?)
}

/// One pass over the orders whose query is due. Returns how many were looked at (0 when another
/// replica holds the job).
pub async fn run_due(d: &Deps, now: DateTime<Utc>) -> Result<usize> {
    let Some(guard) = d.db.try_job(JOB).await? else {
        return Ok(0);
    };
    let due = {
        let mut c = d.db.conn().await?;
        orders::db::due_orders(&mut c, now, BATCH).await?
    };
    for o in &due {
        if let Err(e) = check(d, o, now).await {
            tracing::warn!(order = %o.id, code = e.code(), error = %e, "active query failed; retried later");
            let mut c = d.db.conn().await?;
            orders::db::reschedule(&mut c, o.id, now + backoff(d, o.query_count)).await?;
        }
    }
    guard.release().await?;
    Ok(due.len())
}

/// Queries one order and acts on the answer.
async fn check(d: &Deps, o: &OrderRow, now: DateTime<Utc>) -> Result<()> {
    let trade = query_provider(d, o).await?;
    match trade.state {
        TradeState::Paid => {
            let (applied, _) = settle(d, o.id, &trade, Source::Query).await?;
            if matches!(applied, Applied::Credited(_)) {
                tracing::info!(order = %o.id, "payment found by the active query (callback late or lost)");
            }
        }
        TradeState::Closed => {
            close_here(d, o.id).await?;
        }
        TradeState::NotPaid | TradeState::NotFound if now >= o.expires_at => {
            close_everywhere(d, o).await?;
        }
        TradeState::NotPaid | TradeState::NotFound => {
            let next = (now + backoff(d, o.query_count)).min(o.expires_at);
            let mut c = d.db.conn().await?;
            orders::db::reschedule(&mut c, o.id, next).await?;
        }
    }
    Ok(())
}

/// The wait before the next query: the configured gap, doubling with each query, at most five
/// minutes.
fn backoff(d: &Deps, queries: i32) -> Duration {
    let base = d.payments.settings.query_every;
    let factor = 1i32 << queries.clamp(0, 4);
    base.checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(Duration::minutes(5))
}
