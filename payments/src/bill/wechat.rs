//! WeChat Pay's trade bill (`bill_type=ALL`): UTF-8 CSV, perhaps behind a BOM, CRLF or LF.
//! A header, one row per payment (交易状态 `SUCCESS`) or refund (`REFUND`), every field
//! behind a backquote, then a summary header (`总交易单数,…`) and the summary row as the last
//! two lines. Columns are found by name: WeChat says their order may change.
//!
//! Each row is checked as it is read and added to running sums of every amount column the
//! summary totals; the summary must state exactly those sums. Nothing of the file is kept but
//! the current line.

use std::io::BufRead;

use super::lines::Lines;
use super::{
    BillRow, BillTotals, Parse, Progress, RowKind, Step, TradeBill, add, agree, amount,
    beijing_time, check_width, count, fault, field, id, locate, money,
};
use crate::{BillFault, Result, money::format_yuan, notification::Provider};

/// The detail header's names; all must be there, in any order, among any others.
const HEADER: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

/// Positions in [`HEADER`] of the columns read.
const TIME: usize = 0;
const TRADE_NO: usize = 5;
const OUT_TRADE_NO: usize = 6;
const STATE: usize = 9;
const SETTLE: usize = 12;
const REFUND_ID: usize = 14;
const OUT_REFUND_NO: usize = 15;
const REFUND: usize = 16;
const COUPON_REFUND: usize = 17;
const REFUND_STATUS: usize = 19;
const FEE: usize = 22;
const RATE: usize = 23;
const ORDER: usize = 24;
const REQUESTED: usize = 25;

/// The summary header; its first name is how the summary is recognised.
const SUMMARY: [&str; 7] = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
];

/// The states a refund row may report as of the bill's making.
const REFUND_STATES: [&str; 4] = ["SUCCESS", "PROCESSING", "ABNORMAL", "CLOSED"];

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A WeChat Pay trade bill read a row at a time from `R` (a downloaded file, buffered).
pub struct WechatBill<R: BufRead> {
    reader: Reader<R>,
    progress: Progress,
}

impl<R: BufRead> WechatBill<R> {
    /// Reads and checks the header. The file should have matched its digest already
    /// ([`super::check_sha1`]).
    pub fn new(reader: R) -> Result<Self> {
        let mut lines = Lines::new(reader, BillFault::Malformed);
        let Some((line, bytes)) = lines.next_line()? else {
            return Err(fault(BillFault::Malformed, None, "the bill is empty").into());
        };
        let text = utf8(bytes.strip_prefix(BOM).unwrap_or(bytes), line)?;
        let names: Vec<&str> = text.split(',').map(|n| untick(n.trim())).collect();
        let columns = Columns {
            at: locate(&names, HEADER, line)?,
            width: names.len(),
        };
        Ok(Self {
            reader: Reader {
                lines,
                columns,
                sums: Sums::default(),
            },
            progress: Progress::default(),
        })
    }

    /// The next row; `Ok(None)` once the summary was read, matched the rows, and nothing
    /// followed it.
    pub fn next_row(&mut self) -> Result<Option<BillRow>> {
        let reader = &mut self.reader;
        self.progress.drive(|| reader.step())
    }

    /// The summary, checked, once [`Self::next_row`] answered `Ok(None)`. WeChat states only
    /// the number of all rows: the split into payments and refunds is counted.
    pub fn totals(&self) -> Option<&BillTotals> {
        self.progress.totals()
    }
}

impl<R: BufRead> TradeBill for WechatBill<R> {
    fn provider(&self) -> Provider {
        Provider::Wechat
    }

    fn next_row(&mut self) -> Result<Option<BillRow>> {
        WechatBill::next_row(self)
    }

    fn totals(&self) -> Option<&BillTotals> {
        WechatBill::totals(self)
    }
}

/// The rows, then at most one error: iteration ends after a fault.
impl<R: BufRead> Iterator for WechatBill<R> {
    type Item = Result<BillRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.progress.failed() {
            return None;
        }
        self.next_row().transpose()
    }
}

struct Reader<R> {
    lines: Lines<R>,
    columns: Columns,
    sums: Sums,
}

/// Where the header put each of [`HEADER`]'s names, and how many fields a row has.
struct Columns {
    at: [usize; HEADER.len()],
    width: usize,
}

/// The amount columns the summary totals, of one row or summed.
#[derive(Debug, Default, Clone, Copy)]
struct Printed {
    settle: i64,
    refund: i64,
    coupon_refund: i64,
    fee_millifen: i64,
    order: i64,
    requested: i64,
}

/// Running counts and sums of the rows read so far.
#[derive(Debug, Default)]
struct Sums {
    payments: u64,
    refunds: u64,
    printed: Printed,
}

impl<R: BufRead> Reader<R> {
    fn step(&mut self) -> Parse<Step> {
        loop {
            let Some((line, bytes)) = self.lines.next_line()? else {
                return Err(fault(
                    BillFault::Malformed,
                    None,
                    "the bill ends without its summary (总交易单数…)",
                ));
            };
            let text = utf8(bytes, line)?;
            if text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(untick).collect();
            if fields.first().map(|f| f.trim()) == Some(SUMMARY[0]) {
                let names: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
                let at = locate(&names, SUMMARY, line)?;
                let width = names.len();
                return self.summary(at, width).map(Step::End);
            }
            let (row, printed) = self.columns.row(line, &fields)?;
            self.sums.add(row.kind, printed)?;
            return Ok(Step::Row(row));
        }
    }

    /// Reads the summary row after its header, checks it and that nothing follows.
    fn summary(&mut self, at: [usize; SUMMARY.len()], width: usize) -> Parse<BillTotals> {
        let Some((line, bytes)) = self.lines.next_line()? else {
            return Err(fault(
                BillFault::Malformed,
                None,
                "the summary header is not followed by the summary row",
            ));
        };
        let text = utf8(bytes, line)?;
        let fields: Vec<&str> = text.split(',').map(untick).collect();
        check_width(&fields, width, line)?;
        let get = |i: usize| at.get(i).map(|&c| field(&fields, c)).unwrap_or_default();
        let rows = count(get(0), SUMMARY[0], Some(line))?;
        let stated = Printed {
            settle: money(get(1), amount::fen, SUMMARY[1], line)?,
            refund: money(get(2), amount::fen, SUMMARY[2], line)?,
            coupon_refund: money(get(3), amount::fen, SUMMARY[3], line)?,
            fee_millifen: money(get(4), amount::millifen, SUMMARY[4], line)?,
            order: money(get(5), amount::fen, SUMMARY[5], line)?,
            requested: money(get(6), amount::fen, SUMMARY[6], line)?,
        };
        self.sums.check(rows, &stated, line)?;
        self.expect_end()?;
        Ok(BillTotals {
            payments: self.sums.payments,
            payment_fen: stated.order,
            refunds: self.sums.refunds,
            refund_fen: stated.refund,
            fee_millifen: stated.fee_millifen,
        })
    }

    /// Only blank lines may follow the summary.
    fn expect_end(&mut self) -> Parse<()> {
        while let Some((line, bytes)) = self.lines.next_line()? {
            if !bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(fault(
                    BillFault::Malformed,
                    Some(line),
                    "text after the summary",
                ));
            }
        }
        Ok(())
    }
}

impl Columns {
    /// One detail row, and its amounts as the summary counts them.
    fn row(&self, line: u64, fields: &[&str]) -> Parse<(BillRow, Printed)> {
        check_width(fields, self.width, line)?;
        let get = |c: usize| {
            self.at
                .get(c)
                .map(|&i| field(fields, i))
                .unwrap_or_default()
        };
        let kind = match get(STATE) {
            "SUCCESS" => RowKind::Payment,
            "REFUND" => RowKind::Refund,
            other => {
                return Err(fault(
                    BillFault::RowUnknown,
                    Some(line),
                    format!("交易状态 {:?}", super::shorten(other)),
                ));
            }
        };
        let printed = Printed {
            settle: money(get(SETTLE), amount::fen, HEADER[SETTLE], line)?,
            refund: money(get(REFUND), amount::fen, HEADER[REFUND], line)?,
            coupon_refund: money(get(COUPON_REFUND), amount::fen, HEADER[COUPON_REFUND], line)?,
            fee_millifen: money(get(FEE), amount::millifen, HEADER[FEE], line)?,
            order: money(get(ORDER), amount::fen, HEADER[ORDER], line)?,
            requested: money(get(REQUESTED), amount::fen, HEADER[REQUESTED], line)?,
        };
        let at = beijing_time(get(TIME), HEADER[TIME], line)?;
        let ids = |c: usize| {
            id(
                fields,
                self.at.get(c).copied().unwrap_or_default(),
                HEADER[c],
                line,
            )
        };
        let mut row = BillRow {
            line,
            kind,
            out_trade_no: ids(OUT_TRADE_NO)?,
            provider_trade_no: ids(TRADE_NO)?,
            out_refund_no: None,
            provider_refund_no: None,
            refund_status: None,
            at,
            amount_fen: printed.order,
            fee_millifen: printed.fee_millifen,
            fee_rate: Some(get(RATE)).filter(|r| !r.is_empty()).map(str::to_owned),
        };
        if kind == RowKind::Refund {
            let status = get(REFUND_STATUS);
            if !REFUND_STATES.contains(&status) {
                return Err(fault(
                    BillFault::RowUnknown,
                    Some(line),
                    format!("退款状态 {:?}", super::shorten(status)),
                ));
            }
            row.out_refund_no = Some(ids(OUT_REFUND_NO)?);
            row.provider_refund_no = Some(ids(REFUND_ID)?);
            row.refund_status = Some(status.to_owned());
            row.amount_fen = printed.refund;
        }
        Ok((row, printed))
    }
}

impl Sums {
    fn add(&mut self, kind: RowKind, row: Printed) -> Parse<()> {
        let counter = match kind {
            RowKind::Payment => &mut self.payments,
            RowKind::Refund => &mut self.refunds,
        };
        *counter = counter.saturating_add(1);
        let p = &mut self.printed;
        p.settle = add(p.settle, row.settle)?;
        p.refund = add(p.refund, row.refund)?;
        p.coupon_refund = add(p.coupon_refund, row.coupon_refund)?;
        p.fee_millifen = add(p.fee_millifen, row.fee_millifen)?;
        p.order = add(p.order, row.order)?;
        p.requested = add(p.requested, row.requested)?;
        Ok(())
    }

    /// BILL_TOTALS_MISMATCH, at the summary row, on the first number that differs.
    fn check(&self, rows: u64, stated: &Printed, line: u64) -> Parse<()> {
        let line = Some(line);
        let summed = &self.printed;
        let count = self.payments.saturating_add(self.refunds);
        agree(SUMMARY[0], rows, count, |n| n.to_string(), line)?;
        agree(SUMMARY[1], stated.settle, summed.settle, format_yuan, line)?;
        agree(SUMMARY[2], stated.refund, summed.refund, format_yuan, line)?;
        agree(
            SUMMARY[3],
            stated.coupon_refund,
            summed.coupon_refund,
            format_yuan,
            line,
        )?;
        agree(
            SUMMARY[4],
            stated.fee_millifen,
            summed.fee_millifen,
            amount::format_millifen,
            line,
        )?;
        agree(SUMMARY[5], stated.order, summed.order, format_yuan, line)?;
        agree(
            SUMMARY[6],
            stated.requested,
            summed.requested,
            format_yuan,
            line,
        )
    }
}

/// A field without the backquote WeChat puts before each one (so that spreadsheets keep long
/// numbers as text).
fn untick(field: &str) -> &str {
    field.strip_prefix('`').unwrap_or(field)
}

fn utf8(bytes: &[u8], line: u64) -> Parse<&str> {
    std::str::from_utf8(bytes)
        .map_err(|_| fault(BillFault::Malformed, Some(line), "the line is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "`2026-11-20 10:15:02,`wx8888888888888888,`1900000109,`0,`,`4200002000202611201234567890,`0190f6c8a1b27c3d8e9f001122334455,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.30,`0.00,`0,`0,`0.00,`0.00,`,`,`月租 沪A12345,`,`0.07380,`0.60%,`12.30,`0.00,`";

    fn bill(rows: &[&str], summary: &str) -> String {
        let mut text = HEADER.join(",");
        text.push_str("\r\n");
        for r in rows {
            text.push_str(r);
            text.push_str("\r\n");
        }
        text.push_str(&SUMMARY.join(","));
        text.push_str("\r\n");
        text.push_str(summary);
        text.push_str("\r\n");
        text
    }

    #[test]
    fn the_spec_example_row_reads_exactly() {
        let text = bill(&[ROW], "`1,`12.30,`0.00,`0.00,`0.07380,`12.30,`0.00");
        let mut b = WechatBill::new(text.as_bytes()).unwrap();
        let row = b.next_row().unwrap().unwrap();
        assert_eq!(row.line, 2);
        assert_eq!(row.kind, RowKind::Payment);
        assert_eq!(row.amount_fen, 1230);
        assert_eq!(row.fee_millifen, 7380);
        assert_eq!(row.fee_rate.as_deref(), Some("0.60%"));
        assert_eq!(row.out_refund_no, None);
        assert_eq!(row.at.to_rfc3339(), "2026-11-20T02:15:02+00:00");
        assert!(b.totals().is_none());
        assert!(b.next_row().unwrap().is_none());
        assert_eq!(b.totals().unwrap().payments, 1);
        assert!(b.next_row().unwrap().is_none());
    }

    #[test]
    fn a_fault_is_repeated_and_ends_iteration() {
        let text = bill(&[ROW], "`2,`12.30,`0.00,`0.00,`0.07380,`12.30,`0.00");
        let mut b = WechatBill::new(text.as_bytes()).unwrap();
        assert!(b.next_row().unwrap().is_some());
        for _ in 0..2 {
            let e = b.next_row().unwrap_err();
            assert_eq!(e.code(), "BILL_TOTALS_MISMATCH");
        }
        let mut b = WechatBill::new(text.as_bytes()).unwrap();
        let items: Vec<_> = b.by_ref().collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
        assert!(b.next().is_none());
    }
}
