//! The fake Alipay's refunds, refund reports on the trade notify, and daily trade bills,
//! driven by a small hand-written client that signs and verifies with aws-lc-rs directly and
//! reads the bills with its own little parser, so that a mistake in the fake cannot hide
//! behind the same mistake on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Cursor, Read};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use minigate_fakes::alipay::{BillFault, FakeAlipay, TradeStatus, format_yuan, partner_id};
use poem::{Endpoint, Request, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use common::{
    ALIPAY_APP_ID as APP_ID, Ali, AliAnswer, alipay_with_apps, beijing, serve, today,
    verify_notification,
};

// ---------------------------------------------------------------------------------------------
// The client's own crypto and requests
// ---------------------------------------------------------------------------------------------

const OTHER_APP_ID: &str = "2021004100000002";

/// `date` at `h:m:s` Beijing time.
fn at(date: NaiveDate, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    beijing()
        .from_local_datetime(&date.and_hms_opt(h, m, s).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn alipay() -> Ali {
    alipay_with_apps(&[APP_ID, OTHER_APP_ID]).await
}

impl Ali {
    /// A signed call whose answer must verify with the Alipay public key.
    async fn call(&self, method: &str, biz: Value) -> AliAnswer {
        let params = self.signed(self.params(method, &biz));
        let body = self.post(&params).await;
        let answer = AliAnswer::parse(&body, &format!("{}_response", method.replace('.', "_")));
        assert!(
            answer.verifies_with(&self.alipay.public_pem),
            "{}",
            answer.node_text
        );
        answer
    }

    /// Precreates `out_trade_no` for `total` yuan with `notify_url`.
    async fn precreate(&self, out_trade_no: &str, total: &str, notify_url: &str) {
        let mut params = self.params(
            "alipay.trade.precreate",
            &json!({ "out_trade_no": out_trade_no, "total_amount": total, "subject": "租车费用" }),
        );
        params.insert("notify_url".to_owned(), notify_url.to_owned());
        let body = self.post(&self.signed(params)).await;
        let answer = AliAnswer::parse(&body, "alipay_trade_precreate_response");
        assert_eq!(answer.node["code"], "10000", "{}", answer.node_text);
    }

    /// A precreated and paid trade.
    async fn paid(&self, out_trade_no: &str, total: &str) {
        self.precreate(out_trade_no, total, "https://example.com/n")
            .await;
        assert!(self.fake.pay(out_trade_no));
    }

    async fn refund(&self, out_trade_no: &str, amount: &str, out_request_no: &str) -> AliAnswer {
        self.call(
            "alipay.trade.refund",
            json!({
                "out_trade_no": out_trade_no,
                "refund_amount": amount,
                "out_request_no": out_request_no,
                "refund_reason": "用户取消",
            }),
        )
        .await
    }

    async fn refund_query(&self, out_trade_no: &str, out_request_no: &str) -> AliAnswer {
        self.call(
            "alipay.trade.fastpay.refund.query",
            json!({ "out_trade_no": out_trade_no, "out_request_no": out_request_no }),
        )
        .await
    }

    async fn query(&self, out_trade_no: &str) -> AliAnswer {
        self.call(
            "alipay.trade.query",
            json!({ "out_trade_no": out_trade_no }),
        )
        .await
    }

    async fn bill_url(&self, bill_type: &str, bill_date: &str) -> AliAnswer {
        self.call(
            "alipay.data.dataservice.bill.downloadurl.query",
            json!({ "bill_type": bill_type, "bill_date": bill_date }),
        )
        .await
    }

    /// Asks for the bill of `date` and downloads it: status, content type, bytes.
    async fn download(&self, date: NaiveDate) -> (u16, String, Vec<u8>) {
        let answer = self.bill_url("trade", &date.to_string()).await;
        assert_eq!(answer.node["code"], "10000", "{}", answer.node_text);
        let url = answer.node["bill_download_url"].as_str().unwrap();
        let res = self.http.get(url).send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, res.bytes().await.unwrap().to_vec())
    }

    /// The bill of `date`, downloaded, unzipped and read.
    async fn bill(&self, date: NaiveDate) -> Bill {
        let (status, content_type, bytes) = self.download(date).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/octet-stream");
        Bill::read(&bytes).unwrap()
    }
}

fn get(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn is_alipay_time(text: &str, with_millis: bool) -> bool {
    let format = if with_millis {
        "%Y-%m-%d %H:%M:%S%.3f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    let len = if with_millis { 23 } else { 19 };
    text.len() == len && chrono::NaiveDateTime::parse_from_str(text, format).is_ok()
}

// ---------------------------------------------------------------------------------------------
// A receiver standing in for our notify route
// ---------------------------------------------------------------------------------------------

struct Receiver {
    tx: mpsc::UnboundedSender<(String, String)>,
}

impl Endpoint for Receiver {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let content_type = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let body = req.take_body().into_string().await?;
        let _ = self.tx.send((content_type, body));
        Ok(Response::builder().body("success"))
    }
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = serve(Receiver { tx }).await;
    (format!("http://{addr}/notify"), rx)
}

// ---------------------------------------------------------------------------------------------
// The client's own bill reader
// ---------------------------------------------------------------------------------------------

/// `-?digits.dd` as fen; None for anything else.
fn fen(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = unsigned.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.len() != 2 || !digits(frac) {
        return None;
    }
    let value = whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?;
    Some(if negative { -value } else { value })
}

/// An unzipped bill: entry names, and the two files decoded from GBK.
struct Bill {
    names: Vec<String>,
    /// Whether every entry's local header has the UTF-8 name flag (bit 11).
    utf8_names: bool,
    detail: Option<String>,
    summary: Option<String>,
}

impl Bill {
    fn read(bytes: &[u8]) -> zip::result::ZipResult<Bill> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
        let mut bill = Bill {
            names: Vec::new(),
            utf8_names: true,
            detail: None,
            summary: None,
        };
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i)?;
            let name = String::from_utf8(entry.name_raw().to_vec()).expect("a UTF-8 name");
            assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
            let start = usize::try_from(entry.header_start()).unwrap();
            let flags = u16::from_le_bytes([bytes[start + 6], bytes[start + 7]]);
            bill.utf8_names &= flags & (1 << 11) != 0;
            let mut raw = Vec::new();
            entry.read_to_end(&mut raw)?;
            let (text, _, malformed) = encoding_rs::GBK.decode(&raw);
            assert!(!malformed, "{name} is not GBK");
            if name.ends_with("业务明细.csv") {
                bill.detail = Some(text.into_owned());
            } else if name.ends_with("业务明细(汇总).csv") {
                bill.summary = Some(text.into_owned());
            }
            bill.names.push(name);
        }
        Ok(bill)
    }

    fn detail(&self) -> Detail {
        Detail::parse(self.detail.as_deref().expect("no detail entry"))
    }

    fn summary_row(&self) -> Vec<String> {
        let summary = self.summary.as_deref().expect("no summary entry");
        let line = lines(summary)
            .into_iter()
            .find(|l| l.starts_with("合计"))
            .expect("no 合计 row");
        fields(&line)
    }
}

/// The lines of a file whose every line ends with CRLF.
fn lines(text: &str) -> Vec<String> {
    let body = text
        .strip_suffix("\r\n")
        .expect("the last line ends with CRLF");
    let lines: Vec<String> = body.split("\r\n").map(str::to_owned).collect();
    assert!(lines.iter().all(|l| !l.contains('\n')), "a bare LF");
    lines
}

fn fields(line: &str) -> Vec<String> {
    line.split(',').map(|f| f.trim().to_owned()).collect()
}

/// The detail file, read by column name; `row_lines` are 1-based line numbers.
struct Detail {
    lines: Vec<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// (count, 商家实收) of `#交易合计` and `#退款合计`.
    payments_total: (usize, i64),
    refunds_total: (usize, i64),
}

impl Detail {
    fn parse(text: &str) -> Detail {
        let lines = lines(text);
        let header_at = lines
            .iter()
            .position(|l| l.starts_with("支付宝交易号,"))
            .unwrap();
        let end_at = lines
            .iter()
            .position(|l| l.starts_with('#') && l.contains("业务明细列表结束"))
            .unwrap();
        let header = fields(&lines[header_at]);
        let rows = lines[header_at + 1..end_at]
            .iter()
            .map(|l| fields(l))
            .collect();
        let total = |prefix: &str| {
            let line = lines.iter().find(|l| l.starts_with(prefix)).unwrap();
            let rest = line.strip_prefix(prefix).unwrap();
            let (count, rest) = rest.split_once("笔，商家实收：").unwrap();
            let (amount, rest) = rest.split_once("元，").unwrap();
            assert_eq!(rest, "商家优惠：0.00元");
            (count.parse().unwrap(), fen(amount).unwrap())
        };
        Detail {
            payments_total: total("#交易合计："),
            refunds_total: total("#退款合计："),
            lines,
            header,
            rows,
        }
    }

    fn column(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap()
    }

    fn cell<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        &row[self.column(name)]
    }

    fn rows_of(&self, kind: &str) -> Vec<&Vec<String>> {
        self.rows
            .iter()
            .filter(|r| self.cell(r, "业务类型") == kind)
            .collect()
    }

    /// Sum of a money column over the rows of one kind.
    fn sum(&self, kind: &str, column: &str) -> i64 {
        self.rows_of(kind)
            .iter()
            .map(|r| fen(self.cell(r, column)).unwrap())
            .sum()
    }

    /// The row of `out_trade_no` and `kind` (and `out_request_no` for a refund).
    fn row(&self, kind: &str, out_trade_no: &str, out_request_no: &str) -> &Vec<String> {
        self.rows
            .iter()
            .find(|r| {
                self.cell(r, "业务类型") == kind
                    && self.cell(r, "商户订单号") == out_trade_no
                    && self.cell(r, "退款批次号/请求号") == out_request_no
            })
            .unwrap_or_else(|| panic!("no {kind} row for {out_trade_no} {out_request_no}"))
    }

    /// Every check a client makes: field counts, amounts, kinds and totals.
    fn check(&self) {
        assert_eq!(self.header.len(), 25);
        for row in &self.rows {
            assert_eq!(row.len(), self.header.len(), "{row:?}");
            assert!(["交易", "退款"].contains(&self.cell(row, "业务类型")));
            for column in ["订单金额（元）", "商家实收（元）", "服务费（元）"] {
                assert!(fen(self.cell(row, column)).is_some(), "{row:?}");
            }
        }
        assert_eq!(
            self.payments_total,
            (
                self.rows_of("交易").len(),
                self.sum("交易", "商家实收（元）")
            )
        );
        assert_eq!(
            self.refunds_total,
            (
                self.rows_of("退款").len(),
                self.sum("退款", "商家实收（元）")
            )
        );
    }
}

/// The bill's rows of a day: two paid trades and a refund seeded for `APP_ID`, one trade of
/// the other app, one trade the day before and one the day after.
fn seed_day(fake: &FakeAlipay, date: NaiveDate) {
    fake.seed_paid_order(APP_ID, "BILL_A", 1230, at(date, 10, 15, 2));
    fake.seed_paid_order(APP_ID, "BILL_B", 10000, at(date, 0, 0, 0));
    assert!(fake.seed_refund(APP_ID, "BILL_B", "BILL_B_R1", 500, at(date, 23, 59, 59)));
    fake.seed_paid_order(OTHER_APP_ID, "BILL_OTHER", 777, at(date, 12, 0, 0));
    fake.seed_paid_order(
        APP_ID,
        "BILL_BEFORE",
        100,
        at(date.pred_opt().unwrap(), 23, 59, 59),
    );
    fake.seed_paid_order(
        APP_ID,
        "BILL_AFTER",
        100,
        at(date.succ_opt().unwrap(), 0, 0, 0),
    );
}

fn yesterday() -> NaiveDate {
    today().pred_opt().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refund_completes_at_once_and_its_repeat_moves_no_money() {
    let a = alipay().await;
    a.paid("ALI_R1", "12.30").await;
    let trade_no = a.fake.order("ALI_R1").unwrap().trade_no.unwrap();

    let first = a.refund("ALI_R1", "5.00", "R1").await;
    assert_eq!(first.node["code"], "10000", "{}", first.node_text);
    assert_eq!(first.node["msg"], "Success");
    assert_eq!(first.node["fund_change"], "Y");
    assert_eq!(first.node["refund_fee"], "5.00");
    assert_eq!(first.node["trade_no"], trade_no.as_str());
    assert_eq!(first.node["out_trade_no"], "ALI_R1");
    assert!(first.node["buyer_logon_id"].is_string());
    let paid_back = first.node["gmt_refund_pay"].as_str().unwrap().to_owned();
    assert!(is_alipay_time(&paid_back, false), "{paid_back}");

    let refund = a.fake.refund("ALI_R1", "R1").unwrap();
    assert_eq!(refund.app_id, APP_ID);
    assert_eq!(refund.trade_no, trade_no);
    assert_eq!(refund.amount_fen, 500);
    assert_eq!(refund.reason.as_deref(), Some("用户取消"));
    assert_eq!(refund.gmt_refund_pay, paid_back);
    assert!(refund.gmt_refund.starts_with(&paid_back));
    assert_eq!(a.fake.order("ALI_R1").unwrap().refunded_fen, 500);

    let again = a.refund("ALI_R1", "5.00", "R1").await;
    assert_eq!(again.node["code"], "10000");
    assert_eq!(again.node["fund_change"], "N");
    assert_eq!(again.node["refund_fee"], "5.00");
    assert_eq!(again.node["gmt_refund_pay"], paid_back.as_str());
    assert_eq!(a.fake.order("ALI_R1").unwrap().refunded_fen, 500);
    assert_eq!(a.fake.refunds("ALI_R1").len(), 1);

    let other_amount = a.refund("ALI_R1", "6.00", "R1").await;
    assert_eq!(other_amount.node["code"], "40004");
    assert_eq!(other_amount.node["msg"], "Business Failed");
    assert_eq!(other_amount.sub_code(), "ACQ.DISCORDANT_REPEAT_REQUEST");

    // Partly refunded: still TRADE_SUCCESS.
    let q = a.query("ALI_R1").await;
    assert_eq!(q.node["trade_status"], "TRADE_SUCCESS");

    // The rest: the trade is refunded in full and closes.
    let rest = a.refund("ALI_R1", "7.30", "R2").await;
    assert_eq!(rest.node["fund_change"], "Y");
    assert_eq!(rest.node["refund_fee"], "12.30", "cumulative");
    let order = a.fake.order("ALI_R1").unwrap();
    assert_eq!(order.status, TradeStatus::TradeClosed);
    assert_eq!(order.refunded_fen, 1230);
    let q = a.query("ALI_R1").await;
    assert_eq!(q.node["trade_status"], "TRADE_CLOSED");
    assert_eq!(q.node["total_amount"], "12.30");
    assert_eq!(q.node["buyer_pay_amount"], "12.30", "what was paid");

    // A repeat after the close still answers; anything new is refused.
    let repeat = a.refund("ALI_R1", "5.00", "R1").await;
    assert_eq!(repeat.node["fund_change"], "N");
    assert_eq!(repeat.node["refund_fee"], "12.30");
    let more = a.refund("ALI_R1", "0.01", "R3").await;
    assert_eq!(more.sub_code(), "ACQ.TRADE_STATUS_ERROR");
    assert_eq!(more.node["out_trade_no"], "ALI_R1");
    assert_eq!(a.fake.calls("alipay.trade.refund"), 6);
}

#[tokio::test]
async fn refunds_beyond_what_remains_of_unpaid_or_unknown_trades_are_refused() {
    let a = alipay().await;
    a.paid("ALI_R2", "1.00").await;
    assert_eq!(
        a.refund("ALI_R2", "1.01", "R1").await.sub_code(),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    );
    assert_eq!(a.refund("ALI_R2", "0.50", "R1").await.node["code"], "10000");
    let over = a.refund("ALI_R2", "0.51", "R2").await;
    assert_eq!(over.node["code"], "40004");
    assert_eq!(over.sub_code(), "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    assert!(a.fake.refund("ALI_R2", "R2").is_none());
    assert_eq!(a.fake.order("ALI_R2").unwrap().refunded_fen, 50);

    for bad in ["0", "0.00", "-1.00", "1.001", "abc"] {
        let answer = a.refund("ALI_R2", bad, "R9").await;
        assert_eq!(answer.sub_code(), "ACQ.INVALID_PARAMETER", "{bad}");
    }

    // Scanned but not paid; closed without payment; never scanned; unknown.
    a.precreate("ALI_R3", "2.00", "https://example.com/n").await;
    assert!(a.fake.scan("ALI_R3"));
    assert_eq!(
        a.refund("ALI_R3", "1.00", "R1").await.sub_code(),
        "ACQ.TRADE_STATUS_ERROR"
    );
    let closed = a
        .call("alipay.trade.close", json!({ "out_trade_no": "ALI_R3" }))
        .await;
    assert_eq!(closed.node["code"], "10000");
    assert_eq!(
        a.refund("ALI_R3", "1.00", "R1").await.sub_code(),
        "ACQ.TRADE_STATUS_ERROR"
    );
    a.precreate("ALI_R4", "2.00", "https://example.com/n").await;
    assert_eq!(
        a.refund("ALI_R4", "1.00", "R1").await.sub_code(),
        "ACQ.TRADE_NOT_EXIST"
    );
    assert_eq!(
        a.refund("NO_SUCH_TRADE", "1.00", "R1").await.sub_code(),
        "ACQ.TRADE_NOT_EXIST"
    );

    // Knobs: a merchant balance too low, a system error; neither refunds anything.
    a.fake.fail_next("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH");
    let poor = a.refund("ALI_R2", "0.10", "R5").await;
    assert_eq!(poor.node["code"], "40004");
    assert_eq!(poor.sub_code(), "ACQ.SELLER_BALANCE_NOT_ENOUGH");
    a.fake.fail_next("20000", "ACQ.SYSTEM_ERROR");
    let down = a.refund("ALI_R2", "0.10", "R5").await;
    assert_eq!(down.node["code"], "20000");
    assert_eq!(down.sub_code(), "ACQ.SYSTEM_ERROR");
    assert!(a.fake.refund("ALI_R2", "R5").is_none());
    assert_eq!(
        a.refund("ALI_R2", "0.10", "R5").await.node["fund_change"],
        "Y"
    );
}

#[tokio::test]
async fn the_refund_query_shows_a_refund_or_only_the_numbers() {
    let a = alipay().await;
    a.paid("ALI_Q1", "12.30").await;
    let made = a.refund("ALI_Q1", "5.00", "Q1_R1").await;

    let q = a.refund_query("ALI_Q1", "Q1_R1").await;
    assert_eq!(q.node["code"], "10000");
    assert_eq!(q.node["msg"], "Success");
    assert_eq!(
        q.node["trade_no"],
        json!(a.fake.order("ALI_Q1").unwrap().trade_no)
    );
    assert_eq!(q.node["out_trade_no"], "ALI_Q1");
    assert_eq!(q.node["out_request_no"], "Q1_R1");
    assert_eq!(q.node["total_amount"], "12.30");
    assert_eq!(q.node["refund_amount"], "5.00");
    assert_eq!(q.node["refund_status"], "REFUND_SUCCESS");
    assert_eq!(q.node["gmt_refund_pay"], made.node["gmt_refund_pay"]);

    let none = a.refund_query("ALI_Q1", "Q1_NEVER").await;
    assert_eq!(none.node["code"], "10000");
    assert_eq!(none.node["out_request_no"], "Q1_NEVER");
    assert_eq!(none.node["out_trade_no"], "ALI_Q1");
    assert!(
        none.node.get("refund_amount").is_none(),
        "{}",
        none.node_text
    );
    assert!(none.node.get("refund_status").is_none());

    let unknown = a.refund_query("NO_SUCH_TRADE", "Q1_R1").await;
    assert_eq!(unknown.sub_code(), "ACQ.TRADE_NOT_EXIST");
    assert_eq!(a.fake.calls("alipay.trade.fastpay.refund.query"), 3);
}

#[tokio::test]
async fn refund_reports_on_the_trade_notify_are_signed_and_cumulative() {
    let a = alipay().await;
    let (url, mut rx) = receiver().await;
    a.precreate("ALI_N1", "12.30", &url).await;
    assert!(a.fake.pay("ALI_N1"));
    a.refund("ALI_N1", "5.00", "N1_R1").await;
    a.refund("ALI_N1", "7.30", "N1_R2").await;
    let payment = a.fake.order("ALI_N1").unwrap();

    let first = a.fake.refund_notification("ALI_N1", "N1_R1").unwrap();
    assert!(verify_notification(&a.alipay.public_pem, &first));
    let f = |k: &str| get(&first, k).unwrap_or_default();
    assert_eq!(f("notify_type"), "trade_status_sync");
    assert_eq!(f("trade_status"), "TRADE_SUCCESS", "partly refunded then");
    assert_eq!(f("refund_fee"), "5.00");
    assert_eq!(f("out_biz_no"), "N1_R1");
    assert!(
        is_alipay_time(&f("gmt_refund"), true),
        "{}",
        f("gmt_refund")
    );
    assert_eq!(
        f("gmt_refund"),
        a.fake.refund("ALI_N1", "N1_R1").unwrap().gmt_refund
    );
    assert_eq!(f("total_amount"), "12.30");
    assert_eq!(f("buyer_pay_amount"), "12.30");
    assert_eq!(f("trade_no"), payment.trade_no.clone().unwrap());
    assert_eq!(f("out_trade_no"), "ALI_N1");
    assert_eq!(f("gmt_payment"), payment.gmt_payment.clone().unwrap());
    assert_eq!(f("app_id"), APP_ID);
    assert_eq!(f("sign_type"), "RSA2");
    assert!(get(&first, "gmt_close").is_none());

    let again = a.fake.refund_notification("ALI_N1", "N1_R1").unwrap();
    assert_ne!(get(&again, "notify_id"), get(&first, "notify_id"));

    let last = a.fake.refund_notification("ALI_N1", "N1_R2").unwrap();
    assert!(verify_notification(&a.alipay.public_pem, &last));
    assert_eq!(get(&last, "trade_status").unwrap(), "TRADE_CLOSED");
    assert_eq!(get(&last, "refund_fee").unwrap(), "12.30");
    assert_eq!(get(&last, "out_biz_no").unwrap(), "N1_R2");
    assert!(get(&last, "gmt_close").is_some());

    let mut forged = last.clone();
    forged.retain(|(k, _)| k != "refund_fee");
    forged.push(("refund_fee".to_owned(), "1.00".to_owned()));
    assert!(!verify_notification(&a.alipay.public_pem, &forged));

    assert!(a.fake.refund_notification("ALI_N1", "NOPE").is_none());
    assert!(a.fake.notify_refund("ALI_N1", "NOPE").await.is_none());

    assert_eq!(
        a.fake.notify_refund("ALI_N1", "N1_R1").await,
        Some((200, "success".to_owned()))
    );
    let (content_type, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(content_type.starts_with("application/x-www-form-urlencoded"));
    let posted: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert!(verify_notification(&a.alipay.public_pem, &posted));
    assert_eq!(get(&posted, "out_biz_no").unwrap(), "N1_R1");
    assert_eq!(a.fake.order("ALI_N1").unwrap().notifications_sent, 1);
}

// ---------------------------------------------------------------------------------------------
// Bills
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_bill_url_answer_is_signed_and_only_days_that_are_over_have_a_bill() {
    let a = alipay().await;
    let ok = a.bill_url("trade", &yesterday().to_string()).await;
    assert_eq!(ok.node["code"], "10000");
    assert_eq!(ok.node["msg"], "Success");
    let url = ok.node["bill_download_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/bill/download?token=", a.fake.base_url)),
        "{url}"
    );

    for date in [today(), today().succ_opt().unwrap()] {
        let not_yet = a.bill_url("trade", &date.to_string()).await;
        assert_eq!(not_yet.node["code"], "40004");
        assert_eq!(not_yet.node["msg"], "Business Failed");
        assert_eq!(not_yet.sub_code(), "isp.bill_not_exist");
        assert_eq!(not_yet.node["sub_msg"], "账单不存在");
    }

    a.fake.set_bill_ready(today(), true);
    assert_eq!(
        a.bill_url("trade", &today().to_string()).await.node["code"],
        "10000"
    );
    a.fake.set_bill_ready(yesterday(), false);
    assert_eq!(
        a.bill_url("trade", &yesterday().to_string())
            .await
            .sub_code(),
        "isp.bill_not_exist"
    );

    for bad_date in ["2026-13-01", "2026-1-5", "20261120", "2026-11", ""] {
        let answer = a.bill_url("trade", bad_date).await;
        assert_eq!(answer.node["code"], "40004", "{bad_date}");
        assert_eq!(answer.sub_code(), "isv.invalid-parameter", "{bad_date}");
    }
    let signcustomer = a.bill_url("signcustomer", "2026-11-20").await;
    assert_eq!(signcustomer.sub_code(), "isv.invalid-parameter");
    assert_eq!(
        a.fake
            .calls("alipay.data.dataservice.bill.downloadurl.query"),
        11
    );

    // A download URL is a plain GET; a token the fake never gave is 404.
    let missing = a
        .http
        .get(format!("{}/bill/download?token=nope", a.fake.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(a.fake.calls("/bill/download"), 1);
}

#[tokio::test]
async fn the_bill_lists_the_days_payments_and_refunds_with_their_fees_and_totals() {
    let a = alipay().await;
    let date = yesterday();
    seed_day(&a.fake, date);
    let bill = a.bill(date).await;
    assert_eq!(a.fake.calls("/bill/download"), 1);

    let pid = partner_id(APP_ID);
    assert_eq!(pid.len(), 16);
    assert!(pid.starts_with("2088") && pid.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(pid, partner_id(APP_ID), "deterministic");
    assert_ne!(pid, partner_id(OTHER_APP_ID));
    let stem = format!("{pid}_{}", date.format("%Y%m%d"));
    assert_eq!(
        bill.names,
        vec![
            format!("{stem}_业务明细.csv"),
            format!("{stem}_业务明细(汇总).csv")
        ]
    );
    assert!(bill.utf8_names);

    let detail = bill.detail();
    detail.check();
    let (start, end) = (
        date.format("%Y年%m月%d日 00:00:00"),
        date.succ_opt().unwrap().format("%Y年%m月%d日 00:00:00"),
    );
    assert_eq!(detail.lines[0], "#支付宝业务明细查询");
    assert_eq!(detail.lines[1], format!("#账号：[{pid}]"));
    assert_eq!(
        detail.lines[2],
        format!("#起始日期：[{start}]   终止日期：[{end}]")
    );
    assert!(detail.lines[3].starts_with("#-----") && detail.lines[3].contains("业务明细列表"));
    assert_eq!(detail.rows.len(), 3, "{:?}", detail.lines);
    assert!(detail.lines.last().unwrap().starts_with("#导出时间：["));
    assert_eq!(detail.lines.len(), 4 + 1 + 3 + 4);
    // Each field is followed by a TAB before the comma.
    let raw_row = &detail.lines[5];
    assert!(raw_row.split(',').all(|f| f.ends_with('\t')), "{raw_row:?}");

    let a_row = detail.row("交易", "BILL_A", "");
    let order_a = a.fake.order("BILL_A").unwrap();
    assert_eq!(
        detail.cell(a_row, "支付宝交易号"),
        order_a.trade_no.unwrap()
    );
    assert_eq!(detail.cell(a_row, "商品名称"), order_a.subject);
    assert_eq!(detail.cell(a_row, "完成时间"), format!("{date} 10:15:02"));
    assert_eq!(detail.cell(a_row, "订单金额（元）"), "12.30");
    assert_eq!(detail.cell(a_row, "商家实收（元）"), "12.30");
    assert_eq!(
        detail.cell(a_row, "服务费（元）"),
        "-0.07",
        "0.60% of 12.30"
    );
    assert_eq!(detail.cell(a_row, "支付宝红包（元）"), "0.00");
    assert_eq!(detail.cell(a_row, "退款批次号/请求号"), "");

    let b_row = detail.row("交易", "BILL_B", "");
    assert_eq!(detail.cell(b_row, "服务费（元）"), "-0.60");
    let refund_row = detail.row("退款", "BILL_B", "BILL_B_R1");
    assert_eq!(
        detail.cell(refund_row, "支付宝交易号"),
        detail.cell(b_row, "支付宝交易号")
    );
    assert_eq!(detail.cell(refund_row, "订单金额（元）"), "100.00");
    assert_eq!(detail.cell(refund_row, "商家实收（元）"), "-5.00");
    assert_eq!(detail.cell(refund_row, "服务费（元）"), "0.03");
    assert_eq!(
        detail.cell(refund_row, "完成时间"),
        format!("{date} 23:59:59")
    );
    // Chronological: B paid at midnight, A in the morning, the refund last.
    assert_eq!(
        detail
            .rows
            .iter()
            .map(|r| detail.cell(r, "商户订单号"))
            .collect::<Vec<_>>(),
        ["BILL_B", "BILL_A", "BILL_B"]
    );
    assert_eq!(detail.payments_total, (2, 11230));
    assert_eq!(detail.refunds_total, (1, -500));
    assert_eq!(
        detail.lines[detail.lines.len() - 3],
        "#交易合计：2笔，商家实收：112.30元，商家优惠：0.00元"
    );
    assert_eq!(
        detail.lines[detail.lines.len() - 2],
        "#退款合计：1笔，商家实收：-5.00元，商家优惠：0.00元"
    );

    let summary = bill.summary.as_deref().unwrap();
    let summary_lines = lines(summary);
    assert_eq!(summary_lines[0], "#支付宝业务汇总查询");
    assert_eq!(summary_lines[1], format!("#账号：[{pid}]"));
    assert_eq!(summary_lines.len(), 8);
    assert!(summary_lines[6].contains("业务汇总列表结束"));
    assert!(summary_lines[7].starts_with("#导出时间：["));
    let row = bill.summary_row();
    let fees: i64 = detail.sum("交易", "服务费（元）") + detail.sum("退款", "服务费（元）");
    assert_eq!(fees, -7 - 60 + 3);
    assert_eq!(
        row,
        [
            "合计".to_owned(),
            String::new(),
            "2".to_owned(),
            "1".to_owned(),
            "112.30".to_owned(),
            "-5.00".to_owned(),
            "0.00".to_owned(),
            "0.00".to_owned(),
            "0.00".to_owned(),
            "0.00".to_owned(),
            "0.00".to_owned(),
            format_yuan(fees),
            "0.00".to_owned(),
            format_yuan(11230 - 500 + fees),
        ]
    );
    assert!(
        lines(summary)[5].ends_with("\t"),
        "TAB after the last field"
    );

    // The other app's bill holds only its own trade.
    let other = a.fake.trade_bill(OTHER_APP_ID, date);
    let other = Bill::read(&other).unwrap().detail();
    other.check();
    assert_eq!(other.rows.len(), 1);
    assert_eq!(other.cell(&other.rows[0], "商户订单号"), "BILL_OTHER");
}

#[tokio::test]
async fn fee_rates_and_fixed_fees_change_what_the_rows_print_and_the_totals_follow() {
    let a = alipay().await;
    let date = yesterday();
    seed_day(&a.fake, date);
    a.fake.set_fee_rate_bp(APP_ID, 38);
    a.fake.set_fee_override("BILL_A", -5);
    let bill = a.bill(date).await;
    let detail = bill.detail();
    detail.check();
    assert_eq!(
        detail.cell(detail.row("交易", "BILL_A", ""), "服务费（元）"),
        "-0.05"
    );
    assert_eq!(
        detail.cell(detail.row("交易", "BILL_B", ""), "服务费（元）"),
        "-0.38"
    );
    assert_eq!(
        detail.cell(detail.row("退款", "BILL_B", "BILL_B_R1"), "服务费（元）"),
        "0.02",
        "1.9 fen rounds up"
    );
    let row = bill.summary_row();
    assert_eq!(row[11], "-0.41");
    assert_eq!(row[13], "106.89", "112.30 - 5.00 - 0.41");
}

#[tokio::test]
async fn todays_bill_holds_a_trade_paid_and_refunded_through_the_gateway_once_published() {
    let a = alipay().await;
    a.paid("ALI_B1", "12.30").await;
    a.refund("ALI_B1", "12.30", "B1_R1").await;
    let paid_on: NaiveDate = a.fake.order("ALI_B1").unwrap().gmt_payment.unwrap()[..10]
        .parse()
        .unwrap();
    a.fake.set_bill_ready(paid_on, true);
    let detail = a.bill(paid_on).await.detail();
    detail.check();
    let refund = a.fake.refund("ALI_B1", "B1_R1").unwrap();
    if refund.gmt_refund_pay.starts_with(&paid_on.to_string()) {
        assert_eq!(detail.rows.len(), 2);
        let row = detail.row("退款", "ALI_B1", "B1_R1");
        assert_eq!(detail.cell(row, "商家实收（元）"), "-12.30");
        assert_eq!(detail.cell(row, "完成时间"), refund.gmt_refund_pay);
    }
    let row = detail.row("交易", "ALI_B1", "");
    assert_eq!(detail.cell(row, "商品名称"), "租车费用");
    assert_eq!(detail.cell(row, "商家实收（元）"), "12.30");
}

#[tokio::test]
async fn a_day_without_trades_has_an_empty_bill_with_zero_totals() {
    let a = alipay().await;
    let bill = a.bill(yesterday()).await;
    let detail = bill.detail();
    detail.check();
    assert!(detail.rows.is_empty());
    assert_eq!(detail.payments_total, (0, 0));
    assert_eq!(detail.refunds_total, (0, 0));
    let row = bill.summary_row();
    assert_eq!(&row[2..6], ["0", "0", "0.00", "0.00"]);
    assert_eq!(row[11], "0.00");
    assert_eq!(row[13], "0.00");
}

#[tokio::test]
async fn each_bill_fault_spoils_the_next_download_only() {
    let a = alipay().await;
    let date = yesterday();
    seed_day(&a.fake, date);

    a.fake.corrupt_next_bill(BillFault::WrongTotals);
    let detail = a.bill(date).await.detail();
    assert_eq!(
        detail.payments_total.1,
        detail.sum("交易", "商家实收（元）") + 1
    );
    assert_eq!(detail.refunds_total.1, detail.sum("退款", "商家实收（元）"));
    a.bill(date).await.detail().check();

    a.fake.corrupt_next_bill(BillFault::UnknownRow);
    let bill = a.bill(date).await;
    let detail = bill.detail();
    assert_eq!(detail.rows.len(), 4);
    let other = detail.rows_of("其他");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].len(), 25);
    assert_eq!(detail.payments_total, (2, 11230), "counted in nothing");
    assert_eq!(detail.refunds_total, (1, -500));
    assert_eq!(bill.summary_row()[2], "2");
    a.bill(date).await.detail().check();

    a.fake.corrupt_next_bill(BillFault::MalformedAmount);
    let detail = a.bill(date).await.detail();
    let bad: Vec<_> = detail
        .rows
        .iter()
        .filter(|r| fen(detail.cell(r, "商家实收（元）")).is_none())
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(detail.cell(bad[0], "商家实收（元）"), "12.3x");
    a.bill(date).await.detail().check();

    a.fake.corrupt_next_bill(BillFault::ExtraColumn);
    let detail = a.bill(date).await.detail();
    let widths: Vec<usize> = detail.rows.iter().map(Vec::len).collect();
    assert_eq!(widths, [26, 25, 25]);
    a.bill(date).await.detail().check();

    a.fake.corrupt_next_bill(BillFault::TruncatedZip);
    let (status, _, bytes) = a.download(date).await;
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"PK\x03\x04"));
    assert!(bytes.len() < a.fake.trade_bill(APP_ID, date).len() * 2 / 3);
    assert!(Bill::read(&bytes).is_err(), "a cut archive does not open");
    a.bill(date).await.detail().check();

    a.fake.corrupt_next_bill(BillFault::MissingDetail);
    let bill = a.bill(date).await;
    assert!(bill.detail.is_none());
    assert_eq!(bill.names.len(), 1);
    assert!(bill.names[0].ends_with("业务明细(汇总).csv"));
    assert!(bill.summary.is_some());
    a.bill(date).await.detail().check();
    assert_eq!(a.fake.calls("/bill/download"), 12);
}

#[tokio::test]
async fn a_bill_of_many_rows_is_written_quickly_and_adds_up() {
    let a = alipay().await;
    let date = yesterday();
    let rows: u32 = 20_000;
    for i in 0..rows {
        let paid_at = at(date, 0, 0, 0) + chrono::Duration::seconds(i64::from(i % 86_400));
        a.fake.seed_paid_order(
            APP_ID,
            &format!("BULK_{i:06}"),
            i64::from(i % 5_000 + 1),
            paid_at,
        );
        if i % 10 == 0 {
            assert!(a.fake.seed_refund(
                APP_ID,
                &format!("BULK_{i:06}"),
                &format!("BULK_{i:06}_R"),
                1,
                paid_at + chrono::Duration::seconds(1),
            ));
        }
    }
    let started = Instant::now();
    let bytes = a.fake.trade_bill(APP_ID, date);
    let took = started.elapsed();
    // Unoptimised test build; the benchmark measures the release build with 100,000 rows.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let detail = Bill::read(&bytes).unwrap().detail();
    detail.check();
    assert_eq!(detail.rows.len(), 22_000);
    let expected: i64 = (0..rows).map(|i| i64::from(i % 5_000 + 1)).sum();
    assert_eq!(detail.payments_total, (20_000, expected));
    assert_eq!(detail.refunds_total, (2_000, -2_000));
}
