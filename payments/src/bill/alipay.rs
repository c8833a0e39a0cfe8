//! Alipay's trade bill: a zip (deflate) of two GBK CSV files, the detail `…_业务明细.csv` and
//! the summary `…_业务明细(汇总).csv`.
//!
//! The detail file is `#` comment lines, the header, one row per payment (业务类型 `交易`) or
//! completed refund (`退款`), then comment lines again, among them `#交易合计：…` and
//! `#退款合计：…` with the count and the 商家实收 sum of each kind. Fields end with a TAB
//! before their comma; they are trimmed. The summary file's `合计` row states counts, income,
//! refunds and fees once more.
//!
//! The small summary file is read when the archive is opened. The detail file can be tens of
//! megabytes: it is inflated on a worker thread ([`super::entry`]) and cut into lines, each
//! decoded from GBK on its own, so memory does not grow with the file. Each row is checked as
//! it is read and added to running sums; the `合计` lines are checked when reached, the summary
//! file's at the end. A failure to inflate (a truncated or corrupted archive) is
//! BILL_ARCHIVE_CORRUPT wherever in the entry it shows.
//!
//! Alipay prints fees as what it takes from the merchant's receipts: a payment's 服务费 is
//! negative, a refund's (given back) positive. Rows and totals carry them negated, as what the
//! merchant pays, like WeChat's.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read, Seek};

use encoding_rs::GBK;
use zip::ZipArchive;

use super::entry::EntryReader;
use super::lines::Lines;
use super::{
    BillRow, BillTotals, Fault, Parse, Progress, RowKind, Step, TradeBill, add, agree, amount,
    beijing_time, check_width, count, fault, field, id, locate, money, shorten,
};
use crate::{BillFault, Result, money::format_yuan, notification::Provider};

const DETAIL_SUFFIX: &str = "业务明细.csv";
/// The summary's name has ASCII parentheses; full-width ones are accepted too.
const SUMMARY_SUFFIXES: [&str; 2] = ["业务明细(汇总).csv", "业务明细（汇总）.csv"];

/// The detail header's names; all must be there, in any order, among any others.
const HEADER: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

/// Positions in [`HEADER`] of the columns read.
const TRADE_NO: usize = 0;
const OUT_TRADE_NO: usize = 1;
const KIND: usize = 2;
const DONE: usize = 5;
const ORDER: usize = 11;
const RECEIVED: usize = 12;
const REQUEST_NO: usize = 21;
const FEE: usize = 22;

/// The summary file's header.
const SUMMARY_HEADER: [&str; 14] = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "已收入金额（元）",
    "已退款金额（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
];

/// Positions in [`SUMMARY_HEADER`] of the columns read.
const S_STORE: usize = 0;
const S_PAYMENTS: usize = 2;
const S_REFUNDS: usize = 3;
const S_INCOME: usize = 4;
const S_REFUNDED: usize = 5;
const S_FEE: usize = 11;
const S_NET: usize = 13;

/// What the first field of the summary's total row says.
const TOTAL_ROW: &str = "合计";

/// An Alipay trade bill read a row at a time from its zip archive.
pub struct AlipayBill {
    reader: Reader,
    progress: Progress,
}

impl AlipayBill {
    /// Opens the archive, reads its summary file's `合计` row and the detail file's header.
    /// An archive that is not a readable zip or lacks either file is BILL_ARCHIVE_CORRUPT.
    pub fn open(file: File) -> Result<Self> {
        let mut archive = ZipArchive::new(BufReader::new(file))
            .map_err(|e| corrupt(format!("not a readable zip: {e}")))?;
        let detail = find_entry(&archive, &[DETAIL_SUFFIX])?;
        let summary = find_entry(&archive, &SUMMARY_SUFFIXES)?;
        let summary = read_summary(&mut archive, summary).map_err(in_summary)?;
        let entry = EntryReader::spawn(archive, detail).map_err(|e| {
            fault(
                BillFault::Malformed,
                None,
                format!("cannot start the archive reader: {e}"),
            )
        })?;
        let mut lines = Lines::new(
            BufReader::with_capacity(64 * 1024, entry),
            BillFault::ArchiveCorrupt,
        );
        let columns = read_header(&mut lines)?;
        Ok(Self {
            reader: Reader {
                lines,
                columns,
                in_tail: false,
                sums: Sums::default(),
                trade_total: None,
                refund_total: None,
                summary,
            },
            progress: Progress::default(),
        })
    }

    /// The next row; `Ok(None)` once the detail file was read whole and both `合计` lines and
    /// the summary file matched its rows.
    pub fn next_row(&mut self) -> Result<Option<BillRow>> {
        let reader = &mut self.reader;
        self.progress.drive(|| reader.step())
    }

    /// The totals, checked, once [`Self::next_row`] answered `Ok(None)`: counts and amounts
    /// from the `合计` lines, the fee from the summary file.
    pub fn totals(&self) -> Option<&BillTotals> {
        self.progress.totals()
    }
}

impl TradeBill for AlipayBill {
    fn provider(&self) -> Provider {
        Provider::Alipay
    }

    fn next_row(&mut self) -> Result<Option<BillRow>> {
        AlipayBill::next_row(self)
    }

    fn totals(&self) -> Option<&BillTotals> {
        AlipayBill::totals(self)
    }
}

/// The rows, then at most one error: iteration ends after a fault.
impl Iterator for AlipayBill {
    type Item = Result<BillRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.progress.failed() {
            return None;
        }
        self.next_row().transpose()
    }
}

struct Reader {
    lines: Lines<BufReader<EntryReader>>,
    columns: Columns,
    /// Whether a comment line came after the rows: no row may follow.
    in_tail: bool,
    sums: Sums,
    trade_total: Option<Stated>,
    refund_total: Option<Stated>,
    summary: Summary,
}

/// Where a header put each of its expected names, and how many fields a row has.
struct Columns<const N: usize = 25> {
    at: [usize; N],
    width: usize,
}

/// What a `#交易合计` or `#退款合计` line states: a count and a sum of 商家实收.
#[derive(Debug, Clone, Copy)]
struct Stated {
    count: u64,
    fen: i64,
}

/// The summary file's `合计` row.
#[derive(Debug, Clone, Copy)]
struct Summary {
    payments: u64,
    refunds: u64,
    income: i64,
    refunded: i64,
    fee: i64,
    net: i64,
}

/// Running counts and sums of the rows, in Alipay's signs.
#[derive(Debug, Default)]
struct Sums {
    payments: u64,
    refunds: u64,
    /// 商家实收 of payments.
    income: i64,
    /// 商家实收 of refunds: zero or negative.
    refunded: i64,
    /// 服务费 of all rows.
    fee: i64,
}

/// One row's amounts as the totals count them.
struct Printed {
    received: i64,
    fee: i64,
}

impl Reader {
    fn step(&mut self) -> Parse<Step> {
        loop {
            let Some((line, bytes)) = self.lines.next_line()? else {
                return self.finish().map(Step::End);
            };
            let decoded = gbk(bytes, line)?;
            let text = decoded.trim();
            if text.is_empty() {
                continue;
            }
            if let Some(comment) = text.strip_prefix('#') {
                let total = total_line(comment, line)?;
                self.in_tail = true;
                if let Some((kind, stated)) = total {
                    self.record_total(kind, stated, line)?;
                }
                continue;
            }
            if self.in_tail {
                return Err(fault(
                    BillFault::Malformed,
                    Some(line),
                    "a row after the end of the detail list",
                ));
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            let (row, printed) = self.columns.row(line, &fields)?;
            self.sums.add(row.kind, &printed)?;
            return Ok(Step::Row(row));
        }
    }

    /// Keeps a `合计` line's numbers once they matched the rows read, all of them by now.
    fn record_total(&mut self, kind: RowKind, stated: Stated, line: u64) -> Parse<()> {
        let (name, slot, rows, fen) = match kind {
            RowKind::Payment => (
                "#交易合计",
                &mut self.trade_total,
                self.sums.payments,
                self.sums.income,
            ),
            RowKind::Refund => (
                "#退款合计",
                &mut self.refund_total,
                self.sums.refunds,
                self.sums.refunded,
            ),
        };
        if slot.is_some() {
            return Err(fault(
                BillFault::Malformed,
                Some(line),
                format!("a second {name} line"),
            ));
        }
        agree(
            &format!("{name} 笔数"),
            stated.count,
            rows,
            |n| n.to_string(),
            Some(line),
        )?;
        agree(
            &format!("{name} 商家实收"),
            stated.fen,
            fen,
            format_yuan,
            Some(line),
        )?;
        *slot = Some(stated);
        Ok(())
    }

    /// At the end of the detail file: both `合计` lines seen, the summary file agreeing.
    fn finish(&self) -> Parse<BillTotals> {
        let missing = |name: &str| {
            fault(
                BillFault::Malformed,
                None,
                format!("the detail file has no {name} line"),
            )
        };
        let trade = self.trade_total.ok_or_else(|| missing("#交易合计"))?;
        let refund = self.refund_total.ok_or_else(|| missing("#退款合计"))?;
        self.summary.check(&self.sums).map_err(in_summary)?;
        let overflow = || fault(BillFault::Malformed, None, "the bill's sums overflow");
        Ok(BillTotals {
            payments: trade.count,
            payment_fen: trade.fen,
            refunds: refund.count,
            refund_fen: refund.fen.checked_neg().ok_or_else(overflow)?,
            fee_millifen: amount::fen_to_millifen(self.summary.fee)
                .and_then(i64::checked_neg)
                .ok_or_else(overflow)?,
        })
    }
}

impl Columns {
    /// One detail row, and its amounts as the totals count them.
    fn row(&self, line: u64, fields: &[&str]) -> Parse<(BillRow, Printed)> {
        check_width(fields, self.width, line)?;
        let get = |c: usize| {
            self.at
                .get(c)
                .map(|&i| field(fields, i))
                .unwrap_or_default()
        };
        let kind = match get(KIND) {
            "交易" => RowKind::Payment,
            "退款" => RowKind::Refund,
            other => {
                return Err(fault(
                    BillFault::RowUnknown,
                    Some(line),
                    format!("业务类型 {:?}", shorten(other)),
                ));
            }
        };
        let order = money(get(ORDER), amount::fen, HEADER[ORDER], line)?;
        let received = money(get(RECEIVED), amount::signed_fen, HEADER[RECEIVED], line)?;
        let fee = money(get(FEE), amount::signed_fen, HEADER[FEE], line)?;
        let at = beijing_time(get(DONE), HEADER[DONE], line)?;
        let ids = |c: usize| {
            id(
                fields,
                self.at.get(c).copied().unwrap_or_default(),
                HEADER[c],
                line,
            )
        };
        let fee_millifen = amount::fen_to_millifen(fee)
            .and_then(i64::checked_neg)
            .ok_or_else(|| fault(BillFault::AmountMalformed, Some(line), "服务费 overflows"))?;
        let mut row = BillRow {
            line,
            kind,
            out_trade_no: ids(OUT_TRADE_NO)?,
            provider_trade_no: ids(TRADE_NO)?,
            out_refund_no: None,
            provider_refund_no: None,
            refund_status: None,
            at,
            amount_fen: order,
            fee_millifen,
            fee_rate: None,
        };
        match kind {
            RowKind::Payment if received != order => {
                return Err(fault(
                    BillFault::RowUnknown,
                    Some(line),
                    format!(
                        "a payment whose 商家实收 {} is not its 订单金额 {} (discounts are not used)",
                        format_yuan(received),
                        format_yuan(order)
                    ),
                ));
            }
            RowKind::Payment => {}
            RowKind::Refund => {
                if received > 0 {
                    return Err(fault(
                        BillFault::AmountMalformed,
                        Some(line),
                        format!("a refund's 商家实收 {} is positive", format_yuan(received)),
                    ));
                }
                row.amount_fen = received.checked_neg().unwrap_or_default();
                row.out_refund_no = Some(ids(REQUEST_NO)?);
                row.refund_status = Some("SUCCESS".to_owned());
            }
        }
        Ok((row, Printed { received, fee }))
    }
}

impl Sums {
    fn add(&mut self, kind: RowKind, row: &Printed) -> Parse<()> {
        match kind {
            RowKind::Payment => {
                self.payments = self.payments.saturating_add(1);
                self.income = add(self.income, row.received)?;
            }
            RowKind::Refund => {
                self.refunds = self.refunds.saturating_add(1);
                self.refunded = add(self.refunded, row.received)?;
            }
        }
        self.fee = add(self.fee, row.fee)?;
        Ok(())
    }
}

impl Summary {
    /// Reads the `合计` row of the summary file.
    fn read(columns: &Columns<14>, line: u64, fields: &[&str]) -> Parse<Self> {
        check_width(fields, columns.width, line)?;
        let get = |c: usize| {
            columns
                .at
                .get(c)
                .map(|&i| field(fields, i))
                .unwrap_or_default()
        };
        let yuan = |c: usize| money(get(c), amount::signed_fen, SUMMARY_HEADER[c], line);
        Ok(Self {
            payments: count(get(S_PAYMENTS), SUMMARY_HEADER[S_PAYMENTS], Some(line))?,
            refunds: count(get(S_REFUNDS), SUMMARY_HEADER[S_REFUNDS], Some(line))?,
            income: yuan(S_INCOME)?,
            refunded: yuan(S_REFUNDED)?,
            fee: yuan(S_FEE)?,
            net: yuan(S_NET)?,
        })
    }

    /// BILL_TOTALS_MISMATCH on the first number that differs from the detail rows.
    fn check(&self, sums: &Sums) -> Parse<()> {
        let show_count = |n: u64| n.to_string();
        let h = |c: usize| SUMMARY_HEADER[c];
        agree(
            h(S_PAYMENTS),
            self.payments,
            sums.payments,
            show_count,
            None,
        )?;
        agree(h(S_REFUNDS), self.refunds, sums.refunds, show_count, None)?;
        agree(h(S_INCOME), self.income, sums.income, format_yuan, None)?;
        agree(
            h(S_REFUNDED),
            self.refunded,
            sums.refunded,
            format_yuan,
            None,
        )?;
        agree(h(S_FEE), self.fee, sums.fee, format_yuan, None)?;
        let net = add(add(sums.income, sums.refunded)?, sums.fee)?;
        agree(h(S_NET), self.net, net, format_yuan, None)
    }
}

/// The one entry whose name ends with one of `suffixes`.
fn find_entry<R: Read + Seek>(archive: &ZipArchive<R>, suffixes: &[&str]) -> Result<usize> {
    let mut found = None;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
        let name = entry_name(entry.name_raw());
        if suffixes.iter().any(|s| name.ends_with(s)) {
            if found.is_some() {
                return Err(corrupt(format!("two entries end with {}", suffixes[0])));
            }
            found = Some(index);
        }
    }
    found.ok_or_else(|| corrupt(format!("no entry ends with {}", suffixes[0])))
}

/// An entry's name: UTF-8 as the bill's archive flags it, or GBK as older archivers wrote.
fn entry_name(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(name) => Cow::Borrowed(name),
        Err(_) => GBK.decode_without_bom_handling(raw).0,
    }
}

/// Reads the summary file through and returns its `合计` row (other rows, per store, are
/// not needed).
fn read_summary<R: Read + Seek>(archive: &mut ZipArchive<R>, index: usize) -> Parse<Summary> {
    let entry = archive.by_index(index).map_err(|e| {
        fault(
            BillFault::ArchiveCorrupt,
            None,
            format!("cannot read the entry: {e}"),
        )
    })?;
    let mut lines = Lines::new(BufReader::new(entry), BillFault::ArchiveCorrupt);
    let mut columns: Option<Columns<14>> = None;
    let mut total = None;
    while let Some((line, bytes)) = lines.next_line()? {
        let decoded = gbk(bytes, line)?;
        let text = decoded.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let Some(c) = &columns else {
            columns = Some(Columns {
                at: locate(&fields, SUMMARY_HEADER, line)?,
                width: fields.len(),
            });
            continue;
        };
        if c.at.get(S_STORE).map(|&i| field(&fields, i)) != Some(TOTAL_ROW) {
            continue;
        }
        if total.is_some() {
            return Err(fault(BillFault::Malformed, Some(line), "a second 合计 row"));
        }
        total = Some(Summary::read(c, line, &fields)?);
    }
    total.ok_or_else(|| fault(BillFault::Malformed, None, "no 合计 row"))
}

/// Skips the comment lines that open the detail file and reads its header.
fn read_header<R: std::io::BufRead>(lines: &mut Lines<R>) -> Parse<Columns> {
    while let Some((line, bytes)) = lines.next_line()? {
        let decoded = gbk(bytes, line)?;
        let text = decoded.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        return Ok(Columns {
            at: locate(&names, HEADER, line)?,
            width: names.len(),
        });
    }
    Err(fault(
        BillFault::Malformed,
        None,
        "the detail file has no header",
    ))
}

/// Parses a `交易合计：<n>笔，商家实收：<yuan>元，…` comment (without its `#`); other comments
/// are `None`.
fn total_line(comment: &str, line: u64) -> Parse<Option<(RowKind, Stated)>> {
    let Some((name, rest)) = comment.split_once('：') else {
        return Ok(None);
    };
    let kind = match name.trim() {
        "交易合计" => RowKind::Payment,
        "退款合计" => RowKind::Refund,
        _ => return Ok(None),
    };
    let bad = |what: &str| {
        fault(
            BillFault::Malformed,
            Some(line),
            format!("#{} has no {what}", name.trim()),
        )
    };
    let mut parts = rest.split('，').map(str::trim);
    let rows = parts
        .next()
        .and_then(|p| p.strip_suffix('笔'))
        .ok_or_else(|| bad("count of 笔"))?;
    let received = parts
        .find_map(|p| p.strip_prefix("商家实收："))
        .ok_or_else(|| bad("商家实收"))?;
    let received = received.trim();
    let received = received.strip_suffix('元').unwrap_or(received).trim();
    Ok(Some((
        kind,
        Stated {
            count: count(rows.trim(), name.trim(), Some(line))?,
            fen: money(received, amount::signed_fen, "商家实收", line)?,
        },
    )))
}

fn gbk(bytes: &[u8], line: u64) -> Parse<Cow<'_, str>> {
    GBK.decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| fault(BillFault::Malformed, Some(line), "the line is not GBK"))
}

fn corrupt(detail: String) -> crate::Error {
    fault(BillFault::ArchiveCorrupt, None, detail).into()
}

/// A fault of the summary file: its line numbers are not the detail file's, so the line goes
/// into the text.
fn in_summary(f: Fault) -> Fault {
    let at = f.line.map(|l| format!(" line {l}")).unwrap_or_default();
    Fault {
        code: f.code,
        line: None,
        detail: format!("业务明细(汇总).csv{at}: {}", f.detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_lines_read_by_their_full_width_punctuation() {
        let (kind, s) = total_line("交易合计：2笔，商家实收：17.30元，商家优惠：0.00元", 9)
            .unwrap()
            .unwrap();
        assert_eq!(kind, RowKind::Payment);
        assert_eq!((s.count, s.fen), (2, 1730));
        let (kind, s) = total_line("退款合计：1笔，商家实收：-5.00元，商家优惠：0.00元", 10)
            .unwrap()
            .unwrap();
        assert_eq!(kind, RowKind::Refund);
        assert_eq!((s.count, s.fen), (1, -500));
        assert!(
            total_line("导出时间：[2026年11月21日 09:12:33]", 11)
                .unwrap()
                .is_none()
        );
        assert!(
            total_line("-----业务明细列表结束-----", 8)
                .unwrap()
                .is_none()
        );
        let e = total_line("交易合计：2笔，商家实收：17.3元，商家优惠：0.00元", 9).unwrap_err();
        assert_eq!((e.code, e.line), (BillFault::AmountMalformed, Some(9)));
        let e = total_line("交易合计：两笔", 9).unwrap_err();
        assert_eq!((e.code, e.line), (BillFault::Malformed, Some(9)));
    }

    #[test]
    fn entry_names_decode_as_utf8_or_gbk() {
        let name = "2088123412341234_20261120_业务明细.csv";
        assert_eq!(entry_name(name.as_bytes()), name);
        let (gbk_name, _, _) = GBK.encode(name);
        assert_eq!(entry_name(&gbk_name), name);
    }
}
