//! The fake WeChat Pay's refunds, refund notifications and daily trade bill, driven by a small
//! hand-written client (signing and verifying with aws-lc-rs directly, parsing the bill on its
//! own) so that a mistake in the fake cannot hide behind the same mistake on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use minigate_fakes::wechat_pay::{BillFault, RefundMode, RefundStatus, WechatPayRoute};
use poem::{Endpoint, Request, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::{
    APP_ID, MCH_ID, PUB_KEY_ID, Received, SERIAL, Wechat, answer_verifies, beijing,
    decrypt_resource, request_signature, serve, today, verifies, wechat,
};

// ---------------------------------------------------------------------------------------------
// Crypto the client does itself
// ---------------------------------------------------------------------------------------------

fn sha1_hex(bytes: &[u8]) -> String {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn at(date: NaiveDate, h: u32, m: u32, s: u32) -> DateTime<FixedOffset> {
    beijing()
        .from_local_datetime(&date.and_hms_opt(h, m, s).unwrap())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// An answer with its headers, for checking the signature.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn body(&self) -> String {
        String::from_utf8(self.bytes.clone()).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap()
    }

    fn code(&self) -> (u16, String) {
        (
            self.status,
            self.json()["code"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Whether `Wechatpay-Signature` is `public_pem`'s signature of this answer.
    fn verifies_with(&self, public_pem: &str) -> bool {
        answer_verifies(&self.headers, &self.body(), public_pem)
    }
}

impl Wechat {
    /// A request signed over `method\npath\ntimestamp\nnonce\nbody\n`; `bad_signature` signs
    /// another body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bad_signature: bool,
    ) -> Answer {
        let body_text = body.map(Value::to_string).unwrap_or_default();
        let ts = Utc::now().timestamp();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let signed = if bad_signature {
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
        let auth = format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{MCH_ID}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{ts}\",serial_no=\"{SERIAL}\""
        );
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.fake.base_url),
            )
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .header("User-Agent", "minigate-test/1.0");
        if body.is_some() {
            req = req
                .header("Content-Type", "application/json")
                .body(body_text);
        }
        let res = req.send().await.unwrap();
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            bytes: res.bytes().await.unwrap().to_vec(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.send(method, path, body, false).await
    }

    /// A JSAPI order, paid at once.
    async fn paid_order(&self, out_trade_no: &str, total: i64) {
        let body = json!({
            "appid": APP_ID,
            "mchid": MCH_ID,
            "description": "租车费用",
            "out_trade_no": out_trade_no,
            "notify_url": "https://example.com/notify",
            "amount": { "total": total, "currency": "CNY" },
            "payer": { "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
        });
        let a = self
            .call("POST", "/v3/pay/transactions/jsapi", Some(&body))
            .await;
        assert_eq!(a.status, 200, "{}", a.body());
        assert!(self.fake.pay(out_trade_no, None));
    }

    async fn refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
        refund: i64,
        total: i64,
    ) -> Answer {
        self.refund_to(
            out_trade_no,
            out_refund_no,
            refund,
            total,
            "https://example.com/refund",
        )
        .await
    }

    async fn refund_to(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
        refund: i64,
        total: i64,
        notify_url: &str,
    ) -> Answer {
        let body = json!({
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": "还车后退押金",
            "notify_url": notify_url,
            "amount": { "refund": refund, "total": total, "currency": "CNY" },
        });
        self.call("POST", "/v3/refund/domestic/refunds", Some(&body))
            .await
    }

    async fn query_refund(&self, out_refund_no: &str) -> Answer {
        let path = format!("/v3/refund/domestic/refunds/{out_refund_no}");
        self.call("GET", &path, None).await
    }

    async fn trade_bill(&self, date: &str) -> Answer {
        let path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");
        self.call("GET", &path, None).await
    }

    /// The `tradebill` answer of a ready day and the file behind it.
    async fn bill(&self, date: NaiveDate) -> (Value, Answer) {
        let a = self.trade_bill(&date.format("%Y-%m-%d").to_string()).await;
        assert_eq!(a.status, 200, "{}", a.body());
        assert!(a.verifies_with(&self.wechatpay.public_pem));
        let answer = a.json();
        let file = self
            .download(answer["download_url"].as_str().unwrap())
            .await;
        assert_eq!(file.status, 200);
        (answer, file)
    }

    /// GETs a download URL, signed over its path and query.
    async fn download(&self, url: &str) -> Answer {
        let path = url.strip_prefix(&self.fake.base_url).unwrap();
        self.call("GET", path, None).await
    }
}

// ---------------------------------------------------------------------------------------------
// A receiver standing in for our refund notification route
// ---------------------------------------------------------------------------------------------

struct Receiver {
    tx: mpsc::UnboundedSender<Received>,
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
        let _ = self.tx.send(Received { headers, body });
        Ok(Response::builder()
            .status(poem::http::StatusCode::NO_CONTENT)
            .finish())
    }
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = serve(Receiver { tx }).await;
    (format!("http://{addr}/refund-notify"), rx)
}

// ---------------------------------------------------------------------------------------------
// An independent parse of the bill
// ---------------------------------------------------------------------------------------------

const DETAIL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// `-?digits.dd…` with exactly `decimals` decimals, as an integer of the smallest unit.
fn units(text: &str, decimals: usize) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(frac) || frac.len() != decimals {
        return None;
    }
    let value: i64 = format!("{whole}{frac}").parse().ok()?;
    Some(if negative { -value } else { value })
}

/// A bill split into its parts: header names, detail rows (fields without the backquote),
/// and the summary row, if the last two lines are a summary.
struct Bill {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    summary: Option<Vec<String>>,
}

impl Bill {
    fn parse(bytes: &[u8]) -> Bill {
        let text = std::str::from_utf8(bytes).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        assert!(text.ends_with("\r\n"), "lines end with CRLF");
        let lines: Vec<&str> = text.trim_end_matches("\r\n").split("\r\n").collect();
        let fields = |line: &str| -> Vec<String> {
            line.split(',')
                .map(|f| f.strip_prefix('`').unwrap().to_owned())
                .collect()
        };
        let header = lines[0].split(',').map(str::to_owned).collect();
        let n = lines.len();
        let (details, summary) = if n >= 3 && lines[n - 2] == SUMMARY_HEADER {
            (&lines[1..n - 2], Some(fields(lines[n - 1])))
        } else {
            (&lines[1..], None)
        };
        Bill {
            header,
            rows: details.iter().map(|l| fields(l)).collect(),
            summary,
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap()
    }

    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.col(name)]
    }

    fn row_of(&self, column: &str, value: &str) -> &[String] {
        self.rows
            .iter()
            .find(|r| self.get(r, column) == value)
            .unwrap()
    }

    /// The summary the rows call for, formatted like the bill's.
    fn expected_summary(&self) -> Vec<String> {
        let sum = |name: &str, decimals: usize| -> i64 {
            self.rows
                .iter()
                .map(|r| units(self.get(r, name), decimals).unwrap())
                .sum()
        };
        let yuan = |fen: i64| format!("{}.{:02}", fen / 100, fen % 100);
        let fee = sum("手续费", 5);
        let sign = if fee < 0 { "-" } else { "" };
        vec![
            self.rows.len().to_string(),
            yuan(sum("应结订单金额", 2)),
            yuan(sum("退款金额", 2)),
            yuan(sum("充值券退款金额", 2)),
            format!("{sign}{}.{:05}", fee.abs() / 100_000, fee.abs() % 100_000),
            yuan(sum("订单金额", 2)),
            yuan(sum("申请退款金额", 2)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refund_is_created_processing_repeated_idempotently_and_queried() {
    let w = wechat().await;
    w.paid_order("REFUND_0001", 1230).await;
    let a = w.refund("REFUND_0001", "RF_0001", 500, 1230).await;
    assert_eq!(a.status, 200, "{}", a.body());
    assert!(a.verifies_with(&w.wechatpay.public_pem));
    assert_eq!(a.header("Wechatpay-Serial"), Some(PUB_KEY_ID));
    let r = a.json();
    assert_eq!(r["status"], "PROCESSING");
    assert_eq!(r["out_refund_no"], "RF_0001");
    assert_eq!(r["out_trade_no"], "REFUND_0001");
    assert_eq!(r["channel"], "ORIGINAL");
    assert_eq!(r["user_received_account"], "支付用户零钱");
    assert_eq!(r["funds_account"], "AVAILABLE");
    assert!(r.get("success_time").is_none(), "only once SUCCESS");
    assert!(r["create_time"].as_str().unwrap().ends_with("+08:00"));
    let refund_id = r["refund_id"].as_str().unwrap();
    assert_eq!(refund_id.len(), 29);
    assert_eq!(
        r["amount"],
        json!({
            "total": 1230, "refund": 500, "payer_total": 1230, "payer_refund": 500,
            "settlement_refund": 500, "settlement_total": 1230, "discount_refund": 0,
            "currency": "CNY",
        })
    );
    let order = w.fake.order("REFUND_0001").unwrap();
    assert_eq!(
        Some(r["transaction_id"].as_str().unwrap()),
        order.transaction_id.as_deref()
    );

    // The same request again is the same refund; nothing new is taken from the order.
    let again = w.refund("REFUND_0001", "RF_0001", 500, 1230).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), r);
    let rest = w.refund("REFUND_0001", "RF_0002", 730, 1230).await;
    assert_eq!(rest.status, 200, "{}", rest.body());

    // The same number with other amounts or another order is refused.
    let changed = w.refund("REFUND_0001", "RF_0001", 400, 1230).await;
    assert_eq!(changed.code(), (400, "INVALID_REQUEST".to_owned()));
    assert!(changed.verifies_with(&w.wechatpay.public_pem));
    w.paid_order("REFUND_0002", 1230).await;
    let other = w.refund("REFUND_0002", "RF_0001", 500, 1230).await;
    assert_eq!(other.code(), (400, "INVALID_REQUEST".to_owned()));

    let q = w.query_refund("RF_0001").await;
    assert_eq!(q.status, 200);
    assert!(q.verifies_with(&w.wechatpay.public_pem));
    assert_eq!(q.json(), r);
    let missing = w.query_refund("RF_NOPE").await;
    assert_eq!(missing.code(), (404, "RESOURCE_NOT_EXISTS".to_owned()));
    assert!(missing.verifies_with(&w.wechatpay.public_pem));

    let kept = w.fake.refund("RF_0001").unwrap();
    assert_eq!(kept.refund_id, refund_id);
    assert_eq!((kept.amount_fen, kept.total_fen), (500, 1230));
    assert_eq!(kept.status, RefundStatus::Processing);
    assert_eq!(kept.reason.as_deref(), Some("还车后退押金"));
    assert_eq!(
        kept.notify_url.as_deref(),
        Some("https://example.com/refund")
    );
    assert_eq!(w.fake.calls(WechatPayRoute::Refund), 5);
    assert_eq!(w.fake.calls(WechatPayRoute::RefundQuery), 2);
}

#[tokio::test]
async fn refunds_of_unknown_unpaid_or_mismatched_orders_and_over_refunds_are_refused() {
    let w = wechat().await;
    let unknown = w.refund("NO_SUCH_ORDER", "RF_1000", 1, 100).await;
    assert_eq!(unknown.code(), (404, "RESOURCE_NOT_EXISTS".to_owned()));

    let body = json!({
        "appid": APP_ID, "mchid": MCH_ID, "description": "d", "out_trade_no": "UNPAID_001",
        "notify_url": "https://example.com/n", "amount": { "total": 1000 },
        "payer": { "openid": "o1" },
    });
    w.call("POST", "/v3/pay/transactions/jsapi", Some(&body))
        .await;
    let unpaid = w.refund("UNPAID_001", "RF_1001", 100, 1000).await;
    assert_eq!(unpaid.code(), (400, "INVALID_REQUEST".to_owned()));
    assert!(w.fake.pay("UNPAID_001", None));

    let wrong_total = w.refund("UNPAID_001", "RF_1002", 100, 999).await;
    assert_eq!(wrong_total.code(), (400, "INVALID_REQUEST".to_owned()));
    let zero = w.refund("UNPAID_001", "RF_1003", 0, 1000).await;
    assert_eq!(zero.code(), (400, "INVALID_REQUEST".to_owned()));
    let too_much = w.refund("UNPAID_001", "RF_1004", 1001, 1000).await;
    assert_eq!(too_much.code(), (400, "INVALID_REQUEST".to_owned()));
    assert_eq!(too_much.json()["message"], "申请退款金额超过订单可退金额");

    // Processing and successful refunds hold their amount; a closed one gives it back.
    assert_eq!(
        w.refund("UNPAID_001", "RF_1005", 600, 1000).await.status,
        200
    );
    assert_eq!(
        w.refund("UNPAID_001", "RF_1006", 400, 1000).await.status,
        200
    );
    let over = w.refund("UNPAID_001", "RF_1007", 1, 1000).await;
    assert_eq!(over.json()["message"], "申请退款金额超过订单可退金额");
    assert!(w.fake.finish_refund("RF_1005", RefundStatus::Success));
    assert!(w.fake.finish_refund("RF_1006", RefundStatus::Closed));
    assert_eq!(
        w.refund("UNPAID_001", "RF_1008", 401, 1000).await.status,
        400
    );
    assert_eq!(
        w.refund("UNPAID_001", "RF_1009", 400, 1000).await.status,
        200
    );

    // A malformed request is a PARAM_ERROR naming the field.
    let bad = json!({ "out_trade_no": "UNPAID_001", "out_refund_no": "has space",
        "amount": { "refund": 1, "total": 1000, "currency": "CNY" } });
    let a = w
        .call("POST", "/v3/refund/domestic/refunds", Some(&bad))
        .await;
    assert_eq!(a.code(), (400, "PARAM_ERROR".to_owned()));
    assert_eq!(a.json()["detail"]["field"], "/out_refund_no");

    // The knobs apply to refunds too.
    w.fake.fail_next(403, "NOT_ENOUGH");
    let broke = w.refund("UNPAID_001", "RF_1010", 100, 1000).await;
    assert_eq!(broke.code(), (403, "NOT_ENOUGH".to_owned()));
    assert!(broke.verifies_with(&w.wechatpay.public_pem));
    assert!(w.fake.refund("RF_1010").is_none());
    w.fake.fail_next(429, "FREQUENCY_LIMITED");
    assert_eq!(w.query_refund("RF_1005").await.status, 429);
    w.fake.tamper_next_answer();
    let tampered = w.query_refund("RF_1005").await;
    assert_eq!(tampered.status, 200);
    assert!(!tampered.verifies_with(&w.wechatpay.public_pem));

    // A request whose signature does not verify is refused unsigned.
    let body = json!({ "out_trade_no": "UNPAID_001", "out_refund_no": "RF_1011",
        "amount": { "refund": 1, "total": 1000, "currency": "CNY" } });
    let forged = w
        .send("POST", "/v3/refund/domestic/refunds", Some(&body), true)
        .await;
    assert_eq!(forged.code(), (401, "SIGN_ERROR".to_owned()));
    assert!(forged.header("Wechatpay-Signature").is_none());
}

#[tokio::test]
async fn a_finished_refund_has_a_signed_encrypted_notification() {
    let w = wechat().await;
    w.paid_order("NOTIFY_R01", 1230).await;
    let (url, mut rx) = receiver().await;
    let created = w.refund_to("NOTIFY_R01", "RF_2001", 500, 1230, &url).await;
    assert_eq!(created.status, 200, "{}", created.body());
    assert!(
        w.fake.refund_notification("RF_2001").is_none(),
        "still processing"
    );
    assert_eq!(w.fake.notify_refund("RF_2001").await, None);
    assert!(!w.fake.finish_refund("RF_2001", RefundStatus::Processing));

    assert!(w.fake.finish_refund("RF_2001", RefundStatus::Success));
    assert!(
        !w.fake.finish_refund("RF_2001", RefundStatus::Closed),
        "already ended"
    );
    let q = w.query_refund("RF_2001").await.json();
    assert_eq!(q["status"], "SUCCESS");
    let success_time = q["success_time"].as_str().unwrap().to_owned();
    assert!(success_time.ends_with("+08:00"));

    let cb = w.fake.refund_notification("RF_2001").unwrap();
    let message = format!(
        "{}\n{}\n{}\n",
        cb.header("Wechatpay-Timestamp").unwrap(),
        cb.header("Wechatpay-Nonce").unwrap(),
        cb.body
    );
    assert!(verifies(
        &w.wechatpay.public_pem,
        &message,
        cb.header("Wechatpay-Signature").unwrap()
    ));
    assert_eq!(cb.header("Wechatpay-Serial"), Some(PUB_KEY_ID));
    let envelope: Value = serde_json::from_str(&cb.body).unwrap();
    assert_eq!(envelope["event_type"], "REFUND.SUCCESS");
    assert_eq!(envelope["summary"], "退款成功");
    assert_eq!(envelope["resource_type"], "encrypt-resource");
    assert_eq!(envelope["resource"]["original_type"], "refund");
    assert_eq!(envelope["resource"]["associated_data"], "refund");
    let resource = decrypt_resource(&cb.body);
    let order = w.fake.order("NOTIFY_R01").unwrap();
    assert_eq!(
        resource,
        json!({
            "mchid": MCH_ID,
            "out_trade_no": "NOTIFY_R01",
            "transaction_id": order.transaction_id.unwrap(),
            "out_refund_no": "RF_2001",
            "refund_id": q["refund_id"],
            "refund_status": "SUCCESS",
            "success_time": success_time,
            "user_received_account": "支付用户零钱",
            "amount": { "total": 1230, "refund": 500, "payer_total": 1230, "payer_refund": 500 },
        })
    );
    let other = w.fake.refund_notification("RF_2001").unwrap();
    assert_ne!(
        serde_json::from_str::<Value>(&other.body).unwrap()["id"],
        envelope["id"]
    );

    // Posted to the refund's notify_url.
    assert_eq!(
        w.fake.notify_refund("RF_2001").await,
        Some((204, String::new()))
    );
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.header("content-type"), "application/json");
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
    assert_eq!(decrypt_resource(&got.body)["out_refund_no"], "RF_2001");
    assert_eq!(w.fake.refund("RF_2001").unwrap().notifications_sent, 1);

    // An abnormal refund says so, without a success time.
    w.refund("NOTIFY_R01", "RF_2002", 100, 1230).await;
    assert!(w.fake.finish_refund("RF_2002", RefundStatus::Abnormal));
    let cb = w.fake.refund_notification("RF_2002").unwrap();
    let envelope: Value = serde_json::from_str(&cb.body).unwrap();
    assert_eq!(envelope["event_type"], "REFUND.ABNORMAL");
    assert_eq!(envelope["summary"], "退款异常");
    let resource = decrypt_resource(&cb.body);
    assert_eq!(resource["refund_status"], "ABNORMAL");
    assert!(resource.get("success_time").is_none());
    w.refund("NOTIFY_R01", "RF_2003", 100, 1230).await;
    assert!(w.fake.finish_refund("RF_2003", RefundStatus::Closed));
    let closed: Value =
        serde_json::from_str(&w.fake.refund_notification("RF_2003").unwrap().body).unwrap();
    assert_eq!(
        (closed["event_type"].as_str(), closed["summary"].as_str()),
        (Some("REFUND.CLOSED"), Some("退款关闭"))
    );
}

#[tokio::test]
async fn immediate_mode_refunds_succeed_at_once() {
    let w = wechat().await;
    w.paid_order("IMMEDIATE1", 800).await;
    w.fake.set_refund_mode(RefundMode::Immediate);
    let r = w.refund("IMMEDIATE1", "RF_3001", 800, 800).await.json();
    assert_eq!(r["status"], "SUCCESS");
    assert_eq!(r["success_time"], r["create_time"]);
    assert!(w.fake.refund_notification("RF_3001").is_some());
    w.fake.set_refund_mode(RefundMode::Manual);
    w.paid_order("IMMEDIATE2", 800).await;
    let r = w.refund("IMMEDIATE2", "RF_3002", 800, 800).await.json();
    assert_eq!(r["status"], "PROCESSING");
}

// ---------------------------------------------------------------------------------------------
// Trade bill
// ---------------------------------------------------------------------------------------------

/// Yesterday's trades: three payments (one at 23:59:59, one the day before), two refunds of
/// the first, one of them closed.
fn seed_yesterday(w: &Wechat) -> NaiveDate {
    let day = today().pred_opt().unwrap();
    let before = day.pred_opt().unwrap();
    w.fake
        .seed_paid_order(MCH_ID, APP_ID, "BILL_0001", 1230, at(day, 10, 15, 2));
    w.fake
        .seed_paid_order(MCH_ID, APP_ID, "BILL_0002", 250, at(day, 23, 59, 59));
    // Late UTC on the day before is already `day` in Beijing.
    let utc = Utc.from_utc_datetime(&before.and_hms_opt(16, 30, 0).unwrap());
    w.fake
        .seed_paid_order(MCH_ID, APP_ID, "BILL_0003", 100_000, utc);
    w.fake
        .seed_paid_order(MCH_ID, APP_ID, "BILL_OLD", 999, at(before, 12, 0, 0));
    w.fake
        .seed_paid_order("1900000999", APP_ID, "BILL_OTHER", 777, at(day, 12, 0, 0));
    assert!(w.fake.seed_refund(
        MCH_ID,
        "BILL_0001",
        "BILL_R01",
        500,
        at(day, 11, 0, 0),
        RefundStatus::Success
    ));
    assert!(w.fake.seed_refund(
        MCH_ID,
        "BILL_0001",
        "BILL_R02",
        100,
        at(day, 12, 0, 0),
        RefundStatus::Closed
    ));
    assert!(!w.fake.seed_refund(
        MCH_ID,
        "NO_ORDER",
        "BILL_R03",
        1,
        at(day, 12, 0, 0),
        RefundStatus::Success
    ));
    day
}

#[tokio::test]
async fn the_trade_bill_lists_the_days_payments_and_refunds_with_fees_and_a_summary() {
    let w = wechat().await;
    let day = seed_yesterday(&w);
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_type"], "SHA1");
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    assert!(
        answer["download_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/v3/billdownload/file?token=", w.fake.base_url))
    );
    assert_eq!(
        file.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        file.header("Wechatpay-Signature").is_none(),
        "the file is not signed"
    );
    assert!(file.bytes.starts_with(b"\xEF\xBB\xBF"));

    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.header.join(","), DETAIL_HEADER);
    assert_eq!(bill.rows.len(), 5);
    assert!(bill.rows.iter().all(|r| r.len() == 27));
    let times: Vec<&str> = bill.rows.iter().map(|r| bill.get(r, "交易时间")).collect();
    let day_text = day.format("%Y-%m-%d").to_string();
    assert_eq!(
        times,
        ["00:30:00", "10:15:02", "11:00:00", "12:00:00", "23:59:59"]
            .map(|t| format!("{day_text} {t}"))
    );

    let pay = bill.row_of("商户订单号", "BILL_0002");
    assert_eq!(bill.get(pay, "交易状态"), "SUCCESS");
    assert_eq!(bill.get(pay, "公众账号ID"), APP_ID);
    assert_eq!(bill.get(pay, "商户号"), MCH_ID);
    assert_eq!(bill.get(pay, "应结订单金额"), "2.50");
    assert_eq!(bill.get(pay, "订单金额"), "2.50");
    assert_eq!(bill.get(pay, "手续费"), "0.02000", "1.5 fen rounds up");
    assert_eq!(bill.get(pay, "费率"), "0.60%");
    assert_eq!(bill.get(pay, "微信退款单号"), "0");
    assert_eq!(bill.get(pay, "退款金额"), "0.00");
    assert_eq!(bill.get(pay, "退款状态"), "");
    let first = bill.row_of("商户订单号", "BILL_0001");
    assert_eq!(bill.get(first, "手续费"), "0.07000", "7.38 fen rounds to 7");
    let order = w.fake.order("BILL_0001").unwrap();
    assert_eq!(
        Some(bill.get(first, "微信订单号")),
        order.transaction_id.as_deref()
    );

    let refund = bill.row_of("商户退款单号", "BILL_R01");
    assert_eq!(bill.get(refund, "交易状态"), "REFUND");
    assert_eq!(bill.get(refund, "商户订单号"), "BILL_0001");
    assert_eq!(
        bill.get(refund, "微信退款单号"),
        w.fake.refund("BILL_R01").unwrap().refund_id
    );
    assert_eq!(bill.get(refund, "退款金额"), "5.00");
    assert_eq!(bill.get(refund, "申请退款金额"), "5.00");
    assert_eq!(bill.get(refund, "应结订单金额"), "0.00");
    assert_eq!(bill.get(refund, "订单金额"), "0.00");
    assert_eq!(bill.get(refund, "退款类型"), "ORIGINAL");
    assert_eq!(bill.get(refund, "退款状态"), "SUCCESS");
    assert_eq!(bill.get(refund, "手续费"), "-0.03000");
    let closed = bill.row_of("商户退款单号", "BILL_R02");
    assert_eq!(bill.get(closed, "退款状态"), "CLOSED");
    assert_eq!(
        bill.get(closed, "手续费"),
        "-0.01000",
        "0.6 fen rounds to 1"
    );

    let summary = bill.summary.clone().unwrap();
    assert_eq!(summary, bill.expected_summary());
    assert_eq!(
        summary,
        ["5", "1014.80", "6.00", "0.00", "6.05000", "1014.80", "6.00"]
    );
    assert_eq!(w.fake.trade_bill(MCH_ID, day), file.bytes);
    assert_eq!(w.fake.calls(WechatPayRoute::TradeBill), 1);
    assert_eq!(w.fake.calls(WechatPayRoute::BillDownload), 1);
}

#[tokio::test]
async fn fee_rates_and_overrides_change_the_printed_fees_and_their_sum() {
    let w = wechat().await;
    let day = seed_yesterday(&w);
    w.fake.set_fee_rate_bp(MCH_ID, 38);
    w.fake.set_fee_override("BILL_0002", 12_345);
    let (_, file) = w.bill(day).await;
    let bill = Bill::parse(&file.bytes);
    let first = bill.row_of("商户订单号", "BILL_0001");
    assert_eq!(bill.get(first, "费率"), "0.38%");
    assert_eq!(bill.get(first, "手续费"), "0.05000", "4.674 fen");
    let overridden = bill.row_of("商户订单号", "BILL_0002");
    assert_eq!(bill.get(overridden, "手续费"), "0.12345");
    assert_eq!(bill.summary.clone().unwrap(), bill.expected_summary());
}

#[tokio::test]
async fn a_day_without_trades_and_todays_published_bill() {
    let w = wechat().await;
    let empty = today().pred_opt().unwrap().pred_opt().unwrap();
    let (_, file) = w.bill(empty).await;
    let text = String::from_utf8(file.bytes).unwrap();
    assert_eq!(
        text,
        format!(
            "\u{feff}{DETAIL_HEADER}\r\n{SUMMARY_HEADER}\r\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\r\n"
        )
    );

    // Today's bill only once published; then it holds what was paid and refunded today.
    let today_text = today().format("%Y-%m-%d").to_string();
    let early = w.trade_bill(&today_text).await;
    assert_eq!(early.code(), (400, "PARAM_ERROR".to_owned()));
    assert!(early.verifies_with(&w.wechatpay.public_pem));
    w.paid_order("TODAY_0001", 1230).await;
    w.refund("TODAY_0001", "TODAY_R01", 230, 1230).await;
    w.fake.set_bill_ready(today(), true);
    let (answer, file) = w.bill(today()).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.rows.len(), 2);
    let refund = bill.row_of("商户退款单号", "TODAY_R01");
    assert_eq!(bill.get(refund, "退款状态"), "PROCESSING");
    assert_eq!(bill.summary.clone().unwrap(), bill.expected_summary());
}

#[tokio::test]
async fn bad_dates_unready_bills_and_unknown_tokens_are_refused() {
    let w = wechat().await;
    let yesterday = today().pred_opt().unwrap();
    let tomorrow = today().succ_opt().unwrap();
    for date in [
        "2026-1-5".to_owned(),
        "20261105".to_owned(),
        "2026-02-30".to_owned(),
        "yesterday".to_owned(),
        tomorrow.format("%Y-%m-%d").to_string(),
    ] {
        let a = w.trade_bill(&date).await;
        assert_eq!(a.code(), (400, "PARAM_ERROR".to_owned()), "{date}");
        assert!(a.verifies_with(&w.wechatpay.public_pem));
    }
    let missing = w
        .call("GET", "/v3/bill/tradebill?bill_type=ALL", None)
        .await;
    assert_eq!(missing.code(), (400, "PARAM_ERROR".to_owned()));
    let y = yesterday.format("%Y-%m-%d").to_string();
    let success_only = w
        .call(
            "GET",
            &format!("/v3/bill/tradebill?bill_date={y}&bill_type=SUCCESS"),
            None,
        )
        .await;
    assert_eq!(success_only.code(), (400, "PARAM_ERROR".to_owned()));

    w.fake.set_bill_ready(yesterday, false);
    assert_eq!(
        w.trade_bill(&y).await.code(),
        (400, "NO_STATEMENT_EXIST".to_owned())
    );
    w.fake.set_statement_creating(yesterday, true);
    assert_eq!(
        w.trade_bill(&y).await.code(),
        (400, "STATEMENT_CREATING".to_owned())
    );
    w.fake.set_statement_creating(yesterday, false);
    w.fake.set_bill_ready(yesterday, true);
    w.fake.set_bill_ready(tomorrow, true);
    assert_eq!(w.trade_bill(&y).await.status, 200);
    let future = w.trade_bill(&tomorrow.format("%Y-%m-%d").to_string()).await;
    assert_eq!(future.code(), (400, "PARAM_ERROR".to_owned()));

    let unknown = w
        .call("GET", "/v3/billdownload/file?token=nope", None)
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["code"].is_string());

    // The download is authenticated like any v3 request.
    let (answer, _) = w.bill(yesterday).await;
    let url = answer["download_url"].as_str().unwrap();
    let path = url.strip_prefix(&w.fake.base_url).unwrap();
    let forged = w.send("GET", path, None, true).await;
    assert_eq!(forged.code(), (401, "SIGN_ERROR".to_owned()));
    let unsigned = w
        .http
        .get(url)
        .header("User-Agent", "t/1")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert_eq!(w.download(url).await.status, 200, "still downloadable");
}

#[tokio::test]
async fn each_bill_fault_is_what_it_claims_and_only_hits_the_next_bill() {
    let w = wechat().await;
    let day = seed_yesterday(&w);

    w.fake.corrupt_next_bill(BillFault::WrongHash);
    let (answer, file) = w.bill(day).await;
    assert_ne!(answer["hash_value"], sha1_hex(&file.bytes));
    assert_eq!(answer["hash_value"].as_str().unwrap().len(), 40);
    let sound = Bill::parse(&file.bytes);
    assert_eq!(sound.summary.clone().unwrap(), sound.expected_summary());
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes), "cleared");

    // The others keep the hash right: only parsing finds them.
    w.fake.corrupt_next_bill(BillFault::WrongTotals);
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    let bill = Bill::parse(&file.bytes);
    let summary = bill.summary.clone().unwrap();
    let expected = bill.expected_summary();
    assert_eq!(
        units(&summary[1], 2).unwrap() - units(&expected[1], 2).unwrap(),
        1
    );
    assert_eq!(summary[2..], expected[2..]);

    w.fake.corrupt_next_bill(BillFault::UnknownRow);
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.rows.len(), 6);
    let revoked: Vec<_> = bill
        .rows
        .iter()
        .filter(|r| bill.get(r, "交易状态") == "REVOKED")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].len(), 27);
    assert_eq!(bill.summary.clone().unwrap(), bill.expected_summary());

    w.fake.corrupt_next_bill(BillFault::MalformedAmount);
    let (_, file) = w.bill(day).await;
    let bill = Bill::parse(&file.bytes);
    let malformed: Vec<_> = bill
        .rows
        .iter()
        .filter(|r| units(bill.get(r, "应结订单金额"), 2).is_none())
        .collect();
    assert_eq!(malformed.len(), 1);
    assert_eq!(bill.get(malformed[0], "应结订单金额"), "12.3x");

    w.fake.corrupt_next_bill(BillFault::ExtraColumn);
    let (_, file) = w.bill(day).await;
    let bill = Bill::parse(&file.bytes);
    let widths: Vec<usize> = bill.rows.iter().map(Vec::len).collect();
    assert_eq!(widths, [28, 27, 27, 27, 27]);
    assert!(bill.summary.is_some());

    w.fake.corrupt_next_bill(BillFault::MissingSummary);
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    let bill = Bill::parse(&file.bytes);
    assert!(bill.summary.is_none());
    assert_eq!(bill.rows.len(), 5);
    let text = String::from_utf8(file.bytes).unwrap();
    assert!(!text.contains("总交易单数"));

    let (_, file) = w.bill(day).await;
    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.summary.clone().unwrap(), bill.expected_summary());
}

#[tokio::test]
async fn row_faults_on_a_day_without_trades_get_a_row_to_carry_them() {
    let w = wechat().await;
    let empty = today().pred_opt().unwrap().pred_opt().unwrap();
    w.fake.corrupt_next_bill(BillFault::ExtraColumn);
    let (_, file) = w.bill(empty).await;
    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.rows.len(), 1);
    assert_eq!(bill.rows[0].len(), 28);
    assert_eq!(bill.summary.unwrap()[0], "1");
}

#[tokio::test]
async fn a_bill_of_many_seeded_rows_is_made_quickly() {
    let w = wechat().await;
    let day = today().pred_opt().unwrap();
    let start = at(day, 0, 0, 0);
    let n: i64 = 100_000;
    for i in 0..n {
        let t = start + chrono::Duration::milliseconds(i * 800);
        w.fake
            .seed_paid_order(MCH_ID, APP_ID, &format!("BULK{i:08}"), 100 + i % 5000, t);
    }
    for i in 0..1_000 {
        let t = start + chrono::Duration::seconds(i * 60 + 30);
        assert!(w.fake.seed_refund(
            MCH_ID,
            &format!("BULK{i:08}"),
            &format!("BULKR{i:07}"),
            50,
            t,
            RefundStatus::Success
        ));
    }
    let (answer, file) = w.bill(day).await;
    assert_eq!(answer["hash_value"], sha1_hex(&file.bytes));
    let bill = Bill::parse(&file.bytes);
    assert_eq!(bill.rows.len(), 101_000);
    assert_eq!(bill.summary.clone().unwrap(), bill.expected_summary());
}
