//! The daily trade bill (`bill_type=ALL`): which days have one, the CSV file made from the
//! fake's orders and refunds, and the faults a test can put into the next one.
//!
//! The file follows the shared bill spec: UTF-8 with a BOM, CRLF line ends, the 27-name detail
//! header, one backquoted row per payment (orders whose `success_time` is on the day) and per
//! refund (refunds whose `create_time` is on the day, with their status at the time the bill is
//! made), then the summary header and the summary row computed from the rows as written.
//!
//! Fees are charged per merchant in basis points (60 = 0.60 %): a payment's fee is its amount
//! times the rate rounded half up to the fen, a refund gives back the fee of its amount
//! (rounded the same way) as a negative fee. Fees are printed in yuan with 5 decimals, so the
//! code keeps them in millifen (1/1000 fen).
//!
//! The bill is made when the `tradebill` answer is made and kept under the download token, so
//! the SHA-1 in the answer is the one of the bytes the download serves.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use chrono::{DateTime, NaiveDate};

use super::{FakeOrder, FakeRefund, State, TradeState};
use crate::support;

/// The rate a merchant pays unless a test set another: 0.60 %, WeChat's usual one.
pub(super) const DEFAULT_FEE_RATE_BP: u32 = 60;

const DETAIL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,\
用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,\
退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

const BOM: &str = "\u{feff}";

/// Rough length of a detail row, to size the buffer once.
const ROW_BYTES: usize = 280;

/// A defect [`super::FakeWechatPay::corrupt_next_bill`] puts into the next bill, so that a
/// client's checks can be seen to work. Row faults hit the first detail row; on a day without
/// trades a made-up payment row (counted in the summary) carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillFault {
    /// The `hash_value` in the `tradebill` answer is not the SHA-1 of the file.
    WrongHash,
    /// The summary's 应结订单总金额 is 0.01 more than the rows add up to.
    WrongTotals,
    /// One more detail row, with 交易状态 `REVOKED`; the summary counts it, so only the row is
    /// at fault.
    UnknownRow,
    /// One row's 应结订单金额 is written `12.3x`.
    MalformedAmount,
    /// One row has one backquoted field more than the header.
    ExtraColumn,
    /// The last two lines (summary header and row) are left out.
    MissingSummary,
}

/// What the fake knows about bills, beside the orders and refunds they are made of.
#[derive(Default)]
pub(super) struct Bills {
    /// Days a test published (`true`) or held back (`false`), overriding the default.
    pub(super) ready: HashMap<NaiveDate, bool>,
    /// Days whose bill is still being generated.
    pub(super) creating: HashSet<NaiveDate>,
    /// mchid → fee rate in basis points.
    pub(super) fee_rate_bp: HashMap<String, u32>,
    /// `out_trade_no` (payment row) or `out_refund_no` (refund row) → the fee to print, in
    /// millifen.
    pub(super) fee_override: HashMap<String, i64>,
    pub(super) next_fault: Option<BillFault>,
    /// Download token → the file made for it.
    files: HashMap<String, BillFile>,
}

struct BillFile {
    mchid: String,
    bytes: Vec<u8>,
}

/// Whether a day's bill can be had, as the `tradebill` route answers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Availability {
    Ready,
    /// STATEMENT_CREATING
    Creating,
    /// NO_STATEMENT_EXIST
    Missing,
    /// PARAM_ERROR: the day is today (and no test published it) or later.
    NotPast,
}

/// A bill handed out: where to fetch it and the hash the answer states.
pub(super) struct Issued {
    pub(super) token: String,
    pub(super) hash_value: String,
}

impl Bills {
    /// By default every day before `today` has a bill and today has none; a test's
    /// [`Bills::ready`] entry overrides that, but a future day never has one.
    pub(super) fn availability(&self, date: NaiveDate, today: NaiveDate) -> Availability {
        if date > today {
            return Availability::NotPast;
        }
        if self.creating.contains(&date) {
            return Availability::Creating;
        }
        match self.ready.get(&date) {
            Some(true) => Availability::Ready,
            Some(false) => Availability::Missing,
            None if date < today => Availability::Ready,
            None => Availability::NotPast,
        }
    }

    /// The bytes behind a download token, if it was issued to this merchant.
    pub(super) fn file(&self, token: &str, mchid: &str) -> Option<&[u8]> {
        self.files
            .get(token)
            .filter(|f| f.mchid == mchid)
            .map(|f| f.bytes.as_slice())
    }

    fn fee_rate(&self, mchid: &str) -> u32 {
        self.fee_rate_bp
            .get(mchid)
            .copied()
            .unwrap_or(DEFAULT_FEE_RATE_BP)
    }
}

/// Makes the merchant's bill of `date` (with the pending fault, which is used up), keeps it
/// under a new token and returns the token with the hash to announce.
pub(super) fn issue(state: &mut State, mchid: &str, date: NaiveDate) -> Issued {
    let fault = state.bills.next_fault.take();
    let bytes = render(state, mchid, date, fault);
    let mut hash_value = sha1_hex(&bytes);
    if fault == Some(BillFault::WrongHash) {
        hash_value = wrong_hash(&hash_value);
    }
    let token = support::random_hex();
    state.bills.files.insert(
        token.clone(),
        BillFile {
            mchid: mchid.to_owned(),
            bytes,
        },
    );
    Issued { token, hash_value }
}

fn sha1_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(40);
    for b in digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes).as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The hash with its first digit changed.
fn wrong_hash(hash: &str) -> String {
    let first = if hash.starts_with('0') { '1' } else { '0' };
    let rest = hash.get(1..).unwrap_or("");
    format!("{first}{rest}")
}

/// One detail row: a payment, or a refund of `order`.
struct Row<'a> {
    order: &'a FakeOrder,
    refund: Option<&'a FakeRefund>,
    /// 交易状态 of a payment row: `SUCCESS`, or `REVOKED` for [`BillFault::UnknownRow`]
    /// (refund rows always say `REFUND`).
    payment_status: &'static str,
    fee_millifen: i64,
}

impl Row<'_> {
    /// RFC 3339 time of the row: the payment's success or the refund's acceptance.
    fn time(&self) -> &str {
        match self.refund {
            Some(r) => &r.create_time,
            None => self.order.success_time.as_deref().unwrap_or(""),
        }
    }

    /// 应结订单金额 and 订单金额, fen (0 on refund rows).
    fn order_fen(&self) -> i64 {
        match self.refund {
            Some(_) => 0,
            None => self.order.reported_total(),
        }
    }

    /// 退款金额 and 申请退款金额, fen (0 on payment rows).
    fn refund_fen(&self) -> i64 {
        self.refund.map_or(0, |r| r.amount_fen)
    }
}

/// The row's `out_refund_no`; none for payments, which so come before their refunds.
fn refund_no<'r>(row: &Row<'r>) -> Option<&'r str> {
    row.refund.map(|r| r.out_refund_no.as_str())
}

/// What a row may be written with instead of the truth.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowFault {
    MalformedAmount,
    ExtraColumn,
}

/// The summary row's sums, in fen (fees in millifen).
#[derive(Default)]
struct Totals {
    count: usize,
    settlement: i64,
    refund: i64,
    fee_millifen: i64,
    order: i64,
    requested: i64,
}

impl Totals {
    fn add(&mut self, row: &Row<'_>) {
        self.count += 1;
        self.settlement += row.order_fen();
        self.order += row.order_fen();
        self.refund += row.refund_fen();
        self.requested += row.refund_fen();
        self.fee_millifen += row.fee_millifen;
    }
}

/// The merchant's bill of `date` as bytes, with `fault` in it.
pub(super) fn render(
    state: &State,
    mchid: &str,
    date: NaiveDate,
    fault: Option<BillFault>,
) -> Vec<u8> {
    let day = date.format("%Y-%m-%d").to_string();
    let bp = state.bills.fee_rate(mchid);
    let row_fault = match fault {
        Some(BillFault::MalformedAmount) => Some(RowFault::MalformedAmount),
        Some(BillFault::ExtraColumn) => Some(RowFault::ExtraColumn),
        _ => None,
    };
    let mut rows = rows_of_day(state, mchid, date, &day, bp);
    // Made-up orders for faults that need a row the day does not have.
    let revoked = (fault == Some(BillFault::UnknownRow)).then(|| made_up_order(mchid, &day, "R"));
    let carrier = (row_fault.is_some() && rows.is_empty()).then(|| made_up_order(mchid, &day, "F"));
    for (order, status) in [(&revoked, "REVOKED"), (&carrier, "SUCCESS")] {
        if let Some(order) = order {
            rows.push(Row {
                order,
                refund: None,
                payment_status: status,
                fee_millifen: fee_millifen(order.total, bp),
            });
        }
    }
    rows.sort_by(|a, b| {
        a.time()
            .cmp(b.time())
            .then_with(|| a.order.out_trade_no.cmp(&b.order.out_trade_no))
            .then_with(|| refund_no(a).cmp(&refund_no(b)))
    });

    let rate = rate_text(bp);
    let mut out = String::with_capacity(rows.len() * ROW_BYTES + 1024);
    out.push_str(BOM);
    out.push_str(DETAIL_HEADER);
    out.push_str("\r\n");
    let mut totals = Totals::default();
    for (i, row) in rows.iter().enumerate() {
        let this_fault = row_fault.filter(|_| i == 0);
        write_row(&mut out, mchid, row, &rate, this_fault);
        totals.add(row);
    }
    if fault != Some(BillFault::MissingSummary) {
        if fault == Some(BillFault::WrongTotals) {
            totals.settlement += 1;
        }
        write_summary(&mut out, &totals);
    }
    out.into_bytes()
}

/// The payments and refunds of the merchant on `date` (`day` is its `YYYY-MM-DD`), unsorted.
fn rows_of_day<'a>(
    state: &'a State,
    mchid: &str,
    date: NaiveDate,
    day: &str,
    bp: u32,
) -> Vec<Row<'a>> {
    let overrides = &state.bills.fee_override;
    let mut rows = Vec::new();
    let payments = state.orders.values().filter(|o| {
        o.mch_id == mchid
            && o.state == TradeState::Success
            && o.success_time
                .as_deref()
                .is_some_and(|t| on_day(t, day, date))
    });
    for order in payments {
        let fee = overrides
            .get(&order.out_trade_no)
            .copied()
            .unwrap_or_else(|| fee_millifen(order.reported_total(), bp));
        rows.push(Row {
            order,
            refund: None,
            payment_status: "SUCCESS",
            fee_millifen: fee,
        });
    }
    let refunds = state
        .refunds
        .values()
        .filter(|r| r.mch_id == mchid && on_day(&r.create_time, day, date));
    for refund in refunds {
        let key = (refund.mch_id.clone(), refund.out_trade_no.clone());
        let Some(order) = state.orders.get(&key) else {
            continue;
        };
        let fee = overrides
            .get(&refund.out_refund_no)
            .copied()
            .unwrap_or_else(|| -fee_millifen(refund.amount_fen, bp));
        rows.push(Row {
            order,
            refund: Some(refund),
            payment_status: "SUCCESS",
            fee_millifen: fee,
        });
    }
    rows
}

/// Whether an RFC 3339 time falls on `date` in Beijing. Times the fake wrote are already
/// `+08:00`, so their first ten characters are the day (cheap for large bills).
fn on_day(rfc3339: &str, day: &str, date: NaiveDate) -> bool {
    if rfc3339.ends_with("+08:00") {
        return rfc3339.starts_with(day);
    }
    DateTime::parse_from_rfc3339(rfc3339)
        .is_ok_and(|t| t.with_timezone(&support::BEIJING).date_naive() == date)
}

/// A paid order that only exists in a faulty bill, at noon of `day`.
fn made_up_order(mchid: &str, day: &str, tag: &str) -> FakeOrder {
    let compact: String = day.chars().filter(char::is_ascii_digit).collect();
    FakeOrder {
        mch_id: mchid.to_owned(),
        appid: "wx0000000000000000".to_owned(),
        out_trade_no: format!("FAULT{tag}{}", &support::random_hex()[..20]),
        trade_type: "JSAPI".to_owned(),
        description: "账单故障行".to_owned(),
        notify_url: String::new(),
        time_expire: None,
        total: 100,
        paid_total: None,
        state: TradeState::Success,
        payer_openid: Some("oFAULT0000000000000000000000".to_owned()),
        transaction_id: Some(format!("4200{compact}{}", support::random_digits(16))),
        success_time: Some(format!("{day}T12:00:00+08:00")),
        prepay_id: None,
        code_url: None,
        times_created: 0,
        times_closed: 0,
        notifications_sent: 0,
    }
}

/// The fee charged on `fen` at `bp` basis points, rounded half up to the fen, in millifen.
pub(super) fn fee_millifen(fen: i64, bp: u32) -> i64 {
    let scaled = fen.saturating_mul(i64::from(bp));
    let rounded = (scaled.abs() + 5_000) / 10_000;
    rounded.saturating_mul(1_000) * scaled.signum()
}

/// `0.60%` for 60 basis points.
fn rate_text(bp: u32) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

fn write_row(out: &mut String, mchid: &str, row: &Row<'_>, rate: &str, fault: Option<RowFault>) {
    let order = row.order;
    open_first_field(out);
    write_time(out, row.time());
    field(out, &order.appid);
    field(out, mchid);
    field(out, "0");
    field(out, "");
    field(out, order.transaction_id.as_deref().unwrap_or(""));
    field(out, &order.out_trade_no);
    field(out, order.payer_openid.as_deref().unwrap_or(""));
    field(out, &order.trade_type);
    field(out, row.refund.map_or(row.payment_status, |_| "REFUND"));
    field(out, "OTHERS");
    field(out, "CNY");
    if fault == Some(RowFault::MalformedAmount) {
        field(out, "12.3x");
    } else {
        yuan_field(out, row.order_fen());
    }
    yuan_field(out, 0);
    match row.refund {
        Some(r) => {
            field(out, &r.refund_id);
            field(out, &r.out_refund_no);
        }
        None => {
            field(out, "0");
            field(out, "0");
        }
    }
    yuan_field(out, row.refund_fen());
    yuan_field(out, 0);
    field(out, row.refund.map_or("", |_| "ORIGINAL"));
    field(out, row.refund.map_or("", |r| r.status.as_str()));
    open_field(out);
    write_free_text(out, &order.description);
    field(out, "");
    open_field(out);
    write_millifen(out, row.fee_millifen);
    field(out, rate);
    yuan_field(out, row.order_fen());
    yuan_field(out, row.refund_fen());
    field(out, "");
    if fault == Some(RowFault::ExtraColumn) {
        field(out, "EXTRA");
    }
    out.push_str("\r\n");
}

fn write_summary(out: &mut String, t: &Totals) {
    out.push_str(SUMMARY_HEADER);
    out.push_str("\r\n`");
    let _ = write!(out, "{}", t.count);
    yuan_field(out, t.settlement);
    yuan_field(out, t.refund);
    yuan_field(out, 0);
    open_field(out);
    write_millifen(out, t.fee_millifen);
    yuan_field(out, t.order);
    yuan_field(out, t.requested);
    out.push_str("\r\n");
}

/// Opens the first field of a line.
fn open_first_field(out: &mut String) {
    out.push('`');
}

/// Opens a following field, to be written by the caller.
fn open_field(out: &mut String) {
    out.push_str(",`");
}

fn field(out: &mut String, value: &str) {
    out.push_str(",`");
    out.push_str(value);
}

fn yuan_field(out: &mut String, fen: i64) {
    out.push_str(",`");
    write_yuan(out, fen);
}

/// Fen as yuan with 2 decimals (`-0.05` for -5).
fn write_yuan(out: &mut String, fen: i64) {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:02}", abs / 100, abs % 100);
}

/// Millifen as yuan with 5 decimals (`0.07000` for 7000, `-0.03000` for -3000).
fn write_millifen(out: &mut String, millifen: i64) {
    let sign = if millifen < 0 { "-" } else { "" };
    let abs = millifen.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:05}", abs / 100_000, abs % 100_000);
}

/// `YYYY-MM-DD HH:MM:SS` in Beijing time.
fn write_time(out: &mut String, rfc3339: &str) {
    if rfc3339.ends_with("+08:00")
        && let (Some(day), Some(time)) = (rfc3339.get(..10), rfc3339.get(11..19))
    {
        out.push_str(day);
        out.push(' ');
        out.push_str(time);
        return;
    }
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let t = t.with_timezone(&support::BEIJING);
            let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S"));
        }
        Err(_) => out.push_str(rfc3339),
    }
}

/// Free text without the characters that would break a field (the bill never quotes).
fn write_free_text(out: &mut String, text: &str) {
    for c in text.chars() {
        out.push(match c {
            ',' | '"' | '`' | '\r' | '\n' => ' ',
            c => c,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up_to_the_fen() {
        assert_eq!(fee_millifen(1230, 60), 7_000); // 7.38 fen
        assert_eq!(fee_millifen(250, 60), 2_000); // 1.5 fen
        assert_eq!(fee_millifen(249, 60), 1_000); // 1.494 fen
        assert_eq!(fee_millifen(-500, 60), -3_000);
        assert_eq!(fee_millifen(1, 60), 0);
    }

    #[test]
    fn amounts_print_like_the_bill() {
        let mut s = String::new();
        write_yuan(&mut s, 1230);
        s.push(' ');
        write_yuan(&mut s, 5);
        s.push(' ');
        write_millifen(&mut s, 7_000);
        s.push(' ');
        write_millifen(&mut s, -3_000);
        s.push(' ');
        write_millifen(&mut s, 123_456_789);
        assert_eq!(s, "12.30 0.05 0.07000 -0.03000 1234.56789");
        assert_eq!(rate_text(60), "0.60%");
        assert_eq!(rate_text(38), "0.38%");
        assert_eq!(rate_text(100), "1.00%");
    }

    #[test]
    fn times_print_in_beijing() {
        let mut s = String::new();
        write_time(&mut s, "2026-11-20T10:15:02+08:00");
        s.push('|');
        write_time(&mut s, "2026-11-20T16:30:00Z");
        assert_eq!(s, "2026-11-20 10:15:02|2026-11-21 00:30:00");
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap_or_default();
        assert!(on_day("2026-11-20T16:30:00Z", "2026-11-21", day));
        assert!(!on_day("2026-11-20T23:59:59+08:00", "2026-11-21", day));
    }

    #[test]
    fn the_day_before_today_is_ready_and_today_only_when_published() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap_or_default();
        let yesterday = today.pred_opt().unwrap_or_default();
        let mut bills = Bills::default();
        assert_eq!(bills.availability(yesterday, today), Availability::Ready);
        assert_eq!(bills.availability(today, today), Availability::NotPast);
        let tomorrow = today.succ_opt().unwrap_or_default();
        bills.ready.insert(today, true);
        bills.ready.insert(tomorrow, true);
        bills.ready.insert(yesterday, false);
        assert_eq!(bills.availability(today, today), Availability::Ready);
        assert_eq!(bills.availability(tomorrow, today), Availability::NotPast);
        assert_eq!(bills.availability(yesterday, today), Availability::Missing);
        bills.creating.insert(yesterday);
        assert_eq!(bills.availability(yesterday, today), Availability::Creating);
    }

    #[test]
    fn a_day_without_trades_has_an_empty_summary() {
        let state = State::default();
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default();
        let text = String::from_utf8(render(&state, "1900000109", day, None)).unwrap_or_default();
        let expected = format!(
            "{BOM}{DETAIL_HEADER}\r\n{SUMMARY_HEADER}\r\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\r\n"
        );
        assert_eq!(text, expected);
        assert_eq!(DETAIL_HEADER.split(',').count(), 27);
    }
}
