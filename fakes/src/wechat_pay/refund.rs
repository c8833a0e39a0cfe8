//! Refunds as the fake holds them: the refund object the create and query routes answer, the
//! resource a `REFUND.*` notification carries, and the bookkeeping behind the over-refund rule
//! (what an order still has to give back is its total less its PROCESSING and SUCCESS refunds,
//! so a refund that failed or was closed frees its amount again).

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};

use super::State;
use crate::support;

/// What WeChat Pay reports as the account the money went back to; the fake always refunds to
/// the payer's balance.
const USER_RECEIVED_ACCOUNT: &str = "支付用户零钱";

/// `status` of a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    Processing,
    Success,
    Abnormal,
    Closed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Abnormal => "ABNORMAL",
            RefundStatus::Closed => "CLOSED",
        }
    }

    /// Whether the refund still takes its amount out of the order (WeChat counts processing
    /// and successful refunds against what may be refunded).
    pub fn holds_amount(self) -> bool {
        matches!(self, RefundStatus::Processing | RefundStatus::Success)
    }

    /// The notification's `event_type` and `summary`; none while the refund is processing.
    pub(super) fn event(self) -> Option<(&'static str, &'static str)> {
        match self {
            RefundStatus::Processing => None,
            RefundStatus::Success => Some(("REFUND.SUCCESS", "退款成功")),
            RefundStatus::Abnormal => Some(("REFUND.ABNORMAL", "退款异常")),
            RefundStatus::Closed => Some(("REFUND.CLOSED", "退款关闭")),
        }
    }
}

/// How new refunds start, for [`super::FakeWechatPay::set_refund_mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefundMode {
    /// PROCESSING until a test calls [`super::FakeWechatPay::finish_refund`] (the default, as
    /// real refunds take from seconds to days).
    #[default]
    Manual,
    /// SUCCESS at once, `success_time` equal to `create_time`.
    Immediate,
}

/// A refund as the fake holds it.
#[derive(Clone, Debug)]
pub struct FakeRefund {
    pub mch_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub out_refund_no: String,
    /// WeChat's refund number (`refund_id`), 29 digits.
    pub refund_id: String,
    /// `amount.refund`, fen.
    pub amount_fen: i64,
    /// `amount.total`: the order's total, fen.
    pub total_fen: i64,
    pub reason: Option<String>,
    /// Where `REFUND.*` notifications go; none if the request named none (WeChat would then
    /// use the URL configured on the merchant platform, which the fake does not have).
    pub notify_url: Option<String>,
    pub status: RefundStatus,
    /// RFC 3339, +08:00: when WeChat accepted the refund.
    pub create_time: String,
    /// RFC 3339, +08:00; only once SUCCESS.
    pub success_time: Option<String>,
    /// Notification deliveries attempted by `notify_refund`.
    pub notifications_sent: usize,
}

/// The refund object the create and query routes answer.
pub(super) fn refund_json(r: &FakeRefund) -> Value {
    let mut v = json!({
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": USER_RECEIVED_ACCOUNT,
        "create_time": r.create_time,
        "status": r.status.as_str(),
        "funds_account": "AVAILABLE",
        "amount": {
            "total": r.total_fen,
            "refund": r.amount_fen,
            "payer_total": r.total_fen,
            "payer_refund": r.amount_fen,
            "settlement_refund": r.amount_fen,
            "settlement_total": r.total_fen,
            "discount_refund": 0,
            "currency": "CNY",
        },
    });
    if let Some(t) = success_time(r) {
        v["success_time"] = json!(t);
    }
    v
}

/// The decrypted resource of a `REFUND.*` notification.
pub(super) fn resource_json(r: &FakeRefund) -> Value {
    let mut v = json!({
        "mchid": r.mch_id,
        "out_trade_no": r.out_trade_no,
        "transaction_id": r.transaction_id,
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "refund_status": r.status.as_str(),
        "user_received_account": USER_RECEIVED_ACCOUNT,
        "amount": {
            "total": r.total_fen,
            "refund": r.amount_fen,
            "payer_total": r.total_fen,
            "payer_refund": r.amount_fen,
        },
    });
    if let Some(t) = success_time(r) {
        v["success_time"] = json!(t);
    }
    v
}

/// `success_time` is only written for a successful refund.
fn success_time(r: &FakeRefund) -> Option<&str> {
    r.success_time
        .as_deref()
        .filter(|_| r.status == RefundStatus::Success)
}

/// A new `refund_id`: `5030`, two zeros, the Beijing date and 15 digits (29 digits in all,
/// like WeChat's).
pub(super) fn refund_id(at: DateTime<FixedOffset>, digits: &str) -> String {
    format!("503000{}{digits}", at.format("%Y%m%d"))
}

impl State {
    /// The refund with this `out_refund_no` (at any merchant).
    pub(super) fn refund(&self, out_refund_no: &str) -> Option<&FakeRefund> {
        self.refunds
            .values()
            .find(|r| r.out_refund_no == out_refund_no)
    }

    fn refund_mut(&mut self, out_refund_no: &str) -> Option<&mut FakeRefund> {
        self.refunds
            .values_mut()
            .find(|r| r.out_refund_no == out_refund_no)
    }

    /// Fen already taken out of an order by its PROCESSING and SUCCESS refunds.
    pub(super) fn refunded(&self, mchid: &str, out_trade_no: &str) -> i64 {
        let key = (mchid.to_owned(), out_trade_no.to_owned());
        self.order_refunds
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|no| self.refunds.get(&(mchid.to_owned(), no.clone())))
            .filter(|r| r.status.holds_amount())
            .map(|r| r.amount_fen)
            .sum()
    }

    /// Stores a refund (replacing one with the same merchant and `out_refund_no`) and indexes
    /// it under its order.
    pub(super) fn insert_refund(&mut self, refund: FakeRefund) {
        let order_key = (refund.mch_id.clone(), refund.out_trade_no.clone());
        let key = (refund.mch_id.clone(), refund.out_refund_no.clone());
        if let Some(old) = self.refunds.insert(key, refund.clone()) {
            let old_key = (old.mch_id, old.out_trade_no);
            if let Some(list) = self.order_refunds.get_mut(&old_key) {
                list.retain(|no| *no != old.out_refund_no);
            }
        }
        self.order_refunds
            .entry(order_key)
            .or_default()
            .push(refund.out_refund_no);
    }

    /// PROCESSING → `status` (SUCCESS also sets `success_time` to now). False if the refund is
    /// unknown, no longer processing, or `status` is PROCESSING.
    pub(super) fn finish_refund(&mut self, out_refund_no: &str, status: RefundStatus) -> bool {
        let Some(refund) = self.refund_mut(out_refund_no) else {
            return false;
        };
        if refund.status != RefundStatus::Processing || status == RefundStatus::Processing {
            return false;
        }
        refund.status = status;
        if status == RefundStatus::Success {
            refund.success_time = Some(support::rfc3339(support::now_beijing()));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: RefundStatus) -> FakeRefund {
        FakeRefund {
            mch_id: "1900000109".to_owned(),
            out_trade_no: "ORDER_1".to_owned(),
            transaction_id: "4200000000000000000000000001".to_owned(),
            out_refund_no: "R1".to_owned(),
            refund_id: refund_id(support::now_beijing(), "000000000000001"),
            amount_fen: 500,
            total_fen: 1230,
            reason: None,
            notify_url: None,
            status,
            create_time: "2026-11-20T10:19:58+08:00".to_owned(),
            success_time: Some("2026-11-20T10:20:00+08:00".to_owned()),
            notifications_sent: 0,
        }
    }

    #[test]
    fn success_time_is_written_only_for_successful_refunds() {
        let ok = refund_json(&sample(RefundStatus::Success));
        assert_eq!(ok["success_time"], "2026-11-20T10:20:00+08:00");
        assert_eq!(ok["amount"]["settlement_total"], 1230);
        let closed = resource_json(&sample(RefundStatus::Closed));
        assert!(closed.get("success_time").is_none());
        assert_eq!(closed["refund_status"], "CLOSED");
    }

    #[test]
    fn refund_ids_have_29_digits() {
        let id = refund_id(support::now_beijing(), "123456789012345");
        assert_eq!(id.len(), 29);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn only_processing_and_successful_refunds_hold_their_amount() {
        let mut state = State::default();
        for (no, status) in [
            ("R1", RefundStatus::Success),
            ("R2", RefundStatus::Closed),
            ("R3", RefundStatus::Processing),
        ] {
            let mut r = sample(status);
            r.out_refund_no = no.to_owned();
            r.amount_fen = 100;
            state.insert_refund(r);
        }
        assert_eq!(state.refunded("1900000109", "ORDER_1"), 200);
        assert!(state.finish_refund("R3", RefundStatus::Abnormal));
        assert!(!state.finish_refund("R3", RefundStatus::Success));
        assert_eq!(state.refunded("1900000109", "ORDER_1"), 100);
    }
}
