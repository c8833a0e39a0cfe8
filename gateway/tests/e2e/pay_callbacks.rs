//! Payment notifications that must not credit anything: forged, replayed, altered, for the
//! wrong merchant or amount or order, malformed; and the same genuine notification twice in a
//! row and 200 times at once, which credit exactly once. Each case checks what was stored.

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use minigate_fakes::{
    keys::RsaPem,
    wechat_pay::{SignedCallback, WechatPayRoute, WechatPaySigner},
};
use serde_json::{Value, json};

use crate::{
    paying::{self, Shop, bill, create_payment, post_alipay, post_wechat, scalar, shop},
    support::TestApp,
};

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

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The notification's transaction, changed by `edit`, encrypted again and signed by WeChat Pay's
/// key: what WeChat Pay would send if the transaction really said that.
fn rewritten(shop: &Shop, cb: &SignedCallback, edit: impl FnOnce(&mut Value)) -> SignedCallback {
    let mut env: Value = serde_json::from_str(&cb.body).unwrap();
    let r = &env["resource"];
    let plain = minigate_payments::wechat::resource::decrypt(
        paying::APIV3_KEY.as_bytes(),
        r["nonce"].as_str().unwrap(),
        r["associated_data"].as_str().unwrap(),
        r["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    let mut tx: Value = serde_json::from_slice(&plain).unwrap();
    edit(&mut tx);
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, paying::APIV3_KEY.as_bytes()).unwrap());
    let nonce = "n0nce0f12chr";
    let mut data = tx.to_string().into_bytes();
    key.seal_in_place_append_tag(
        Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap(),
        Aad::from(b"transaction".as_slice()),
        &mut data,
    )
    .unwrap();
    env["resource"]["ciphertext"] = STANDARD.encode(data).into();
    env["resource"]["nonce"] = nonce.into();
    env["id"] = uuid::Uuid::new_v4().to_string().into();
    signed(&shop.wxpay_key, paying::PUB_KEY_ID, now(), env.to_string())
}

/// An open WeChat order of a new bill, paid at the provider, and its genuine notification.
async fn paid_order(app: &TestApp, shop: &Shop) -> (String, String, SignedCallback) {
    let bill = bill(app, shop, 12_300).await;
    let p = create_payment(app, &shop.staff, &bill, "WECHAT_NATIVE").await;
    let p = p.ok()["createPayment"].clone();
    let no = p["outTradeNo"].as_str().unwrap().to_owned();
    assert!(app.wxpay.pay(&no, Some("o-payer")));
    let cb = app.wxpay.notification(&no).unwrap();
    (p["id"].as_str().unwrap().to_owned(), no, cb)
}

async fn credited(app: &TestApp, order: &str) -> (String, i64, i64) {
    let status = {
        let mut c = app.db().conn().await.unwrap();
        minigate_store::fetch_scalar!(
            &mut c,
            String,
            "select status from payment_order where id = $1",
            order.parse::<minigate_store::Id>().unwrap()
        )
        .unwrap()
    };
    let ledger = scalar(
        app,
        "select count(*) from ledger_entry where order_id = $1",
        order,
    )
    .await;
    let events = {
        let mut c = app.db().conn().await.unwrap();
        minigate_store::fetch_scalar!(
            &mut c,
            i64,
            "select count(*) from outbox_event where topic = $1",
            format!("payment:{order}")
        )
        .unwrap()
    };
    (status, ledger, events)
}

async fn stored(app: &TestApp) -> i64 {
    app.count("select count(*) from payment_notification").await
}

async fn flags(app: &TestApp, kind: &'static str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from payment_flag where kind = $1",
        kind
    )
    .unwrap()
}

both!(
    forged_stale_and_altered_wechat_notifications_are_refused,
    |app: TestApp| async move {
        let shop = shop(&app, "forged").await;
        let (order, _, cb) = paid_order(&app, &shop).await;
        let body: Value = serde_json::from_str(&cb.body).unwrap();
        let refused = |r: (u16, String)| {
            assert!(r.0 == 400 || r.0 == 401, "{r:?}");
            let v: Value = serde_json::from_str(&r.1).unwrap();
            assert_eq!(v["code"], "FAIL");
        };
        // Signed by someone else's key under WeChat Pay's key id.
        let forger = RsaPem::generate();
        refused(
            post_wechat(
                &app,
                &signed(&forger, paying::PUB_KEY_ID, now(), cb.body.clone()),
            )
            .await,
        );
        // A key id this merchant does not have.
        refused(
            post_wechat(
                &app,
                &signed(
                    &shop.wxpay_key,
                    "PUB_KEY_ID_0000000000000000",
                    now(),
                    cb.body.clone(),
                ),
            )
            .await,
        );
        // Genuine, but older than 5 minutes (a replay).
        refused(
            post_wechat(
                &app,
                &signed(
                    &shop.wxpay_key,
                    paying::PUB_KEY_ID,
                    now() - 301,
                    cb.body.clone(),
                ),
            )
            .await,
        );
        // The body changed after WeChat Pay signed it.
        let mut changed = cb.clone();
        changed.body = changed
            .body
            .replacen("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS ", 1);
        refused(post_wechat(&app, &changed).await);
        // Ciphertext, nonce or associated data changed, then signed again: decryption fails.
        for (field, value) in [
            ("ciphertext", {
                let mut c = STANDARD
                    .decode(body["resource"]["ciphertext"].as_str().unwrap())
                    .unwrap();
                c[0] ^= 1;
                Value::from(STANDARD.encode(c))
            }),
            ("nonce", json!("aaaaaaaaaaaa")),
            ("associated_data", json!("certificate")),
        ] {
            let mut b = body.clone();
            b["resource"][field] = value;
            refused(
                post_wechat(
                    &app,
                    &signed(&shop.wxpay_key, paying::PUB_KEY_ID, now(), b.to_string()),
                )
                .await,
            );
        }
        // Signed and fresh, but not JSON.
        refused(
            post_wechat(
                &app,
                &signed(
                    &shop.wxpay_key,
                    paying::PUB_KEY_ID,
                    now(),
                    "{\"id\": ".into(),
                ),
            )
            .await,
        );
        assert_eq!(stored(&app).await, 0);
        assert_eq!(credited(&app, &order).await, ("CREATED".into(), 0, 0));
        // The genuine one still credits.
        let r = post_wechat(&app, &cb).await;
        assert_eq!(r.0, 204, "{r:?}");
        assert_eq!(credited(&app, &order).await, ("PAID".into(), 1, 1));
    }
);

both!(
    either_key_is_accepted_while_wechat_pay_migrates,
    |app: TestApp| async move {
        let shop = shop(&app, "migrate").await;
        // Signed with the WeChat Pay public key (by its id)...
        let (a, _, cb) = paid_order(&app, &shop).await;
        assert_eq!(cb.header("Wechatpay-Serial"), Some(paying::PUB_KEY_ID));
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        // ...and with the platform certificate (by its serial), both at once.
        app.wxpay.set_signer(
            paying::MCH_ID,
            WechatPaySigner::PlatformCertificate {
                serial: paying::PLATFORM_SERIAL.into(),
                private_pem: shop.platform_key.private_pem.clone(),
            },
        );
        let (b, _, cb) = paid_order(&app, &shop).await;
        assert_eq!(cb.header("Wechatpay-Serial"), Some(paying::PLATFORM_SERIAL));
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        // Answers to our requests too: the order above was opened with certificate-signed answers.
        assert_eq!(credited(&app, &a).await.0, "PAID");
        assert_eq!(credited(&app, &b).await.0, "PAID");
        // The certificate's key does not pass for the public key's id.
        let forged = signed(
            &shop.platform_key,
            paying::PUB_KEY_ID,
            now(),
            cb.body.clone(),
        );
        assert_eq!(post_wechat(&app, &forged).await.0, 401);
    }
);

both!(
    a_rotated_platform_certificate_is_downloaded_and_believed,
    |app: TestApp| async move {
        let shop = shop(&app, "rotate").await;
        let (order, _, _) = paid_order(&app, &shop).await;
        // WeChat Pay rotates its platform certificate and signs with the new one at once.
        let fresh = RsaPem::generate();
        let serial = "6B1F0D2C3A4E5F60718293A4B5C6D7E8";
        app.wxpay.publish_certificate(
            paying::MCH_ID,
            serial,
            &fresh.certificate(serial, "Tenpay.com Root CA"),
        );
        app.wxpay.set_signer(
            paying::MCH_ID,
            WechatPaySigner::PlatformCertificate {
                serial: serial.into(),
                private_pem: fresh.private_pem.clone(),
            },
        );
        let no = {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::fetch_scalar!(
                &mut c,
                String,
                "select out_trade_no from payment_order where id = $1",
                order.parse::<minigate_store::Id>().unwrap()
            )
            .unwrap()
        };
        let cb = app.wxpay.notification(&no).unwrap();
        assert_eq!(cb.header("Wechatpay-Serial"), Some(serial));
        // Unknown serial: the certificates are downloaded (their answer signed by the new one,
        // believed because the list decrypts with the APIv3 key), then the notification verifies.
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        assert_eq!(credited(&app, &order).await.0, "PAID");
        assert!(app.wxpay.calls(WechatPayRoute::Certificates) >= 1);
        // A certificate nobody published stays unknown, and is not fetched for again at once.
        let before = app.wxpay.calls(WechatPayRoute::Certificates);
        let stranger = RsaPem::generate();
        let forged = signed(
            &stranger,
            "0123456789ABCDEF0123456789ABCDEF",
            now(),
            cb.body.clone(),
        );
        assert_eq!(post_wechat(&app, &forged).await.0, 401);
        assert_eq!(post_wechat(&app, &forged).await.0, 401);
        assert!(app.wxpay.calls(WechatPayRoute::Certificates) <= before + 1);
    }
);

both!(
    genuine_notifications_that_do_not_match_are_stored_and_flagged,
    |app: TestApp| async move {
        let shop = shop(&app, "mismatch").await;
        let (order, no, cb) = paid_order(&app, &shop).await;
        // Another amount than the order's.
        let r = post_wechat(
            &app,
            &rewritten(&shop, &cb, |t| t["amount"]["total"] = json!(1)),
        )
        .await;
        assert_eq!(r.0, 204, "{r:?}");
        assert_eq!(flags(&app, "AMOUNT_MISMATCH").await, 1);
        // Another merchant, another app.
        post_wechat(
            &app,
            &rewritten(&shop, &cb, |t| t["mchid"] = json!("1900000000")),
        )
        .await;
        post_wechat(
            &app,
            &rewritten(&shop, &cb, |t| t["appid"] = json!("wx0000000000000000")),
        )
        .await;
        assert_eq!(flags(&app, "MERCHANT_MISMATCH").await, 2);
        // An out_trade_no we never issued.
        post_wechat(
            &app,
            &rewritten(&shop, &cb, |t| {
                t["out_trade_no"] = json!("nosuchorder0000000000000000000000")
            }),
        )
        .await;
        assert_eq!(flags(&app, "UNKNOWN_ORDER").await, 1);
        // Stored raw (body and headers) for people to look at; nothing credited.
        assert_eq!(stored(&app).await, 4);
        let headers: String = {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::fetch_scalar!(
                &mut c,
                String,
                "select cast(headers as text) from payment_notification limit 1"
            )
            .unwrap()
        };
        assert!(
            headers.to_lowercase().contains("wechatpay-signature"),
            "{headers}"
        );
        assert_eq!(credited(&app, &order).await, ("CREATED".into(), 0, 0));
        // Money paid to an order we closed in the meantime: recorded and flagged for a refund.
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "update payment_order set status = 'CLOSED' where out_trade_no = $1",
                &no
            )
            .unwrap();
        }
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        assert_eq!(flags(&app, "PAID_AFTER_CLOSE").await, 1);
        // Operators see what waits for them; staff do not.
        let listed = app
            .gql(
                &shop.admin,
                "{ paymentFlags { kind paymentId detail } }",
                json!({}),
            )
            .await;
        let kinds: Vec<&str> = listed.ok()["paymentFlags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        assert_eq!(kinds[0], "PAID_AFTER_CLOSE");
        let staff = app
            .gql(&shop.staff, "{ paymentFlags { kind } }", json!({}))
            .await;
        assert_eq!(staff.code(), Some("FORBIDDEN"));
        assert_eq!(credited(&app, &order).await, ("CLOSED".into(), 1, 1));
        assert_eq!(
            scalar(
                &app,
                "select paid_fen from payment_order where id = $1",
                &order
            )
            .await,
            12_300
        );
    }
);

both!(
    a_notification_twice_and_200_times_at_once_credits_once,
    |app: TestApp| async move {
        let shop = shop(&app, "dupes").await;
        let (order, _, cb) = paid_order(&app, &shop).await;
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        assert_eq!(credited(&app, &order).await, ("PAID".into(), 1, 1));

        let (order2, _, cb2) = paid_order(&app, &shop).await;
        let answers =
            futures_util::future::join_all((0..200).map(|_| post_wechat(&app, &cb2))).await;
        for a in &answers {
            assert_eq!(a.0, 204, "{a:?}");
        }
        assert_eq!(credited(&app, &order2).await, ("PAID".into(), 1, 1));
        assert_eq!(stored(&app).await, 2);
    }
);

both!(
    a_storage_failure_answers_5xx_and_the_retry_credits,
    |app: TestApp| async move {
        let shop = shop(&app, "retry").await;
        let (order, _, cb) = paid_order(&app, &shop).await;
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "alter table ledger_entry rename to ledger_entry_away"
            )
            .unwrap();
        }
        let r = post_wechat(&app, &cb).await;
        assert_eq!(r.0, 500, "{r:?}");
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "alter table ledger_entry_away rename to ledger_entry"
            )
            .unwrap();
        }
        // Nothing of the failed attempt stayed behind, so WeChat Pay's retry is not a "duplicate".
        assert_eq!(stored(&app).await, 0);
        assert_eq!(credited(&app, &order).await, ("CREATED".into(), 0, 0));
        assert_eq!(post_wechat(&app, &cb).await.0, 204);
        assert_eq!(credited(&app, &order).await, ("PAID".into(), 1, 1));
    }
);

both!(
    alipay_notifications_are_verified_and_checked,
    |app: TestApp| async move {
        let shop = shop(&app, "alinotify").await;
        let bill = bill(&app, &shop, 20_000).await;
        let p = create_payment(&app, &shop.staff, &bill, "ALIPAY_QR").await;
        let p = p.ok()["createPayment"].clone();
        let order = p["id"].as_str().unwrap().to_owned();
        let no = p["outTradeNo"].as_str().unwrap().to_owned();
        assert!(app.alipay.pay(&no));
        let genuine = app.alipay.notification(&no).unwrap();
        let with = |k: &str, v: &str| -> Vec<(String, String)> {
            genuine
                .iter()
                .map(|(a, b)| (a.clone(), if a == k { v.to_owned() } else { b.clone() }))
                .collect()
        };
        // The amount changed after Alipay signed, a forged signature, an app id nobody configured,
        // a body that is no form at all.
        for bad in [
            with("total_amount", "0.01"),
            with("sign", &STANDARD.encode([7u8; 256])),
            with("app_id", "2021000000000000"),
        ] {
            let r = post_alipay(&app, &bad).await;
            assert_eq!(r.1, "fail", "{r:?}");
            assert_ne!(r.0, 200);
        }
        let garbage = app
            .http
            .post(format!("{}/pay/alipay/notify", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("%%%")
            .send()
            .await
            .unwrap();
        assert_eq!(garbage.text().await.unwrap(), "fail");
        assert_eq!(stored(&app).await, 0);
        assert_eq!(credited(&app, &order).await, ("CREATED".into(), 0, 0));
        // Genuine, but a different amount than ordered (signed by Alipay that way): flagged.
        assert!(app.alipay.set_paid_total(&no, 100));
        let short = app.alipay.notification(&no).unwrap();
        assert_eq!(post_alipay(&app, &short).await, (200, "success".into()));
        assert_eq!(flags(&app, "AMOUNT_MISMATCH").await, 1);
        assert_eq!(credited(&app, &order).await, ("CREATED".into(), 0, 0));
        // The genuine one, twice: one credit.
        assert_eq!(post_alipay(&app, &genuine).await, (200, "success".into()));
        assert_eq!(post_alipay(&app, &genuine).await, (200, "success".into()));
        assert_eq!(credited(&app, &order).await, ("PAID".into(), 1, 1));
        // A later refund reported on the trade's notify is no new payment.
        let mut refund: std::collections::BTreeMap<String, String> =
            genuine.iter().cloned().collect();
        refund.insert("refund_fee".into(), "200.00".into());
        refund.insert("gmt_refund".into(), "2026-11-21 12:00:00.000".into());
        refund.insert("notify_id".into(), "refund-notify-1".into());
        let content = minigate_payments::alipay::signing_content(&refund, &["sign", "sign_type"]);
        refund.insert("sign".into(), sign_with(&shop.alipay_key, &content));
        let refund: Vec<(String, String)> = refund.into_iter().collect();
        assert_eq!(post_alipay(&app, &refund).await, (200, "success".into()));
        assert_eq!(credited(&app, &order).await, ("PAID".into(), 1, 1));
        assert_eq!(stored(&app).await, 3);
    }
);

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
