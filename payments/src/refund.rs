//! What both providers' refunds have in common: the refund we ask for, and what a provider says
//! became of it. A refund is ours by `out_refund_no` (WeChat `out_refund_no`, Alipay
//! `out_request_no`): asking again with the same number never refunds twice.

use chrono::{DateTime, Utc};

/// A refund to ask a provider for.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub out_trade_no: &'a str,
    pub out_refund_no: &'a str,
    pub amount_fen: i64,
    /// What the order was paid (WeChat wants it with every refund).
    pub total_fen: i64,
    pub reason: &'a str,
    /// Where WeChat Pay sends the refund notification (Alipay reports on the trade's notify).
    pub notify_url: Option<&'a str>,
}

/// Where a refund is, in both providers' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    /// Accepted, money not back yet.
    Processing,
    /// The money went back to the payer.
    Success,
    /// Stuck at the provider (the payer's card closed, …): needs a person.
    Abnormal,
    /// Will not happen.
    Closed,
    /// The provider has no such refund.
    NotFound,
}

impl RefundState {
    /// The status stored locally (`payment_refund.status`); `NotFound` has none.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Processing => PROCESSING,
            RefundState::Success => SUCCESS,
            RefundState::Abnormal => ABNORMAL,
            RefundState::Closed => CLOSED,
            RefundState::NotFound => "NOT_FOUND",
        }
    }

    /// WeChat's `status` / `refund_status` word.
    pub fn from_wechat(s: &str) -> Option<RefundState> {
        match s {
            "PROCESSING" => Some(RefundState::Processing),
            "SUCCESS" => Some(RefundState::Success),
            "ABNORMAL" => Some(RefundState::Abnormal),
            "CLOSED" => Some(RefundState::Closed),
            _ => None,
        }
    }
}

pub const PROCESSING: &str = "PROCESSING";
pub const SUCCESS: &str = "SUCCESS";
pub const ABNORMAL: &str = "ABNORMAL";
pub const CLOSED: &str = "CLOSED";

/// A provider's account of one refund: an answer to the refund request or its query, or a
/// notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReport {
    pub out_trade_no: String,
    pub out_refund_no: String,
    /// WeChat `refund_id`; Alipay has none.
    pub provider_refund_no: Option<String>,
    pub state: RefundState,
    /// The provider's own word for it, kept for people.
    pub provider_state: String,
    /// What the provider says is refunded by this refund.
    pub amount_fen: Option<i64>,
    /// When the provider accepted it (WeChat `create_time`, Alipay `gmt_refund_pay`).
    pub accepted_at: Option<DateTime<Utc>>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

impl RefundReport {
    pub fn not_found(out_trade_no: &str, out_refund_no: &str) -> RefundReport {
        RefundReport {
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.to_owned(),
            provider_refund_no: None,
            state: RefundState::NotFound,
            provider_state: "NOT_FOUND".into(),
            amount_fen: None,
            accepted_at: None,
            succeeded_at: None,
        }
    }
}

/// A verified refund notification (WeChat's `REFUND.*` events; Alipay's refund reports on the
/// trade notify are read into the same shape).
#[derive(Debug, Clone)]
pub struct RefundNotification {
    /// The provider's id of the notification; retries carry the same one.
    pub dedup_key: String,
    pub event_type: String,
    /// WeChat `mchid` / Alipay `app_id`.
    pub merchant_id: String,
    pub report: RefundReport,
}

/// A new `out_refund_no`: 32 characters of `[0-9a-f]`, time-ordered, unique everywhere.
pub fn new_out_refund_no() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
