//! Calls to the Alipay gateway: `alipay.trade.precreate` (a QR the payer scans),
//! `alipay.trade.query`, `alipay.trade.close`. Requests carry the common parameters and an RSA2
//! `sign`; answers are believed only once their `sign` checks out over the raw text of the
//! response node.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use minigate_store::BEIJING;
use serde_json::{json, value::RawValue};

use crate::{
    AlipayMerchant, Error, Result,
    http::unreachable,
    money,
    trade::{Closed, NewOrder, Trade, TradeState},
};

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";

/// Alipay's success code.
const OK: &str = "10000";
/// A business failure: the answer is signed and its `sub_code` says why.
const BUSINESS_FAILED: &str = "40004";

#[derive(Clone)]
pub struct AlipayApi {
    http: reqwest::Client,
    gateway: String,
}

impl AlipayApi {
    pub fn new(http: reqwest::Client, gateway: &str) -> Self {
        Self {
            http,
            gateway: gateway.to_owned(),
        }
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Opens a QR order; returns the `qr_code` to show.
    pub async fn precreate(&self, m: &AlipayMerchant, order: &NewOrder<'_>) -> Result<String> {
        let biz = json!({
            "out_trade_no": order.out_trade_no,
            "total_amount": money::format_yuan(order.amount_fen),
            "subject": order.description,
            "time_expire": beijing_time(order.expires_at),
        });
        let node = self
            .call(m, "alipay.trade.precreate", &biz, Some(order.notify_url))
            .await?;
        node.get("qr_code")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::Malformed("precreate answer without qr_code".into()))
    }

    pub async fn query(&self, m: &AlipayMerchant, out_trade_no: &str) -> Result<Trade> {
        let biz = json!({ "out_trade_no": out_trade_no });
        match self.call(m, "alipay.trade.query", &biz, None).await {
            Ok(node) => trade_from(out_trade_no, &|k| str_field(&node, k)),
            // A precreated trade exists at Alipay only once someone scanned it.
            Err(e) if e.is_refusal("ACQ.TRADE_NOT_EXIST") => Ok(Trade::not_found(out_trade_no)),
            Err(e) => Err(e),
        }
    }

    pub async fn close(&self, m: &AlipayMerchant, out_trade_no: &str) -> Result<Closed> {
        let biz = json!({ "out_trade_no": out_trade_no });
        match self.call(m, "alipay.trade.close", &biz, None).await {
            Ok(_) => Ok(Closed::Closed),
            Err(e) if e.is_refusal("ACQ.TRADE_NOT_EXIST") => Ok(Closed::Closed),
            // Only a paid (or finished) trade cannot be closed.
            Err(e) if e.is_refusal("ACQ.TRADE_STATUS_ERROR") => Ok(Closed::AlreadyPaid),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn call(
        &self,
        m: &AlipayMerchant,
        method: &str,
        biz: &serde_json::Value,
        notify_url: Option<&str>,
    ) -> Result<serde_json::Value> {
        let mut params = BTreeMap::from([
            ("app_id".to_owned(), m.app_id.clone()),
            ("method".to_owned(), method.to_owned()),
            ("format".to_owned(), "JSON".to_owned()),
            ("charset".to_owned(), "utf-8".to_owned()),
            ("sign_type".to_owned(), "RSA2".to_owned()),
            ("timestamp".to_owned(), beijing_time(Utc::now())),
            ("version".to_owned(), "1.0".to_owned()),
            ("biz_content".to_owned(), biz.to_string()),
        ]);
        if let Some(url) = notify_url {
            params.insert("notify_url".into(), url.to_owned());
        }
        let sign = m.key.sign_request(&params)?;
        params.insert("sign".into(), sign);
        let res = self
            .http
            .post(&self.gateway)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&params)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let text = res.text().await.map_err(|e| unreachable(&e))?;
        let node_name = format!("{}_response", method.replace('.', "_"));
        let envelope: HashMap<String, &RawValue> = serde_json::from_str(&text)
            .map_err(|e| Error::Malformed(format!("Alipay answer: {e}")))?;
        let raw = envelope
            .get(&node_name)
            .or_else(|| envelope.get("error_response"))
            .ok_or_else(|| Error::Malformed(format!("Alipay answer without {node_name}")))?;
        let node: serde_json::Value = serde_json::from_str(raw.get())
            .map_err(|e| Error::Malformed(format!("Alipay answer node: {e}")))?;
        let code = str_field(&node, "code").unwrap_or_default();
        let sign = envelope
            .get("sign")
            .and_then(|s| serde_json::from_str::<String>(s.get()).ok());
        match sign {
            Some(sign) => m.alipay_key.verify_response(raw.get(), &sign)?,
            // Results that change what we do must be signed; a gateway error may come unsigned
            // and is reported, never acted on.
            None if code == OK || code == BUSINESS_FAILED => {
                tracing::warn!(method, "Alipay answer without a signature");
                return Err(Error::SignatureInvalid);
            }
            None => {}
        }
        if code == OK {
            return Ok(node);
        }
        Err(Error::Refused {
            status: 200,
            code: str_field(&node, "sub_code").unwrap_or(code),
            message: str_field(&node, "sub_msg")
                .or_else(|| str_field(&node, "msg"))
                .unwrap_or_default(),
        })
    }
}

pub(super) fn str_field(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|s| s.as_str()).map(str::to_owned)
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, as Alipay writes times.
pub fn beijing_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn parse_beijing_time(s: &str) -> Result<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .and_then(|n| BEIJING.from_local_datetime(&n).single())
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| Error::Malformed(format!("Alipay time {s:?}")))
}

/// A trade from the fields of a query answer or a notification (`get` reads one field).
pub fn trade_from(out_trade_no: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<Trade> {
    let status = get("trade_status")
        .ok_or_else(|| Error::Malformed("Alipay trade without trade_status".into()))?;
    let state = match status.as_str() {
        "TRADE_SUCCESS" | "TRADE_FINISHED" => TradeState::Paid,
        "WAIT_BUYER_PAY" => TradeState::NotPaid,
        "TRADE_CLOSED" => TradeState::Closed,
        other => return Err(Error::Malformed(format!("unknown trade_status {other}"))),
    };
    let amount_fen = get("total_amount")
        .map(|a| money::parse_yuan(&a))
        .transpose()?;
    let paid_at = get("gmt_payment")
        .or_else(|| get("send_pay_date"))
        .filter(|t| !t.is_empty())
        .map(|t| parse_beijing_time(&t))
        .transpose()?;
    Ok(Trade {
        out_trade_no: get("out_trade_no").unwrap_or_else(|| out_trade_no.to_owned()),
        state,
        provider_state: status,
        provider_trade_no: get("trade_no"),
        amount_fen,
        paid_at,
        payer: get("buyer_id").or_else(|| get("buyer_open_id")),
    })
}
