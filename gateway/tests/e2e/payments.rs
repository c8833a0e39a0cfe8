//! Scan to pay against fake WeChat Pay and Alipay servers that check our signatures: QR and
//! mini-program orders, one open order per bill, switching channel, live updates, the active
//! query, provider refusals.

use std::time::{Duration, Instant};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use minigate_fakes::wechat_pay::{TradeState, WechatPayRoute};
use serde_json::json;

use crate::{
    paying::{self, bill, create_payment, payment, scalar, shop},
    support::{TestApp, id_number},
};

const UPDATES: &str = "subscription($p: ID!) { paymentUpdated(paymentId: $p) { eventId payment { id status paidAt } } }";

both!(
    a_counter_qr_is_paid_and_the_counter_sees_it_live,
    |app: TestApp| async move {
        let shop = shop(&app, "qr").await;
        let bill = bill(&app, &shop, 150_000).await;
        let r = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        let p = r.ok()["createPayment"].clone();
        assert_eq!(p["status"], "CREATED");
        assert_eq!(p["amountFen"], 150_000);
        let no = p["outTradeNo"].as_str().unwrap().to_owned();
        assert_eq!(no.len(), 32);
        assert!(
            p["qrPng"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert!(p["wxPayParams"].is_null());
        // WeChat Pay holds the order as we asked for it.
        let at_provider = app.wxpay.order(&no).unwrap();
        assert_eq!(at_provider.total, 150_000);
        assert_eq!(p["codeUrl"].as_str(), at_provider.code_url.as_deref());
        assert!(at_provider.notify_url.ends_with("/pay/wechat/notify"));

        let mut ws = app.ws(&shop.staff).await;
        ws.subscribe("p", UPDATES, json!({ "p": p["id"] })).await;
        let first = ws.data("p").await;
        assert_eq!(first["paymentUpdated"]["payment"]["status"], "CREATED");
        assert!(first["paymentUpdated"]["eventId"].is_null());

        assert!(app.wxpay.pay(&no, Some("o-payer")));
        let sent = Instant::now();
        let (status, _) = app.wxpay.notify(&no).await.unwrap();
        assert!((200..300).contains(&status), "{status}");
        let paid = ws.data("p").await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(paid["paymentUpdated"]["payment"]["status"], "PAID");
        assert!(paid["paymentUpdated"]["eventId"].is_string());

        let id = p["id"].as_str().unwrap();
        assert_eq!(payment(&app, &shop.admin, id).await["status"], "PAID");
        // Paid orders show no QR any more.
        assert!(payment(&app, &shop.admin, id).await["qrPng"].is_null());
        assert_eq!(
            scalar(
                &app,
                "select count(*) from ledger_entry where order_id = $1 and source = 'CALLBACK'",
                id
            )
            .await,
            1
        );
        assert_eq!(
            scalar(
                &app,
                "select count(*) from bill where id = $1 and status = 'PAID'",
                &bill
            )
            .await,
            1
        );
        // A paid bill opens no new order.
        let again = create_payment(&app, &shop.staff, &bill, "ALIPAY_QR").await;
        assert_eq!(again.code(), Some("BILL_NOT_OPEN"));
    }
);

both!(
    one_open_order_per_bill_and_switching_closes_the_previous,
    |app: TestApp| async move {
        let shop = shop(&app, "switch").await;
        let bill = bill(&app, &shop, 9_900).await;
        let a = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        let a = a.ok()["createPayment"].clone();
        // The cashier taps again: the same order, not a second one.
        let again = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        assert_eq!(again.ok()["createPayment"]["id"], a["id"]);
        assert_eq!(app.wxpay.calls(WechatPayRoute::Native), 1);

        // The payer prefers Alipay: the WeChat order is closed there first.
        let b = create_payment(&app, &shop.staff, &bill, "ALIPAY_QR").await;
        let b = b.ok()["createPayment"].clone();
        assert_ne!(b["id"], a["id"]);
        assert_eq!(b["channel"], "ALIPAY_QR");
        let closed = app.wxpay.order(a["outTradeNo"].as_str().unwrap()).unwrap();
        assert_eq!(closed.state, TradeState::Closed);
        assert_eq!(
            payment(&app, &shop.admin, a["id"].as_str().unwrap()).await["status"],
            "CLOSED"
        );
        let ali = app.alipay.order(b["outTradeNo"].as_str().unwrap()).unwrap();
        assert_eq!(ali.total, 9_900);
        assert_eq!(b["codeUrl"].as_str(), Some(ali.qr_code.as_str()));
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_order where bill_id = $1 and status = 'CREATED'",
                &bill
            )
            .await,
            1
        );
        // The bill shows both, newest first.
        let listed = app
            .gql(
                &shop.staff,
                "query($id: ID!) { bill(id: $id) { payments { id status channel } } }",
                json!({ "id": bill }),
            )
            .await;
        let listed = listed.ok()["bill"]["payments"].clone();
        assert_eq!(listed[0]["id"], b["id"]);
        assert_eq!(listed[0]["status"], "CREATED");
        assert_eq!(listed[1]["id"], a["id"]);
        assert_eq!(listed[1]["status"], "CLOSED");

        // Paid by Alipay: the notify credits it, answered with the literal `success`.
        let no = b["outTradeNo"].as_str().unwrap();
        assert!(app.alipay.pay(no));
        let (status, body) = app.alipay.notify(no).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "success"));
        assert_eq!(
            payment(&app, &shop.staff, b["id"].as_str().unwrap()).await["status"],
            "PAID"
        );
    }
);

both!(
    switching_away_from_an_order_that_was_paid_returns_it,
    |app: TestApp| async move {
        let shop = shop(&app, "race").await;
        let bill = bill(&app, &shop, 4_200).await;
        let a = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        let a = a.ok()["createPayment"].clone();
        // The payer paid a moment ago; the callback has not arrived yet.
        assert!(app.wxpay.pay(a["outTradeNo"].as_str().unwrap(), None));
        let b = create_payment(&app, &shop.staff, &bill, "ALIPAY_QR").await;
        let b = b.ok()["createPayment"].clone();
        assert_eq!(b["id"], a["id"]);
        assert_eq!(b["status"], "PAID");
        assert_eq!(app.alipay.calls("alipay.trade.precreate"), 0);
        let id = a["id"].as_str().unwrap();
        assert_eq!(
            scalar(
                &app,
                "select count(*) from ledger_entry where order_id = $1 and source = 'QUERY'",
                id
            )
            .await,
            1
        );
        // The late callback changes nothing.
        let (status, _) = app
            .wxpay
            .notify(a["outTradeNo"].as_str().unwrap())
            .await
            .unwrap();
        assert!((200..300).contains(&status));
        assert_eq!(
            scalar(
                &app,
                "select count(*) from ledger_entry where order_id = $1",
                id
            )
            .await,
            1
        );
    }
);

both!(
    the_mini_program_gets_signed_request_payment_parameters,
    |app: TestApp| async move {
        let shop = shop(&app, "jsapi").await;
        let bill = bill(&app, &shop, 88_800).await;
        let r = create_payment(&app, &shop.driver_token, &bill, "WECHAT_JSAPI").await;
        let p = r.ok()["createPayment"].clone();
        let params = &p["wxPayParams"];
        assert_eq!(params["appId"], paying::APP_ID);
        assert_eq!(params["signType"], "RSA");
        let package = params["package"].as_str().unwrap();
        let order = app.wxpay.order(p["outTradeNo"].as_str().unwrap()).unwrap();
        assert_eq!(
            order.payer_openid.as_deref(),
            Some(shop.driver_openid.as_str())
        );
        assert_eq!(
            Some(package),
            order
                .prepay_id
                .map(|id| format!("prepay_id={id}"))
                .as_deref()
        );
        assert!(p["codeUrl"].is_null());
        // paySign is the merchant's signature over appId, timeStamp, nonceStr and package.
        let message = format!(
            "{}\n{}\n{}\n{}\n",
            params["appId"].as_str().unwrap(),
            params["timeStamp"].as_str().unwrap(),
            params["nonceStr"].as_str().unwrap(),
            package
        );
        let spki =
            minigate_payments::pem::one(&shop.merchant_key.public_pem, "PUBLIC KEY").unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki)
            .verify(
                message.as_bytes(),
                &STANDARD
                    .decode(params["paySign"].as_str().unwrap())
                    .unwrap(),
            )
            .expect("paySign verifies with the merchant key");
        // The counter staff signed in with a password has no WeChat identity to pay with.
        let staff = create_payment(&app, &shop.staff, &bill, "WECHAT_JSAPI").await;
        assert_eq!(staff.code(), Some("PAYMENT_PAYER_NOT_WECHAT"));
        // Nobody but the payer gets the parameters.
        let seen = payment(&app, &shop.staff, p["id"].as_str().unwrap()).await;
        assert!(seen["wxPayParams"].is_null());
    }
);

both!(
    other_people_cannot_pay_or_watch_a_bill,
    |app: TestApp| async move {
        let shop = shop(&app, "mine").await;
        let bill = bill(&app, &shop, 1_000).await;
        let p = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        let id = p.ok()["createPayment"]["id"].as_str().unwrap().to_owned();
        // Another company's operator.
        let (_, other_admin) = app.admin("elsewhere").await;
        let r = create_payment(&app, &other_admin, &bill, "WECHAT_NATIVE").await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let r = app
            .gql(
                &other_admin,
                "query($id: ID!) { payment(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert!(r.ok()["payment"].is_null());
        let mut ws = app.ws(&other_admin).await;
        ws.subscribe("p", UPDATES, json!({ "p": id })).await;
        let m = ws.recv().await.unwrap();
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{m}"
        );
        // Unconfigured provider: a clear code, nothing opened.
        let (t2, admin2) = app.admin("nopay").await;
        let b2 = app.branch(t2, "SZ").await;
        let d2 = app.driver(t2, b2, "13600136000", &id_number(9)).await;
        let r = app
        .gql(
            &admin2,
            "mutation($i: CreateBillInput!) { createBill(input: $i) { id } }",
            json!({ "i": { "kind": "FINE", "title": "Fine", "amountFen": 20000, "dueDate": "2026-12-01", "driverId": d2.to_string() } }),
        )
        .await;
        let b = r.ok()["createBill"]["id"].as_str().unwrap().to_owned();
        let r = create_payment(&app, &admin2, &b, "ALIPAY_QR").await;
        assert_eq!(r.code(), Some("PAYMENT_NOT_CONFIGURED"));
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_order where bill_id = $1",
                &b
            )
            .await,
            0
        );
    }
);

both!(
    a_refusal_closes_the_order_and_a_bad_answer_is_not_believed,
    |app: TestApp| async move {
        let shop = shop(&app, "refuse").await;
        let bill = bill(&app, &shop, 3_000).await;
        app.wxpay.fail_next(400, "INVALID_REQUEST");
        let r = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        assert_eq!(r.code(), Some("PAYMENT_PROVIDER_REFUSED"), "{:?}", r.json);
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_order where bill_id = $1 and status = 'CLOSED'",
                &bill
            )
            .await,
            1
        );
        // An answer whose signature does not verify is not believed: no QR is shown, and the
        // order waits for the active query to learn the truth.
        app.wxpay.tamper_next_answer();
        let r = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        assert_eq!(r.code(), Some("PAYMENT_SIGNATURE_INVALID"), "{:?}", r.json);
        assert_eq!(
        scalar(&app, "select count(*) from payment_order where bill_id = $1 and status = 'CREATED' and code_url is null", &bill).await,
        1
    );
        // The next try closes that order at WeChat Pay and opens a good one.
        let r = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
        assert_eq!(r.ok()["createPayment"]["status"], "CREATED");
        assert!(r.ok()["createPayment"]["codeUrl"].is_string());
        // Alipay answers are checked too.
        app.alipay.tamper_next_answer();
        let r = create_payment(&app, &shop.staff, &bill, "ALIPAY_QR").await;
        assert_eq!(r.code(), Some("PAYMENT_SIGNATURE_INVALID"), "{:?}", r.json);
    }
);

both!(
    the_active_query_credits_a_lost_callback_and_closes_expired_orders,
    |c: &mut minigate_gateway::config::Config| {
        c.payments.first_query_seconds = 0;
        c.payments.query_every_seconds = 1;
        c.payments.poll_seconds = 1;
    },
    |app: TestApp| async move {
        let shop = shop(&app, "query").await;
        let lost = bill(&app, &shop, 5_000).await;
        let p = create_payment(&app, &shop.staff, &lost, "WECHAT_NATIVE").await;
        let p = p.ok()["createPayment"].clone();
        let id = p["id"].as_str().unwrap().to_owned();
        let mut ws = app.ws(&shop.staff).await;
        ws.subscribe("p", UPDATES, json!({ "p": id })).await;
        assert_eq!(
            ws.data("p").await["paymentUpdated"]["payment"]["status"],
            "CREATED"
        );
        // Paid, but WeChat Pay's callback never reaches us.
        assert!(app.wxpay.pay(p["outTradeNo"].as_str().unwrap(), None));
        let paid = ws.data("p").await;
        assert_eq!(paid["paymentUpdated"]["payment"]["status"], "PAID");
        assert_eq!(
            scalar(
                &app,
                "select count(*) from ledger_entry where order_id = $1 and source = 'QUERY'",
                &id
            )
            .await,
            1
        );

        // Nobody scans this Alipay QR; once its lifetime is over it is closed there and here.
        let idle = bill(&app, &shop, 6_000).await;
        let q = create_payment(&app, &shop.staff, &idle, "ALIPAY_QR").await;
        let q = q.ok()["createPayment"].clone();
        let qid = q["id"].as_str().unwrap().to_owned();
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "update payment_order set expires_at = $2 where id = $1",
                qid.parse::<minigate_store::Id>().unwrap(),
                chrono::Utc::now() - chrono::Duration::seconds(1)
            )
            .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = payment(&app, &shop.staff, &qid).await;
            if s["status"] == "CLOSED" {
                break;
            }
            assert!(Instant::now() < deadline, "not closed in time: {s}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.alipay.calls("alipay.trade.close"), 1);
        assert_eq!(
            scalar(
                &app,
                "select count(*) from bill where id = $1 and status = 'OPEN'",
                &idle
            )
            .await,
            1
        );
    }
);
