//! What WeChat Pay writes: the transaction JSON (query answers and notification resources),
//! its signature headers, AEAD_AES_256_GCM encryption (notification resources and the
//! certificate list), the `TRANSACTION.SUCCESS` and `REFUND.*` notifications, and the simulator
//! page that pays an order and delivers its notification.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::Response;
use poem::http::StatusCode;
use serde_json::{Value, json};

use super::{FakeOrder, FakeRefund, Inner, SignedCallback, Signer, State, TradeState, refund};
use crate::keys::corrupt_signature;
use crate::support::{self, Delivery, lock};

/// The transaction as the query route answers it and the notification resource holds it.
pub(super) fn transaction_json(order: &FakeOrder) -> Value {
    let mut amount = json!({
        "total": order.reported_total(),
        "currency": "CNY",
        "payer_currency": "CNY",
    });
    let mut v = json!({
        "appid": order.appid,
        "mchid": order.mch_id,
        "out_trade_no": order.out_trade_no,
        "trade_state": order.state.as_str(),
        "trade_state_desc": order.state.description(),
    });
    if order.state == TradeState::Success {
        amount["payer_total"] = json!(order.reported_total());
        v["transaction_id"] = json!(order.transaction_id);
        v["trade_type"] = json!(order.trade_type);
        v["bank_type"] = json!("OTHERS");
        v["attach"] = json!("");
        v["success_time"] = json!(order.success_time);
        v["payer"] = json!({ "openid": order.payer_openid });
    }
    v["amount"] = amount;
    v
}

/// `Wechatpay-*` signature headers over `timestamp\nnonce\nbody\n`.
pub(super) fn signature_headers(
    signer: &Signer,
    body: &str,
    tamper: bool,
) -> Vec<(String, String)> {
    let timestamp = support::unix_now().to_string();
    let nonce = support::random_hex();
    let mut signature = signer
        .key
        .sign(format!("{timestamp}\n{nonce}\n{body}\n").as_bytes());
    if tamper {
        signature = corrupt_signature(&signature);
    }
    vec![
        ("Wechatpay-Nonce".to_owned(), nonce),
        ("Wechatpay-Signature".to_owned(), signature),
        ("Wechatpay-Timestamp".to_owned(), timestamp),
        ("Wechatpay-Serial".to_owned(), signer.serial.clone()),
    ]
}

fn callback_headers(signer: &Signer, body: &str) -> Vec<(String, String)> {
    let mut headers = signature_headers(signer, body, false);
    headers.push((
        "Wechatpay-Signature-Type".to_owned(),
        "WECHATPAY2-SHA256-RSA2048".to_owned(),
    ));
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    headers
}

/// The notification body for a paid order (a new id each time), or None if it is not paid or
/// its merchant is gone.
fn notification_body(state: &State, order: &FakeOrder) -> Option<String> {
    if order.state != TradeState::Success {
        return None;
    }
    let merchant = state.merchants.get(&order.mch_id)?;
    let event = Event {
        event_type: "TRANSACTION.SUCCESS",
        summary: "支付成功",
        original_type: "transaction",
    };
    Some(envelope(
        &merchant.apiv3_key,
        &event,
        transaction_json(order),
    ))
}

pub(super) fn notification(state: &State, order: &FakeOrder) -> Option<SignedCallback> {
    let body = notification_body(state, order)?;
    let signer = &state.merchants.get(&order.mch_id)?.signer;
    Some(SignedCallback {
        headers: callback_headers(signer, &body),
        body,
    })
}

/// The `REFUND.*` notification for the refund's status (a new id each time), or None while it
/// is processing or if its merchant is gone.
pub(super) fn refund_notification(state: &State, refund: &FakeRefund) -> Option<SignedCallback> {
    let (event_type, summary) = refund.status.event()?;
    let merchant = state.merchants.get(&refund.mch_id)?;
    let event = Event {
        event_type,
        summary,
        original_type: "refund",
    };
    let body = envelope(&merchant.apiv3_key, &event, refund::resource_json(refund));
    Some(SignedCallback {
        headers: callback_headers(&merchant.signer, &body),
        body,
    })
}

/// What a notification says it is about.
struct Event {
    event_type: &'static str,
    summary: &'static str,
    /// `resource.original_type`, also used as the resource's `associated_data`.
    original_type: &'static str,
}

/// A notification body: a fresh id and nonce, the resource encrypted with the APIv3 key.
fn envelope(apiv3_key: &[u8], event: &Event, resource: Value) -> String {
    let nonce = support::random_hex()[..12].to_owned();
    let associated_data = event.original_type;
    let ciphertext = encrypt(apiv3_key, &nonce, associated_data, resource.to_string());
    let body = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "create_time": support::rfc3339(support::now_beijing()),
        "resource_type": "encrypt-resource",
        "event_type": event.event_type,
        "summary": event.summary,
        "resource": {
            "original_type": event.original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": associated_data,
            "nonce": nonce,
        },
    });
    body.to_string()
}

/// AEAD_AES_256_GCM: base64 of the ciphertext followed by the 16-byte tag.
pub(super) fn encrypt(key: &[u8], nonce: &str, associated_data: &str, plaintext: String) -> String {
    let key = UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .unwrap_or_else(|e| panic!("the APIv3 key is not an AES-256 key: {e}"));
    let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .unwrap_or_else(|e| panic!("a resource nonce has 12 bytes: {e}"));
    let mut data = plaintext.into_bytes();
    key.seal_in_place_append_tag(nonce, Aad::from(associated_data.as_bytes()), &mut data)
        .unwrap_or_else(|e| panic!("AES-GCM sealing failed: {e}"));
    STANDARD.encode(data)
}

/// `GET /pay/{out_trade_no}`: pays the order and delivers its notification in the background,
/// retrying until our route answers 2xx.
pub(super) fn pay_page(inner: &Arc<Inner>, out_trade_no: &str) -> Response {
    let mut state = lock(&inner.state);
    let (status, message) = match state.order(out_trade_no).map(|o| o.state) {
        None => (StatusCode::NOT_FOUND, "没有这个订单 (no such order)"),
        Some(TradeState::Success) => (StatusCode::OK, "订单已支付 (already paid)"),
        Some(TradeState::Closed) => (StatusCode::CONFLICT, "订单已关闭 (order closed)"),
        Some(TradeState::NotPay) if !state.pay(out_trade_no, None) => {
            (StatusCode::CONFLICT, "订单已过期 (past time_expire)")
        }
        Some(TradeState::NotPay) => {
            if let Some(delivery) = delivery(inner, &state, out_trade_no) {
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
        "微信支付模拟器 WeChat Pay simulator",
        out_trade_no,
        message,
    )
}

fn delivery(inner: &Arc<Inner>, state: &State, out_trade_no: &str) -> Option<Delivery> {
    let order = state.order(out_trade_no)?;
    let body = notification_body(state, order)?;
    let mch_id = order.mch_id.clone();
    let signed_body = body.clone();
    let inner = Arc::clone(inner);
    Some(Delivery {
        url: order.notify_url.clone(),
        body,
        // Each attempt is signed afresh, by whichever key the merchant has then.
        headers: Box::new(move || {
            let state = lock(&inner.state);
            state
                .merchants
                .get(&mch_id)
                .map(|m| callback_headers(&m.signer, &signed_body))
                .unwrap_or_default()
        }),
        accepted: |status, _| (200..300).contains(&status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_decrypt_with_the_apiv3_key() {
        let key = b"0123456789abcdef0123456789abcdef";
        let ct = encrypt(key, "abcdefghijkl", "transaction", "{\"a\":1}".to_owned());
        let mut data = STANDARD.decode(ct).unwrap();
        let opening = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let plain = opening
            .open_in_place(
                Nonce::try_assume_unique_for_key(b"abcdefghijkl").unwrap(),
                Aad::from(b"transaction"),
                &mut data,
            )
            .unwrap();
        assert_eq!(plain, b"{\"a\":1}");
    }
}
