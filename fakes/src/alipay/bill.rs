//! The trade bill writer: the detail file (业务明细) and the summary file (业务明细(汇总)) of
//! one app and one Beijing day, GBK-encoded with CRLF line ends, zipped with deflate, exactly
//! in the shape the shared wire-format note describes.
//!
//! The bill of day D holds a 交易 row for each trade paid on D (完成时间 = the payment time)
//! and a 退款 row for each refund completed on D, in the order of 完成时间. Alipay charges a
//! service fee on each payment (a negative 服务费) and gives the same rate of a refund back (a
//! positive one): round-half-up of amount × rate in basis points / 10000, in fen, unless a
//! test fixed a payment's fee. Every total is the sum of what the rows print, so a client's
//! checks hold unless a `BillFault` spoils the file on purpose.
//!
//! A bill with 100,000 rows is one `String` built with `write!`, encoded to GBK once and
//! deflated once; the text is written under the fake's lock, the encoding and zipping are not.

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::io::{Cursor, Write as _};

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use encoding_rs::GBK;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::money::Yuan;
use super::{BillFault, FakeOrder, FakeRefund, State, partner_id};
use crate::support;

/// The service fee when a test set none for the app: 0.60%.
pub(super) const DEFAULT_FEE_BP: u32 = 60;
/// Deflate level: the fake's archives are made for tests and benchmarks, so speed matters
/// more than size.
const DEFLATE_LEVEL: i64 = 1;

const DETAIL_TITLE: &str = "#支付宝业务明细查询";
const DETAIL_OPEN: &str = "#-----------------------------------------业务明细列表----------------------------------------";
const DETAIL_CLOSE: &str = "#-----------------------------------------业务明细列表结束------------------------------------";
const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const SUMMARY_TITLE: &str = "#支付宝业务汇总查询";
const SUMMARY_OPEN: &str = "#-----------------------------------------业务汇总列表----------------------------------------";
const SUMMARY_CLOSE: &str = "#-----------------------------------------业务汇总列表结束------------------------------------";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,已收入金额（元）,已退款金额（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
/// What `BillFault::MalformedAmount` writes as a 商家实收.
const MALFORMED_AMOUNT: &str = "12.3x";
const CRLF: &str = "\r\n";

/// The two files of one bill, as text (UTF-8 until `archive` encodes them).
pub(super) struct BillFiles {
    pid: String,
    date: NaiveDate,
    detail: String,
    summary: String,
}

/// One detail row: a payment or a refund.
#[derive(Clone, Copy)]
enum Row<'a> {
    Payment(&'a FakeOrder),
    Refund(&'a FakeRefund, &'a FakeOrder),
}

impl<'a> Row<'a> {
    /// 完成时间: when the payment or the refund completed.
    fn done(self) -> &'a str {
        match self {
            Row::Payment(order) => order.gmt_payment.as_deref().unwrap_or_default(),
            Row::Refund(refund, _) => &refund.gmt_refund_pay,
        }
    }

    /// Chronological, then payments before refunds, then by number: the same bill twice.
    fn sort_key(self) -> (&'a str, u8, &'a str, &'a str) {
        match self {
            Row::Payment(order) => (self.done(), 0, &order.out_trade_no, ""),
            Row::Refund(refund, _) => {
                (self.done(), 1, &refund.out_trade_no, &refund.out_request_no)
            }
        }
    }
}

/// The fields of a detail row that vary; every other field is empty or `0.00`.
struct Line<'a> {
    trade_no: &'a str,
    out_trade_no: &'a str,
    kind: &'a str,
    subject: &'a str,
    created: &'a str,
    done: &'a str,
    account: &'a str,
    order_amount: i64,
    received: i64,
    request_no: &'a str,
    fee: i64,
}

/// Counts and sums over the rows, of exactly what they print.
#[derive(Default)]
struct Totals {
    payments: usize,
    income: i64,
    refunds: usize,
    refunded: i64,
    fee: i64,
}

/// Writes the bill of `app_id` for `date` from the fake's trades, spoiled by `fault` if the
/// fault is one in the text.
pub(super) fn write(
    state: &State,
    app_id: &str,
    date: NaiveDate,
    fault: Option<BillFault>,
) -> BillFiles {
    let rows = rows(state, app_id, date);
    let bp = state
        .fee_rate_bp
        .get(app_id)
        .copied()
        .unwrap_or(DEFAULT_FEE_BP);
    let pid = partner_id(app_id);
    let period = period(date);
    let exported = support::now_beijing().naive_local();

    let mut detail = String::with_capacity(rows.len() * 320 + 2048);
    // Writing into a String cannot fail; `fmt::Result` is only threaded through.
    let _ = write_detail_head(&mut detail, &pid, &period);
    let mut totals = Totals::default();
    for (index, row) in rows.iter().enumerate() {
        let line = line_of(state, *row, bp);
        if line.kind == "交易" {
            totals.payments += 1;
            totals.income += line.received;
        } else {
            totals.refunds += 1;
            totals.refunded += line.received;
        }
        totals.fee += line.fee;
        let spoil = fault.filter(|_| index == 0);
        let _ = write_line(&mut detail, &line, spoil);
    }
    if fault == Some(BillFault::UnknownRow) {
        let _ = write_unknown_row(&mut detail, date);
    }
    let claimed_income = match fault {
        Some(BillFault::WrongTotals) => totals.income + 1,
        _ => totals.income,
    };
    let _ = write_detail_tail(&mut detail, &totals, claimed_income, exported);

    let mut summary = String::with_capacity(2048);
    let _ = write_summary(&mut summary, &pid, &period, &totals, exported);
    BillFiles {
        pid,
        date,
        detail,
        summary,
    }
}

/// The payments and refunds of `app_id` completed on `date`, in bill order.
fn rows<'a>(state: &'a State, app_id: &str, date: NaiveDate) -> Vec<Row<'a>> {
    let day = date.format("%Y-%m-%d").to_string();
    let on_day = |time: &str| time.starts_with(&day);
    let mut rows: Vec<Row<'a>> = state
        .orders
        .values()
        .filter(|o| o.app_id == app_id && o.gmt_payment.as_deref().is_some_and(on_day))
        .map(Row::Payment)
        .collect();
    rows.extend(
        state
            .refunds
            .iter()
            .filter(|r| r.app_id == app_id && on_day(&r.gmt_refund_pay))
            .filter_map(|r| {
                let order = state
                    .orders
                    .get(&(r.app_id.clone(), r.out_trade_no.clone()))?;
                Some(Row::Refund(r, order))
            }),
    );
    rows.sort_by_key(|r| r.sort_key());
    rows
}

/// What a row prints.
fn line_of<'a>(state: &'a State, row: Row<'a>, bp: u32) -> Line<'a> {
    match row {
        Row::Payment(order) => {
            let amount = order.reported_total();
            Line {
                trade_no: order.trade_no.as_deref().unwrap_or_default(),
                out_trade_no: &order.out_trade_no,
                kind: "交易",
                subject: &order.subject,
                created: order.gmt_create.as_deref().unwrap_or_default(),
                done: row.done(),
                account: order.buyer_logon_id.as_deref().unwrap_or_default(),
                order_amount: amount,
                received: amount,
                request_no: "",
                fee: state
                    .fee_override
                    .get(&order.out_trade_no)
                    .copied()
                    .unwrap_or_else(|| -fee(amount, bp)),
            }
        }
        Row::Refund(refund, order) => Line {
            trade_no: &refund.trade_no,
            out_trade_no: &refund.out_trade_no,
            kind: "退款",
            subject: &order.subject,
            created: order.gmt_create.as_deref().unwrap_or_default(),
            done: row.done(),
            account: order.buyer_logon_id.as_deref().unwrap_or_default(),
            order_amount: order.reported_total(),
            received: -refund.amount_fen,
            request_no: &refund.out_request_no,
            fee: fee(refund.amount_fen, bp),
        },
    }
}

/// round-half-up(amount × bp / 10000) fen, for a non-negative amount.
pub(super) fn fee(amount_fen: i64, bp: u32) -> i64 {
    let scaled = i128::from(amount_fen.max(0)) * i128::from(bp);
    i64::try_from((scaled + 5_000) / 10_000).unwrap_or(i64::MAX)
}

/// `[2026年11月20日 00:00:00]   终止日期：[2026年11月21日 00:00:00]`'s two times.
fn period(date: NaiveDate) -> (String, String) {
    let start = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let end = date
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(start);
    (chinese_time(start), chinese_time(end))
}

/// `2026年11月20日 00:00:00`
fn chinese_time(t: NaiveDateTime) -> String {
    t.format("%Y年%m月%d日 %H:%M:%S").to_string()
}

fn write_detail_head(out: &mut String, pid: &str, period: &(String, String)) -> fmt::Result {
    write!(out, "{DETAIL_TITLE}{CRLF}")?;
    write_account_and_period(out, pid, period)?;
    write!(out, "{DETAIL_OPEN}{CRLF}{DETAIL_HEADER}{CRLF}")
}

fn write_account_and_period(
    out: &mut String,
    pid: &str,
    (start, end): &(String, String),
) -> fmt::Result {
    write!(out, "#账号：[{pid}]{CRLF}")?;
    write!(out, "#起始日期：[{start}]   终止日期：[{end}]{CRLF}")
}

/// One row: each field followed by a TAB, fields separated by commas. `spoil` applies the
/// faults that change a row (`MalformedAmount`, `ExtraColumn`); others are ignored here.
fn write_line(out: &mut String, line: &Line<'_>, spoil: Option<BillFault>) -> fmt::Result {
    let received: &dyn Display = match spoil {
        Some(BillFault::MalformedAmount) => &MALFORMED_AMOUNT,
        _ => &Yuan(line.received),
    };
    write!(
        out,
        "{}\t,{}\t,{}\t,{}\t,{}\t,{}\t,\t,\t,\t,\t,{}\t,{}\t,{}\t,\
         0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,{}\t,{}\t,0.00\t,\t",
        clean(line.trade_no),
        clean(line.out_trade_no),
        line.kind,
        clean(line.subject),
        line.created,
        line.done,
        clean(line.account),
        Yuan(line.order_amount),
        received,
        clean(line.request_no),
        Yuan(line.fee),
    )?;
    if spoil == Some(BillFault::ExtraColumn) {
        out.push_str(",多余的列\t");
    }
    out.push_str(CRLF);
    Ok(())
}

/// `BillFault::UnknownRow`: a row of a business type the client does not know.
fn write_unknown_row(out: &mut String, date: NaiveDate) -> fmt::Result {
    let day = date.format("%Y-%m-%d").to_string();
    let at = format!("{day} 12:00:00");
    let trade_no = format!("{}22001000000000000000", date.format("%Y%m%d"));
    let line = Line {
        trade_no: &trade_no,
        out_trade_no: "OTHER_ROW_0001",
        kind: "其他",
        subject: "其他业务",
        created: &at,
        done: &at,
        account: "",
        order_amount: 100,
        received: 100,
        request_no: "",
        fee: 0,
    };
    write_line(out, &line, None)
}

fn write_detail_tail(
    out: &mut String,
    totals: &Totals,
    claimed_income: i64,
    exported: NaiveDateTime,
) -> fmt::Result {
    write!(out, "{DETAIL_CLOSE}{CRLF}")?;
    write!(
        out,
        "#交易合计：{}笔，商家实收：{}元，商家优惠：0.00元{CRLF}",
        totals.payments,
        Yuan(claimed_income)
    )?;
    write!(
        out,
        "#退款合计：{}笔，商家实收：{}元，商家优惠：0.00元{CRLF}",
        totals.refunds,
        Yuan(totals.refunded)
    )?;
    write!(out, "#导出时间：[{}]{CRLF}", chinese_time(exported))
}

fn write_summary(
    out: &mut String,
    pid: &str,
    period: &(String, String),
    totals: &Totals,
    exported: NaiveDateTime,
) -> fmt::Result {
    write!(out, "{SUMMARY_TITLE}{CRLF}")?;
    write_account_and_period(out, pid, period)?;
    write!(out, "{SUMMARY_OPEN}{CRLF}{SUMMARY_HEADER}{CRLF}")?;
    let net = totals.income + totals.refunded + totals.fee;
    write!(
        out,
        "合计\t,\t,{}\t,{}\t,{}\t,{}\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,{}\t,0.00\t,{}\t{CRLF}",
        totals.payments,
        totals.refunds,
        Yuan(totals.income),
        Yuan(totals.refunded),
        Yuan(totals.fee),
        Yuan(net),
    )?;
    write!(out, "{SUMMARY_CLOSE}{CRLF}")?;
    write!(out, "#导出时间：[{}]{CRLF}", chinese_time(exported))
}

/// Free text as one field: a comma, quote, TAB or line break would break the row apart, so
/// they become their full-width forms or a space. Borrowed when there is nothing to change.
fn clean(text: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, ',' | '"' | '\t' | '\r' | '\n');
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                ',' => '，',
                '"' => '＂',
                c if special(c) => ' ',
                c => c,
            })
            .collect(),
    )
}

/// The zip archive of the bill: both files GBK-encoded and deflated, entry names in UTF-8,
/// spoiled by `fault` if the fault is one in the archive.
pub(super) fn archive(files: &BillFiles, fault: Option<BillFault>) -> Vec<u8> {
    let stem = format!("{}_{}", files.pid, files.date.format("%Y%m%d"));
    let mut entries = Vec::with_capacity(2);
    if fault != Some(BillFault::MissingDetail) {
        entries.push((format!("{stem}_业务明细.csv"), files.detail.as_str()));
    }
    entries.push((format!("{stem}_业务明细(汇总).csv"), files.summary.as_str()));
    let mut bytes = zip_gbk(&entries)
        .unwrap_or_else(|e| panic!("fake Alipay could not zip a bill in memory: {e}"));
    if fault == Some(BillFault::TruncatedZip) {
        bytes.truncate(bytes.len() / 2);
    }
    bytes
}

fn zip_gbk(entries: &[(String, &str)]) -> zip::result::ZipResult<Vec<u8>> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(zip_time(support::now_beijing().naive_local()));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, text) in entries {
        zip.start_file(name.as_str(), options)?;
        let (gbk, _, _) = GBK.encode(text);
        zip.write_all(&gbk)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// A zip entry's (DOS) time; the zip default (1980) if `t` cannot be one.
fn zip_time(t: NaiveDateTime) -> zip::DateTime {
    let field = |v: u32| u8::try_from(v).ok();
    let parts = (
        u16::try_from(t.year()).ok(),
        field(t.month()),
        field(t.day()),
        field(t.hour()),
        field(t.minute()),
        field(t.second()),
    );
    match parts {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
            zip::DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or_default()
        }
        _ => zip::DateTime::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up() {
        assert_eq!(fee(1230, 60), 7, "7.38 fen");
        assert_eq!(fee(250, 60), 2, "1.5 fen rounds up");
        assert_eq!(fee(249, 60), 1, "1.494 fen");
        assert_eq!(fee(0, 60), 0);
        assert_eq!(fee(500, 0), 0);
    }

    #[test]
    fn a_row_has_the_headers_25_fields_each_followed_by_a_tab() {
        let line = Line {
            trade_no: "2026112022001000000000000001",
            out_trade_no: "A_1",
            kind: "交易",
            subject: "月租, \"A\"",
            created: "2026-11-20 10:00:00",
            done: "2026-11-20 10:00:05",
            account: "159****1234",
            order_amount: 1230,
            received: 1230,
            request_no: "",
            fee: -7,
        };
        let mut out = String::new();
        write_line(&mut out, &line, None).ok();
        let row = out.strip_suffix(CRLF).unwrap_or_default();
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), DETAIL_HEADER.split(',').count());
        assert!(fields.iter().all(|f| f.ends_with('\t')), "{row:?}");
        assert_eq!(fields.get(3).copied(), Some("月租， ＂A＂\t"));
        assert_eq!(fields.get(12).copied(), Some("12.30\t"));
        assert_eq!(fields.get(22).copied(), Some("-0.07\t"));

        let mut spoiled = String::new();
        write_line(&mut spoiled, &line, Some(BillFault::ExtraColumn)).ok();
        assert_eq!(spoiled.split(',').count(), 26);
    }

    #[test]
    fn the_period_ends_at_the_next_midnight() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default();
        assert_eq!(
            period(date),
            (
                "2026年12月31日 00:00:00".to_owned(),
                "2027年01月01日 00:00:00".to_owned()
            )
        );
    }
}
