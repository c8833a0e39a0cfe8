//! `alipay.trade.refund` and `alipay.trade.fastpay.refund.query`, and the refunds they keep.
//!
//! The fake completes a refund as soon as it accepts it (`fund_change` "Y", `refund_fee` the
//! trade's refunded total), as Alipay does for a refund paid from the merchant's balance.
//! Asking again with the same `out_request_no` and amount repeats the answer with
//! `fund_change` "N": no money moved this time, which is how a client that retried learns that
//! its first attempt went through. The same `out_request_no` with another amount is
//! `ACQ.DISCORDANT_REPEAT_REQUEST`, Alipay's code for an inconsistent repeat. A trade refunded
//! in full is TRADE_CLOSED from then on, as at Alipay; a partly refunded one stays
//! TRADE_SUCCESS.
//!
//! The query tells "no such refund" the way Alipay does: code 10000 with the trade's numbers
//! and the asked `out_request_no` but neither `refund_amount` nor `refund_status`.

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use super::gateway::{Node, amount, find, invalid_parameter, text};
use super::money::format_yuan;
use super::{FakeOrder, FakeRefund, State, TradeStatus};
use crate::support;

/// The longest `refund_reason` Alipay takes, in characters.
const MAX_REASON_CHARS: usize = 256;
/// The longest `out_request_no`.
const MAX_REQUEST_NO_LEN: usize = 64;

/// `alipay.trade.refund`: refunds `refund_amount` of a paid trade at once.
pub(super) fn refund(state: &mut State, app_id: &str, biz: &Map<String, Value>) -> Node {
    let Some(amount) = amount(biz, "refund_amount").filter(|a| *a >= 1) else {
        return invalid_parameter("refund_amount");
    };
    let reason = text(biz, "refund_reason");
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return invalid_parameter("refund_reason");
    }
    let key = match find(state, app_id, biz) {
        Ok(order) => (order.app_id.clone(), order.out_trade_no.clone()),
        Err(node) => return node,
    };
    let out_trade_no = key.1.as_str();
    // Without `out_request_no` Alipay takes the order's number: one refund per trade.
    let out_request_no = text(biz, "out_request_no").unwrap_or(out_trade_no);
    if out_request_no.len() > MAX_REQUEST_NO_LEN {
        return invalid_parameter("out_request_no").about(out_trade_no);
    }
    if let Some(earlier) = state.refund_at(app_id, out_trade_no, out_request_no) {
        if earlier.amount_fen != amount {
            return Node::business("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
                .about(out_trade_no);
        }
        let earlier = earlier.clone();
        return match state.orders.get(&key) {
            Some(order) => refund_answer(order, &earlier, false),
            None => Node::business("ACQ.TRADE_NOT_EXIST", "交易不存在").about(out_trade_no),
        };
    }
    let Some(order) = state.orders.get(&key) else {
        return Node::business("ACQ.TRADE_NOT_EXIST", "交易不存在").about(out_trade_no);
    };
    if order.status != TradeStatus::TradeSuccess {
        return Node::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法").about(out_trade_no);
    }
    if amount > order.refundable() {
        return Node::business(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "退款金额超限，退款金额大于可退金额",
        )
        .about(out_trade_no);
    }
    let now = support::now_beijing();
    let made = state
        .add_refund(&key, out_request_no, amount, reason, now)
        .cloned();
    match (made, state.orders.get(&key)) {
        (Some(made), Some(order)) => refund_answer(order, &made, true),
        _ => Node::business("ACQ.TRADE_NOT_EXIST", "交易不存在").about(out_trade_no),
    }
}

fn refund_answer(order: &FakeOrder, refund: &FakeRefund, fund_change: bool) -> Node {
    Node::success(json!({
        "trade_no": order.trade_no,
        "out_trade_no": order.out_trade_no,
        "buyer_logon_id": order.buyer_logon_id,
        "fund_change": if fund_change { "Y" } else { "N" },
        "refund_fee": format_yuan(order.refunded_fen),
        "gmt_refund_pay": refund.gmt_refund_pay,
    }))
}

/// `alipay.trade.fastpay.refund.query`: one refund of a trade, or only the numbers when the
/// trade has no refund by that `out_request_no`.
pub(super) fn query(state: &mut State, app_id: &str, biz: &Map<String, Value>) -> Node {
    let order = match find(state, app_id, biz) {
        Ok(order) => order.clone(),
        Err(node) => return node,
    };
    let out_request_no = text(biz, "out_request_no").unwrap_or(&order.out_trade_no);
    if out_request_no.len() > MAX_REQUEST_NO_LEN {
        return invalid_parameter("out_request_no").about(&order.out_trade_no);
    }
    let mut fields = json!({
        "trade_no": order.trade_no,
        "out_trade_no": order.out_trade_no,
        "out_request_no": out_request_no,
    });
    if let Some(refund) = state.refund_at(app_id, &order.out_trade_no, out_request_no) {
        fields["total_amount"] = json!(format_yuan(order.reported_total()));
        fields["refund_amount"] = json!(format_yuan(refund.amount_fen));
        fields["refund_status"] = json!("REFUND_SUCCESS");
        fields["gmt_refund_pay"] = json!(refund.gmt_refund_pay);
    }
    Node::success(fields)
}

impl State {
    /// The refund `out_request_no` of the trade (app_id, out_trade_no).
    pub(super) fn refund_at(
        &self,
        app_id: &str,
        out_trade_no: &str,
        out_request_no: &str,
    ) -> Option<&FakeRefund> {
        let key = (
            app_id.to_owned(),
            out_trade_no.to_owned(),
            out_request_no.to_owned(),
        );
        self.refunds.get(*self.refund_index.get(&key)?)
    }

    /// The refund `out_request_no` of the trade `out_trade_no` in any app.
    pub(super) fn refund_of(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
    ) -> Option<&FakeRefund> {
        self.refunds
            .iter()
            .find(|r| r.out_trade_no == out_trade_no && r.out_request_no == out_request_no)
    }

    /// Records a completed refund of the trade `key` (app_id, out_trade_no) made at `at`: adds
    /// it to the trade's refunded total and closes the trade once that reaches what was paid.
    /// None if there is no such trade. The caller checked the amount and the number.
    pub(super) fn add_refund(
        &mut self,
        key: &(String, String),
        out_request_no: &str,
        amount_fen: i64,
        reason: Option<&str>,
        at: DateTime<FixedOffset>,
    ) -> Option<&FakeRefund> {
        let order = self.orders.get_mut(key)?;
        order.refunded_fen += amount_fen;
        if order.refundable() <= 0 {
            order.status = TradeStatus::TradeClosed;
            order.gmt_close = Some(support::alipay_time(at));
        }
        let refund = FakeRefund {
            app_id: key.0.clone(),
            out_trade_no: key.1.clone(),
            trade_no: order.trade_no.clone().unwrap_or_default(),
            out_request_no: out_request_no.to_owned(),
            amount_fen,
            reason: reason.map(str::to_owned),
            gmt_refund_pay: support::alipay_time(at),
            gmt_refund: at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        };
        let index = self.refunds.len();
        self.refunds.push(refund);
        self.refund_index.insert(
            (key.0.clone(), key.1.clone(), out_request_no.to_owned()),
            index,
        );
        self.refunds.get(index)
    }
}
