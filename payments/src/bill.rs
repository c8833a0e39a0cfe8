//! The providers' daily trade bills, read as streams: WeChat Pay's CSV ([`WechatBill`]) and
//! Alipay's zip of GBK CSVs ([`AlipayBill`]). Both give the same [`BillRow`]s, one at a time,
//! so that reconciling a day of tens of thousands of trades needs the memory of one row, not
//! of the file.
//!
//! A bill is believed only as a whole: every row is checked as it is read, and the totals the
//! bill states are checked against the running sums of its rows when they are reached. So the
//! rows a parser hands out are provisional until its `next_row` has answered `Ok(None)`; only
//! then is [`TradeBill::totals`] there. Any fault is an [`Error::Bill`] with its
//! [`BillFault`] and, when one line is to blame, the 1-based line number. A parser that
//! stopped at a fault keeps answering that fault.
//!
//! [`digest`] checks a download against the SHA-1 WeChat Pay signed; [`amount`] reads the
//! yuan decimals of both bills exactly.

pub mod amount;
pub mod digest;
mod download;
mod entry;
mod lines;

mod alipay;
mod wechat;

use chrono::{DateTime, NaiveDateTime, Utc};

pub use self::alipay::AlipayBill;
pub use self::digest::{Sha1Writer, check_sha1, copy_hashed, sha1_hex};
pub(crate) use self::download::download;
pub use self::wechat::WechatBill;
use crate::{BillFault, Error, Result, notification::Provider};
use minigate_store::BEIJING;

/// How long a bill download may take in all (the API calls have a much shorter timeout).
pub const BILL_DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What a row records: a payment received or a refund paid back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Payment,
    Refund,
}

/// One row of a bill, as both providers' rows mean the same things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// The 1-based line of the file (of Alipay's detail file) the row is on.
    pub line: u64,
    pub kind: RowKind,
    pub out_trade_no: String,
    /// 微信订单号 / 支付宝交易号; on a refund row, the refunded payment's.
    pub provider_trade_no: String,
    /// 商户退款单号 / 退款批次号/请求号, on refund rows.
    pub out_refund_no: Option<String>,
    /// 微信退款单号 on WeChat refund rows; Alipay's bill has none.
    pub provider_refund_no: Option<String>,
    /// WeChat's 退款状态 on refund rows (`SUCCESS`, `PROCESSING`, `ABNORMAL`, `CLOSED`, as of
    /// the bill's making); `SUCCESS` for Alipay's, which lists completed refunds only.
    pub refund_status: Option<String>,
    /// 交易时间 / 完成时间, read as Beijing time.
    pub at: DateTime<Utc>,
    /// A payment's order amount (订单金额 / 订单金额（元）); a refund's refunded amount
    /// (退款金额 / −商家实收（元）), positive too.
    pub amount_fen: i64,
    /// The provider's fee in 1/1000 fen, signed as what the merchant pays: positive on a
    /// payment (charged), negative on a refund (given back), whatever sign the provider prints.
    pub fee_millifen: i64,
    /// WeChat's 费率 as printed (`0.60%`).
    pub fee_rate: Option<String>,
}

/// The totals a bill states, once they matched the sums of its rows. Amounts are signed like
/// [`BillRow`]'s: `refund_fen` is positive, `fee_millifen` is the net fee the merchant pays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillTotals {
    pub payments: u64,
    pub payment_fen: i64,
    pub refunds: u64,
    pub refund_fen: i64,
    pub fee_millifen: i64,
}

/// A provider's bill, read a row at a time: what the reconciliation needs of either parser.
pub trait TradeBill {
    fn provider(&self) -> Provider;
    /// The next row; `Ok(None)` once the whole file was read and its totals matched.
    fn next_row(&mut self) -> Result<Option<BillRow>>;
    /// The checked totals, once `next_row` has answered `Ok(None)`.
    fn totals(&self) -> Option<&BillTotals>;
}

/// A fault found while parsing: an [`Error::Bill`] that can be kept and given again.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    code: BillFault,
    line: Option<u64>,
    detail: String,
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Self {
        Error::Bill {
            code: f.code,
            line: f.line,
            detail: f.detail,
        }
    }
}

pub(crate) type Parse<T> = std::result::Result<T, Fault>;

pub(crate) fn fault(code: BillFault, line: Option<u64>, detail: impl Into<String>) -> Fault {
    Fault {
        code,
        line,
        detail: detail.into(),
    }
}

/// What one step of a parser found: a row, or the end of a bill whose totals held.
pub(crate) enum Step {
    Row(BillRow),
    End(BillTotals),
}

/// Where a parser stands: reading, finished with its totals, or stopped at a fault it repeats.
#[derive(Debug, Default)]
pub(crate) enum Progress {
    #[default]
    Reading,
    Done(BillTotals),
    Failed(Fault),
}

impl Progress {
    /// Runs one `step` unless the bill is already finished or failed, and records its outcome.
    pub(crate) fn drive(&mut self, step: impl FnOnce() -> Parse<Step>) -> Result<Option<BillRow>> {
        match self {
            Progress::Done(_) => return Ok(None),
            Progress::Failed(f) => return Err(f.clone().into()),
            Progress::Reading => {}
        }
        match step() {
            Ok(Step::Row(row)) => Ok(Some(row)),
            Ok(Step::End(totals)) => {
                *self = Progress::Done(totals);
                Ok(None)
            }
            Err(f) => {
                *self = Progress::Failed(f.clone());
                Err(f.into())
            }
        }
    }

    pub(crate) fn totals(&self) -> Option<&BillTotals> {
        match self {
            Progress::Done(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn failed(&self) -> bool {
        matches!(self, Progress::Failed(_))
    }
}

/// Where each of `names` is in `header`. Every name must be there exactly once (extra names
/// are ignored): otherwise BILL_COLUMNS_UNEXPECTED at the header's line.
pub(crate) fn locate<const N: usize>(
    header: &[&str],
    names: [&str; N],
    line: u64,
) -> Parse<[usize; N]> {
    let mut found = [0; N];
    for (slot, name) in found.iter_mut().zip(names) {
        let mut at = header.iter().enumerate().filter(|(_, h)| **h == name);
        *slot = match (at.next(), at.next()) {
            (Some((i, _)), None) => i,
            (None, _) => {
                return Err(fault(
                    BillFault::ColumnsUnexpected,
                    Some(line),
                    format!("the header has no column {name}"),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(fault(
                    BillFault::ColumnsUnexpected,
                    Some(line),
                    format!("the header has column {name} twice"),
                ));
            }
        };
    }
    Ok(found)
}

/// The field at `index` of a row whose width was checked against its header.
pub(crate) fn field<'a>(fields: &[&'a str], index: usize) -> &'a str {
    fields.get(index).copied().unwrap_or_default()
}

/// Refuses a row with more or fewer fields than its header.
pub(crate) fn check_width(fields: &[&str], width: usize, line: u64) -> Parse<()> {
    if fields.len() == width {
        return Ok(());
    }
    Err(fault(
        BillFault::ColumnsUnexpected,
        Some(line),
        format!("the row has {} fields, the header {width}", fields.len()),
    ))
}

/// A non-empty identifier (a trade or refund number) of a row.
pub(crate) fn id(fields: &[&str], index: usize, name: &str, line: u64) -> Parse<String> {
    let text = field(fields, index);
    if text.is_empty() {
        return Err(fault(
            BillFault::Malformed,
            Some(line),
            format!("{name} is empty"),
        ));
    }
    Ok(text.to_owned())
}

/// A `YYYY-MM-DD HH:MM:SS` Beijing time.
pub(crate) fn beijing_time(text: &str, name: &str, line: u64) -> Parse<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .and_then(|t| t.and_local_timezone(BEIJING).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            fault(
                BillFault::Malformed,
                Some(line),
                format!("{name} {:?} is not a time", shorten(text)),
            )
        })
}

/// A field that must parse with `parse` (one of [`amount`]'s), else BILL_AMOUNT_MALFORMED.
pub(crate) fn money(
    text: &str,
    parse: fn(&str) -> Option<i64>,
    name: &str,
    line: u64,
) -> Parse<i64> {
    parse(text).ok_or_else(|| {
        fault(
            BillFault::AmountMalformed,
            Some(line),
            format!("{name} {:?} is not an amount", shorten(text)),
        )
    })
}

/// A count of rows as a bill states it: plain digits.
pub(crate) fn count(text: &str, name: &str, line: Option<u64>) -> Parse<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            fault(
                BillFault::Malformed,
                line,
                format!("{name} {:?} is not a count", shorten(text)),
            )
        })
}

/// `a + b` for running sums; a sum beyond i64 is a bill no one can mean.
pub(crate) fn add(a: i64, b: i64) -> Parse<i64> {
    a.checked_add(b)
        .ok_or_else(|| fault(BillFault::Malformed, None, "the bill's sums overflow"))
}

/// A text for an error message, cut to a length that cannot flood a log.
pub(crate) fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// BILL_TOTALS_MISMATCH unless what the bill `stated` is what its rows sum to; `show` writes
/// the two numbers for the message.
pub(crate) fn agree<T: PartialEq + Copy>(
    name: &str,
    stated: T,
    summed: T,
    show: impl Fn(T) -> String,
    line: Option<u64>,
) -> Parse<()> {
    if stated == summed {
        return Ok(());
    }
    Err(fault(
        BillFault::TotalsMismatch,
        line,
        format!(
            "{name} says {}, the rows sum to {}",
            show(stated),
            show(summed)
        ),
    ))
}
