//! The asynchronous notification (`trade_status_sync`): form parameters signed with RSA2 over
//! the sorted parameters without `sign` and `sign_type`, POSTed form-encoded until our route
//! answers the literal body `success`; and the simulator page that pays and notifies.
//!
//! Alipay reports a refund on the same notify: the payment's parameters again, plus
//! `refund_fee` (the trade's refunded total), `gmt_refund` (with milliseconds) and `out_biz_no`
//! (the refund's `out_request_no`), `trade_status` TRADE_CLOSED once everything is refunded.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::Response;
use poem::http::StatusCode;

use super::gateway::signing_content;
use super::money::format_yuan;
use super::{FakeOrder, FakeRefund, Inner, State, TradeStatus};
use crate::support::{self, Delivery, lock};

/// The notification for a paid trade (TRADE_SUCCESS) or a scanned trade that was closed
/// (TRADE_CLOSED), with a new `notify_id`; sorted by name. None otherwise.
pub(super) fn notification(state: &State, order: &FakeOrder) -> Option<Vec<(String, String)>> {
    if !order.scanned || order.status == TradeStatus::WaitBuyerPay {
        return None;
    }
    sign(state, &order.app_id, trade_params(order))
}

/// The notification reporting `refund`: the trade's parameters as they stood right after it.
pub(super) fn refund_notification(
    state: &State,
    refund: &FakeRefund,
) -> Option<Vec<(String, String)>> {
    let order = state
        .orders
        .get(&(refund.app_id.clone(), refund.out_trade_no.clone()))?;
    // The refunded total up to and including this refund, which is what Alipay sent then.
    let refunded: i64 = state
        .refunds
        .iter()
        .filter(|r| r.app_id == refund.app_id && r.out_trade_no == refund.out_trade_no)
        .scan(false, |past, r| {
            let counted = !*past;
            *past = *past || r.out_request_no == refund.out_request_no;
            counted.then_some(r.amount_fen)
        })
        .sum();
    let closed = refunded >= order.reported_total();
    let mut params = trade_params(order);
    let status = if closed {
        TradeStatus::TradeClosed
    } else {
        TradeStatus::TradeSuccess
    };
    params.insert("trade_status".to_owned(), status.as_str().to_owned());
    if !closed {
        params.remove("gmt_close");
    }
    params.insert("refund_fee".to_owned(), format_yuan(refunded));
    params.insert("gmt_refund".to_owned(), refund.gmt_refund.clone());
    params.insert("out_biz_no".to_owned(), refund.out_request_no.clone());
    sign(state, &order.app_id, params)
}

/// Signs with the app's Alipay key over the sorted parameters without `sign` and `sign_type`.
fn sign(
    state: &State,
    app_id: &str,
    mut params: BTreeMap<String, String>,
) -> Option<Vec<(String, String)>> {
    let app = state.apps.get(app_id)?;
    let sign = app
        .signer
        .sign(signing_content(&params, &["sign", "sign_type"]).as_bytes());
    params.insert("sign".to_owned(), sign);
    Some(params.into_iter().collect())
}

/// The parameters that describe the trade now, unsigned, with a new `notify_id`: the paid
/// amounts once the buyer paid (even if a full refund closed it since), `gmt_close` once
/// closed.
fn trade_params(order: &FakeOrder) -> BTreeMap<String, String> {
    let paid = order.was_paid();
    let now = support::alipay_time(support::now_beijing());
    let mut params: BTreeMap<String, String> = [
        ("notify_time", now),
        ("notify_type", "trade_status_sync".to_owned()),
        (
            "notify_id",
            support::random_hex() + &support::random_hex()[..10],
        ),
        ("app_id", order.app_id.clone()),
        ("auth_app_id", order.app_id.clone()),
        ("charset", "utf-8".to_owned()),
        ("version", "1.0".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("trade_no", order.trade_no.clone().unwrap_or_default()),
        ("out_trade_no", order.out_trade_no.clone()),
        ("trade_status", order.status.as_str().to_owned()),
        ("subject", order.subject.clone()),
        ("buyer_id", order.buyer_id.clone().unwrap_or_default()),
        (
            "buyer_logon_id",
            order.buyer_logon_id.clone().unwrap_or_default(),
        ),
        ("seller_id", order.seller_id.clone()),
        ("gmt_create", order.gmt_create.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if paid {
        let amount = format_yuan(order.reported_total());
        for key in [
            "total_amount",
            "receipt_amount",
            "invoice_amount",
            "buyer_pay_amount",
        ] {
            params.insert(key.to_owned(), amount.clone());
        }
        params.insert("point_amount".to_owned(), "0.00".to_owned());
        params.insert(
            "gmt_payment".to_owned(),
            order.gmt_payment.clone().unwrap_or_default(),
        );
        params.insert(
            "fund_bill_list".to_owned(),
            serde_json::json!([{ "amount": amount, "fundChannel": "ALIPAYACCOUNT" }]).to_string(),
        );
    } else {
        params.insert("total_amount".to_owned(), format_yuan(order.total));
    }
    if order.status == TradeStatus::TradeClosed {
        params.insert(
            "gmt_close".to_owned(),
            order.gmt_close.clone().unwrap_or_default(),
        );
    }
    params
}

pub(super) fn form_body(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

pub(super) fn form_headers() -> Vec<(String, String)> {
    vec![(
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
    )]
}

/// `GET /pay/{out_trade_no}`: pays the trade and delivers its notification in the background,
/// retrying until our route answers `success`.
pub(super) fn pay_page(inner: &Arc<Inner>, out_trade_no: &str) -> Response {
    let mut state = lock(&inner.state);
    let (status, message) = match state.order(out_trade_no).map(|o| o.status) {
        None => (StatusCode::NOT_FOUND, "没有这个订单 (no such order)"),
        Some(TradeStatus::TradeSuccess) => (StatusCode::OK, "订单已支付 (already paid)"),
        Some(TradeStatus::TradeClosed) => (StatusCode::CONFLICT, "交易已关闭 (trade closed)"),
        Some(TradeStatus::WaitBuyerPay) if !state.pay(out_trade_no) => {
            (StatusCode::CONFLICT, "订单已过期 (past time_expire)")
        }
        Some(TradeStatus::WaitBuyerPay) => {
            if let Some(delivery) = delivery(&state, out_trade_no) {
                let http = inner.http().clone();
                let inner = Arc::clone(inner);
                let out_trade_no = out_trade_no.to_owned();
                tokio::spawn(support::deliver_with_retries(http, delivery, move |_| {
                    if let Some(order) = lock(&inner.state).order_mut(&out_trade_no) {
                        order.notifications_sent += 1;
                    }
                }));
            }
            (
                StatusCode::OK,
                "支付成功，正在通知商户 (paid; notifying the merchant)",
            )
        }
    };
    drop(state);
    support::simulator_page(
        status,
        "支付宝模拟器 Alipay simulator",
        out_trade_no,
        message,
    )
}

fn delivery(state: &State, out_trade_no: &str) -> Option<Delivery> {
    let order = state.order(out_trade_no)?;
    let params = notification(state, order)?;
    Some(Delivery {
        url: order.notify_url.clone()?,
        body: form_body(&params),
        headers: Box::new(form_headers),
        // Anything but these seven characters means "send it again".
        accepted: |_, body| body == "success",
    })
}
