//! A provider's notification about an order, once verified: the same shape for both providers.

use crate::trade::Trade;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Wechat,
    Alipay,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Wechat => "wechat",
            Provider::Alipay => "alipay",
        }
    }
}

/// A verified notification.
#[derive(Debug, Clone)]
pub struct Notification {
    pub provider: Provider,
    /// The provider's id of this notification (WeChat `id`, Alipay `notify_id`): retries of one
    /// notification carry the same id.
    pub dedup_key: String,
    /// WeChat `event_type`, Alipay `trade_status`.
    pub event_type: String,
    /// The merchant the provider says the money went to: WeChat `mchid`, Alipay `app_id`.
    pub merchant_id: String,
    pub app_id: String,
    pub trade: Trade,
    /// Alipay reports refunds on the trade's notify too (`refund_fee`, `gmt_refund`); such a
    /// notification is never a new payment.
    pub refund_report: bool,
}

/// A header value by lower-case name from `(name, value)` pairs, or "".
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}
