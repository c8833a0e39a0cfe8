//! WeChat Pay refunds: `POST /v3/refund/domestic/refunds`, the query by `out_refund_no`, and
//! the `REFUND.*` notifications, verified and decrypted like payment notifications.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{WechatPayApi, parse};
use super::notify::open_envelope;
use crate::{
    Error, Result, WechatMerchant,
    refund::{NewRefund, RefundNotification, RefundReport, RefundState},
};

/// The refund object of the create and query answers.
#[derive(Deserialize)]
struct Refund {
    refund_id: Option<String>,
    out_refund_no: String,
    out_trade_no: String,
    status: String,
    create_time: Option<String>,
    success_time: Option<String>,
    amount: Option<RefundAmount>,
}

/// The decrypted resource of a refund notification.
#[derive(Deserialize)]
struct RefundResource {
    mchid: String,
    out_trade_no: String,
    out_refund_no: String,
    refund_id: Option<String>,
    refund_status: String,
    success_time: Option<String>,
    amount: Option<RefundAmount>,
}

#[derive(Deserialize)]
struct RefundAmount {
    refund: Option<i64>,
}

fn time(t: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    t.filter(|t| !t.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| Error::Malformed(format!("WeChat Pay time {t:?}")))
        })
        .transpose()
}

fn state(word: &str) -> Result<RefundState> {
    RefundState::from_wechat(word)
        .ok_or_else(|| Error::Malformed(format!("unknown refund status {word}")))
}

impl Refund {
    fn into_report(self) -> Result<RefundReport> {
        Ok(RefundReport {
            state: state(&self.status)?,
            accepted_at: time(self.create_time.as_deref())?,
            succeeded_at: time(self.success_time.as_deref())?,
            amount_fen: self.amount.and_then(|a| a.refund),
            provider_state: self.status,
            out_trade_no: self.out_trade_no,
            out_refund_no: self.out_refund_no,
            provider_refund_no: self.refund_id,
        })
    }
}

impl WechatPayApi {
    /// Asks for a refund. Asking again with the same `out_refund_no` answers the same refund.
    pub async fn refund(&self, m: &WechatMerchant, r: &NewRefund<'_>) -> Result<RefundReport> {
        let mut body = json!({
            "out_trade_no": r.out_trade_no,
            "out_refund_no": r.out_refund_no,
            "reason": r.reason,
            "amount": { "refund": r.amount_fen, "total": r.total_fen, "currency": "CNY" },
        });
        if let Some(url) = r.notify_url {
            body["notify_url"] = json!(url);
        }
        let a = self
            .call(m, Method::POST, "/v3/refund/domestic/refunds", Some(&body))
            .await?;
        parse::<Refund>(&a.body)?.into_report()
    }

    /// Where a refund is; a refund WeChat Pay does not know is `NotFound`.
    pub async fn query_refund(
        &self,
        m: &WechatMerchant,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundReport> {
        let path = format!("/v3/refund/domestic/refunds/{out_refund_no}");
        match self.call(m, Method::GET, &path, None).await {
            Ok(a) => parse::<Refund>(&a.body)?.into_report(),
            Err(e) if e.is_refusal("RESOURCE_NOT_EXISTS") => {
                Ok(RefundReport::not_found(out_trade_no, out_refund_no))
            }
            Err(e) => Err(e),
        }
    }
}

/// Verifies a refund notification to merchant `m` (signature, the 5-minute window around `now`
/// unless `None`) and reads its refund.
pub fn open_refund_notification(
    m: &WechatMerchant,
    headers: &[(String, String)],
    body: &[u8],
    now: Option<i64>,
) -> Result<RefundNotification> {
    let opened = open_envelope(m, headers, body, now, "REFUND.")?;
    let r: RefundResource = parse(&opened.plain)?;
    Ok(RefundNotification {
        dedup_key: opened.id,
        event_type: opened.event_type,
        merchant_id: r.mchid,
        report: RefundReport {
            state: state(&r.refund_status)?,
            accepted_at: None,
            succeeded_at: time(r.success_time.as_deref())?,
            amount_fen: r.amount.and_then(|a| a.refund),
            provider_state: r.refund_status,
            out_trade_no: r.out_trade_no,
            out_refund_no: r.out_refund_no,
            provider_refund_no: r.refund_id,
        },
    })
}
