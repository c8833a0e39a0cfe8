//! The providers' payment notifications. A notification is believed only once its signature
//! checks out; then, in one transaction, it is stored raw (once per provider notification id),
//! the order moves forward, the ledger entry and the event are written. Only then is the
//! provider told `success`; a storage failure answers 5xx so the provider sends it again.

use chrono::Utc;
use minigate_payments::{
    alipay,
    notification::Notification,
    orders::{self, Applied, db::NotificationRecord},
    wechat,
};
use minigate_store::Id;

use super::settle::emit;
use crate::{Deps, Result};

/// What to answer the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// What became of a notification, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The order moved to PAID now.
    Credited,
    /// The order was paid before: nothing changed.
    AlreadyPaid,
    /// The same notification arrived before.
    Duplicate,
    /// Stored and flagged for a person (amount, merchant, unknown order, paid after close).
    Flagged,
    /// Not a payment (a trade still waiting or closed).
    NoPayment,
    /// A refund moved (succeeded, closed, went abnormal).
    RefundApplied,
    /// A refund report that changed nothing (already known).
    RefundUnchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Credited => "CREDITED",
            Outcome::AlreadyPaid => "ALREADY_PAID",
            Outcome::Duplicate => "DUPLICATE",
            Outcome::Flagged => "FLAGGED",
            Outcome::NoPayment => "NO_PAYMENT",
            Outcome::RefundApplied => "REFUND_APPLIED",
            Outcome::RefundUnchanged => "REFUND_UNCHANGED",
        }
    }
}

/// Why a notification was refused before anything was stored.
pub(super) fn refused(provider: &str, e: &minigate_payments::Error) -> (u16, &'static str) {
    tracing::warn!(provider, code = e.code(), error = %e, "payment notification refused");
    metrics::counter!("minigate_payment_notifications_total", "provider" => provider.to_owned(), "outcome" => e.code())
        .increment(1);
    match e {
        minigate_payments::Error::Malformed(_) => (400, e.code()),
        _ => (401, e.code()),
    }
}

pub(super) fn wechat_reply(status: u16, code: &str, message: &str) -> Reply {
    if (200..300).contains(&status) {
        return Reply {
            status: 204,
            content_type: "application/json",
            body: String::new(),
        };
    }
    Reply {
        status,
        content_type: "application/json",
        body: serde_json::json!({ "code": "FAIL", "message": format!("{code}: {message}") })
            .to_string(),
    }
}

pub(super) fn alipay_reply(status: u16) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: if (200..300).contains(&status) {
            "success".into()
        } else {
            "fail".into()
        },
    }
}

/// The merchants a WeChat Pay notification may be for, by the key that signed it; a key nobody
/// has may be a platform certificate WeChat Pay rotated in, so they are fetched once
/// (rate-limited) before giving up. `Err` is the reply to send.
async fn wechat_candidates(
    d: &Deps,
    headers: &[(String, String)],
) -> Result<Vec<std::sync::Arc<minigate_payments::WechatMerchant>>, Reply> {
    let serial = wechat::notify::serial(headers).to_owned();
    let mut candidates = match d.payments.merchants.wechat_by_serial(&serial).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "merchants could not be loaded for a notification");
            return Err(wechat_reply(500, e.code(), "try again"));
        }
    };
    if candidates.is_empty() {
        let p = &d.payments;
        if let Ok(n) = p.merchants.download_certificates(&p.wechat, true).await
            && n > 0
        {
            candidates = p
                .merchants
                .wechat_by_serial(&serial)
                .await
                .unwrap_or_default();
        }
    }
    if candidates.is_empty() {
        let e = minigate_payments::Error::UnknownSerial(serial);
        let (status, code) = refused("wechat", &e);
        return Err(wechat_reply(status, code, "unknown Wechatpay-Serial"));
    }
    Ok(candidates)
}

/// Finds the merchant whose keys open a WeChat Pay notification (`open` verifies and decrypts
/// it with one merchant's keys, given the time) and what it holds. `Err` is the reply: 401 when
/// no merchant's keys open it.
pub(super) async fn open_wechat<T>(
    d: &Deps,
    headers: &[(String, String)],
    open: impl Fn(&minigate_payments::WechatMerchant, i64) -> minigate_payments::Result<T>,
) -> Result<(std::sync::Arc<minigate_payments::WechatMerchant>, T), Reply> {
    let candidates = wechat_candidates(d, headers).await?;
    let now = Utc::now().timestamp();
    let mut failure = None;
    for m in candidates {
        match open(&m, now) {
            Ok(n) => return Ok((m, n)),
            Err(e) => failure = Some(e),
        }
    }
    let e = failure.unwrap_or(minigate_payments::Error::SignatureInvalid);
    let (status, code) = refused("wechat", &e);
    Err(wechat_reply(status, code, "notification refused"))
}

/// The answer to WeChat Pay once a notification was stored, or could not be (5xx: it sends it
/// again).
pub(super) fn wechat_stored(what: &str, stored: Result<Outcome>) -> Reply {
    match stored {
        Ok(_) => wechat_reply(200, "", ""),
        Err(e) => {
            tracing::error!(code = e.code(), error = %e, "{what} notification not stored; WeChat Pay will retry");
            wechat_reply(500, e.code(), "not stored, send again")
        }
    }
}

/// `POST /pay/wechat/notify`. `headers` are the request's, names in lower case.
pub async fn wechat_notify(d: &Deps, headers: &[(String, String)], body: &[u8]) -> Reply {
    match open_wechat(d, headers, |m, now| {
        wechat::notify::open(m, headers, body, Some(now))
    })
    .await
    {
        Ok((m, n)) => wechat_stored(
            "payment",
            record(d, m.tenant_id, &m.mch_id, &n, headers, body).await,
        ),
        Err(reply) => reply,
    }
}

/// `POST /pay/alipay/notify`: a form; Alipay retries until it reads `success`.
pub async fn alipay_notify(d: &Deps, headers: &[(String, String)], body: &[u8]) -> Reply {
    let params = match alipay::notify::parse_form(body) {
        Ok(p) => p,
        Err(e) => return alipay_reply(refused("alipay", &e).0),
    };
    let app_id = params.get("app_id").cloned().unwrap_or_default();
    let m = match d.payments.merchants.alipay_by_app(&app_id).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            let e = minigate_payments::Error::UnknownSerial(format!("app_id {app_id}"));
            return alipay_reply(refused("alipay", &e).0);
        }
        Err(e) => {
            tracing::error!(error = %e, "merchants could not be loaded for a notification");
            return alipay_reply(500);
        }
    };
    let n = match alipay::notify::open(&m, &params) {
        Ok(n) => n,
        Err(e) => return alipay_reply(refused("alipay", &e).0),
    };
    if n.refund_report {
        return super::refund_callback::alipay_refund_report(d, &m, &n, &params, headers, body)
            .await;
    }
    match record(d, m.tenant_id, &m.app_id, &n, headers, body).await {
        Ok(_) => alipay_reply(200),
        Err(e) => {
            tracing::error!(code = e.code(), error = %e, "payment notification not stored; Alipay will retry");
            alipay_reply(500)
        }
    }
}

/// What a verified notification calls for, decided with its order locked.
enum Plan {
    Flag {
        kind: &'static str,
        detail: String,
    },
    /// A refund Alipay reports on the trade's notify: stored, never a payment.
    Refund,
    Apply(orders::Decision),
}

impl Plan {
    fn outcome(&self) -> Outcome {
        match self {
            Plan::Flag { .. } => Outcome::Flagged,
            Plan::Refund => Outcome::NoPayment,
            Plan::Apply(d) => match d {
                orders::Decision::Credit(_) => Outcome::Credited,
                orders::Decision::PaidAfterClose(_) | orders::Decision::AmountMismatch { .. } => {
                    Outcome::Flagged
                }
                orders::Decision::AlreadyPaid => Outcome::AlreadyPaid,
                orders::Decision::NotPaid => Outcome::NoPayment,
            },
        }
    }
}

fn plan(
    provider: &str,
    merchant_id: &str,
    tenant_id: Id,
    n: &Notification,
    order: Option<&orders::OrderRow>,
) -> Plan {
    if n.merchant_id != merchant_id {
        return Plan::Flag {
            kind: "MERCHANT_MISMATCH",
            detail: format!(
                "notification for merchant {} reached {merchant_id}",
                n.merchant_id
            ),
        };
    }
    let Some(o) = order else {
        return Plan::Flag {
            kind: "UNKNOWN_ORDER",
            detail: format!(
                "{provider} notification for unknown order {}",
                n.trade.out_trade_no
            ),
        };
    };
    if o.tenant_id != tenant_id || o.merchant_id != n.merchant_id || o.app_id != n.app_id {
        return Plan::Flag {
            kind: "MERCHANT_MISMATCH",
            detail: format!(
                "order {} belongs to {} / {}, notification names {} / {}",
                o.out_trade_no, o.merchant_id, o.app_id, n.merchant_id, n.app_id
            ),
        };
    }
    if n.refund_report {
        return Plan::Refund;
    }
    Plan::Apply(orders::decide(o, &n.trade, orders::Source::Callback))
}

/// Stores a verified notification and applies it, in one transaction: the order is locked and
/// what the notification calls for decided first, then the notification is stored with that
/// outcome (once: a duplicate stops here and changes nothing), then the change is written.
pub async fn record(
    d: &Deps,
    tenant_id: Id,
    merchant_id: &str,
    n: &Notification,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Outcome> {
    let provider = n.provider.as_str();
    let body_text = String::from_utf8_lossy(body);
    // Providers re-send what they believe unanswered; most re-sends end here, in one read.
    let mut c = d.db.conn().await?;
    if orders::db::notification_seen(&mut c, provider, &n.dedup_key).await? {
        return Ok(count(provider, Outcome::Duplicate));
    }
    drop(c);
    let mut tx = d.db.begin().await?;
    let order = orders::db::lock_by_out_trade_no(&mut tx, &n.trade.out_trade_no).await?;
    let plan = plan(provider, merchant_id, tenant_id, n, order.as_ref());
    let outcome = plan.outcome();
    let record = NotificationRecord {
        provider,
        dedup_key: &n.dedup_key,
        tenant_id: Some(tenant_id),
        out_trade_no: Some(&n.trade.out_trade_no),
        event_type: &n.event_type,
        headers,
        body: &body_text,
        outcome: outcome.as_str(),
    };
    let Some(nid) = orders::db::insert_notification(&mut tx, &record).await? else {
        tx.rollback().await?;
        return Ok(count(provider, Outcome::Duplicate));
    };
    match (plan, order) {
        (Plan::Flag { kind, detail }, order) => {
            tracing::error!(provider, kind, %detail, "payment notification flagged");
            orders::db::insert_flag(
                &mut tx,
                Some(tenant_id),
                order.map(|o| o.id),
                Some(nid),
                kind,
                &detail,
            )
            .await?;
        }
        (Plan::Apply(decision), Some(o)) => {
            let applied =
                orders::apply_decision(&mut tx, &o, decision, orders::Source::Callback, Some(nid))
                    .await?;
            if let Applied::Credited(paid) = &applied {
                crate::delivery::sources::payment_received(&mut tx, paid).await?;
            }
            if let Applied::Credited(now) | Applied::PaidAfterClose(now) = &applied {
                emit(&mut tx, d, now).await?;
            }
        }
        (Plan::Refund | Plan::Apply(_), _) => {}
    }
    tx.commit().await?;
    Ok(count(provider, outcome))
}

pub(super) fn count(provider: &str, o: Outcome) -> Outcome {
    metrics::counter!("minigate_payment_notifications_total", "provider" => provider.to_owned(), "outcome" => o.as_str())
        .increment(1);
    o
}
