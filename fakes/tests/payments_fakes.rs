//! The payment fakes, driven by a small hand-written client that signs and verifies with
//! aws-lc-rs directly (not with the fakes' own helpers), so a mistake in the fakes' crypto
//! cannot hide behind the same mistake on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use minigate_fakes::alipay::TradeStatus;
use minigate_fakes::keys::RsaPem;
use minigate_fakes::wechat_pay::{FakeWechatPay, TradeState, WechatPayRoute, WechatPaySigner};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, Request, Response, Server};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::{
    ALIPAY_APP_ID, APP_ID, Ali, AliAnswer, MCH_ID, PUB_KEY_ID, Received, SERIAL, Wechat,
    alipay_with_apps, answer_verifies, decrypt, decrypt_resource, der, form, request_signature,
    serve, verifies, verify_notification, wechat, wechat_pay_merchant,
};

// ---------------------------------------------------------------------------------------------
// A receiver standing in for our callback routes
// ---------------------------------------------------------------------------------------------

struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
    /// Scripted answers, in order; the last one repeats.
    replies: Mutex<VecDeque<(u16, &'static str)>>,
}

impl Endpoint for Receiver {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_string().await?;
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let (status, text) = {
            let mut replies = self.replies.lock().unwrap();
            if replies.len() > 1 {
                replies.pop_front().unwrap()
            } else {
                *replies.front().unwrap()
            }
        };
        let _ = self.tx.send(Received { headers, body });
        Ok(Response::builder()
            .status(poem::http::StatusCode::from_u16(status).unwrap())
            .body(text))
    }
}

/// Starts a receiver answering `replies` in turn; returns its URL and what it receives.
async fn receiver(replies: &[(u16, &'static str)]) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = serve(Receiver {
        tx,
        replies: Mutex::new(replies.iter().copied().collect()),
    })
    .await;
    (format!("http://{addr}/notify"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing was delivered within 10 s")
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// WeChat Pay
// ---------------------------------------------------------------------------------------------

/// An answer with its headers, for checking the signature.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether `Wechatpay-Signature` is `public_pem`'s signature of this answer.
    fn verifies_with(&self, public_pem: &str) -> bool {
        answer_verifies(&self.headers, &self.body, public_pem)
    }
}

/// How a request deviates from a correct one.
#[derive(Default, Clone, Copy)]
struct Fault {
    bad_signature: bool,
    wrong_serial: bool,
    no_user_agent: bool,
    old_timestamp: bool,
}

impl Wechat {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>, fault: Fault) -> Answer {
        let body_text = body.map(Value::to_string).unwrap_or_default();
        let ts = Utc::now().timestamp() - if fault.old_timestamp { 301 } else { 0 };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let signed = if fault.bad_signature {
            format!("{body_text} ")
        } else {
            body_text.clone()
        };
        let signature = request_signature(
            &self.merchant.private_pem,
            method,
            path,
            ts,
            &nonce,
            &signed,
        );
        let serial = if fault.wrong_serial {
            "0BADC0DE"
        } else {
            SERIAL
        };
        let auth = format!(
            "WECHATPAY2-SHA256-RSA2048 signature=\"{signature}\",mchid=\"{MCH_ID}\",serial_no=\"{serial}\",timestamp=\"{ts}\",nonce_str=\"{nonce}\""
        );
        let url = format!("{}{path}", self.fake.base_url);
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if !fault.no_user_agent {
            req = req.header("User-Agent", "minigate-test/1.0");
        }
        if body.is_some() {
            req = req
                .header("Content-Type", "application/json")
                .body(body_text);
        }
        let res = req.send().await.unwrap();
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    async fn jsapi(&self, out_trade_no: &str, total: i64, notify_url: &str) -> Answer {
        let body = json!({
            "appid": APP_ID,
            "mchid": MCH_ID,
            "description": "租车押金",
            "out_trade_no": out_trade_no,
            "time_expire": "2099-01-01T00:00:00+08:00",
            "notify_url": notify_url,
            "amount": { "total": total, "currency": "CNY" },
            "payer": { "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
        });
        self.call(
            "POST",
            "/v3/pay/transactions/jsapi",
            Some(&body),
            Fault::default(),
        )
        .await
    }

    async fn native(&self, out_trade_no: &str, total: i64, notify_url: &str) -> Answer {
        let body = json!({
            "appid": APP_ID,
            "mchid": MCH_ID,
            "description": "租车费用",
            "out_trade_no": out_trade_no,
            "time_expire": "2099-01-01T00:00:00+08:00",
            "notify_url": notify_url,
            "amount": { "total": total, "currency": "CNY" },
        });
        self.call(
            "POST",
            "/v3/pay/transactions/native",
            Some(&body),
            Fault::default(),
        )
        .await
    }

    async fn query(&self, out_trade_no: &str) -> Answer {
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCH_ID}");
        self.call("GET", &path, None, Fault::default()).await
    }

    async fn close(&self, out_trade_no: &str) -> Answer {
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close");
        let body = json!({ "mchid": MCH_ID });
        self.call("POST", &path, Some(&body), Fault::default())
            .await
    }
}

#[tokio::test]
async fn wechat_pay_accepts_a_signed_jsapi_order_and_signs_its_answer_with_the_public_key() {
    let w = wechat().await;
    let a = w
        .jsapi("ORDER_0001", 1230, "https://example.com/notify")
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.json()["prepay_id"].as_str().unwrap().starts_with("wx"));
    assert_eq!(a.header("Wechatpay-Serial"), Some(PUB_KEY_ID));
    assert!(a.header("Request-ID").is_some());
    assert!(a.verifies_with(&w.wechatpay.public_pem));
    assert!(!a.verifies_with(&w.merchant.public_pem));
    assert_eq!(w.fake.calls(WechatPayRoute::Jsapi), 1);

    // The same order again is the same prepay id; a changed one is refused.
    let again = w
        .jsapi("ORDER_0001", 1230, "https://example.com/notify")
        .await;
    assert_eq!(again.json()["prepay_id"], a.json()["prepay_id"]);
    let changed = w
        .jsapi("ORDER_0001", 999, "https://example.com/notify")
        .await;
    assert_eq!(changed.status, 403);
    assert_eq!(changed.json()["code"], "OUT_TRADE_NO_USED");
    assert!(changed.verifies_with(&w.wechatpay.public_pem));
    assert_eq!(w.fake.order("ORDER_0001").unwrap().times_created, 2);
}

#[tokio::test]
async fn wechat_pay_refuses_bad_signatures_serials_timestamps_and_missing_user_agents() {
    let w = wechat().await;
    let body = json!({
        "appid": APP_ID, "mchid": MCH_ID, "description": "d", "out_trade_no": "ORDER_0002",
        "notify_url": "https://example.com/n", "amount": { "total": 1 },
        "payer": { "openid": "o1" },
    });
    let path = "/v3/pay/transactions/jsapi";
    for (fault, status, code) in [
        (
            Fault {
                bad_signature: true,
                ..Fault::default()
            },
            401,
            "SIGN_ERROR",
        ),
        (
            Fault {
                wrong_serial: true,
                ..Fault::default()
            },
            401,
            "SIGN_ERROR",
        ),
        (
            Fault {
                old_timestamp: true,
                ..Fault::default()
            },
            401,
            "SIGN_ERROR",
        ),
        (
            Fault {
                no_user_agent: true,
                ..Fault::default()
            },
            400,
            "INVALID_REQUEST",
        ),
    ] {
        let a = w.call("POST", path, Some(&body), fault).await;
        assert_eq!(a.status, status, "{}", a.body);
        assert_eq!(a.json()["code"], code);
        // WeChat Pay signs answers only to requests whose signature it verified.
        assert!(a.header("Wechatpay-Signature").is_none());
    }
    assert!(w.fake.order("ORDER_0002").is_none());
    assert_eq!(w.fake.calls(WechatPayRoute::Jsapi), 4);

    let mut wrong_app = body.clone();
    wrong_app["appid"] = json!("wx_not_bound");
    let a = w
        .call("POST", path, Some(&wrong_app), Fault::default())
        .await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("APPID_MCHID_NOT_MATCH"))
    );

    let mut bad_no = body.clone();
    bad_no["out_trade_no"] = json!("has space");
    let a = w.call("POST", path, Some(&bad_no), Fault::default()).await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (400, json!("PARAM_ERROR"))
    );
}

#[tokio::test]
async fn wechat_pay_native_orders_are_queried_closed_and_refused_once_closed_or_paid() {
    let w = wechat().await;
    let a = w.native("NATIVE_0001", 500, "https://example.com/n").await;
    assert_eq!(
        a.json()["code_url"],
        format!("{}/pay/NATIVE_0001", w.fake.base_url)
    );

    let q = w.query("NATIVE_0001").await;
    assert_eq!(q.status, 200);
    assert!(q.verifies_with(&w.wechatpay.public_pem));
    assert_eq!(q.json()["trade_state"], "NOTPAY");
    assert_eq!(q.json()["amount"]["total"], 500);

    let c = w.close("NATIVE_0001").await;
    assert_eq!(c.status, 204);
    assert!(c.body.is_empty());
    assert!(c.verifies_with(&w.wechatpay.public_pem));
    assert_eq!(w.query("NATIVE_0001").await.json()["trade_state"], "CLOSED");
    let reopened = w.native("NATIVE_0001", 500, "https://example.com/n").await;
    assert_eq!(reopened.json()["code"], "ORDER_CLOSED");
    assert!(!w.fake.pay("NATIVE_0001", None));

    w.native("NATIVE_0002", 700, "https://example.com/n").await;
    assert!(w.fake.pay("NATIVE_0002", Some("oPayer")));
    let paid = w.query("NATIVE_0002").await.json();
    assert_eq!(paid["trade_state"], "SUCCESS");
    assert_eq!(paid["trade_type"], "NATIVE");
    assert_eq!(paid["payer"]["openid"], "oPayer");
    assert_eq!(paid["amount"]["payer_total"], 700);
    assert!(paid["success_time"].as_str().unwrap().ends_with("+08:00"));
    let c = w.close("NATIVE_0002").await;
    assert_eq!(
        (c.status, c.json()["code"].clone()),
        (400, json!("ORDERPAID"))
    );

    let missing = w.query("NO_SUCH_ORDER").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn wechat_pay_tampered_answers_and_injected_failures_are_what_they_claim() {
    let w = wechat().await;
    w.fake.tamper_next_answer();
    let a = w.jsapi("TAMPER_001", 100, "https://example.com/n").await;
    assert_eq!(a.status, 200);
    assert!(!a.verifies_with(&w.wechatpay.public_pem));
    assert!(
        w.query("TAMPER_001")
            .await
            .verifies_with(&w.wechatpay.public_pem)
    );

    w.fake.fail_next(500, "SYSTEM_ERROR");
    let failed = w.query("TAMPER_001").await;
    assert_eq!(
        (failed.status, failed.json()["code"].clone()),
        (500, json!("SYSTEM_ERROR"))
    );
    assert!(failed.verifies_with(&w.wechatpay.public_pem));
}

#[tokio::test]
async fn wechat_pay_notification_decrypts_with_the_apiv3_key_and_verifies() {
    let w = wechat().await;
    w.jsapi("NOTIFY_001", 1230, "https://example.com/n").await;
    assert!(w.fake.notification("NOTIFY_001").is_none(), "not paid yet");
    assert!(w.fake.pay("NOTIFY_001", None));
    assert!(w.fake.set_paid_total("NOTIFY_001", 1));

    let cb = w.fake.notification("NOTIFY_001").unwrap();
    let message = format!(
        "{}\n{}\n{}\n",
        cb.header("Wechatpay-Timestamp").unwrap(),
        cb.header("Wechatpay-Nonce").unwrap(),
        cb.body
    );
    let sig = cb.header("Wechatpay-Signature").unwrap();
    assert!(verifies(&w.wechatpay.public_pem, &message, sig));
    assert_eq!(cb.header("Wechatpay-Serial"), Some(PUB_KEY_ID));
    let envelope: Value = serde_json::from_str(&cb.body).unwrap();
    assert_eq!(envelope["event_type"], "TRANSACTION.SUCCESS");
    assert_eq!(envelope["resource"]["associated_data"], "transaction");

    let tx = decrypt_resource(&cb.body);
    assert_eq!(tx["out_trade_no"], "NOTIFY_001");
    assert_eq!(tx["trade_state"], "SUCCESS");
    assert_eq!(tx["trade_type"], "JSAPI");
    assert_eq!(tx["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(tx["amount"]["total"], 1, "the paid total a test set");

    let other = w.fake.notification("NOTIFY_001").unwrap();
    assert_ne!(
        serde_json::from_str::<Value>(&other.body).unwrap()["id"],
        envelope["id"]
    );
}

#[tokio::test]
async fn wechat_pay_signs_with_the_platform_certificate_after_a_switch() {
    let w = wechat().await;
    let platform = RsaPem::generate();
    let cert = platform.certificate("6E1D414B17AFC0A15A2E4491C9C14927801AF3EC", "Tenpay.com");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    w.fake.set_signer(
        MCH_ID,
        WechatPaySigner::PlatformCertificate {
            serial: "6E1D414B17AFC0A15A2E4491C9C14927801AF3EC".into(),
            private_pem: platform.private_pem.clone(),
        },
    );
    let a = w.native("CERT_00001", 100, "https://example.com/n").await;
    assert_eq!(
        a.header("Wechatpay-Serial"),
        Some("6E1D414B17AFC0A15A2E4491C9C14927801AF3EC")
    );
    assert!(a.verifies_with(&platform.public_pem));
    assert!(!a.verifies_with(&w.wechatpay.public_pem));
}

#[tokio::test]
async fn wechat_pay_certificates_lists_the_published_ones_encrypted_and_signed_by_the_new_one() {
    let w = wechat().await;
    let empty = w
        .call("GET", "/v3/certificates", None, Fault::default())
        .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.json(), json!({ "data": [] }));
    assert!(empty.verifies_with(&w.wechatpay.public_pem));

    // A rotation: both certificates are listed, and the answer is already signed by the new
    // one, which the client can only learn from the list itself.
    const OLD: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    const NEW: &str = "50062CE505775F070CAB06E697F1BBD1AD4F4D87";
    let (old, new) = (RsaPem::generate(), RsaPem::generate());
    let old_cert = old.certificate(OLD, "Tenpay.com Root CA");
    let new_cert = new.certificate(NEW, "Tenpay.com Root CA");
    w.fake.publish_certificate(MCH_ID, OLD, &new_cert);
    w.fake.publish_certificate(MCH_ID, OLD, &old_cert); // replaces, by serial
    w.fake.publish_certificate(MCH_ID, NEW, &new_cert);
    w.fake.set_signer(
        MCH_ID,
        WechatPaySigner::PlatformCertificate {
            serial: NEW.into(),
            private_pem: new.private_pem.clone(),
        },
    );

    let a = w
        .call("GET", "/v3/certificates", None, Fault::default())
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let data = a.json()["data"].as_array().unwrap().clone();
    let serials: Vec<&str> = data
        .iter()
        .map(|c| c["serial_no"].as_str().unwrap())
        .collect();
    assert_eq!(serials, [OLD, NEW]);
    for (entry, published) in data.iter().zip([&old_cert, &new_cert]) {
        for time in ["effective_time", "expire_time"] {
            let t = entry[time].as_str().unwrap();
            assert!(t.ends_with("+08:00"), "{t}");
            assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
        }
        let enc = &entry["encrypt_certificate"];
        assert_eq!(enc["associated_data"], "certificate");
        assert_eq!(String::from_utf8(decrypt(enc)).unwrap(), *published);
    }

    // The client picks the certificate `Wechatpay-Serial` names and verifies with its key.
    let serial = a.header("Wechatpay-Serial").unwrap();
    assert_eq!(serial, NEW);
    let signing = data.iter().find(|c| c["serial_no"] == serial).unwrap();
    let cert_der = der(
        &String::from_utf8(decrypt(&signing["encrypt_certificate"])).unwrap(),
        "CERTIFICATE",
    );
    let key_der = der(&new.public_pem, "PUBLIC KEY");
    assert!(cert_der.windows(key_der.len()).any(|w| w == key_der));
    assert!(a.verifies_with(&new.public_pem));
    assert!(!a.verifies_with(&old.public_pem));
    assert!(!a.verifies_with(&w.wechatpay.public_pem));

    w.fake.tamper_next_answer();
    let tampered = w
        .call("GET", "/v3/certificates", None, Fault::default())
        .await;
    assert!(!tampered.verifies_with(&new.public_pem));
    w.fake.fail_next(500, "SYSTEM_ERROR");
    let failed = w
        .call("GET", "/v3/certificates", None, Fault::default())
        .await;
    assert_eq!(
        (failed.status, failed.json()["code"].clone()),
        (500, json!("SYSTEM_ERROR"))
    );
    assert!(failed.verifies_with(&new.public_pem));

    // Refused requests are answered unsigned.
    let bad = Fault {
        bad_signature: true,
        ..Fault::default()
    };
    let badly_signed = w.call("GET", "/v3/certificates", None, bad).await;
    let unsigned = w
        .http
        .get(format!("{}/v3/certificates", w.fake.base_url))
        .header("Accept", "application/json")
        .header("User-Agent", "minigate-test/1.0")
        .send()
        .await
        .unwrap();
    let unsigned = Answer {
        status: unsigned.status().as_u16(),
        headers: unsigned.headers().clone(),
        body: unsigned.text().await.unwrap(),
    };
    for refused in [badly_signed, unsigned] {
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_eq!(refused.json()["code"], "SIGN_ERROR");
        assert!(refused.header("Wechatpay-Signature").is_none());
    }
    assert_eq!(w.fake.calls(WechatPayRoute::Certificates), 6);
}

#[tokio::test]
async fn wechat_pay_notify_posts_the_signed_notification_to_the_notify_url() {
    let w = wechat().await;
    let (url, mut rx) = receiver(&[(204, "")]).await;
    w.jsapi("POST_00001", 800, &url).await;
    assert_eq!(w.fake.notify("POST_00001").await, None, "not paid yet");
    w.fake.pay("POST_00001", None);

    assert_eq!(
        w.fake.notify("POST_00001").await,
        Some((204, String::new()))
    );
    let got = next(&mut rx).await;
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("wechatpay-serial"), PUB_KEY_ID);
    let message = format!(
        "{}\n{}\n{}\n",
        got.header("wechatpay-timestamp"),
        got.header("wechatpay-nonce"),
        got.body
    );
    assert!(verifies(
        &w.wechatpay.public_pem,
        &message,
        got.header("wechatpay-signature")
    ));
    assert_eq!(decrypt_resource(&got.body)["amount"]["total"], 800);
    assert_eq!(w.fake.order("POST_00001").unwrap().notifications_sent, 1);
}

#[tokio::test]
async fn wechat_pay_simulator_page_pays_and_retries_the_notification_until_2xx() {
    let w = wechat().await;
    let (url, mut rx) = receiver(&[(500, "busy"), (200, "")]).await;
    let code_url = w.native("SIM_000001", 100, &url).await.json()["code_url"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = w.http.get(&code_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("SIM_000001"));
    assert_eq!(
        w.fake.order("SIM_000001").unwrap().state,
        TradeState::Success
    );

    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(
        first.body, second.body,
        "a retry resends the same notification"
    );
    assert_eq!(decrypt_resource(&second.body)["out_trade_no"], "SIM_000001");
    assert_eq!(w.fake.calls(WechatPayRoute::PayPage), 1);
}

// ---------------------------------------------------------------------------------------------
// Alipay
// ---------------------------------------------------------------------------------------------

async fn alipay() -> Ali {
    alipay_with_apps(&[ALIPAY_APP_ID]).await
}

impl Ali {
    async fn call(&self, method: &str, biz: Value) -> AliAnswer {
        let params = self.signed(self.params(method, &biz));
        let body = self.post(&params).await;
        AliAnswer::parse(&body, &format!("{}_response", method.replace('.', "_")))
    }

    async fn precreate(&self, out_trade_no: &str, total: &str, notify_url: &str) -> AliAnswer {
        let mut params = self.params(
            "alipay.trade.precreate",
            &json!({
                "out_trade_no": out_trade_no,
                "total_amount": total,
                "subject": "租车费用",
                "time_expire": "2099-01-01 00:00:00",
            }),
        );
        params.insert("notify_url".to_owned(), notify_url.to_owned());
        let body = self.post(&self.signed(params)).await;
        AliAnswer::parse(&body, "alipay_trade_precreate_response")
    }
}

#[tokio::test]
async fn alipay_accepts_a_signed_precreate_and_signs_the_raw_response_node() {
    let a = alipay().await;
    let answer = a
        .precreate("ALI_0001", "12.30", "https://example.com/n")
        .await;
    assert_eq!(answer.node["code"], "10000", "{}", answer.node_text);
    assert_eq!(answer.node["msg"], "Success");
    assert_eq!(
        answer.node["qr_code"],
        format!("{}/pay/ALI_0001", a.fake.base_url)
    );
    assert!(answer.verifies_with(&a.alipay.public_pem));
    assert!(!answer.verifies_with(&a.app.public_pem));
    assert_eq!(a.fake.order("ALI_0001").unwrap().total, 1230);
    assert_eq!(a.fake.calls("alipay.trade.precreate"), 1);

    a.fake.tamper_next_answer();
    let tampered = a
        .precreate("ALI_0001", "12.30", "https://example.com/n")
        .await;
    assert_eq!(tampered.node["code"], "10000");
    assert!(!tampered.verifies_with(&a.alipay.public_pem));

    let changed = a
        .precreate("ALI_0001", "12.31", "https://example.com/n")
        .await;
    assert_eq!(changed.node["sub_code"], "ACQ.CONTEXT_INCONSISTENT");
    assert!(changed.verifies_with(&a.alipay.public_pem));
}

#[tokio::test]
async fn alipay_refuses_a_bad_signature_and_an_unknown_app() {
    let a = alipay().await;
    let mut params = a.signed(a.params("alipay.trade.query", &json!({ "out_trade_no": "X1" })));
    params.insert(
        "biz_content".to_owned(),
        json!({ "out_trade_no": "X2" }).to_string(),
    );
    let bad = AliAnswer::parse(&a.post(&params).await, "alipay_trade_query_response");
    assert_eq!(bad.node["code"], "40002");
    assert_eq!(bad.node["msg"], "Invalid Arguments");
    assert_eq!(bad.node["sub_code"], "isv.invalid-signature");

    let mut unknown = a.params("alipay.trade.query", &json!({ "out_trade_no": "X1" }));
    unknown.insert("app_id".to_owned(), "2021999999999999".to_owned());
    let body = a.post(&a.signed(unknown)).await;
    let refused = AliAnswer::parse(&body, "alipay_trade_query_response");
    assert_eq!(refused.node["sub_code"], "isv.invalid-app-id");
    assert!(
        refused.sign.is_none(),
        "no key to sign an unknown app's answer"
    );

    let stale = {
        let mut p = a.params("alipay.trade.query", &json!({ "out_trade_no": "X1" }));
        p.insert("timestamp".to_owned(), "2020-01-01 00:00:00".to_owned());
        a.post(&a.signed(p)).await
    };
    let stale = AliAnswer::parse(&stale, "alipay_trade_query_response");
    assert_eq!(stale.node["sub_code"], "isv.invalid-timestamp");
    assert_eq!(a.fake.calls("alipay.trade.query"), 3);
}

#[tokio::test]
async fn alipay_common_parameters_may_come_in_the_query_string() {
    let a = alipay().await;
    let params = a.signed(a.params("alipay.trade.query", &json!({ "out_trade_no": "NOPE_1" })));
    let (biz, common): (BTreeMap<_, _>, BTreeMap<_, _>) =
        params.into_iter().partition(|(k, _)| k == "biz_content");
    let body = a
        .http
        .post(format!("{}/gateway.do?{}", a.fake.base_url, form(&common)))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&biz))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer = AliAnswer::parse(&body, "alipay_trade_query_response");
    assert_eq!(answer.node["sub_code"], "ACQ.TRADE_NOT_EXIST");
    assert!(answer.verifies_with(&a.alipay.public_pem));
}

#[tokio::test]
async fn alipay_trades_exist_once_scanned_and_only_waiting_ones_close() {
    let a = alipay().await;
    a.precreate("ALI_0002", "5", "https://example.com/n").await;
    let q = a
        .call("alipay.trade.query", json!({ "out_trade_no": "ALI_0002" }))
        .await;
    assert_eq!(q.node["code"], "40004");
    assert_eq!(q.node["msg"], "Business Failed");
    assert_eq!(q.node["sub_code"], "ACQ.TRADE_NOT_EXIST");
    assert!(q.verifies_with(&a.alipay.public_pem));

    assert!(a.fake.scan("ALI_0002"));
    let q = a
        .call("alipay.trade.query", json!({ "out_trade_no": "ALI_0002" }))
        .await;
    assert_eq!(q.node["trade_status"], "WAIT_BUYER_PAY");
    assert_eq!(q.node["total_amount"], "5.00");

    assert!(a.fake.pay("ALI_0002"));
    let q = a
        .call("alipay.trade.query", json!({ "out_trade_no": "ALI_0002" }))
        .await;
    assert_eq!(q.node["trade_status"], "TRADE_SUCCESS");
    assert_eq!(q.node["buyer_pay_amount"], "5.00");
    assert!(q.node["send_pay_date"].is_string());
    let c = a
        .call("alipay.trade.close", json!({ "out_trade_no": "ALI_0002" }))
        .await;
    assert_eq!(c.node["sub_code"], "ACQ.TRADE_STATUS_ERROR");

    a.precreate("ALI_0003", "1.00", "https://example.com/n")
        .await;
    a.fake.scan("ALI_0003");
    let c = a
        .call("alipay.trade.close", json!({ "out_trade_no": "ALI_0003" }))
        .await;
    assert_eq!(c.node["code"], "10000");
    assert_eq!(
        c.node["trade_no"],
        json!(a.fake.order("ALI_0003").unwrap().trade_no)
    );
    assert_eq!(
        a.fake.order("ALI_0003").unwrap().status,
        TradeStatus::TradeClosed
    );
    assert!(!a.fake.pay("ALI_0003"));

    a.fake.fail_next("20000", "isp.unknow-error");
    let failed = a
        .call("alipay.trade.query", json!({ "out_trade_no": "ALI_0003" }))
        .await;
    assert_eq!(failed.node["msg"], "Service Currently Unavailable");
    assert!(failed.verifies_with(&a.alipay.public_pem));
}

#[tokio::test]
async fn alipay_notification_verifies_over_the_sorted_parameters() {
    let a = alipay().await;
    a.precreate("ALI_0004", "88.80", "https://example.com/n")
        .await;
    assert!(a.fake.notification("ALI_0004").is_none(), "not paid yet");
    a.fake.pay("ALI_0004");
    a.fake.set_paid_total("ALI_0004", 1);

    let params = a.fake.notification("ALI_0004").unwrap();
    assert!(verify_notification(&a.alipay.public_pem, &params));
    let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("trade_status"), "TRADE_SUCCESS");
    assert_eq!(get("notify_type"), "trade_status_sync");
    assert_eq!(get("app_id"), ALIPAY_APP_ID);
    assert_eq!(get("total_amount"), "0.01", "the paid total a test set");
    assert_eq!(get("sign_type"), "RSA2");

    let mut forged = params.clone();
    forged.retain(|(k, _)| k != "total_amount");
    forged.push(("total_amount".to_owned(), "88.80".to_owned()));
    assert!(!verify_notification(&a.alipay.public_pem, &forged));
}

#[tokio::test]
async fn alipay_notify_posts_the_form_to_the_notify_url() {
    let a = alipay().await;
    let (url, mut rx) = receiver(&[(200, "success")]).await;
    a.precreate("ALI_0005", "0.01", &url).await;
    a.fake.pay("ALI_0005");
    assert_eq!(
        a.fake.notify("ALI_0005").await,
        Some((200, "success".to_owned()))
    );
    let got = next(&mut rx).await;
    assert!(
        got.header("content-type")
            .starts_with("application/x-www-form-urlencoded")
    );
    let params: Vec<(String, String)> = form_urlencoded::parse(got.body.as_bytes())
        .into_owned()
        .collect();
    assert!(verify_notification(&a.alipay.public_pem, &params));
}

#[tokio::test]
async fn alipay_simulator_page_pays_and_notifies_until_the_answer_is_success() {
    let a = alipay().await;
    let (url, mut rx) = receiver(&[(200, "fail"), (200, "success")]).await;
    let qr = a.precreate("ALI_0006", "3.00", &url).await.node["qr_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = a.http.get(&qr).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        a.fake.order("ALI_0006").unwrap().status,
        TradeStatus::TradeSuccess
    );
    assert_eq!(a.fake.calls("/pay"), 1);
}

#[tokio::test]
async fn wechat_pay_nested_under_a_prefix_checks_the_path_the_client_signed() {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let base = format!("http://{addr}/simulator/wechatpay");
    let inner = FakeWechatPay::new(&format!("{base}/"));
    let app = poem::Route::new().nest("/simulator/wechatpay", inner.endpoint());
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });

    // Reuse the client with the nested fake's keys and base.
    let mut w = wechat().await;
    w.fake = inner;
    w.fake
        .add_merchant(wechat_pay_merchant(&w.merchant, &w.wechatpay));
    assert_eq!(w.fake.base_url, base);
    // The client signs the full path it requests, prefix included.
    let a = w.native("NESTED_001", 100, "https://example.com/n").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["code_url"], format!("{base}/pay/NESTED_001"));
    assert!(
        w.query("NESTED_001")
            .await
            .verifies_with(&w.wechatpay.public_pem)
    );
}
