//! What one bill row says against what we hold: agreement, a difference to record, or a local
//! order or refund to ask the provider about before anything is repaired. Pure: the engine does
//! the asking and the writing.

use crate::{
    bill::{BillRow, RowKind},
    orders::OrderRow,
    refunds::RefundRow,
};
use minigate_store::Id;

use super::db::NewDifference;

pub const MISSING_LOCALLY: &str = "MISSING_LOCALLY";
pub const MISSING_AT_PROVIDER: &str = "MISSING_AT_PROVIDER";
pub const AMOUNT_MISMATCH: &str = "AMOUNT_MISMATCH";
pub const STATUS_MISMATCH: &str = "STATUS_MISMATCH";
pub const FEE_MISMATCH: &str = "FEE_MISMATCH";
pub const PAID_AFTER_CLOSE: &str = "PAID_AFTER_CLOSE";

/// What a row calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Difference(NewDifference),
    /// The bill has a payment our order does not: the provider's own answer decides.
    QueryOrder(Id),
    /// The bill has a refund done that we hold under way: the provider's answer decides.
    QueryRefund(Id),
}

/// The fee the agreed rate gives on `fen`, rounded half up to the fen.
pub fn expected_fee_fen(fen: i64, rate_bp: i64) -> i64 {
    (fen.abs() * rate_bp + 5_000) / 10_000 * fen.signum()
}

/// A millifen amount rounded half away from zero to the fen.
pub fn millifen_to_fen(m: i64) -> i64 {
    (m.abs() + 500) / 1_000 * m.signum()
}

fn difference(kind: &'static str, reference: &str, detail: String) -> NewDifference {
    NewDifference {
        kind,
        reference: reference.to_owned(),
        out_trade_no: None,
        order_id: None,
        refund_id: None,
        local_fen: None,
        provider_fen: None,
        local_status: None,
        provider_status: None,
        detail,
        repaired: false,
    }
}

fn fee_check(row: &BillRow, reference: &str, fen: i64, rate_bp: i64) -> Option<NewDifference> {
    let expected = match row.kind {
        RowKind::Payment => expected_fee_fen(fen, rate_bp),
        RowKind::Refund => -expected_fee_fen(fen, rate_bp),
    };
    let billed = millifen_to_fen(row.fee_millifen);
    (billed != expected).then(|| NewDifference {
        local_fen: Some(expected),
        provider_fen: Some(billed),
        out_trade_no: Some(row.out_trade_no.clone()),
        ..difference(
            FEE_MISMATCH,
            reference,
            format!(
                "line {}: fee {} millifen on {fen} fen, the agreed {rate_bp} bp give {expected} fen",
                row.line, row.fee_millifen
            ),
        )
    })
}

/// A payment row against our order of that `out_trade_no` (if it is this tenant's).
pub fn payment(row: &BillRow, order: Option<&OrderRow>, rate_bp: i64) -> Vec<Verdict> {
    let reference = row.out_trade_no.as_str();
    let Some(o) = order else {
        return vec![Verdict::Difference(NewDifference {
            provider_fen: Some(row.amount_fen),
            provider_status: Some("PAID".into()),
            out_trade_no: Some(row.out_trade_no.clone()),
            ..difference(
                MISSING_LOCALLY,
                reference,
                format!(
                    "line {}: paid {} fen at the provider ({}), no such order here",
                    row.line, row.amount_fen, row.provider_trade_no
                ),
            )
        })];
    };
    let with_order = |d: NewDifference| NewDifference {
        order_id: Some(o.id),
        local_status: Some(o.status.clone()),
        ..d
    };
    let Some(paid) = o.paid_fen else {
        // Waiting (a callback that never came) or closed: ask before believing.
        return vec![Verdict::QueryOrder(o.id)];
    };
    let mut out = Vec::new();
    if o.status == crate::orders::CLOSED && o.refunded_fen < paid {
        out.push(Verdict::Difference(with_order(NewDifference {
            local_fen: Some(paid),
            provider_fen: Some(row.amount_fen),
            out_trade_no: Some(row.out_trade_no.clone()),
            ..difference(
                PAID_AFTER_CLOSE,
                reference,
                format!(
                    "line {}: {} fen paid to order {} after it was closed: decide on a refund",
                    row.line, row.amount_fen, o.out_trade_no
                ),
            )
        })));
    }
    if row.amount_fen != paid {
        out.push(Verdict::Difference(with_order(NewDifference {
            local_fen: Some(paid),
            provider_fen: Some(row.amount_fen),
            out_trade_no: Some(row.out_trade_no.clone()),
            ..difference(
                AMOUNT_MISMATCH,
                reference,
                format!(
                    "line {}: the provider has {} fen, the order {paid} fen",
                    row.line, row.amount_fen
                ),
            )
        })));
    }
    if let Some(fee) = fee_check(row, reference, row.amount_fen, rate_bp) {
        out.push(Verdict::Difference(with_order(fee)));
    }
    out
}

/// A refund row against our refund of that number.
pub fn refund(row: &BillRow, refund: Option<&RefundRow>, rate_bp: i64) -> Vec<Verdict> {
    let reference = row.out_refund_no.as_deref().unwrap_or("");
    let billed_status = row.refund_status.as_deref().unwrap_or("SUCCESS");
    let Some(r) = refund else {
        return vec![Verdict::Difference(NewDifference {
            provider_fen: Some(row.amount_fen),
            provider_status: Some(billed_status.to_owned()),
            out_trade_no: Some(row.out_trade_no.clone()),
            ..difference(
                MISSING_LOCALLY,
                reference,
                format!(
                    "line {}: refund of {} fen on order {} at the provider, unknown here",
                    row.line, row.amount_fen, row.out_trade_no
                ),
            )
        })];
    };
    let with_refund = |d: NewDifference| NewDifference {
        order_id: Some(r.order_id),
        refund_id: Some(r.id),
        out_trade_no: Some(row.out_trade_no.clone()),
        local_status: Some(r.status.clone()),
        provider_status: Some(billed_status.to_owned()),
        ..d
    };
    let mut out = Vec::new();
    match (r.status.as_str(), billed_status) {
        // A bill is a snapshot: a refund under way then may be done now, and the reverse.
        ("PROCESSING", "SUCCESS") => out.push(Verdict::QueryRefund(r.id)),
        ("SUCCESS", "SUCCESS" | "PROCESSING") | ("PROCESSING", "PROCESSING") => {}
        ("ABNORMAL", "ABNORMAL") | ("CLOSED", "CLOSED") => {}
        (local, billed) => out.push(Verdict::Difference(with_refund(difference(
            STATUS_MISMATCH,
            reference,
            format!(
                "line {}: refund {} is {billed} at the provider, {local} here",
                row.line, r.out_refund_no
            ),
        )))),
    }
    if row.amount_fen != r.amount_fen {
        out.push(Verdict::Difference(with_refund(NewDifference {
            local_fen: Some(r.amount_fen),
            provider_fen: Some(row.amount_fen),
            ..difference(
                AMOUNT_MISMATCH,
                reference,
                format!(
                    "line {}: the provider refunded {} fen, the refund here is {} fen",
                    row.line, row.amount_fen, r.amount_fen
                ),
            )
        })));
    }
    if let Some(fee) = fee_check(row, reference, row.amount_fen, rate_bp) {
        out.push(Verdict::Difference(with_refund(fee)));
    }
    out
}

/// A paid order the bill does not hold.
pub fn order_missing_at_provider(o: &OrderRow) -> NewDifference {
    NewDifference {
        order_id: Some(o.id),
        out_trade_no: Some(o.out_trade_no.clone()),
        local_fen: o.paid_fen,
        local_status: Some(o.status.clone()),
        ..difference(
            MISSING_AT_PROVIDER,
            &o.out_trade_no,
            format!(
                "order {} is paid here ({} fen) but not in the provider's bill",
                o.out_trade_no,
                o.paid_fen.unwrap_or(0)
            ),
        )
    }
}

/// A refund the provider accepted that the bill does not hold.
pub fn refund_missing_at_provider(r: &RefundRow, out_trade_no: &str) -> NewDifference {
    NewDifference {
        order_id: Some(r.order_id),
        refund_id: Some(r.id),
        out_trade_no: Some(out_trade_no.to_owned()),
        local_fen: Some(r.amount_fen),
        local_status: Some(r.status.clone()),
        ..difference(
            MISSING_AT_PROVIDER,
            &r.out_refund_no,
            format!(
                "refund {} ({} fen, {}) is not in the provider's bill",
                r.out_refund_no, r.amount_fen, r.status
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up_to_the_fen() {
        assert_eq!(expected_fee_fen(1_230, 60), 7); // 7.38
        assert_eq!(expected_fee_fen(2_500, 60), 15); // 15.00
        assert_eq!(expected_fee_fen(250, 60), 2); // 1.50 → 2
        assert_eq!(expected_fee_fen(1, 60), 0);
        assert_eq!(expected_fee_fen(-250, 60), -2);
        assert_eq!(millifen_to_fen(7_380), 7);
        assert_eq!(millifen_to_fen(7_500), 8);
        assert_eq!(millifen_to_fen(-3_000), -3);
    }
}
