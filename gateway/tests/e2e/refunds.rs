//! Refunds end to end, through GraphQL as an operator, against the fake WeChat Pay and Alipay:
//! partial refunds adding up to a full one, the over-refund rule (processing refunds hold their
//! amount, also under concurrency), idempotency keys, WeChat's refund notifications (duplicated,
//! unknown, forged, altered), refusals and lost answers followed up by the refund pass, Alipay's
//! synchronous refunds and the refund reports on its trade notify, who may refund, and the live
//! `paymentUpdated` stream. Each case checks what was stored: refunds, ledger, notifications,
//! flags, and what the providers were asked.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{Duration, Utc};
use minigate_fakes::{
    keys::RsaPem,
    wechat_pay::{RefundStatus, SignedCallback, WechatPayRoute},
};
use minigate_store::Id;
use serde_json::{Value, json};

use crate::{
    paying::{self, Shop, bill, create_payment, post_alipay, post_wechat, shop},
    support::{Resp, TestApp},
};

const REFUND_FIELDS: &str =
    "id paymentId amountFen amountYuan reason status failure outRefundNo createdAt succeededAt";

const UPDATES: &str = "subscription($p: ID!) { paymentUpdated(paymentId: $p) { eventId payment { id status paidFen refundedFen } } }";

/// No background refund pass during the test: the tests that want one call it themselves.
fn quiet_pass(c: &mut minigate_gateway::config::Config) {
    c.payments.poll_seconds = 3_600;
}

// ---- GraphQL ----

async fn refund(
    app: &TestApp,
    token: &str,
    payment: &str,
    fen: i64,
    reason: &str,
    key: Option<&str>,
) -> Resp {
    app.gql(
        token,
        &format!(
            "mutation($p: ID!, $a: Int!, $r: String!, $k: String) {{ refundPayment(paymentId: $p, amountFen: $a, reason: $r, idempotencyKey: $k) {{ {REFUND_FIELDS} }} }}"
        ),
        json!({ "p": payment, "a": fen, "r": reason, "k": key }),
    )
    .await
}

/// A refund that must be accepted.
#[track_caller]
fn accepted(r: &Resp) -> Value {
    r.ok()["refundPayment"].clone()
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// The payment as `token` sees it, with its refunds.
async fn seen(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .gql(
            token,
            &format!(
                "query($id: ID!) {{ payment(id: $id) {{ id status amountFen paidFen refundedFen refunds {{ {REFUND_FIELDS} }} }} }}"
            ),
            json!({ "id": id }),
        )
        .await;
    r.ok()["payment"].clone()
}

// ---- paying through the fakes ----

/// A WeChat Native payment of a new bill of `fen`, paid and its notification delivered.
/// Returns the payment id and `out_trade_no`.
async fn paid_wechat(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let bill = bill(app, shop, fen).await;
    let p = create_payment(app, &shop.staff, &bill, "WECHAT_NATIVE").await;
    let p = p.ok()["createPayment"].clone();
    let no = text(&p["outTradeNo"]);
    assert!(app.wxpay.pay(&no, Some("o-payer")));
    let (status, body) = app.wxpay.notify(&no).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let id = text(&p["id"]);
    assert_eq!(seen(app, &shop.admin, &id).await["status"], "PAID");
    (id, no)
}

/// The same with Alipay.
async fn paid_alipay(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let bill = bill(app, shop, fen).await;
    let p = create_payment(app, &shop.staff, &bill, "ALIPAY_QR").await;
    let p = p.ok()["createPayment"].clone();
    let no = text(&p["outTradeNo"]);
    assert!(app.alipay.pay(&no));
    assert_eq!(
        app.alipay.notify(&no).await.unwrap(),
        (200, "success".into())
    );
    let id = text(&p["id"]);
    assert_eq!(seen(app, &shop.admin, &id).await["status"], "PAID");
    (id, no)
}

/// Posts a WeChat Pay refund notification as WeChat would.
async fn post_refund_notify(app: &TestApp, cb: &SignedCallback) -> (u16, String) {
    let mut req = app
        .http
        .post(format!("{}/pay/wechat/refund-notify", app.base))
        .body(cb.body.clone());
    for (k, v) in &cb.headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// WeChat Pay finishes the refund and its notification reaches us (answered 2xx).
async fn finish_and_notify(app: &TestApp, out_refund_no: &str, status: RefundStatus) {
    assert!(app.wxpay.finish_refund(out_refund_no, status));
    let (code, body) = app.wxpay.notify_refund(out_refund_no).await.unwrap();
    assert_eq!(code, 204, "{body}");
}

// ---- what is stored ----

fn id(s: &str) -> Id {
    s.parse().unwrap()
}

/// The order's ledger: (kind, amount, source), payments first.
async fn ledger(app: &TestApp, order: &str) -> Vec<(String, i64, String)> {
    let mut c = app.db().conn().await.unwrap();
    let mut rows: Vec<(String, i64, String)> = minigate_store::fetch_all!(
        &mut c,
        (String, i64, String),
        "select kind, amount_fen, source from ledger_entry where order_id = $1",
        id(order)
    )
    .unwrap();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    rows
}

async fn refund_entries(app: &TestApp, order: &str) -> Vec<(i64, String)> {
    ledger(app, order)
        .await
        .into_iter()
        .filter(|(k, _, _)| k == "REFUND")
        .map(|(_, a, s)| (a, s))
        .collect()
}

async fn payment_entries(app: &TestApp, order: &str) -> usize {
    ledger(app, order)
        .await
        .iter()
        .filter(|(k, _, _)| k == "PAYMENT")
        .count()
}

/// The order's refund rows: (amount, status).
async fn refund_rows(app: &TestApp, order: &str) -> Vec<(i64, String)> {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_all!(
        &mut c,
        (i64, String),
        "select amount_fen, status from payment_refund where order_id = $1 order by created_at, id",
        id(order)
    )
    .unwrap()
}

/// The outcomes of the notifications stored for an order, oldest first.
async fn outcomes(app: &TestApp, out_trade_no: &str) -> Vec<String> {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_all!(
        &mut c,
        (String,),
        "select outcome from payment_notification where out_trade_no = $1 order by received_at, id",
        out_trade_no
    )
    .unwrap()
    .into_iter()
    .map(|(o,)| o)
    .collect()
}

async fn stored(app: &TestApp) -> i64 {
    app.count("select count(*) from payment_notification").await
}

async fn flags(app: &TestApp, kind: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from payment_flag where kind = $1",
        kind.to_owned()
    )
    .unwrap()
}

async fn all_refunds(app: &TestApp) -> i64 {
    app.count("select count(*) from payment_refund").await
}

async fn run_pass(app: &TestApp, minutes: i64) -> usize {
    minigate_resolvers::payment::refund::run_due(
        &app.state.deps,
        Utc::now() + Duration::minutes(minutes),
    )
    .await
    .unwrap()
}

// ---- forging WeChat Pay notifications ----

fn sign_with(key: &RsaPem, content: &str) -> String {
    let k = RsaKeyPair::from_pkcs8(
        &minigate_payments::pem::one(&key.private_pem, "PRIVATE KEY").unwrap(),
    )
    .unwrap();
    let mut sig = vec![0; k.public_modulus_len()];
    k.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        content.as_bytes(),
        &mut sig,
    )
    .unwrap();
    STANDARD.encode(sig)
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// WeChat Pay's signature headers over `body`, made with `key` at `timestamp`.
fn signed(key: &RsaPem, serial: &str, timestamp: i64, body: String) -> SignedCallback {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let sig = sign_with(key, &format!("{timestamp}\n{nonce}\n{body}\n"));
    SignedCallback {
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Wechatpay-Timestamp".into(), timestamp.to_string()),
            ("Wechatpay-Nonce".into(), nonce),
            ("Wechatpay-Signature".into(), sig),
            ("Wechatpay-Serial".into(), serial.into()),
        ],
        body,
    }
}

/// The refund notification's resource, changed by `edit`, encrypted again and signed by WeChat
/// Pay's key, as a new notification: what WeChat Pay would send if the refund really said that.
fn rewritten(shop: &Shop, cb: &SignedCallback, edit: impl FnOnce(&mut Value)) -> SignedCallback {
    let mut env: Value = serde_json::from_str(&cb.body).unwrap();
    let r = &env["resource"];
    let aad = text(&r["associated_data"]);
    let plain = minigate_payments::wechat::resource::decrypt(
        paying::APIV3_KEY.as_bytes(),
        r["nonce"].as_str().unwrap(),
        &aad,
        r["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    let mut resource: Value = serde_json::from_slice(&plain).unwrap();
    edit(&mut resource);
    // The event names the status the resource now has, as WeChat Pay's would.
    if let Some(status) = resource["refund_status"].as_str() {
        env["event_type"] = format!("REFUND.{status}").into();
    }
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, paying::APIV3_KEY.as_bytes()).unwrap());
    let nonce = "r3fund0nce12";
    let mut data = resource.to_string().into_bytes();
    key.seal_in_place_append_tag(
        Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap(),
        Aad::from(aad.as_bytes()),
        &mut data,
    )
    .unwrap();
    env["resource"]["ciphertext"] = STANDARD.encode(data).into();
    env["resource"]["nonce"] = nonce.into();
    env["id"] = uuid::Uuid::new_v4().to_string().into();
    signed(&shop.wxpay_key, paying::PUB_KEY_ID, now(), env.to_string())
}

// ---- the tests ----

both!(
    wechat_partial_refunds_add_up_to_a_full_refund,
    |app: TestApp| async move {
        let shop = shop(&app, "partial").await;
        let (pay, no) = paid_wechat(&app, &shop, 10_000).await;

        let r = accepted(&refund(&app, &shop.admin, &pay, 3_000, "Deposit back", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        assert_eq!(r["amountFen"], 3_000);
        assert_eq!(r["amountYuan"], "30.00");
        assert_eq!(r["paymentId"], pay.as_str());
        assert_eq!(r["reason"], "Deposit back");
        assert!(r["failure"].is_null() && r["succeededAt"].is_null(), "{r}");
        let first = text(&r["outRefundNo"]);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["status"], "REFUNDING", "{p}");
        assert_eq!(
            (p["paidFen"].as_i64(), p["refundedFen"].as_i64()),
            (Some(10_000), Some(0))
        );
        assert_eq!(p["refunds"][0]["id"], r["id"]);
        // WeChat Pay holds the refund as we asked for it, and will notify our refund route.
        let at = app.wxpay.refund(&first).expect("the refund at WeChat Pay");
        assert_eq!(at.out_trade_no, no);
        assert_eq!((at.amount_fen, at.total_fen), (3_000, 10_000));
        assert_eq!(at.status, RefundStatus::Processing);
        assert_eq!(at.reason.as_deref(), Some("Deposit back"));
        assert_eq!(
            at.notify_url.as_deref(),
            Some(format!("{}/pay/wechat/refund-notify", app.base).as_str())
        );
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), 1);
        // Nothing moved in the ledger while the money is on its way.
        assert!(refund_entries(&app, &pay).await.is_empty());

        finish_and_notify(&app, &first, RefundStatus::Success).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["status"], "PARTIALLY_REFUNDED", "{p}");
        assert_eq!(
            (p["paidFen"].as_i64(), p["refundedFen"].as_i64()),
            (Some(10_000), Some(3_000))
        );
        assert_eq!(p["refunds"][0]["status"], "SUCCESS");
        assert!(p["refunds"][0]["succeededAt"].is_string(), "{p}");
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-3_000, "CALLBACK".to_owned())]
        );
        assert_eq!(outcomes(&app, &no).await, ["CREDITED", "REFUND_APPLIED"]);

        // The rest.
        let r = accepted(&refund(&app, &shop.admin, &pay, 7_000, "Contract ended", None).await);
        assert_eq!(r["status"], "PROCESSING");
        let second = text(&r["outRefundNo"]);
        assert_ne!(second, first);
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        assert_eq!(app.wxpay.refund(&second).unwrap().amount_fen, 7_000);
        finish_and_notify(&app, &second, RefundStatus::Success).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["status"], "REFUNDED", "{p}");
        assert_eq!(
            (p["paidFen"].as_i64(), p["refundedFen"].as_i64()),
            (Some(10_000), Some(10_000))
        );
        let statuses: Vec<&Value> = p["refunds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["status"])
            .collect();
        assert_eq!(statuses, [&json!("SUCCESS"), &json!("SUCCESS")]);
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![
                (-3_000, "CALLBACK".to_owned()),
                (-7_000, "CALLBACK".to_owned())
            ]
        );
        assert_eq!(payment_entries(&app, &pay).await, 1);

        // Not one fen more: refused before anything is stored or asked for.
        let (rows, calls) = (
            all_refunds(&app).await,
            app.wxpay.calls(WechatPayRoute::Refund),
        );
        let r = refund(&app, &shop.admin, &pay, 1, "One more", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        assert_eq!(all_refunds(&app).await, rows);
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), calls);
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDED");
        // The operator sees the refunds; the counter staff sees the payment but not them.
        let staff = seen(&app, &shop.staff, &pay).await;
        assert_eq!(staff["refundedFen"], 10_000);
        assert_eq!(staff["refunds"], json!([]));
    }
);

both!(
    a_refund_under_way_holds_its_amount,
    |app: TestApp| async move {
        let shop = shop(&app, "holds").await;
        let (pay, _) = paid_wechat(&app, &shop, 10_000).await;
        let big = accepted(&refund(&app, &shop.admin, &pay, 6_000, "Damage refund", None).await);
        assert_eq!(big["status"], "PROCESSING");
        let calls = app.wxpay.calls(WechatPayRoute::Refund);
        let r = refund(&app, &shop.admin, &pay, 5_000, "Too much", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), calls);
        assert_eq!(
            refund_rows(&app, &pay).await,
            [(6_000, "PROCESSING".to_owned())]
        );
        // Exactly what remains is fine; then nothing remains.
        let rest = accepted(&refund(&app, &shop.admin, &pay, 4_000, "The rest", None).await);
        assert_eq!(rest["status"], "PROCESSING");
        let r = refund(&app, &shop.admin, &pay, 1, "One fen", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        // WeChat Pay closes the big one: its amount is free again, the other one still runs.
        finish_and_notify(&app, &text(&big["outRefundNo"]), RefundStatus::Closed).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["refunds"][0]["status"], "CLOSED", "{p}");
        assert_eq!(p["refunds"][0]["failure"], "CLOSED", "{p}");
        assert_eq!(p["status"], "REFUNDING", "{p}");
        assert_eq!(p["refundedFen"], 0);
        assert!(refund_entries(&app, &pay).await.is_empty());
        let again = accepted(&refund(&app, &shop.admin, &pay, 6_000, "Damage, again", None).await);
        assert_eq!(again["status"], "PROCESSING");
        let r = refund(&app, &shop.admin, &pay, 1, "One fen", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        // Both succeed: everything is back.
        finish_and_notify(&app, &text(&rest["outRefundNo"]), RefundStatus::Success).await;
        assert_eq!(
            seen(&app, &shop.admin, &pay).await["status"],
            "REFUNDING",
            "one refund still runs"
        );
        finish_and_notify(&app, &text(&again["outRefundNo"]), RefundStatus::Success).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(10_000))
        );
    }
);

both!(
    concurrent_refunds_never_exceed_what_was_paid,
    |app: TestApp| async move {
        let shop = shop(&app, "rush").await;
        let (pay, no) = paid_wechat(&app, &shop, 10_000).await;
        let reasons: Vec<String> = (0..10).map(|i| format!("Refund {i}")).collect();
        let answers = futures_util::future::join_all(
            reasons
                .iter()
                .map(|reason| refund(&app, &shop.admin, &pay, 2_000, reason, None)),
        )
        .await;
        let mut ok = Vec::new();
        for a in &answers {
            if a.json.get("errors").is_none() {
                assert_eq!(
                    a.json["data"]["refundPayment"]["status"], "PROCESSING",
                    "{:?}",
                    a.json
                );
                ok.push(text(&a.json["data"]["refundPayment"]["outRefundNo"]));
            } else {
                assert_eq!(a.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", a.json);
            }
        }
        assert_eq!(ok.len(), 5, "{answers:?}");
        let rows = refund_rows(&app, &pay).await;
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert_eq!(rows.iter().map(|r| r.0).sum::<i64>(), 10_000);
        // Each accepted one was asked for once; WeChat Pay refused none.
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), 5);
        for no in &ok {
            assert_eq!(app.wxpay.refund(no).unwrap().amount_fen, 2_000);
        }
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        for no in &ok {
            finish_and_notify(&app, no, RefundStatus::Success).await;
        }
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(10_000))
        );
        assert_eq!(refund_entries(&app, &pay).await.len(), 5);
        assert_eq!(outcomes(&app, &no).await.len(), 6);
    }
);

both!(an_idempotency_key_refunds_once, |app: TestApp| async move {
    let shop = shop(&app, "idem").await;
    let (pay, _) = paid_wechat(&app, &shop, 10_000).await;
    let key = "refund-7f3a9c21";
    let first = accepted(&refund(&app, &shop.admin, &pay, 2_500, "Overcharge", Some(key)).await);
    assert_eq!(first["status"], "PROCESSING");
    assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), 1);
    // The operator's phone retries on a weak network.
    let again = accepted(&refund(&app, &shop.admin, &pay, 2_500, "Overcharge", Some(key)).await);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["outRefundNo"], first["outRefundNo"]);
    assert_eq!(refund_rows(&app, &pay).await.len(), 1);
    assert_eq!(
        app.wxpay.calls(WechatPayRoute::Refund),
        1,
        "a retry with the key asked WeChat Pay again"
    );
    // The same key for another amount, or another payment: refused, nothing new.
    let (other, _) = paid_wechat(&app, &shop, 3_000).await;
    for (p, fen) in [(&pay, 2_000), (&other, 2_500)] {
        let r = refund(&app, &shop.admin, p, fen, "Overcharge", Some(key)).await;
        assert_eq!(r.code(), Some("IDEMPOTENCY_KEY_REUSED"), "{:?}", r.json);
    }
    assert_eq!(all_refunds(&app).await, 1);
    assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), 1);
    assert_eq!(seen(&app, &shop.admin, &other).await["status"], "PAID");
    // Once it succeeded, a retry still answers the same refund, now SUCCESS.
    finish_and_notify(&app, &text(&first["outRefundNo"]), RefundStatus::Success).await;
    let late = accepted(&refund(&app, &shop.admin, &pay, 2_500, "Overcharge", Some(key)).await);
    assert_eq!(
        (&late["id"], &late["status"]),
        (&first["id"], &json!("SUCCESS"))
    );
    assert_eq!(refund_entries(&app, &pay).await.len(), 1);
    // A malformed key is refused as such.
    let r = refund(&app, &shop.admin, &pay, 100, "Short key", Some("k")).await;
    assert_eq!(r.code(), Some("INVALID_INPUT"), "{:?}", r.json);
    assert_eq!(all_refunds(&app).await, 1);
    // The request was lost (WeChat Pay failed): the retry with the key asks again, with the
    // same number, and WeChat Pay then holds it.
    let lost_key = "refund-lost-5d1e";
    app.wxpay.fail_next(500, "SYSTEM_ERROR");
    let lost = accepted(&refund(&app, &shop.admin, &other, 3_000, "Lost", Some(lost_key)).await);
    assert_eq!(lost["status"], "PROCESSING");
    let lost_no = text(&lost["outRefundNo"]);
    assert!(app.wxpay.refund(&lost_no).is_none());
    let calls = app.wxpay.calls(WechatPayRoute::Refund);
    let retry = accepted(&refund(&app, &shop.admin, &other, 3_000, "Lost", Some(lost_key)).await);
    assert_eq!(retry["id"], lost["id"]);
    assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), calls + 1);
    assert_eq!(app.wxpay.refund(&lost_no).unwrap().amount_fen, 3_000);
    // Acknowledged now: a third try does not ask.
    accepted(&refund(&app, &shop.admin, &other, 3_000, "Lost", Some(lost_key)).await);
    assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), calls + 1);
    assert_eq!(all_refunds(&app).await, 2);
});

both!(
    refund_notifications_apply_once_and_forgeries_are_refused,
    |app: TestApp| async move {
        let shop = shop(&app, "rnotify").await;
        let (pay, no) = paid_wechat(&app, &shop, 10_000).await;
        let r = accepted(&refund(&app, &shop.admin, &pay, 2_500, "Returned early", None).await);
        let rno = text(&r["outRefundNo"]);
        assert!(app.wxpay.finish_refund(&rno, RefundStatus::Success));
        let cb = app.wxpay.refund_notification(&rno).unwrap();
        let before = stored(&app).await;

        // Forged, stale, altered, or sent to the payment route: refused, nothing stored.
        let forger = RsaPem::generate();
        let mut changed = cb.clone();
        changed.body = changed
            .body
            .replacen("REFUND.SUCCESS", "REFUND.SUCCESS ", 1);
        let mut ciphertext: Value = serde_json::from_str(&cb.body).unwrap();
        let mut c = STANDARD
            .decode(ciphertext["resource"]["ciphertext"].as_str().unwrap())
            .unwrap();
        c[3] ^= 1;
        ciphertext["resource"]["ciphertext"] = STANDARD.encode(c).into();
        for bad in [
            signed(&forger, paying::PUB_KEY_ID, now(), cb.body.clone()),
            signed(
                &shop.wxpay_key,
                paying::PUB_KEY_ID,
                now() - 301,
                cb.body.clone(),
            ),
            changed,
            signed(
                &shop.wxpay_key,
                paying::PUB_KEY_ID,
                now(),
                ciphertext.to_string(),
            ),
        ] {
            let (status, body) = post_refund_notify(&app, &bad).await;
            assert!(status == 401 || status == 400, "{status} {body}");
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap()["code"],
                "FAIL"
            );
        }
        let (status, _) = post_refund_notify(
            &app,
            &signed(&forger, paying::PUB_KEY_ID, now(), cb.body.clone()),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = post_wechat(&app, &cb).await;
        assert!(
            (400..500).contains(&status),
            "a refund on the payment route: {status}"
        );
        assert_eq!(stored(&app).await, before);
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        assert!(refund_entries(&app, &pay).await.is_empty());

        // The genuine one, three times: applied once, stored once, each answered 2xx.
        for _ in 0..3 {
            let (status, body) = post_refund_notify(&app, &cb).await;
            assert_eq!(status, 204, "{body}");
        }
        assert_eq!(stored(&app).await, before + 1);
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-2_500, "CALLBACK".to_owned())]
        );
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("PARTIALLY_REFUNDED"), Some(2_500))
        );
        // WeChat Pay's own retry (a new notification id): stored, changes nothing.
        let (status, _) = app.wxpay.notify_refund(&rno).await.unwrap();
        assert_eq!(status, 204);
        assert_eq!(
            outcomes(&app, &no).await,
            ["CREDITED", "REFUND_APPLIED", "REFUND_UNCHANGED"]
        );
        // Twenty copies of another at once: one entry.
        let r2 = accepted(&refund(&app, &shop.admin, &pay, 1_500, "Second part", None).await);
        let rno2 = text(&r2["outRefundNo"]);
        assert!(app.wxpay.finish_refund(&rno2, RefundStatus::Success));
        let cb2 = app.wxpay.refund_notification(&rno2).unwrap();
        let answers =
            futures_util::future::join_all((0..20).map(|_| post_refund_notify(&app, &cb2))).await;
        for a in &answers {
            assert_eq!(a.0, 204, "{a:?}");
        }
        assert_eq!(refund_entries(&app, &pay).await.len(), 2);
        assert_eq!(seen(&app, &shop.admin, &pay).await["refundedFen"], 4_000);
        assert_eq!(outcomes(&app, &no).await.len(), 4);

        // A genuine notification of a refund we never asked for (made on the merchant
        // platform): stored, flagged, never applied.
        let rows = all_refunds(&app).await;
        assert!(app.wxpay.seed_refund(
            paying::MCH_ID,
            &no,
            "console-refund-0001",
            700,
            Utc::now(),
            RefundStatus::Success
        ));
        let unknown = app
            .wxpay
            .refund_notification("console-refund-0001")
            .unwrap();
        let (status, body) = post_refund_notify(&app, &unknown).await;
        assert_eq!(status, 204, "{body}");
        assert_eq!(flags(&app, "UNKNOWN_REFUND").await, 1);
        // The same made by re-encrypting ours with another number.
        let renamed = rewritten(&shop, &cb, |r| {
            r["out_refund_no"] = json!("never-asked-0002")
        });
        assert_eq!(post_refund_notify(&app, &renamed).await.0, 204);
        assert_eq!(flags(&app, "UNKNOWN_REFUND").await, 2);
        // Ours, but claiming another amount: flagged, not applied.
        let r3 = accepted(&refund(&app, &shop.admin, &pay, 1_000, "Third part", None).await);
        let rno3 = text(&r3["outRefundNo"]);
        assert!(app.wxpay.finish_refund(&rno3, RefundStatus::Success));
        let cb3 = app.wxpay.refund_notification(&rno3).unwrap();
        let inflated = rewritten(&shop, &cb3, |r| r["amount"]["refund"] = json!(6_000));
        assert_eq!(post_refund_notify(&app, &inflated).await.0, 204);
        assert_eq!(flags(&app, "REFUND_MISMATCH").await, 1);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDING"), Some(4_000))
        );
        assert_eq!(all_refunds(&app).await, rows + 1);
        assert_eq!(refund_entries(&app, &pay).await.len(), 2);
        assert_eq!(payment_entries(&app, &pay).await, 1);
        assert_eq!(
            outcomes(&app, &no).await[4..],
            ["FLAGGED", "FLAGGED", "FLAGGED"]
        );
        // The genuine one still applies.
        assert_eq!(post_refund_notify(&app, &cb3).await.0, 204);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("PARTIALLY_REFUNDED"), Some(5_000))
        );
        // Operators see the flags.
        let listed = app
            .gql(
                &shop.admin,
                "{ paymentFlags { kind paymentId } }",
                json!({}),
            )
            .await;
        let kinds: Vec<&str> = listed.ok()["paymentFlags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "UNKNOWN_REFUND").count(),
            2,
            "{kinds:?}"
        );
        assert!(kinds.contains(&"REFUND_MISMATCH"), "{kinds:?}");
    }
);

both!(
    refusals_close_a_refund_and_lost_answers_are_followed_up,
    quiet_pass,
    |app: TestApp| async move {
        let shop = shop(&app, "refused").await;
        // The merchant's balance is short: WeChat Pay refuses for good.
        let (pay, _) = paid_wechat(&app, &shop, 10_000).await;
        app.wxpay.fail_next(403, "NOT_ENOUGH");
        let r = accepted(&refund(&app, &shop.admin, &pay, 10_000, "Full refund", None).await);
        assert_eq!(
            (r["status"].as_str(), r["failure"].as_str()),
            (Some("CLOSED"), Some("NOT_ENOUGH")),
            "{r}"
        );
        assert!(app.wxpay.refund(&text(&r["outRefundNo"])).is_none());
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("PAID"), Some(0))
        );
        assert!(refund_entries(&app, &pay).await.is_empty());
        // The amount is free again.
        let r =
            accepted(&refund(&app, &shop.admin, &pay, 10_000, "Full refund, again", None).await);
        assert_eq!(r["status"], "PROCESSING");
        let full = text(&r["outRefundNo"]);
        assert_eq!(app.wxpay.refund(&full).unwrap().amount_fen, 10_000);

        // WeChat Pay fails (500, then 429): the refund waits for the refund pass.
        let (pay2, _) = paid_wechat(&app, &shop, 5_000).await;
        app.wxpay.fail_next(500, "SYSTEM_ERROR");
        let r = accepted(&refund(&app, &shop.admin, &pay2, 3_000, "Broken heater", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        assert!(r["failure"].is_null());
        let lost = text(&r["outRefundNo"]);
        assert!(app.wxpay.refund(&lost).is_none());
        app.wxpay.fail_next(429, "FREQUENCY_LIMITED");
        let r = accepted(&refund(&app, &shop.admin, &pay2, 2_000, "Late fee", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        let limited = text(&r["outRefundNo"]);
        assert_eq!(seen(&app, &shop.admin, &pay2).await["status"], "REFUNDING");
        // Their amounts stay held meanwhile.
        let r = refund(&app, &shop.admin, &pay2, 1, "One fen", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        // Nothing is due yet.
        let (creates, queries) = (
            app.wxpay.calls(WechatPayRoute::Refund),
            app.wxpay.calls(WechatPayRoute::RefundQuery),
        );
        assert_eq!(run_pass(&app, 0).await, 0);
        assert_eq!(app.wxpay.calls(WechatPayRoute::RefundQuery), queries);
        // Two minutes on: each is looked up; WeChat Pay does not know two of them, so they are
        // asked for again, with the same numbers.
        assert_eq!(run_pass(&app, 2).await, 3);
        assert_eq!(app.wxpay.calls(WechatPayRoute::RefundQuery), queries + 3);
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), creates + 2);
        let at = app.wxpay.refund(&lost).expect("asked again");
        assert_eq!((at.amount_fen, at.total_fen), (3_000, 5_000));
        assert_eq!(app.wxpay.refund(&limited).unwrap().amount_fen, 2_000);
        assert_eq!(
            refund_rows(&app, &pay2).await,
            [
                (3_000, "PROCESSING".to_owned()),
                (2_000, "PROCESSING".to_owned())
            ]
        );
        // The refund pass does not ask twice: next time it only looks.
        let creates = app.wxpay.calls(WechatPayRoute::Refund);
        run_pass(&app, 30).await;
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), creates);
        // They complete, one by notification, one found by the pass.
        finish_and_notify(&app, &lost, RefundStatus::Success).await;
        assert!(app.wxpay.finish_refund(&limited, RefundStatus::Success));
        assert!(run_pass(&app, 120).await >= 1);
        let p = seen(&app, &shop.admin, &pay2).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(5_000)),
            "{p}"
        );
        assert_eq!(
            refund_entries(&app, &pay2).await,
            vec![
                (-2_000, "QUERY".to_owned()),
                (-3_000, "CALLBACK".to_owned())
            ]
        );

        // An answer whose signature does not verify is not believed, but WeChat Pay did take
        // the refund: the pass finds it without asking again.
        let (pay3, _) = paid_wechat(&app, &shop, 4_000).await;
        app.wxpay.tamper_next_answer();
        let r = accepted(&refund(&app, &shop.admin, &pay3, 4_000, "Cancelled", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        let taken = text(&r["outRefundNo"]);
        assert!(app.wxpay.refund(&taken).is_some());
        let creates = app.wxpay.calls(WechatPayRoute::Refund);
        assert!(app.wxpay.finish_refund(&taken, RefundStatus::Success));
        assert!(run_pass(&app, 2).await >= 1);
        assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), creates);
        let p = seen(&app, &shop.admin, &pay3).await;
        assert_eq!(
            (p["status"].as_str(), p["refunds"][0]["status"].as_str()),
            (Some("REFUNDED"), Some("SUCCESS")),
            "{p}"
        );
        assert_eq!(
            refund_entries(&app, &pay3).await,
            vec![(-4_000, "QUERY".to_owned())]
        );
    }
);

both!(
    alipay_refunds_at_once_and_its_reports_are_no_payments,
    quiet_pass,
    |app: TestApp| async move {
        let shop = shop(&app, "alirefund").await;
        let (pay, no) = paid_alipay(&app, &shop, 2_000).await;
        let r = accepted(&refund(&app, &shop.admin, &pay, 500, "Scratch on the door", None).await);
        assert_eq!(r["status"], "SUCCESS", "{r}");
        assert!(r["succeededAt"].is_string(), "{r}");
        let first = text(&r["outRefundNo"]);
        let at = app
            .alipay
            .refund(&no, &first)
            .expect("the refund at Alipay");
        assert_eq!(at.amount_fen, 500);
        assert_eq!(at.reason.as_deref(), Some("Scratch on the door"));
        assert_eq!(app.alipay.calls("alipay.trade.refund"), 1);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("PARTIALLY_REFUNDED"), Some(2_000), Some(500)),
            "{p}"
        );
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-500, "QUERY".to_owned())]
        );

        // Alipay reports the refund on the trade's notify: stored, nothing changes, and above
        // all it is no second payment.
        assert_eq!(
            app.alipay.notify_refund(&no, &first).await.unwrap(),
            (200, "success".into())
        );
        assert_eq!(outcomes(&app, &no).await, ["CREDITED", "REFUND_UNCHANGED"]);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("PARTIALLY_REFUNDED"), Some(2_000), Some(500)),
            "{p}"
        );
        assert_eq!(payment_entries(&app, &pay).await, 1);
        assert_eq!(refund_entries(&app, &pay).await.len(), 1);
        // The same report delivered twice more (Alipay's retry sends the same notify_id).
        let report = app.alipay.refund_notification(&no, &first).unwrap();
        for _ in 0..2 {
            assert_eq!(post_alipay(&app, &report).await, (200, "success".into()));
        }
        assert_eq!(outcomes(&app, &no).await.len(), 3);

        // Alipay refuses: closed with its code, nothing held.
        app.alipay
            .fail_next("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH");
        let r = accepted(&refund(&app, &shop.admin, &pay, 1_500, "The rest", None).await);
        assert_eq!(
            (r["status"].as_str(), r["failure"].as_str()),
            (Some("CLOSED"), Some("ACQ.SELLER_BALANCE_NOT_ENOUGH")),
            "{r}"
        );
        assert_eq!(
            seen(&app, &shop.admin, &pay).await["status"],
            "PARTIALLY_REFUNDED"
        );
        // A system error: the refund waits; the pass finds Alipay never made it and asks again.
        app.alipay.fail_next("20000", "ACQ.SYSTEM_ERROR");
        let r = accepted(&refund(&app, &shop.admin, &pay, 1_500, "The rest", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        let rest = text(&r["outRefundNo"]);
        assert!(app.alipay.refund(&no, &rest).is_none());
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        assert!(run_pass(&app, 2).await >= 1);
        assert_eq!(app.alipay.refund(&no, &rest).unwrap().amount_fen, 1_500);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("REFUNDED"), Some(2_000), Some(2_000)),
            "{p}"
        );
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-500, "QUERY".to_owned()), (-1_500, "QUERY".to_owned())]
        );
        // Fully refunded, the trade is TRADE_CLOSED: that report and a plain trade notify of
        // the closed trade change nothing either.
        assert_eq!(
            app.alipay.notify_refund(&no, &rest).await.unwrap(),
            (200, "success".into())
        );
        assert_eq!(
            app.alipay.notify(&no).await.unwrap(),
            (200, "success".into())
        );
        let o = outcomes(&app, &no).await;
        assert_eq!(o[3..], ["REFUND_UNCHANGED", "NO_PAYMENT"], "{o:?}");
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(2_000))
        );
        assert_eq!(payment_entries(&app, &pay).await, 1);
        assert_eq!(refund_entries(&app, &pay).await.len(), 2);
        let r = refund(&app, &shop.admin, &pay, 1, "One fen", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        assert_eq!(
            flags(&app, "UNKNOWN_REFUND").await + flags(&app, "REFUND_MISMATCH").await,
            0
        );
    }
);

both!(
    only_operators_refund_paid_payments_of_their_company,
    |app: TestApp| async move {
        let shop = shop(&app, "guard").await;
        let (pay, _) = paid_wechat(&app, &shop, 10_000).await;
        let check_nothing = async |app: &TestApp| {
            assert_eq!(all_refunds(app).await, 0);
            assert_eq!(app.wxpay.calls(WechatPayRoute::Refund), 0);
            let p = seen(app, &shop.admin, &pay).await;
            assert_eq!(
                (p["status"].as_str(), p["refundedFen"].as_i64()),
                (Some("PAID"), Some(0))
            );
        };
        // Counter staff and the driver may not.
        for token in [&shop.staff, &shop.driver_token] {
            let r = refund(&app, token, &pay, 1_000, "Mine", None).await;
            assert_eq!(r.code(), Some("FORBIDDEN"), "{:?}", r.json);
        }
        let r = app
            .post(
                "mutation($p: ID!) { refundPayment(paymentId: $p, amountFen: 100, reason: \"x\") { id } }",
                json!({ "p": pay }),
                None,
            )
            .await;
        assert_eq!(r.code(), Some("UNAUTHENTICATED"), "{:?}", r.json);
        check_nothing(&app).await;
        // Another company's operator does not find it; nor does anyone find a made-up id.
        let (_, other) = app.admin("othercompany").await;
        let r = refund(&app, &other, &pay, 1_000, "Not mine", None).await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "{:?}", r.json);
        let r = refund(
            &app,
            &shop.admin,
            &Id::new().to_string(),
            1_000,
            "Nobody's",
            None,
        )
        .await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "{:?}", r.json);
        let r = refund(&app, &shop.admin, "not-an-id", 1_000, "Nobody's", None).await;
        assert_eq!(r.code(), Some("INVALID_INPUT"), "{:?}", r.json);
        // Bad amounts and reasons.
        for (fen, reason) in [
            (0, "Zero"),
            (-100, "Negative"),
            (100, ""),
            (100, "   "),
            (100, &*"退".repeat(81)),
        ] {
            let r = refund(&app, &shop.admin, &pay, fen, reason, None).await;
            assert_eq!(
                r.code(),
                Some("INVALID_INPUT"),
                "{fen} {reason:?}: {:?}",
                r.json
            );
        }
        check_nothing(&app).await;
        // An order waiting for its payer has nothing to refund.
        let open = bill(&app, &shop, 3_000).await;
        let p = create_payment(&app, &shop.staff, &open, "WECHAT_NATIVE").await;
        let open_id = text(&p.ok()["createPayment"]["id"]);
        let r = refund(&app, &shop.admin, &open_id, 1_000, "Unpaid", None).await;
        assert_eq!(r.code(), Some("PAYMENT_NOT_REFUNDABLE"), "{:?}", r.json);
        assert_eq!(seen(&app, &shop.admin, &open_id).await["status"], "CREATED");
        check_nothing(&app).await;
        // 80 characters of reason are fine (WeChat Pay's limit).
        let r = accepted(&refund(&app, &shop.admin, &pay, 100, &"退".repeat(80), None).await);
        assert_eq!(r["status"], "PROCESSING");
        assert_eq!(all_refunds(&app).await, 1);
    }
);

both!(the_counter_sees_a_refund_live, |app: TestApp| async move {
    let shop = shop(&app, "live").await;
    let (pay, _) = paid_wechat(&app, &shop, 8_000).await;
    let mut ws = app.ws(&shop.admin).await;
    ws.subscribe("p", UPDATES, json!({ "p": pay })).await;
    let now = ws.data("p").await;
    assert_eq!(now["paymentUpdated"]["payment"]["status"], "PAID");
    let r = accepted(&refund(&app, &shop.admin, &pay, 3_000, "Partial", None).await);
    let refunding = ws.data("p").await;
    assert_eq!(
        refunding["paymentUpdated"]["payment"]["status"], "REFUNDING",
        "{refunding}"
    );
    assert_eq!(refunding["paymentUpdated"]["payment"]["refundedFen"], 0);
    assert!(refunding["paymentUpdated"]["eventId"].is_string());
    finish_and_notify(&app, &text(&r["outRefundNo"]), RefundStatus::Success).await;
    let done = ws.data("p").await;
    let p = &done["paymentUpdated"]["payment"];
    assert_eq!(p["status"], "PARTIALLY_REFUNDED", "{done}");
    assert_eq!(
        (p["refundedFen"].as_i64(), p["paidFen"].as_i64()),
        (Some(3_000), Some(8_000))
    );
    // A notification that changes nothing sends nothing.
    let (status, _) = app
        .wxpay
        .notify_refund(&text(&r["outRefundNo"]))
        .await
        .unwrap();
    assert_eq!(status, 204);
    ws.quiet().await;
});

both!(
    money_paid_to_a_closed_order_is_refunded,
    |app: TestApp| async move {
        let shop = shop(&app, "afterclose").await;
        let bill = bill(&app, &shop, 6_000).await;
        let p = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        let p = p.ok()["createPayment"].clone();
        let (pay, no) = (text(&p["id"]), text(&p["outTradeNo"]));
        // We closed it; the payer paid anyway.
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "update payment_order set status = 'CLOSED', closed_at = now() where id = $1",
                id(&pay)
            )
            .unwrap();
        }
        assert!(app.wxpay.pay(&no, None));
        assert_eq!(app.wxpay.notify(&no).await.unwrap().0, 204);
        assert_eq!(flags(&app, "PAID_AFTER_CLOSE").await, 1);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["paidFen"].as_i64()),
            (Some("CLOSED"), Some(6_000))
        );
        // Refused first: the order is closed again, not PAID.
        app.wxpay.fail_next(403, "NOT_ENOUGH");
        let r =
            accepted(&refund(&app, &shop.admin, &pay, 6_000, "Paid a closed order", None).await);
        assert_eq!(r["status"], "CLOSED", "{r}");
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "CLOSED");
        let r =
            accepted(&refund(&app, &shop.admin, &pay, 6_000, "Paid a closed order", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        finish_and_notify(&app, &text(&r["outRefundNo"]), RefundStatus::Success).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(6_000))
        );
        assert_eq!(
            ledger(&app, &pay).await,
            vec![
                ("PAYMENT".to_owned(), 6_000, "CALLBACK".to_owned()),
                ("REFUND".to_owned(), -6_000, "CALLBACK".to_owned())
            ]
        );
    }
);

both!(
    immediate_and_abnormal_wechat_refunds,
    |app: TestApp| async move {
        let shop = shop(&app, "abnormal").await;
        let (pay, no) = paid_wechat(&app, &shop, 10_000).await;
        // WeChat Pay refunds at once: the answer settles it.
        app.wxpay
            .set_refund_mode(minigate_fakes::wechat_pay::RefundMode::Immediate);
        let r = accepted(&refund(&app, &shop.admin, &pay, 1_000, "Quick", None).await);
        assert_eq!(r["status"], "SUCCESS", "{r}");
        assert!(r["succeededAt"].is_string(), "{r}");
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-1_000, "QUERY".to_owned())]
        );
        assert_eq!(
            seen(&app, &shop.admin, &pay).await["status"],
            "PARTIALLY_REFUNDED"
        );
        // Its notification comes after and changes nothing.
        assert_eq!(
            app.wxpay
                .notify_refund(&text(&r["outRefundNo"]))
                .await
                .unwrap()
                .0,
            204
        );
        assert_eq!(refund_entries(&app, &pay).await.len(), 1);
        assert_eq!(outcomes(&app, &no).await, ["CREDITED", "REFUND_UNCHANGED"]);

        // Stuck at WeChat Pay (the payer's card closed): needs a person, keeps its amount.
        app.wxpay
            .set_refund_mode(minigate_fakes::wechat_pay::RefundMode::Manual);
        let r = accepted(&refund(&app, &shop.admin, &pay, 2_000, "Stuck", None).await);
        let stuck = text(&r["outRefundNo"]);
        finish_and_notify(&app, &stuck, RefundStatus::Abnormal).await;
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["refunds"][1]["status"].as_str(),
                p["refunds"][1]["failure"].as_str()
            ),
            (Some("ABNORMAL"), Some("ABNORMAL")),
            "{p}"
        );
        assert_eq!(p["refundedFen"], 1_000, "{p}");
        assert_ne!(p["status"], "REFUNDING", "{p}");
        assert_eq!(refund_entries(&app, &pay).await.len(), 1);
        let r = refund(&app, &shop.admin, &pay, 7_001, "Too much", None).await;
        assert_eq!(r.code(), Some("REFUND_EXCEEDS_PAID"), "{:?}", r.json);
        // Resolved at WeChat Pay later: its success notification settles it.
        let abnormal = app.wxpay.refund_notification(&stuck).unwrap();
        let resolved = rewritten(&shop, &abnormal, |r| {
            r["refund_status"] = json!("SUCCESS");
            r["success_time"] = json!(
                Utc::now()
                    .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            );
        });
        assert_eq!(post_refund_notify(&app, &resolved).await.0, 204);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["refunds"][1]["status"], "SUCCESS", "{p}");
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("PARTIALLY_REFUNDED"), Some(3_000))
        );
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![
                (-1_000, "QUERY".to_owned()),
                (-2_000, "CALLBACK".to_owned())
            ]
        );
        // The payment's own notification again, after the refunds: no second payment.
        assert_eq!(app.wxpay.notify(&no).await.unwrap().0, 204);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("PARTIALLY_REFUNDED"), Some(10_000), Some(3_000))
        );
        assert_eq!(payment_entries(&app, &pay).await, 1);
        assert_eq!(
            outcomes(&app, &no).await.last().map(String::as_str),
            Some("ALREADY_PAID")
        );
    }
);

both!(
    alipay_reports_complete_a_lost_refund_and_flag_strangers,
    quiet_pass,
    |app: TestApp| async move {
        let shop = shop(&app, "alireport").await;
        let (pay, no) = paid_alipay(&app, &shop, 3_000).await;
        app.alipay.fail_next("20000", "ACQ.SYSTEM_ERROR");
        let r = accepted(&refund(&app, &shop.admin, &pay, 1_000, "Lost answer", None).await);
        assert_eq!(r["status"], "PROCESSING", "{r}");
        let rno = text(&r["outRefundNo"]);
        // Alipay made it after all (our request timed out there); its report tells us.
        assert!(
            app.alipay
                .seed_refund(paying::ALIPAY_APP_ID, &no, &rno, 1_000, Utc::now())
        );
        assert_eq!(
            app.alipay.notify_refund(&no, &rno).await.unwrap(),
            (200, "success".into())
        );
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(p["refunds"][0]["status"], "SUCCESS", "{p}");
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("PARTIALLY_REFUNDED"), Some(3_000), Some(1_000))
        );
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-1_000, "CALLBACK".to_owned())]
        );
        assert_eq!(outcomes(&app, &no).await, ["CREDITED", "REFUND_APPLIED"]);
        // Nothing left for the refund pass.
        let queries = app.alipay.calls("alipay.trade.fastpay.refund.query");
        assert_eq!(run_pass(&app, 2).await, 0);
        assert_eq!(
            app.alipay.calls("alipay.trade.fastpay.refund.query"),
            queries
        );
        // A refund made on Alipay's console, never asked for here: stored and flagged.
        let refunds = all_refunds(&app).await;
        assert!(app.alipay.seed_refund(
            paying::ALIPAY_APP_ID,
            &no,
            "console-0001",
            500,
            Utc::now()
        ));
        assert_eq!(
            app.alipay.notify_refund(&no, "console-0001").await.unwrap(),
            (200, "success".into())
        );
        assert_eq!(flags(&app, "UNKNOWN_REFUND").await, 1);
        assert_eq!(all_refunds(&app).await, refunds);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (
                p["status"].as_str(),
                p["paidFen"].as_i64(),
                p["refundedFen"].as_i64()
            ),
            (Some("PARTIALLY_REFUNDED"), Some(3_000), Some(1_000))
        );
        assert_eq!(payment_entries(&app, &pay).await, 1);
        assert_eq!(refund_entries(&app, &pay).await.len(), 1);
        assert_eq!(
            outcomes(&app, &no).await.last().map(String::as_str),
            Some("FLAGGED")
        );
    }
);

both!(
    a_storage_failure_answers_5xx_and_the_retry_applies,
    |app: TestApp| async move {
        let shop = shop(&app, "rretry").await;
        let (pay, no) = paid_wechat(&app, &shop, 5_000).await;
        let r = accepted(&refund(&app, &shop.admin, &pay, 5_000, "All of it", None).await);
        let rno = text(&r["outRefundNo"]);
        assert!(app.wxpay.finish_refund(&rno, RefundStatus::Success));
        let cb = app.wxpay.refund_notification(&rno).unwrap();
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "alter table ledger_entry rename to ledger_entry_away"
            )
            .unwrap();
        }
        let answer = post_refund_notify(&app, &cb).await;
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "alter table ledger_entry_away rename to ledger_entry"
            )
            .unwrap();
        }
        assert_eq!(answer.0, 500, "{answer:?}");
        // Nothing of the failed attempt stayed, so WeChat Pay's retry is no "duplicate".
        assert_eq!(outcomes(&app, &no).await, ["CREDITED"]);
        assert_eq!(
            refund_rows(&app, &pay).await,
            [(5_000, "PROCESSING".to_owned())]
        );
        assert_eq!(seen(&app, &shop.admin, &pay).await["status"], "REFUNDING");
        assert_eq!(post_refund_notify(&app, &cb).await.0, 204);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refundedFen"].as_i64()),
            (Some("REFUNDED"), Some(5_000))
        );
        assert_eq!(
            refund_entries(&app, &pay).await,
            vec![(-5_000, "CALLBACK".to_owned())]
        );
        assert_eq!(outcomes(&app, &no).await, ["CREDITED", "REFUND_APPLIED"]);
    }
);

both!(
    concurrent_retries_with_one_key_make_one_refund,
    |app: TestApp| async move {
        let shop = shop(&app, "idemrush").await;
        let (pay, _) = paid_wechat(&app, &shop, 10_000).await;
        let key = "refund-rush-0a1b2c";
        let answers = futures_util::future::join_all(
            (0..8).map(|_| refund(&app, &shop.admin, &pay, 4_000, "Rush", Some(key))),
        )
        .await;
        let ids: Vec<String> = answers.iter().map(|a| text(&accepted(a)["id"])).collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        assert_eq!(
            refund_rows(&app, &pay).await,
            [(4_000, "PROCESSING".to_owned())]
        );
        assert_eq!(all_refunds(&app).await, 1);
        // However many asked, WeChat Pay holds one refund of 4,000.
        let no = text(&accepted(&answers[0])["outRefundNo"]);
        assert_eq!(app.wxpay.refund(&no).unwrap().amount_fen, 4_000);
        let p = seen(&app, &shop.admin, &pay).await;
        assert_eq!(
            (p["status"].as_str(), p["refunds"].as_array().map(Vec::len)),
            (Some("REFUNDING"), Some(1))
        );
    }
);
