//! `POST /v3/refund/domestic/refunds` and `GET /v3/refund/domestic/refunds/{out_refund_no}`.
//!
//! A refund names its order by `out_trade_no` (or `transaction_id`) and must repeat the
//! order's total; it may take back at most what the order's PROCESSING and SUCCESS refunds
//! left. The same `out_refund_no` again with the same order and amounts answers the refund as
//! it now is and moves nothing; with other ones it is refused.

use poem::http::StatusCode;
use serde_json::Value;

use super::{Call, Refusal};
use crate::support;
use crate::wechat_pay::refund::{self, FakeRefund, RefundMode, RefundStatus};
use crate::wechat_pay::{FakeOrder, State, TradeState};

type Handled = Result<(StatusCode, Option<Value>), Refusal>;

/// Which order a refund request names.
enum OrderRef {
    OutTradeNo(String),
    TransactionId(String),
}

/// A create request, checked field by field.
struct RefundRequest {
    order: OrderRef,
    out_refund_no: String,
    reason: Option<String>,
    notify_url: Option<String>,
    /// `amount.refund`, fen.
    refund: i64,
    /// `amount.total`, fen.
    total: i64,
}

impl RefundRequest {
    /// Whether the request repeats the one that made `existing`.
    fn repeats(&self, existing: &FakeRefund) -> bool {
        let same_order = match &self.order {
            OrderRef::OutTradeNo(no) => *no == existing.out_trade_no,
            OrderRef::TransactionId(id) => *id == existing.transaction_id,
        };
        same_order && self.refund == existing.amount_fen && self.total == existing.total_fen
    }
}

pub(super) fn create(call: &Call<'_>, state: &mut State, mchid: &str) -> Handled {
    let req = parse_request(&call.json_body()?)?;
    let key = (mchid.to_owned(), req.out_refund_no.clone());
    if let Some(existing) = state.refunds.get(&key) {
        if !req.repeats(existing) {
            return Err(Refusal::invalid_request(
                "商户退款单号已被使用，且本次请求的订单或金额与之前不一致",
            ));
        }
        return Ok((StatusCode::OK, Some(refund::refund_json(existing))));
    }
    let order = find_order(state, mchid, &req.order)?;
    if order.state != TradeState::Success {
        return Err(Refusal::invalid_request("订单未支付，不能发起退款"));
    }
    let paid = order.reported_total();
    if req.total != paid {
        return Err(Refusal::invalid_request("订单金额与原订单支付金额不一致"));
    }
    let (out_trade_no, transaction_id) = (
        order.out_trade_no.clone(),
        order.transaction_id.clone().unwrap_or_default(),
    );
    if req.refund > paid - state.refunded(mchid, &out_trade_no) {
        return Err(Refusal::invalid_request("申请退款金额超过订单可退金额"));
    }
    let now = support::now_beijing();
    let create_time = support::rfc3339(now);
    let immediate = state.refund_mode == RefundMode::Immediate;
    let refund = FakeRefund {
        mch_id: mchid.to_owned(),
        out_trade_no,
        transaction_id,
        out_refund_no: req.out_refund_no,
        refund_id: refund::refund_id(now, &support::random_digits(15)),
        amount_fen: req.refund,
        total_fen: req.total,
        reason: req.reason,
        notify_url: req.notify_url,
        status: if immediate {
            RefundStatus::Success
        } else {
            RefundStatus::Processing
        },
        success_time: immediate.then(|| create_time.clone()),
        create_time,
        notifications_sent: 0,
    };
    let answer = refund::refund_json(&refund);
    state.insert_refund(refund);
    Ok((StatusCode::OK, Some(answer)))
}

pub(super) fn query(call: &Call<'_>, state: &State, mchid: &str) -> Handled {
    state
        .refunds
        .get(&(mchid.to_owned(), call.path_id.to_owned()))
        .map(|r| (StatusCode::OK, Some(refund::refund_json(r))))
        .ok_or_else(|| Refusal::new(404, "RESOURCE_NOT_EXISTS", "退款单不存在"))
}

/// The merchant's order the request names (by `out_trade_no` when it gives one, which then
/// wins over a `transaction_id`).
fn find_order<'s>(state: &'s State, mchid: &str, by: &OrderRef) -> Result<&'s FakeOrder, Refusal> {
    let found = match by {
        OrderRef::OutTradeNo(no) => state.orders.get(&(mchid.to_owned(), no.clone())),
        OrderRef::TransactionId(id) => state
            .orders
            .values()
            .find(|o| o.mch_id == mchid && o.transaction_id.as_ref() == Some(id)),
    };
    found.ok_or_else(|| Refusal::new(404, "RESOURCE_NOT_EXISTS", "订单不存在"))
}

fn parse_request(v: &Value) -> Result<RefundRequest, Refusal> {
    let text = |ptr: &str| {
        v.pointer(ptr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let order = match (text("/out_trade_no"), text("/transaction_id")) {
        (Some(no), _) => OrderRef::OutTradeNo(no.to_owned()),
        (None, Some(id)) => OrderRef::TransactionId(id.to_owned()),
        (None, None) => return Err(Refusal::missing("/out_trade_no")),
    };
    let out_refund_no = text("/out_refund_no").ok_or_else(|| Refusal::missing("/out_refund_no"))?;
    if !valid_out_refund_no(out_refund_no) {
        return Err(Refusal::invalid(
            "/out_refund_no",
            "要求1-64个字符，只能是数字、大小写字母_-|*@",
        ));
    }
    let reason = text("/reason");
    if reason.is_some_and(|r| r.chars().count() > 80) {
        return Err(Refusal::invalid("/reason", "长度超过80"));
    }
    let notify_url = text("/notify_url");
    if notify_url
        .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 256)
    {
        return Err(Refusal::invalid("/notify_url", "不是合法的URL"));
    }
    let refund = amount(v, "/amount/refund")?;
    if refund <= 0 {
        return Err(Refusal::invalid_request("退款金额必须大于0"));
    }
    let total = amount(v, "/amount/total")?;
    if total <= 0 {
        return Err(Refusal::invalid("/amount/total", "必须是大于0的整数"));
    }
    match v.pointer("/amount/currency") {
        None => return Err(Refusal::missing("/amount/currency")),
        Some(c) if c.as_str() != Some("CNY") => {
            return Err(Refusal::invalid(
                "/amount/currency",
                "Currency code is invalid",
            ));
        }
        Some(_) => {}
    }
    Ok(RefundRequest {
        order,
        out_refund_no: out_refund_no.to_owned(),
        reason: reason.map(str::to_owned),
        notify_url: notify_url.map(str::to_owned),
        refund,
        total,
    })
}

/// A required integer amount in fen.
fn amount(v: &Value, ptr: &str) -> Result<i64, Refusal> {
    v.pointer(ptr)
        .ok_or_else(|| Refusal::missing(ptr))?
        .as_i64()
        .ok_or_else(|| Refusal::invalid(ptr, "必须是整数"))
}

/// At most 64 characters of digits, letters and `_-|*@`, as the refund API documents.
fn valid_out_refund_no(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn out_refund_no_rules_follow_the_docs() {
        assert!(valid_out_refund_no("R"));
        assert!(valid_out_refund_no("r_1-2|3*4@5"));
        assert!(valid_out_refund_no(&"x".repeat(64)));
        assert!(!valid_out_refund_no(&"x".repeat(65)));
        assert!(!valid_out_refund_no("has space"));
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let ok = json!({
            "out_trade_no": "ORDER_1", "out_refund_no": "R1",
            "amount": { "refund": 500, "total": 1230, "currency": "CNY" },
        });
        assert!(parse_request(&ok).is_ok());
        let code = |v: Value| parse_request(&v).err().map(|r| r.code);
        let mut no_order = ok.clone();
        no_order["out_trade_no"] = json!("");
        assert_eq!(code(no_order).as_deref(), Some("PARAM_ERROR"));
        let mut zero = ok.clone();
        zero["amount"]["refund"] = json!(0);
        assert_eq!(code(zero).as_deref(), Some("INVALID_REQUEST"));
        let mut usd = ok.clone();
        usd["amount"]["currency"] = json!("USD");
        assert_eq!(code(usd).as_deref(), Some("PARAM_ERROR"));
        let mut long = ok;
        long["reason"] = json!("退".repeat(81));
        assert_eq!(code(long).as_deref(), Some("PARAM_ERROR"));
    }
}
