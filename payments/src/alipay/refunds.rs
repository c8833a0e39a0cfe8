//! Alipay refunds: `alipay.trade.refund` with our `out_request_no`, and
//! `alipay.trade.fastpay.refund.query`. Alipay refunds synchronously: `fund_change: "Y"` means
//! this request moved the money; `"N"` means it did not (a repeat, or not yet), and only the
//! query says which.

use std::collections::BTreeMap;

use serde_json::json;

use super::client::{AlipayApi, parse_beijing_time, str_field};
use crate::{
    AlipayMerchant, Result, money,
    refund::{NewRefund, RefundReport, RefundState},
};

impl AlipayApi {
    /// Asks for a refund of `r.amount_fen` on the trade.
    pub async fn refund(&self, m: &AlipayMerchant, r: &NewRefund<'_>) -> Result<RefundReport> {
        let biz = json!({
            "out_trade_no": r.out_trade_no,
            "refund_amount": money::format_yuan(r.amount_fen),
            "out_request_no": r.out_refund_no,
            "refund_reason": r.reason,
        });
        let node = self.call(m, "alipay.trade.refund", &biz, None).await?;
        if str_field(&node, "fund_change").as_deref() != Some("Y") {
            return self.query_refund(m, r.out_trade_no, r.out_refund_no).await;
        }
        let at = str_field(&node, "gmt_refund_pay")
            .filter(|t| !t.is_empty())
            .map(|t| parse_beijing_time(&t))
            .transpose()?
            .unwrap_or_else(chrono::Utc::now);
        Ok(RefundReport {
            out_trade_no: r.out_trade_no.to_owned(),
            out_refund_no: r.out_refund_no.to_owned(),
            provider_refund_no: None,
            state: RefundState::Success,
            provider_state: "REFUND_SUCCESS".into(),
            amount_fen: Some(r.amount_fen),
            accepted_at: Some(at),
            succeeded_at: Some(at),
        })
    }

    /// Where a refund is. Alipay answers a refund it does not know with success and no refund
    /// fields: that is `NotFound`.
    pub async fn query_refund(
        &self,
        m: &AlipayMerchant,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundReport> {
        let biz = json!({
            "out_trade_no": out_trade_no,
            "out_request_no": out_refund_no,
            "query_options": ["gmt_refund_pay"],
        });
        let node = self
            .call(m, "alipay.trade.fastpay.refund.query", &biz, None)
            .await?;
        let status = str_field(&node, "refund_status");
        let amount = str_field(&node, "refund_amount").filter(|a| !a.is_empty());
        let done = match (status.as_deref(), &amount) {
            (Some("REFUND_SUCCESS"), Some(_)) => true,
            // Older answers carry no status: the amount alone says it happened.
            (None, Some(_)) => true,
            _ => false,
        };
        if !done {
            return Ok(RefundReport::not_found(out_trade_no, out_refund_no));
        }
        let at = str_field(&node, "gmt_refund_pay")
            .filter(|t| !t.is_empty())
            .map(|t| parse_beijing_time(&t))
            .transpose()?;
        Ok(RefundReport {
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.to_owned(),
            provider_refund_no: None,
            state: RefundState::Success,
            provider_state: status.unwrap_or_else(|| "REFUND_SUCCESS".into()),
            amount_fen: amount.map(|a| money::parse_yuan(&a)).transpose()?,
            accepted_at: at,
            succeeded_at: at,
        })
    }
}

/// The refund a trade notify reports, if it reports one (`out_biz_no` names our
/// `out_request_no`). The amount of that one refund is not in it (`refund_fee` is the trade's
/// cumulative refunded amount), so it is `None`: the refund's own amount stands.
pub fn refund_in_notify(params: &BTreeMap<String, String>) -> Result<Option<RefundReport>> {
    let Some(out_refund_no) = params.get("out_biz_no").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !params.contains_key("refund_fee") && !params.contains_key("gmt_refund") {
        return Ok(None);
    }
    let at = params
        .get("gmt_refund")
        .filter(|t| !t.is_empty())
        // `2026-11-20 10:20:00.123`: the milliseconds are not needed.
        .map(|t| parse_beijing_time(t.split('.').next().unwrap_or(t)))
        .transpose()?;
    Ok(Some(RefundReport {
        out_trade_no: params.get("out_trade_no").cloned().unwrap_or_default(),
        out_refund_no: out_refund_no.clone(),
        provider_refund_no: None,
        state: RefundState::Success,
        provider_state: "REFUND_SUCCESS".into(),
        amount_fen: None,
        accepted_at: at,
        succeeded_at: at,
    }))
}
