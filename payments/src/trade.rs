//! What both providers' orders have in common: the order we ask for, and what a provider says
//! happened to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A new order to open at a provider.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub out_trade_no: &'a str,
    pub description: &'a str,
    pub amount_fen: i64,
    pub expires_at: DateTime<Utc>,
    pub notify_url: &'a str,
    /// The payer's openid under the merchant's app id (WeChat JSAPI only).
    pub payer_openid: Option<&'a str>,
}

/// What a provider says about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeState {
    /// Waiting for the payer (WeChat `NOTPAY`, `USERPAYING`; Alipay `WAIT_BUYER_PAY`, or a
    /// precreated trade nobody scanned yet).
    NotPaid,
    /// Paid (WeChat `SUCCESS`, `REFUND`; Alipay `TRADE_SUCCESS`, `TRADE_FINISHED`).
    Paid,
    /// Closed unpaid, revoked or failed.
    Closed,
    /// The provider has no such order.
    NotFound,
}

/// A provider's account of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub out_trade_no: String,
    pub state: TradeState,
    /// The provider's own state word, kept for people (`SUCCESS`, `TRADE_CLOSED`, …).
    pub provider_state: String,
    pub provider_trade_no: Option<String>,
    /// The order amount the provider reports, in fen.
    pub amount_fen: Option<i64>,
    pub paid_at: Option<DateTime<Utc>>,
    /// WeChat openid or Alipay buyer id.
    pub payer: Option<String>,
}

impl Trade {
    pub fn not_found(out_trade_no: &str) -> Trade {
        Trade {
            out_trade_no: out_trade_no.to_owned(),
            state: TradeState::NotFound,
            provider_state: "NOT_FOUND".into(),
            provider_trade_no: None,
            amount_fen: None,
            paid_at: None,
            payer: None,
        }
    }
}

/// What closing an order at its provider found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Closed now, or never existed there.
    Closed,
    /// The payer got there first: query the order and credit it.
    AlreadyPaid,
}

/// A new `out_trade_no`: 32 characters of `[0-9a-f]`, time-ordered (UUID v7 without hyphens),
/// unique across tenants and providers.
pub fn new_out_trade_no() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `s` is an acceptable `out_trade_no`: 6 to 32 characters of `[0-9A-Za-z_-]`.
pub fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_trade_numbers_fit_both_providers() {
        let a = new_out_trade_no();
        let b = new_out_trade_no();
        assert_eq!(a.len(), 32);
        assert!(valid_out_trade_no(&a));
        assert_ne!(a, b);
        for bad in [
            "",
            "short",
            "has space 123",
            "中文订单号码号码",
            &"x".repeat(33),
        ] {
            assert!(!valid_out_trade_no(bad), "{bad}");
        }
    }
}
