//! Alipay's asynchronous notify: a form POST whose parameters are signed (RSA2 over the sorted
//! parameters, `sign` and `sign_type` left out). Alipay retries until it reads the literal body
//! `success`.

use std::collections::BTreeMap;

use super::client::trade_from;
use crate::{
    AlipayMerchant, Error, Result,
    notification::{Notification, Provider},
};

/// The parameters of a form body. A parameter given twice is refused: which one would be
/// believed is exactly what a forger would play with.
pub fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::Malformed(format!("parameter {k} given twice")));
        }
    }
    if out.is_empty() {
        return Err(Error::Malformed("empty notification".into()));
    }
    Ok(out)
}

/// Verifies a notification to app `m` and reads its trade.
pub fn open(m: &AlipayMerchant, params: &BTreeMap<String, String>) -> Result<Notification> {
    m.alipay_key.verify_notification(params)?;
    let get = |k: &str| params.get(k).cloned();
    let need =
        |k: &str| get(k).ok_or_else(|| Error::Malformed(format!("notification without {k}")));
    let out_trade_no = need("out_trade_no")?;
    let refund_report = params.contains_key("refund_fee") || params.contains_key("gmt_refund");
    Ok(Notification {
        provider: Provider::Alipay,
        dedup_key: need("notify_id")?,
        event_type: need("trade_status")?,
        merchant_id: need("app_id")?,
        app_id: need("app_id")?,
        trade: trade_from(&out_trade_no, &get)?,
        refund_report,
    })
}
