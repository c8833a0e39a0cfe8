//! The refund state machine: reserving an amount on a locked order, and applying what a provider
//! says of a refund (an answer, a query, a notification, a bill).

use minigate_store::Conn;

use super::db::{self, RefundRow};
use crate::{
    Error, Result,
    orders::{self, OrderRow, Source},
    refund::{ABNORMAL, CLOSED, PROCESSING, RefundReport, RefundState, SUCCESS},
};

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundApplied {
    /// The refund moved; the order's figures and status follow. The caller writes the event.
    Changed {
        refund: Box<RefundRow>,
        order: Box<OrderRow>,
    },
    /// Nothing to change (the same state, a terminal refund, the provider does not know it).
    Unchanged(Box<RefundRow>),
    /// The provider's account contradicts ours (another amount, success of a refund we closed):
    /// flagged for a person, nothing changed.
    Mismatch { detail: String },
}

/// The status an order has given its refunds: `REFUNDING` while one is under way, else
/// `REFUNDED` / `PARTIALLY_REFUNDED` by what came back, else what it was before any refund
/// (`PAID`, or `CLOSED` for money that reached an order already closed).
pub fn order_status(order: &OrderRow, refunded_fen: i64, processing: bool) -> &'static str {
    let paid = order.paid_fen.unwrap_or(0);
    if processing {
        "REFUNDING"
    } else if paid > 0 && refunded_fen >= paid {
        "REFUNDED"
    } else if refunded_fen > 0 {
        "PARTIALLY_REFUNDED"
    } else if order.closed_at.is_some() {
        orders::CLOSED
    } else {
        orders::PAID
    }
}

/// Checks that `amount_fen` may be refunded from `order` (locked by the caller): it was paid,
/// and what succeeded or may still succeed plus this stays within what was paid. Returns what
/// would remain after it.
pub async fn reserve(tx: &mut Conn, order: &OrderRow, amount_fen: i64) -> Result<i64> {
    let Some(paid) = order.paid_fen.filter(|p| *p > 0) else {
        return Err(Error::NotRefundable(format!(
            "order {} is {} and was never paid",
            order.out_trade_no, order.status
        )));
    };
    let (committed, _) = db::committed(tx, order.id).await?;
    let remaining = paid - committed;
    if amount_fen <= 0 || amount_fen > remaining {
        return Err(Error::RefundExceedsPaid {
            remaining_fen: remaining.max(0),
        });
    }
    Ok(remaining - amount_fen)
}

/// Re-derives the order's status after a refund was added or moved.
pub async fn settle_order(tx: &mut Conn, order: &OrderRow) -> Result<OrderRow> {
    let (_, processing) = db::committed(tx, order.id).await?;
    let refunded = refunded(tx, order).await?;
    let status = order_status(order, refunded, processing);
    db::set_order_refunds(tx, order.id, refunded, status).await?;
    orders::db::get_order(tx, order.id).await
}

async fn refunded(tx: &mut Conn, order: &OrderRow) -> Result<i64> {
    Ok(db::list_for_order(tx, order.id)
        .await?
        .iter()
        .filter(|r| r.status == SUCCESS)
        .map(|r| r.amount_fen)
        .sum())
}

/// Applies `report` to `refund` of `order`; the caller has locked the order in this
/// transaction (which serialises everything that touches its refunds).
pub async fn apply_report(
    tx: &mut Conn,
    order: &OrderRow,
    refund: &RefundRow,
    report: &RefundReport,
    source: Source,
) -> Result<RefundApplied> {
    let now_state = refund.status.as_str();
    let to = report.state;
    if let Some(reported) = report.amount_fen
        && reported != refund.amount_fen
        && to == RefundState::Success
    {
        return Ok(RefundApplied::Mismatch {
            detail: format!(
                "{} reports {reported} fen refunded for refund {} of {} fen ({})",
                refund.provider,
                refund.out_refund_no,
                refund.amount_fen,
                source.as_str()
            ),
        });
    }
    let moves = match (now_state, to) {
        (PROCESSING | ABNORMAL, RefundState::Success) => true,
        (PROCESSING, RefundState::Abnormal | RefundState::Closed) => true,
        (ABNORMAL, RefundState::Closed) => true,
        (CLOSED, RefundState::Success) => {
            return Ok(RefundApplied::Mismatch {
                detail: format!(
                    "{} reports refund {} succeeded, which was closed here ({})",
                    refund.provider,
                    refund.out_refund_no,
                    source.as_str()
                ),
            });
        }
        _ => false,
    };
    if !moves {
        // Still processing: keep what the provider told us about it.
        if to == RefundState::Processing
            && (refund.provider_refund_no.is_none() || refund.accepted_at.is_none())
            && (report.provider_refund_no.is_some() || report.accepted_at.is_some())
        {
            let r = db::set_state(
                tx,
                refund.id,
                PROCESSING,
                report.provider_refund_no.as_deref(),
                report.accepted_at,
                None,
                None,
            )
            .await?;
            return Ok(RefundApplied::Unchanged(Box::new(r)));
        }
        return Ok(RefundApplied::Unchanged(Box::new(refund.clone())));
    }
    let failure = match to {
        RefundState::Abnormal | RefundState::Closed => Some(report.provider_state.as_str()),
        _ => None,
    };
    let succeeded_at = match to {
        RefundState::Success => Some(report.succeeded_at.unwrap_or_else(chrono::Utc::now)),
        _ => None,
    };
    let moved = db::set_state(
        tx,
        refund.id,
        to.as_str(),
        report.provider_refund_no.as_deref(),
        report.accepted_at,
        succeeded_at,
        failure,
    )
    .await?;
    if to == RefundState::Success {
        orders::db::insert_ledger(
            tx,
            order,
            "REFUND",
            -refund.amount_fen,
            &refund.out_refund_no,
            source.as_str(),
        )
        .await?;
    }
    let order = settle_order(tx, order).await?;
    Ok(RefundApplied::Changed {
        refund: Box::new(moved),
        order: Box::new(order),
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn paid_order(paid: Option<i64>, closed: bool) -> OrderRow {
        let mut o = crate::orders::db::sample_order("PAID", paid);
        o.closed_at = closed.then(Utc::now);
        o
    }

    #[test]
    fn an_order_status_follows_its_refunds() {
        let o = paid_order(Some(1_000), false);
        assert_eq!(order_status(&o, 0, true), "REFUNDING");
        assert_eq!(order_status(&o, 300, true), "REFUNDING");
        assert_eq!(order_status(&o, 300, false), "PARTIALLY_REFUNDED");
        assert_eq!(order_status(&o, 1_000, false), "REFUNDED");
        // Every refund refused: back to what it was.
        assert_eq!(order_status(&o, 0, false), "PAID");
        // Money paid to an order already closed stays CLOSED until refunded.
        let closed = paid_order(Some(1_000), true);
        assert_eq!(order_status(&closed, 0, false), "CLOSED");
        assert_eq!(order_status(&closed, 1_000, false), "REFUNDED");
    }
}
