//! `refundPayment` for operators, and the pass that follows refunds still under way.
//!
//! The refund row is written (and the amount reserved, the order locked) before the provider
//! hears of it, so a notification always finds it and two operators cannot refund the same
//! money twice. The provider is then asked with our `out_refund_no`; asking again with the same
//! number never refunds twice, so a refund whose request was lost is simply asked for again.

use chrono::{DateTime, Duration, Utc};
use minigate_payments::{
    Error as PayError,
    notification::Provider,
    orders::{self, OrderRow, Source},
    refund::{NewRefund, RefundReport, RefundState, new_out_refund_no},
    refunds::{self, RefundApplied, RefundRow, db::NewRefundRow},
};
use minigate_store::{Conn, Id};

use super::settle::emit;
use crate::{Deps, Error, Result, Viewer, idempotency};

/// WeChat Pay takes at most 80 characters of reason.
const REASON_CHARS: usize = 80;

/// The refund pass looks at this many refunds at a time.
const BATCH: i64 = 100;

/// Job lock of the refund pass ("mgrfd1").
const JOB: i64 = 0x6d67_7266_6431;

/// Refunds `amount_fen` of the payment `order_id`, for an operator of its company.
pub async fn refund_payment(
    d: &Deps,
    v: &Viewer,
    order_id: Id,
    amount_fen: i64,
    reason: &str,
    idempotency_key: Option<&str>,
) -> Result<RefundRow> {
    v.require_admin()?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > REASON_CHARS {
        return Err(Error::invalid("reason", "1 to 80 characters"));
    }
    if amount_fen <= 0 {
        return Err(Error::invalid("amountFen", "a positive number of fen"));
    }
    let tenant = v.tenant_id;
    let user = v.user_id;
    let id = idempotency::once(
        &d.db,
        user,
        idempotency_key,
        "refundPayment",
        async |tx: &mut Conn| {
            let Some(order) = orders::db::lock_order(tx, order_id).await? else {
                return Err(Error::NotFound("payment"));
            };
            if order.tenant_id != tenant {
                return Err(Error::NotFound("payment"));
            }
            refunds::reserve(tx, &order, amount_fen).await?;
            let out_refund_no = new_out_refund_no();
            let refund = refunds::db::insert_refund(
                tx,
                &NewRefundRow {
                    tenant_id: order.tenant_id,
                    order_id: order.id,
                    bill_id: order.bill_id,
                    provider: &order.provider,
                    out_refund_no: &out_refund_no,
                    amount_fen,
                    reason,
                    next_query_at: Utc::now() + Duration::minutes(1),
                    requested_by: Some(user),
                },
            )
            .await?;
            let order = refunds::settle_order(tx, &order).await?;
            emit(tx, d, &order).await?;
            Ok(refund.id)
        },
    )
    .await?;
    let refund = {
        let mut c = d.db.conn().await?;
        refunds::db::get_refund(&mut c, id).await?
    };
    // A retry with the same key must ask for the same refund.
    if refund.order_id != order_id || refund.amount_fen != amount_fen {
        return Err(Error::IdempotencyKeyReused);
    }
    // Asked for before and acknowledged by the provider (a retry with the key): the provider
    // holds it, so it is not asked again; only a request that may have been lost is repeated.
    let acknowledged = refund.provider_refund_no.is_some() || refund.accepted_at.is_some();
    if refund.status != minigate_payments::refund::PROCESSING || acknowledged {
        return Ok(refund);
    }
    ask_provider(d, &refund).await
}

/// Asks the provider for `refund` (again, if it was asked before: the number makes that safe)
/// and applies the answer. A transport failure leaves it `PROCESSING` for the refund pass; a
/// refusal the provider will not change its mind on closes it, with the provider's code.
async fn ask_provider(d: &Deps, refund: &RefundRow) -> Result<RefundRow> {
    let order = {
        let mut c = d.db.conn().await?;
        orders::db::get_order(&mut c, refund.order_id).await?
    };
    match request(d, &order, refund).await {
        Ok(report) => apply(d, refund.id, &report, Source::Query).await,
        Err(Error::Payment(e)) if definitive(&e) => {
            tracing::warn!(refund = %refund.id, code = e.code(), error = %e, "refund refused by the provider");
            let report = RefundReport {
                state: RefundState::Closed,
                provider_state: refusal_code(&e),
                ..RefundReport::not_found(&order.out_trade_no, &refund.out_refund_no)
            };
            apply(d, refund.id, &report, Source::Query).await
        }
        Err(e) => {
            tracing::warn!(refund = %refund.id, code = e.code(), error = %e, "refund request failed; the refund pass asks again");
            Ok(refund.clone())
        }
    }
}

fn refusal_code(e: &PayError) -> String {
    match e {
        PayError::Refused { code, .. } => code.clone(),
        other => other.code().to_owned(),
    }
}

/// Whether a provider's refusal is final: WeChat's 4xx (but 429, and 401, which says our own
/// signature or clock is wrong: fixed by us, then the same refund goes through), Alipay's
/// business failures (but its system error). Anything else is tried again.
fn definitive(e: &PayError) -> bool {
    match e {
        PayError::Refused { status, code, .. } => {
            if *status == 200 {
                !code.contains("SYSTEM_ERROR") && !code.starts_with("isp.")
            } else {
                (400..500).contains(status) && *status != 429 && *status != 401
            }
        }
        _ => false,
    }
}

async fn request(d: &Deps, order: &OrderRow, refund: &RefundRow) -> Result<RefundReport> {
    let p = &d.payments;
    let notify_url = format!(
        "{}/pay/wechat/refund-notify",
        p.settings.notify_base.trim_end_matches('/')
    );
    let new = NewRefund {
        out_trade_no: &order.out_trade_no,
        out_refund_no: &refund.out_refund_no,
        amount_fen: refund.amount_fen,
        total_fen: order.paid_fen.unwrap_or(order.amount_fen),
        reason: &refund.reason,
        notify_url: Some(&notify_url),
    };
    Ok(match provider(&refund.provider)? {
        Provider::Wechat => {
            let m = p.merchants.wechat(refund.tenant_id).await?;
            p.wechat.refund(&m, &new).await?
        }
        Provider::Alipay => {
            let m = p.merchants.alipay(refund.tenant_id).await?;
            p.alipay.refund(&m, &new).await?
        }
    })
}

/// Asks the provider where a refund is.
pub async fn query_refund(d: &Deps, order: &OrderRow, refund: &RefundRow) -> Result<RefundReport> {
    let p = &d.payments;
    Ok(match provider(&refund.provider)? {
        Provider::Wechat => {
            let m = p.merchants.wechat(refund.tenant_id).await?;
            p.wechat
                .query_refund(&m, &order.out_trade_no, &refund.out_refund_no)
                .await?
        }
        Provider::Alipay => {
            let m = p.merchants.alipay(refund.tenant_id).await?;
            p.alipay
                .query_refund(&m, &order.out_trade_no, &refund.out_refund_no)
                .await?
        }
    })
}

fn provider(p: &str) -> Result<Provider> {
    match p {
        "wechat" => Ok(Provider::Wechat),
        "alipay" => Ok(Provider::Alipay),
        other => Err(Error::Internal(format!("refund with provider {other}"))),
    }
}

/// Applies a provider's account of a refund in its own transaction (order locked first); a
/// contradiction is flagged for a person. Returns the refund as it now is.
pub async fn apply(
    d: &Deps,
    refund_id: Id,
    report: &RefundReport,
    source: Source,
) -> Result<RefundRow> {
    let mut tx = d.db.begin().await?;
    let refund = refunds::db::get_refund(&mut tx, refund_id).await?;
    let Some(order) = orders::db::lock_order(&mut tx, refund.order_id).await? else {
        return Err(Error::NotFound("payment"));
    };
    // Read again under the order's lock: a notification may have moved it meanwhile.
    let refund = refunds::db::get_refund(&mut tx, refund_id).await?;
    let now = match refunds::apply_report(&mut tx, &order, &refund, report, source).await? {
        RefundApplied::Changed { refund, order } => {
            emit(&mut tx, d, &order).await?;
            *refund
        }
        RefundApplied::Unchanged(r) => *r,
        RefundApplied::Mismatch { detail } => {
            tracing::error!(refund = %refund.id, %detail, "refund report contradicts ours");
            orders::db::insert_flag(
                &mut tx,
                Some(order.tenant_id),
                Some(order.id),
                None,
                "REFUND_MISMATCH",
                &detail,
            )
            .await?;
            refund
        }
    };
    tx.commit().await?;
    Ok(now)
}

/// One pass over refunds still under way whose look is due: each is queried at its provider
/// (and asked for again if the provider never got the request). Returns how many were looked
/// at (0 when another replica holds the job).
pub async fn run_due(d: &Deps, now: DateTime<Utc>) -> Result<usize> {
    let Some(guard) = d.db.try_job(JOB).await? else {
        return Ok(0);
    };
    let due = {
        let mut c = d.db.conn().await?;
        refunds::db::due_refunds(&mut c, now, BATCH).await?
    };
    for r in &due {
        if let Err(e) = follow(d, r).await {
            tracing::warn!(refund = %r.id, code = e.code(), error = %e, "refund query failed; retried later");
        }
        let mut c = d.db.conn().await?;
        refunds::db::reschedule(&mut c, r.id, now + backoff(r.query_count)).await?;
    }
    guard.release().await?;
    Ok(due.len())
}

async fn follow(d: &Deps, r: &RefundRow) -> Result<()> {
    let order = {
        let mut c = d.db.conn().await?;
        orders::db::get_order(&mut c, r.order_id).await?
    };
    let report = query_refund(d, &order, r).await?;
    if report.state == RefundState::NotFound {
        ask_provider(d, r).await?;
    } else {
        apply(d, r.id, &report, Source::Query).await?;
    }
    Ok(())
}

/// One minute, doubling with each look, at most an hour.
fn backoff(queries: i32) -> Duration {
    let factor = 1i64 << queries.clamp(0, 6);
    Duration::minutes(factor).min(Duration::hours(1))
}
