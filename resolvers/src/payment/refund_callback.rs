//! Refund notifications: WeChat Pay's `REFUND.*` events at `POST /pay/wechat/refund-notify`,
//! and the refund reports Alipay sends on the trade's own notify (`refund_fee`, `gmt_refund`,
//! `out_biz_no`). Each is verified, stored raw once per provider notification id, and applied to
//! its refund with the order locked, in one transaction; a refund we never asked for is stored
//! and flagged, never mistaken for a payment.

use std::collections::BTreeMap;

use minigate_payments::{
    AlipayMerchant, alipay,
    notification::Notification,
    orders::{self, Source, db::NotificationRecord},
    refund::{RefundNotification, RefundReport},
    refunds::{self, RefundApplied},
    wechat,
};
use minigate_store::Id;

use super::callback::{Outcome, Reply, alipay_reply, count, open_wechat, refused, wechat_stored};
use super::settle::emit;
use crate::{Deps, Result};

/// `POST /pay/wechat/refund-notify`.
pub async fn wechat_refund_notify(d: &Deps, headers: &[(String, String)], body: &[u8]) -> Reply {
    match open_wechat(d, headers, |m, now| {
        wechat::refunds::open_refund_notification(m, headers, body, Some(now))
    })
    .await
    {
        Ok((m, n)) => wechat_stored(
            "refund",
            record_refund(d, "wechat", m.tenant_id, &m.mch_id, &n, headers, body).await,
        ),
        Err(reply) => reply,
    }
}

/// A verified Alipay trade notify that reports a refund.
pub async fn alipay_refund_report(
    d: &Deps,
    m: &AlipayMerchant,
    n: &Notification,
    params: &BTreeMap<String, String>,
    headers: &[(String, String)],
    body: &[u8],
) -> Reply {
    let report = match alipay::refunds::refund_in_notify(params) {
        Ok(Some(r)) => r,
        // A refund report without our refund number: a refund made elsewhere (the merchant
        // console). It is stored and flagged like an unknown refund.
        Ok(None) => RefundReport::not_found(&n.trade.out_trade_no, ""),
        Err(e) => return alipay_reply(refused("alipay", &e).0),
    };
    let rn = RefundNotification {
        dedup_key: n.dedup_key.clone(),
        event_type: n.event_type.clone(),
        merchant_id: n.merchant_id.clone(),
        report,
    };
    match record_refund(d, "alipay", m.tenant_id, &m.app_id, &rn, headers, body).await {
        Ok(_) => alipay_reply(200),
        Err(e) => {
            tracing::error!(code = e.code(), error = %e, "refund report not stored; Alipay will retry");
            alipay_reply(500)
        }
    }
}

/// Stores a verified refund notification and applies it, in one transaction.
pub async fn record_refund(
    d: &Deps,
    provider: &'static str,
    tenant_id: Id,
    merchant_id: &str,
    n: &RefundNotification,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Outcome> {
    let body_text = String::from_utf8_lossy(body);
    {
        let mut c = d.db.conn().await?;
        if orders::db::notification_seen(&mut c, provider, &n.dedup_key).await? {
            return Ok(count(provider, Outcome::Duplicate));
        }
    }
    let mut tx = d.db.begin().await?;
    let known = match n.report.out_refund_no.as_str() {
        "" => None,
        no => refunds::db::find_by_out_refund_no(&mut tx, no).await?,
    };
    let order = match &known {
        Some(r) => orders::db::lock_order(&mut tx, r.order_id).await?,
        None => None,
    };
    // Re-read under the order's lock.
    let refund = match &known {
        Some(r) => Some(refunds::db::get_refund(&mut tx, r.id).await?),
        None => None,
    };
    let flag = match (&refund, &order) {
        _ if n.merchant_id != merchant_id => Some((
            "MERCHANT_MISMATCH",
            format!(
                "refund notification for merchant {} reached {merchant_id}",
                n.merchant_id
            ),
        )),
        (Some(r), Some(o)) if o.tenant_id != tenant_id || r.provider != provider => Some((
            "MERCHANT_MISMATCH",
            format!(
                "refund {} belongs to another company or provider",
                r.out_refund_no
            ),
        )),
        (Some(_), Some(o)) if o.out_trade_no != n.report.out_trade_no => Some((
            "REFUND_MISMATCH",
            format!(
                "refund {} is of order {}, the notification names {}",
                n.report.out_refund_no, o.out_trade_no, n.report.out_trade_no
            ),
        )),
        (Some(_), Some(_)) => None,
        _ => Some((
            "UNKNOWN_REFUND",
            format!(
                "{provider} reports refund {:?} of order {}, unknown here",
                n.report.out_refund_no, n.report.out_trade_no
            ),
        )),
    };
    let outcome_guess = if flag.is_some() {
        Outcome::Flagged
    } else {
        Outcome::RefundApplied
    };
    let record = NotificationRecord {
        provider,
        dedup_key: &n.dedup_key,
        tenant_id: Some(tenant_id),
        out_trade_no: Some(&n.report.out_trade_no),
        event_type: &n.event_type,
        headers,
        body: &body_text,
        outcome: outcome_guess.as_str(),
    };
    let Some(nid) = orders::db::insert_notification(&mut tx, &record).await? else {
        tx.rollback().await?;
        return Ok(count(provider, Outcome::Duplicate));
    };
    let outcome = match (flag, refund, order) {
        (Some((kind, detail)), _, order) => {
            tracing::error!(provider, kind, %detail, "refund notification flagged");
            orders::db::insert_flag(
                &mut tx,
                Some(tenant_id),
                order.map(|o| o.id),
                Some(nid),
                kind,
                &detail,
            )
            .await?;
            Outcome::Flagged
        }
        (None, Some(refund), Some(order)) => {
            match refunds::apply_report(&mut tx, &order, &refund, &n.report, Source::Callback)
                .await?
            {
                RefundApplied::Changed { order, .. } => {
                    emit(&mut tx, d, &order).await?;
                    Outcome::RefundApplied
                }
                RefundApplied::Unchanged(_) => Outcome::RefundUnchanged,
                RefundApplied::Mismatch { detail } => {
                    orders::db::insert_flag(
                        &mut tx,
                        Some(tenant_id),
                        Some(order.id),
                        Some(nid),
                        "REFUND_MISMATCH",
                        &detail,
                    )
                    .await?;
                    Outcome::Flagged
                }
            }
        }
        (None, _, _) => Outcome::Flagged,
    };
    if outcome != outcome_guess {
        orders::db::set_notification_outcome(&mut tx, nid, outcome.as_str()).await?;
    }
    tx.commit().await?;
    Ok(count(provider, outcome))
}
