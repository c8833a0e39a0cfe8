//! The bill parsers against bills written here from the wire-format note (docs of both
//! providers' trade bills), not by the fakes: WeChat Pay's backquoted CSV and Alipay's zip of
//! GBK files, well-formed and spoiled one fault at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, Write};

use encoding_rs::GBK;
use minigate_payments::bill::{
    AlipayBill, BillRow, BillTotals, RowKind, Sha1Writer, TradeBill, WechatBill, amount,
    check_sha1, copy_hashed, sha1_hex,
};
use minigate_payments::notification::Provider;
use minigate_payments::{BillFault, Error};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------- shared

/// Every row of a bill, or the first error.
fn drain(bill: &mut dyn TradeBill) -> Result<Vec<BillRow>, Error> {
    let mut rows = Vec::new();
    while let Some(row) = bill.next_row()? {
        rows.push(row);
    }
    Ok(rows)
}

/// The fault and line of a bill error.
fn fault_of(e: &Error) -> (BillFault, Option<u64>) {
    match e {
        Error::Bill { code, line, .. } => (*code, *line),
        other => panic!("not a bill fault: {other:?}"),
    }
}

fn time(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Test-side fen → yuan text, two decimals.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// Test-side millifen → yuan text, five decimals.
fn yuan5(millifen: i64) -> String {
    let sign = if millifen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:05}",
        millifen.abs() / 100_000,
        millifen.abs() % 100_000
    )
}

// ---------------------------------------------------------------- WeChat Pay writer

const WX_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const WX_SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

fn ticked<S: AsRef<str>>(fields: &[S]) -> String {
    fields
        .iter()
        .map(|f| format!("`{}", f.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

fn wx_payment_fields(at: &str, tx: &str, out: &str, amount: &str, fee: &str) -> Vec<String> {
    [
        at,
        "wx8888888888888888",
        "1900000109",
        "0",
        "",
        tx,
        out,
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "NATIVE",
        "SUCCESS",
        "OTHERS",
        "CNY",
        amount,
        "0.00",
        "0",
        "0",
        "0.00",
        "0.00",
        "",
        "",
        "月租 沪A12345",
        "",
        fee,
        "0.60%",
        amount,
        "0.00",
        "",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn wx_payment(at: &str, tx: &str, out: &str, amount: &str, fee: &str) -> String {
    ticked(&wx_payment_fields(at, tx, out, amount, fee))
}

#[allow(clippy::too_many_arguments)]
fn wx_refund(
    at: &str,
    tx: &str,
    out: &str,
    refund_id: &str,
    out_refund_no: &str,
    amount: &str,
    status: &str,
    fee: &str,
) -> String {
    ticked(&[
        at,
        "wx8888888888888888",
        "1900000109",
        "0",
        "",
        tx,
        out,
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "NATIVE",
        "REFUND",
        "OTHERS",
        "CNY",
        "0.00",
        "0.00",
        refund_id,
        out_refund_no,
        amount,
        "0.00",
        "ORIGINAL",
        status,
        "月租 沪A12345",
        "",
        fee,
        "0.60%",
        "0.00",
        amount,
        "",
    ])
}

/// The summary row: count, 应结, 退款, 充值券退款 (0), 手续费, 订单, 申请退款.
fn wx_summary(rows: u64, settle: &str, refund: &str, fee: &str, order: &str) -> String {
    ticked(&[
        rows.to_string().as_str(),
        settle,
        refund,
        "0.00",
        fee,
        order,
        refund,
    ])
}

fn wx_bill(rows: &[String], summary: &str) -> String {
    let mut text = format!("{WX_HEADER}\r\n");
    for r in rows {
        text.push_str(r);
        text.push_str("\r\n");
    }
    text.push_str(WX_SUMMARY_HEADER);
    text.push_str("\r\n");
    text.push_str(summary);
    text.push_str("\r\n");
    text
}

/// Two payments and a refund of the first, summed by hand.
fn wx_day() -> String {
    wx_bill(
        &[
            wx_payment(
                "2026-11-20 10:15:02",
                "4200002000202611201234567890",
                "0190f6c8a1b27c3d8e9f001122334455",
                "12.30",
                "0.07380",
            ),
            wx_payment(
                "2026-11-20 11:00:00",
                "4200002000202611201234567891",
                "0190f6c8a1b27c3d8e9f001122334456",
                "0.29",
                "0.00174",
            ),
            wx_refund(
                "2026-11-20 18:30:00",
                "4200002000202611201234567890",
                "0190f6c8a1b27c3d8e9f001122334455",
                "50300000002026112012345678901",
                "R0190f6c8a1b27c3d8e9f0011",
                "5.00",
                "PROCESSING",
                "-0.03000",
            ),
        ],
        // 12.30 + 0.29 = 12.59; fees 0.07380 + 0.00174 - 0.03000 = 0.04554.
        &wx_summary(3, "12.59", "5.00", "0.04554", "12.59"),
    )
}

fn wx_read(text: &[u8]) -> Result<(Vec<BillRow>, BillTotals), Error> {
    let mut bill = WechatBill::new(text)?;
    let rows = drain(&mut bill)?;
    Ok((rows, *bill.totals().unwrap()))
}

fn wx_fault(text: &[u8]) -> (BillFault, Option<u64>) {
    fault_of(&wx_read(text).unwrap_err())
}

// ---------------------------------------------------------------- WeChat Pay

#[test]
fn wechat_payments_and_refunds_read_exactly() {
    let text = wx_day();
    let mut bill = WechatBill::new(text.as_bytes()).unwrap();
    assert_eq!(TradeBill::provider(&bill), Provider::Wechat);
    let mut rows = Vec::new();
    while let Some(row) = bill.next_row().unwrap() {
        assert!(bill.totals().is_none(), "totals before the end");
        rows.push(row);
    }
    assert_eq!(
        rows[0],
        BillRow {
            line: 2,
            kind: RowKind::Payment,
            out_trade_no: "0190f6c8a1b27c3d8e9f001122334455".into(),
            provider_trade_no: "4200002000202611201234567890".into(),
            out_refund_no: None,
            provider_refund_no: None,
            refund_status: None,
            at: time("2026-11-20T02:15:02Z"),
            amount_fen: 1230,
            fee_millifen: 7380,
            fee_rate: Some("0.60%".into()),
        }
    );
    // 0.29 is 0.28999… as a float: exact parsing keeps 29 fen.
    assert_eq!((rows[1].amount_fen, rows[1].fee_millifen), (29, 174));
    assert_eq!(
        rows[2],
        BillRow {
            line: 4,
            kind: RowKind::Refund,
            out_trade_no: "0190f6c8a1b27c3d8e9f001122334455".into(),
            provider_trade_no: "4200002000202611201234567890".into(),
            out_refund_no: Some("R0190f6c8a1b27c3d8e9f0011".into()),
            provider_refund_no: Some("50300000002026112012345678901".into()),
            refund_status: Some("PROCESSING".into()),
            at: time("2026-11-20T10:30:00Z"),
            amount_fen: 500,
            fee_millifen: -3000,
            fee_rate: Some("0.60%".into()),
        }
    );
    assert_eq!(
        bill.totals(),
        Some(&BillTotals {
            payments: 2,
            payment_fen: 1259,
            refunds: 1,
            refund_fen: 500,
            fee_millifen: 4554,
        })
    );
    // Finished stays finished.
    assert!(bill.next_row().unwrap().is_none());
}

#[test]
fn wechat_bill_iterates() {
    let text = wx_day();
    let bill = WechatBill::new(text.as_bytes()).unwrap();
    let rows: Result<Vec<_>, _> = bill.collect();
    assert_eq!(rows.unwrap().len(), 3);
}

#[test]
fn wechat_bom_and_bare_line_feeds_are_accepted() {
    let text = format!("\u{feff}{}", wx_day().replace("\r\n", "\n"));
    assert!(text.as_bytes().starts_with(b"\xEF\xBB\xBF"));
    let (rows, totals) = wx_read(text.as_bytes()).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].line, 2);
    assert_eq!(totals.payment_fen, 1259);
    // Blank lines after the summary are not text.
    let text = format!("{}\r\n\r\n", wx_day());
    assert!(wx_read(text.as_bytes()).is_ok());
    // No line end after the summary row.
    let text = wx_day();
    assert!(wx_read(text.trim_end().as_bytes()).is_ok());
}

#[test]
fn wechat_day_without_trades() {
    let text = wx_bill(&[], "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00");
    let (rows, totals) = wx_read(text.as_bytes()).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());
}

#[test]
fn wechat_columns_are_found_by_name() {
    // Reversed column order and a column WeChat might add one day.
    let mut names: Vec<&str> = WX_HEADER.split(',').collect();
    names.reverse();
    names.insert(3, "新增列");
    let mut fields =
        wx_payment_fields("2026-11-20 10:15:02", "42000020", "O-1", "12.30", "0.07380");
    fields.reverse();
    fields.insert(3, "whatever".into());
    let text = format!(
        "{}\r\n{}\r\n{WX_SUMMARY_HEADER}\r\n{}\r\n",
        names.join(","),
        ticked(&fields),
        wx_summary(1, "12.30", "0.00", "0.07380", "12.30")
    );
    let (rows, _) = wx_read(text.as_bytes()).unwrap();
    assert_eq!(rows[0].out_trade_no, "O-1");
    assert_eq!(rows[0].amount_fen, 1230);
    assert_eq!(rows[0].fee_millifen, 7380);
}

#[test]
fn wechat_totals_must_match_the_rows() {
    let good = wx_summary(3, "12.59", "5.00", "0.04554", "12.59");
    for bad in [
        wx_summary(4, "12.59", "5.00", "0.04554", "12.59"),
        wx_summary(3, "12.60", "5.00", "0.04554", "12.59"),
        wx_summary(3, "12.59", "4.99", "0.04554", "12.59"),
        wx_summary(3, "12.59", "5.00", "0.04555", "12.59"),
        wx_summary(3, "12.59", "5.00", "0.04554", "12.58"),
        good.replace("`0.00,", "`0.01,"),
    ] {
        let text = wx_day().replace(&good, &bad);
        assert_ne!(text, wx_day());
        // Header, three rows, summary header: the summary row is line 6.
        assert_eq!(
            wx_fault(text.as_bytes()),
            (BillFault::TotalsMismatch, Some(6)),
            "{bad}"
        );
    }
}

#[test]
fn wechat_unknown_rows_are_refused() {
    let text = wx_day().replace("`NATIVE,`SUCCESS,", "`NATIVE,`REVOKED,");
    assert_eq!(wx_fault(text.as_bytes()), (BillFault::RowUnknown, Some(2)));
    let text = wx_day().replace("`PROCESSING,", "`REFUNDING,");
    assert_eq!(wx_fault(text.as_bytes()), (BillFault::RowUnknown, Some(4)));
    for status in ["SUCCESS", "ABNORMAL", "CLOSED"] {
        let text = wx_day().replace("`PROCESSING,", &format!("`{status},"));
        let (rows, _) = wx_read(text.as_bytes()).unwrap();
        assert_eq!(rows[2].refund_status.as_deref(), Some(status));
    }
}

#[test]
fn wechat_malformed_amounts_are_refused_at_their_line() {
    let row =
        |amount: &str, fee: &str| wx_payment("2026-11-20 10:15:02", "42000020", "O-1", amount, fee);
    for (amount, fee) in [
        ("12.3", "0.07380"),
        ("-12.30", "0.07380"),
        ("12.300", "0.07380"),
        ("1e3", "0.07380"),
        ("12.30", "0.073800"),
        ("12.30", "0.0"),
        ("12.30", "0,07380"),
        ("12.30", "abc"),
        ("", "0.07380"),
    ] {
        let text = wx_bill(
            &[row("1.00", "0.00600"), row(amount, fee)],
            &wx_summary(2, "13.30", "0.00", "0.07980", "13.30"),
        );
        let expected = if fee.contains(',') {
            BillFault::ColumnsUnexpected
        } else {
            BillFault::AmountMalformed
        };
        assert_eq!(
            wx_fault(text.as_bytes()),
            (expected, Some(3)),
            "{amount} {fee}"
        );
    }
    // A refund amount with a sign, and a malformed summary number.
    let text = wx_day().replace("`5.00,`0.00,`ORIGINAL", "`-5.00,`0.00,`ORIGINAL");
    assert_eq!(
        wx_fault(text.as_bytes()),
        (BillFault::AmountMalformed, Some(4))
    );
    let text = wx_day().replace("`0.04554,", "`0.0455x,");
    assert_eq!(
        wx_fault(text.as_bytes()),
        (BillFault::AmountMalformed, Some(6))
    );
}

#[test]
fn wechat_fees_with_fewer_decimals_are_scaled() {
    let text = wx_bill(
        &[wx_payment(
            "2026-11-20 10:15:02",
            "42000020",
            "O-1",
            "12.30",
            "0.07",
        )],
        &wx_summary(1, "12.30", "0.00", "0.07000", "12.30"),
    );
    let (rows, totals) = wx_read(text.as_bytes()).unwrap();
    assert_eq!(rows[0].fee_millifen, 7000);
    assert_eq!(totals.fee_millifen, 7000);
}

#[test]
fn wechat_rows_must_have_the_headers_width() {
    let extra = wx_day().replace("`0.60%,`12.30,`0.00,`", "`0.60%,`12.30,`0.00,`,`");
    assert_eq!(
        wx_fault(extra.as_bytes()),
        (BillFault::ColumnsUnexpected, Some(2))
    );
    let fewer = wx_day().replace("`0.60%,`0.29,`0.00,`", "`0.60%,`0.29,`0.00");
    assert_eq!(
        wx_fault(fewer.as_bytes()),
        (BillFault::ColumnsUnexpected, Some(3))
    );
}

#[test]
fn wechat_header_must_name_every_column() {
    for missing in ["手续费", "交易状态", "费率备注", "用户标识"] {
        let header: Vec<&str> = WX_HEADER.split(',').filter(|n| *n != missing).collect();
        let text = wx_day().replace(WX_HEADER, &header.join(","));
        let e = WechatBill::new(text.as_bytes()).err().unwrap();
        assert_eq!(
            fault_of(&e),
            (BillFault::ColumnsUnexpected, Some(1)),
            "{missing}"
        );
    }
    let e = WechatBill::new(&b""[..]).err().unwrap();
    assert_eq!(fault_of(&e).0, BillFault::Malformed);
}

#[test]
fn wechat_summary_must_end_the_file() {
    // No summary at all.
    let day = wx_day();
    let cut = day.find(WX_SUMMARY_HEADER).unwrap();
    assert_eq!(
        wx_fault(&day.as_bytes()[..cut]),
        (BillFault::Malformed, None)
    );
    // The summary header without its row.
    let cut = day.find("`3,`12.59").unwrap();
    assert_eq!(wx_fault(&day.as_bytes()[..cut]).0, BillFault::Malformed);
    // Text after the summary row.
    let text = format!("{day}\r\n`oops\r\n");
    assert_eq!(wx_fault(text.as_bytes()), (BillFault::Malformed, Some(8)));
    // A row after the summary (the summary is not the last two lines).
    let row = wx_payment("2026-11-20 10:15:02", "42000020", "O-9", "1.00", "0.00600");
    let text = format!("{day}{row}\r\n");
    assert_eq!(wx_fault(text.as_bytes()), (BillFault::Malformed, Some(7)));
}

#[test]
fn wechat_invalid_utf8_is_malformed_at_its_line() {
    let mut bytes = wx_day().into_bytes();
    let at = bytes
        .windows("沪A12345".len())
        .rposition(|w| w == "沪A12345".as_bytes())
        .unwrap();
    bytes[at] = 0xFF;
    assert_eq!(wx_fault(&bytes), (BillFault::Malformed, Some(4)));
}

#[test]
fn wechat_times_are_beijing() {
    let text = wx_day().replace("2026-11-20 10:15:02", "2026-11-20 00:00:00");
    let (rows, _) = wx_read(text.as_bytes()).unwrap();
    assert_eq!(rows[0].at, time("2026-11-19T16:00:00Z"));
    let text = wx_day().replace("2026-11-20 10:15:02", "2026-11-20T10:15:02");
    assert_eq!(wx_fault(text.as_bytes()), (BillFault::Malformed, Some(2)));
}

#[test]
fn a_download_is_believed_only_with_its_digest() {
    let text = wx_day();
    let expected = sha1_hex(text.as_bytes()).unwrap();
    assert_eq!(expected.len(), 40);

    // Written to disk while hashed, then parsed from disk.
    let mut file = tempfile::tempfile().unwrap();
    let (n, actual) = copy_hashed(text.as_bytes(), &mut file).unwrap();
    assert_eq!(n, u64::try_from(text.len()).unwrap());
    check_sha1(&expected.to_uppercase(), &actual).unwrap();
    file.rewind().unwrap();
    let (rows, _) = wx_read_file(file).unwrap();
    assert_eq!(rows.len(), 3);

    // The writer form gives the same digest of the same bytes.
    let mut w = Sha1Writer::new(Vec::new());
    for chunk in text.as_bytes().chunks(7) {
        w.write_all(chunk).unwrap();
    }
    let (bytes, digest) = w.finish();
    assert_eq!(
        (bytes.as_slice(), digest.as_str()),
        (text.as_bytes(), expected.as_str())
    );

    // One byte changed in transit.
    let tampered = text.replace("12.30", "12.31");
    let e = check_sha1(&expected, &sha1_hex(tampered.as_bytes()).unwrap()).unwrap_err();
    assert_eq!(fault_of(&e), (BillFault::HashMismatch, None));
    assert_eq!(e.code(), "BILL_HASH_MISMATCH");
}

fn wx_read_file(file: File) -> Result<(Vec<BillRow>, BillTotals), Error> {
    let mut bill = WechatBill::new(BufReader::new(file))?;
    let rows = drain(&mut bill)?;
    Ok((rows, *bill.totals().unwrap()))
}

/// A WeChat bill of `rows` rows, written as it is read: no copy of the file exists anywhere.
/// Every tenth row refunds 1.00 with 0.00600 of fee back; the others pay 0.01 to 10.00.
struct GeneratedBill {
    rows: u64,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
    payments: i64,
    refunds: i64,
    fees: i64,
}

impl GeneratedBill {
    fn new(rows: u64) -> Self {
        Self {
            rows,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            payments: 0,
            refunds: 0,
            fees: 0,
        }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        let i = self.next;
        self.next += 1;
        let line = if i == 0 {
            WX_HEADER.to_owned()
        } else if i <= self.rows && i.is_multiple_of(10) {
            self.refunds += 100;
            self.fees -= 600;
            wx_refund(
                "2026-11-20 12:00:00",
                &format!("42{i:026}"),
                &format!("O{i}"),
                &format!("503{i:026}"),
                &format!("R{i}"),
                "1.00",
                "SUCCESS",
                "-0.00600",
            )
        } else if i <= self.rows {
            let fen = i64::try_from(i % 1000 + 1).unwrap();
            let fee = fen * 6; // 0.6% in millifen
            self.payments += fen;
            self.fees += fee;
            wx_payment(
                "2026-11-20 12:00:00",
                &format!("42{i:026}"),
                &format!("O{i}"),
                &yuan(fen),
                &yuan5(fee),
            )
        } else if i == self.rows + 1 {
            format!(
                "{WX_SUMMARY_HEADER}\r\n{}",
                wx_summary(
                    self.rows,
                    &yuan(self.payments),
                    &yuan(self.refunds),
                    &yuan5(self.fees),
                    &yuan(self.payments)
                )
            )
        } else {
            return;
        };
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }
}

impl Read for GeneratedBill {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.refill();
        }
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_large_wechat_bill_streams_through() {
    const ROWS: u64 = 200_000;
    let mut bill = WechatBill::new(BufReader::new(GeneratedBill::new(ROWS))).unwrap();
    let (mut payments, mut refunds, mut last_line) = (0u64, 0u64, 0);
    let mut fees = 0i64;
    while let Some(row) = bill.next_row().unwrap() {
        match row.kind {
            RowKind::Payment => payments += 1,
            RowKind::Refund => refunds += 1,
        }
        fees += row.fee_millifen;
        last_line = row.line;
    }
    assert_eq!((payments, refunds), (180_000, 20_000));
    assert_eq!(last_line, ROWS + 1);
    let totals = bill.totals().unwrap();
    assert_eq!((totals.payments, totals.refunds), (180_000, 20_000));
    assert_eq!(totals.refund_fen, 20_000 * 100);
    assert_eq!(totals.fee_millifen, fees);
}

#[test]
fn bill_amounts_parse_exactly() {
    assert_eq!(amount::fen("0.29"), Some(29));
    assert_eq!(amount::millifen("0.07380"), Some(7380));
    assert_eq!(amount::millifen("-0.03000"), Some(-3000));
    assert_eq!(amount::signed_fen("-5.00"), Some(-500));
    assert_eq!(amount::fen("-5.00"), None);
    assert_eq!(amount::fen("99999999999999999999.00"), None);
}

// ---------------------------------------------------------------- Alipay writer

const PID: &str = "2088123412341234";
const ALI_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const ALI_SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,已收入金额（元）,已退款金额（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";

fn detail_name() -> String {
    format!("{PID}_20261120_业务明细.csv")
}

fn summary_name() -> String {
    format!("{PID}_20261120_业务明细(汇总).csv")
}

/// Alipay's row shape: each field followed by a TAB, then the comma.
fn tabbed<S: AsRef<str>>(fields: &[S]) -> String {
    fields
        .iter()
        .map(|f| format!("{}\t", f.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A row: trade number, out_trade_no, kind, 订单金额, 商家实收, request number, 服务费.
#[allow(clippy::too_many_arguments)]
fn ali_row(
    trade_no: &str,
    out: &str,
    kind: &str,
    done: &str,
    order: &str,
    received: &str,
    request_no: &str,
    fee: &str,
) -> String {
    tabbed(&[
        trade_no,
        out,
        kind,
        "月租 沪A12345",
        "2026-11-20 10:14:50",
        done,
        "",
        "",
        "",
        "",
        "bu***@example.com",
        order,
        received,
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "",
        "0.00",
        "0.00",
        request_no,
        fee,
        "0.00",
        "",
    ])
}

fn ali_payment(trade_no: &str, out: &str, amount: &str, fee: &str) -> String {
    ali_row(
        trade_no,
        out,
        "交易",
        "2026-11-20 10:15:02",
        amount,
        amount,
        "",
        fee,
    )
}

fn ali_detail(rows: &[String], trades: (u64, &str), refunds: (u64, &str)) -> String {
    let mut text = format!(
        "#支付宝业务明细查询\r\n#账号：[{PID}]\r\n#起始日期：[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]\r\n#-----------------------------------------业务明细列表----------------------------------------\r\n{ALI_HEADER}\r\n"
    );
    for r in rows {
        text.push_str(r);
        text.push_str("\r\n");
    }
    text.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    text.push_str(&format!(
        "#交易合计：{}笔，商家实收：{}元，商家优惠：0.00元\r\n",
        trades.0, trades.1
    ));
    text.push_str(&format!(
        "#退款合计：{}笔，商家实收：{}元，商家优惠：0.00元\r\n",
        refunds.0, refunds.1
    ));
    text.push_str("#导出时间：[2026年11月21日 09:12:33]\r\n");
    text
}

fn ali_summary(
    payments: u64,
    refunds: u64,
    income: &str,
    refunded: &str,
    fee: &str,
    net: &str,
) -> String {
    let counts = (payments.to_string(), refunds.to_string());
    format!(
        "#支付宝业务汇总查询\r\n#账号：[{PID}]\r\n#起始日期：[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]\r\n#-----------------------------------------业务汇总列表----------------------------------------\r\n{ALI_SUMMARY_HEADER}\r\n{}\r\n#-----------------------------------------业务汇总列表结束------------------------------------\r\n#导出时间：[2026年11月21日 09:12:33]\r\n",
        tabbed(&[
            "合计",
            "",
            counts.0.as_str(),
            counts.1.as_str(),
            income,
            refunded,
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            "0.00",
            fee,
            "0.00",
            net,
        ])
    )
}

/// Two payments (12.30 with 0.07 fee, 0.29 with none) and a refund of 5.00 of the first
/// with 0.03 of fee back.
fn ali_day_rows() -> Vec<String> {
    vec![
        ali_payment(
            "2026112022001400001234567890",
            "0190f6c8a1b2",
            "12.30",
            "-0.07",
        ),
        ali_payment(
            "2026112022001400001234567891",
            "0190f6c8a1b3",
            "0.29",
            "0.00",
        ),
        ali_row(
            "2026112022001400001234567890",
            "0190f6c8a1b2",
            "退款",
            "2026-11-20 18:30:00",
            "12.30",
            "-5.00",
            "R0190f6c8a1b2-1",
            "0.03",
        ),
    ]
}

fn ali_day() -> String {
    ali_detail(&ali_day_rows(), (2, "12.59"), (1, "-5.00"))
}

/// 12.59 in, 5.00 out, fees -0.07 + 0.03 = -0.04: net 7.55.
fn ali_day_summary() -> String {
    ali_summary(2, 1, "12.59", "-5.00", "-0.04", "7.55")
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = GBK.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

/// A zip (deflate) of `entries`, as bytes.
fn zip_bytes(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(name.as_str(), options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn file_of(bytes: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file.rewind().unwrap();
    file
}

fn ali_archive(detail: &str, summary: &str) -> File {
    file_of(&zip_bytes(&[
        (detail_name(), gbk(detail)),
        (summary_name(), gbk(summary)),
    ]))
}

fn ali_read(file: File) -> Result<(Vec<BillRow>, BillTotals), Error> {
    let mut bill = AlipayBill::open(file)?;
    let rows = drain(&mut bill)?;
    Ok((rows, *bill.totals().unwrap()))
}

fn ali_fault(detail: &str, summary: &str) -> (BillFault, Option<u64>) {
    fault_of(&ali_read(ali_archive(detail, summary)).unwrap_err())
}

// ---------------------------------------------------------------- Alipay

#[test]
fn alipay_payments_and_refunds_read_exactly() {
    let mut bill = AlipayBill::open(ali_archive(&ali_day(), &ali_day_summary())).unwrap();
    assert_eq!(TradeBill::provider(&bill), Provider::Alipay);
    let rows = drain(&mut bill).unwrap();
    assert_eq!(
        rows[0],
        BillRow {
            line: 6,
            kind: RowKind::Payment,
            out_trade_no: "0190f6c8a1b2".into(),
            provider_trade_no: "2026112022001400001234567890".into(),
            out_refund_no: None,
            provider_refund_no: None,
            refund_status: None,
            at: time("2026-11-20T02:15:02Z"),
            amount_fen: 1230,
            // Alipay prints -0.07 (taken from the receipts): the merchant pays 7 fen.
            fee_millifen: 7000,
            fee_rate: None,
        }
    );
    assert_eq!((rows[1].amount_fen, rows[1].fee_millifen), (29, 0));
    assert_eq!(
        rows[2],
        BillRow {
            line: 8,
            kind: RowKind::Refund,
            out_trade_no: "0190f6c8a1b2".into(),
            provider_trade_no: "2026112022001400001234567890".into(),
            out_refund_no: Some("R0190f6c8a1b2-1".into()),
            provider_refund_no: None,
            refund_status: Some("SUCCESS".into()),
            at: time("2026-11-20T10:30:00Z"),
            amount_fen: 500,
            fee_millifen: -3000,
            fee_rate: None,
        }
    );
    assert_eq!(
        bill.totals(),
        Some(&BillTotals {
            payments: 2,
            payment_fen: 1259,
            refunds: 1,
            refund_fen: 500,
            fee_millifen: 4000,
        })
    );
    assert!(bill.next_row().unwrap().is_none());
}

#[test]
fn alipay_bill_iterates() {
    let bill = AlipayBill::open(ali_archive(&ali_day(), &ali_day_summary())).unwrap();
    let rows: Result<Vec<_>, _> = bill.collect();
    assert_eq!(rows.unwrap().len(), 3);
}

#[test]
fn alipay_bare_line_feeds_and_an_empty_day() {
    let lf = |s: String| s.replace("\r\n", "\n");
    let (rows, _) = ali_read(ali_archive(&lf(ali_day()), &lf(ali_day_summary()))).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].line, 8);

    let detail = ali_detail(&[], (0, "0.00"), (0, "0.00"));
    let summary = ali_summary(0, 0, "0.00", "0.00", "0.00", "0.00");
    let (rows, totals) = ali_read(ali_archive(&detail, &summary)).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());
}

#[test]
fn alipay_totals_lines_must_match_the_rows() {
    // Preamble 4, header 5, rows 6-8, end marker 9, 交易合计 10, 退款合计 11.
    let rows = ali_day_rows();
    for (trades, refunds, line) in [
        ((3, "12.59"), (1, "-5.00"), 10),
        ((2, "12.60"), (1, "-5.00"), 10),
        ((2, "12.59"), (0, "-5.00"), 11),
        ((2, "12.59"), (1, "-4.99"), 11),
    ] {
        let detail = ali_detail(&rows, trades, refunds);
        assert_eq!(
            ali_fault(&detail, &ali_day_summary()),
            (BillFault::TotalsMismatch, Some(line)),
            "{trades:?} {refunds:?}"
        );
    }
}

#[test]
fn alipay_summary_file_must_match_the_rows() {
    for summary in [
        ali_summary(3, 1, "12.59", "-5.00", "-0.04", "7.55"),
        ali_summary(2, 2, "12.59", "-5.00", "-0.04", "7.55"),
        ali_summary(2, 1, "12.58", "-5.00", "-0.04", "7.55"),
        ali_summary(2, 1, "12.59", "-5.01", "-0.04", "7.55"),
        ali_summary(2, 1, "12.59", "-5.00", "-0.05", "7.55"),
        ali_summary(2, 1, "12.59", "-5.00", "-0.04", "7.56"),
    ] {
        assert_eq!(
            ali_fault(&ali_day(), &summary),
            (BillFault::TotalsMismatch, None)
        );
    }
    // Without its 合计 row.
    let summary = ali_day_summary()
        .lines()
        .filter(|l| !l.starts_with("合计"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let e = AlipayBill::open(ali_archive(&ali_day(), &summary))
        .err()
        .unwrap();
    assert_eq!(fault_of(&e), (BillFault::Malformed, None));
}

#[test]
fn alipay_rows_are_checked_at_their_line() {
    let detail = ali_day().replace("退款\t", "冻结\t");
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::RowUnknown, Some(8))
    );

    let detail = ali_day().replace("0.29\t,0.29\t", "0.29\t,0.2x\t");
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::AmountMalformed, Some(7))
    );
    let detail = ali_day().replace("-0.07\t", "-0.070\t");
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::AmountMalformed, Some(6))
    );
    let detail = ali_day().replace("\t,-5.00\t", "\t,5.00\t");
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::AmountMalformed, Some(8))
    );

    let detail = ali_day().replace("0.29\t,0.29\t", "0.29\t,0.29\t,0.00\t");
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::ColumnsUnexpected, Some(7))
    );
}

#[test]
fn alipay_header_must_name_every_column() {
    let header = ALI_HEADER.replace(",服务费（元）", "");
    let detail = ali_day().replace(ALI_HEADER, &header);
    let e = AlipayBill::open(ali_archive(&detail, &ali_day_summary()))
        .err()
        .unwrap();
    assert_eq!(fault_of(&e), (BillFault::ColumnsUnexpected, Some(5)));
}

#[test]
fn alipay_totals_lines_are_required_and_end_the_rows() {
    let without = |prefix: &str| {
        ali_day()
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(prefix))
            .collect::<String>()
    };
    assert_eq!(
        ali_fault(&without("#交易合计"), &ali_day_summary()),
        (BillFault::Malformed, None)
    );
    assert_eq!(
        ali_fault(&without("#退款合计"), &ali_day_summary()),
        (BillFault::Malformed, None)
    );

    // A row after the list's end.
    let detail = format!("{}{}\r\n", ali_day(), ali_day_rows()[1]);
    assert_eq!(
        ali_fault(&detail, &ali_day_summary()),
        (BillFault::Malformed, Some(13))
    );
}

#[test]
fn alipay_invalid_gbk_is_malformed_at_its_line() {
    let mut detail = gbk(&ali_day());
    let marker = gbk("沪A12345");
    let at = detail
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    detail[at] = 0xFF;
    let file = file_of(&zip_bytes(&[
        (detail_name(), detail),
        (summary_name(), gbk(&ali_day_summary())),
    ]));
    assert_eq!(
        fault_of(&ali_read(file).unwrap_err()),
        (BillFault::Malformed, Some(6))
    );
}

#[test]
fn alipay_broken_archives_are_corrupt() {
    let whole = zip_bytes(&[
        (detail_name(), gbk(&ali_day())),
        (summary_name(), gbk(&ali_day_summary())),
    ]);
    let corrupt = |bytes: &[u8]| {
        let e = ali_read(file_of(bytes)).unwrap_err();
        assert_eq!(fault_of(&e), (BillFault::ArchiveCorrupt, None));
        assert_eq!(e.code(), "BILL_ARCHIVE_CORRUPT");
    };
    // Truncated downloads.
    corrupt(&whole[..whole.len() / 2]);
    corrupt(&whole[..whole.len() - 10]);
    // Not a zip at all, and an empty file.
    corrupt(gbk(&ali_day()).as_slice());
    corrupt(b"");
    // Without the detail file, or without the summary file.
    corrupt(&zip_bytes(&[(summary_name(), gbk(&ali_day_summary()))]));
    corrupt(&zip_bytes(&[(detail_name(), gbk(&ali_day()))]));
}

/// Finds `magic` in `bytes` and XORs the four bytes at `offset` after it.
fn spoil_after(bytes: &mut [u8], magic: &[u8], offset: usize) {
    let at = bytes.windows(magic.len()).position(|w| w == magic).unwrap();
    for b in &mut bytes[at + offset..at + offset + 4] {
        *b ^= 0x5A;
    }
}

#[test]
fn alipay_corruption_found_mid_entry_is_corrupt() {
    // A detail file of a few hundred kilobytes whose stored CRC is wrong: its rows stream out
    // until the end of the entry shows the damage.
    let rows: Vec<String> = (0..3000)
        .map(|i| {
            ali_payment(
                &format!("20261120220014{i:014}"),
                &format!("O{i}"),
                "1.00",
                "-0.01",
            )
        })
        .collect();
    let detail = ali_detail(&rows, (3000, "3000.00"), (0, "0.00"));
    let summary = ali_summary(3000, 0, "3000.00", "0.00", "-30.00", "2970.00");
    let mut bytes = zip_bytes(&[
        (detail_name(), gbk(&detail)),
        (summary_name(), gbk(&summary)),
    ]);
    // Untouched, it reads.
    let (read, _) = ali_read(file_of(&bytes)).unwrap();
    assert_eq!(read.len(), 3000);
    // The CRC in the local header (offset 14) and in the central directory (offset 16) of the
    // first entry, the detail file.
    spoil_after(&mut bytes, b"PK\x03\x04", 14);
    spoil_after(&mut bytes, b"PK\x01\x02", 16);
    let mut bill = AlipayBill::open(file_of(&bytes)).unwrap();
    let mut streamed = 0;
    let e = loop {
        match bill.next_row() {
            Ok(Some(_)) => streamed += 1,
            Ok(None) => panic!("a damaged archive was believed"),
            Err(e) => break e,
        }
    };
    assert_eq!(streamed, 3000);
    assert_eq!(fault_of(&e).0, BillFault::ArchiveCorrupt);
    assert!(bill.totals().is_none());
    // The fault stays.
    assert_eq!(
        fault_of(&bill.next_row().unwrap_err()).0,
        BillFault::ArchiveCorrupt
    );
}

#[test]
fn bills_can_move_to_a_blocking_task() {
    fn send<T: Send>() {}
    send::<AlipayBill>();
    send::<WechatBill<BufReader<File>>>();
}

#[test]
fn alipay_bill_dropped_half_read_stops_its_reader() {
    let rows: Vec<String> = (0..3000)
        .map(|i| {
            ali_payment(
                &format!("20261120220014{i:014}"),
                &format!("O{i}"),
                "1.00",
                "-0.01",
            )
        })
        .collect();
    let detail = ali_detail(&rows, (3000, "3000.00"), (0, "0.00"));
    let summary = ali_summary(3000, 0, "3000.00", "0.00", "-30.00", "2970.00");
    let mut bill = AlipayBill::open(ali_archive(&detail, &summary)).unwrap();
    assert!(bill.next_row().unwrap().is_some());
    drop(bill);
}
