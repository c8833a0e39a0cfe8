//! Applying what a provider says to a locked order: the one place an order is credited.

use chrono::Utc;
use minigate_store::{Conn, Id};

use super::{CLOSED, CREATED, OrderRow, Source, db};
use crate::{
    Result,
    trade::{Trade, TradeState},
};

/// What applying a provider's account did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The order moved to `PAID` now: ledger entry written, bill paid. The caller writes the
    /// event in the same transaction.
    Credited(OrderRow),
    /// It was paid before (a duplicate or a late signal): nothing changed.
    AlreadyPaid,
    /// Money reached an order we had closed: recorded, ledger entry written, flagged for a
    /// refund decision. The caller writes the event.
    PaidAfterClose(OrderRow),
    /// The provider reports another amount than the order's: flagged, never credited.
    AmountMismatch,
    /// The provider does not say it is paid: nothing to credit.
    NotPaid,
}

/// Applies `trade` to `order`, which the caller has locked in this transaction.
pub async fn apply_trade(
    tx: &mut Conn,
    order: &OrderRow,
    trade: &Trade,
    source: Source,
    notification: Option<Id>,
) -> Result<Applied> {
    if trade.state != TradeState::Paid {
        return Ok(Applied::NotPaid);
    }
    if trade.amount_fen != Some(order.amount_fen) {
        let detail = format!(
            "{} reports {} fen for order {} of {} fen ({})",
            order.provider,
            trade
                .amount_fen
                .map_or_else(|| "no amount".to_owned(), |a| a.to_string()),
            order.out_trade_no,
            order.amount_fen,
            source.as_str()
        );
        tracing::error!(order = %order.id, %detail, "payment amount mismatch");
        db::insert_flag(
            tx,
            Some(order.tenant_id),
            Some(order.id),
            notification,
            "AMOUNT_MISMATCH",
            &detail,
        )
        .await?;
        return Ok(Applied::AmountMismatch);
    }
    let paid_fen = order.amount_fen;
    let paid_at = trade.paid_at.unwrap_or_else(Utc::now);
    let trade_no = trade
        .provider_trade_no
        .clone()
        .unwrap_or_else(|| order.out_trade_no.clone());
    match order.status.as_str() {
        CREATED => {
            if !db::mark_paid(tx, order.id, paid_fen, paid_at, &trade_no).await? {
                return Ok(Applied::AlreadyPaid);
            }
            db::insert_ledger(tx, order, "PAYMENT", paid_fen, &trade_no, source.as_str()).await?;
            db::mark_bill_paid(tx, order.bill_id, paid_at).await?;
            Ok(Applied::Credited(db::get_order(tx, order.id).await?))
        }
        CLOSED => {
            if !db::record_paid_after_close(tx, order.id, paid_fen, paid_at, &trade_no).await? {
                return Ok(Applied::AlreadyPaid);
            }
            db::insert_ledger(tx, order, "PAYMENT", paid_fen, &trade_no, source.as_str()).await?;
            let detail = format!(
                "{} fen paid to closed order {} ({}): decide on a refund",
                paid_fen,
                order.out_trade_no,
                source.as_str()
            );
            tracing::warn!(order = %order.id, "payment for a closed order");
            db::insert_flag(
                tx,
                Some(order.tenant_id),
                Some(order.id),
                notification,
                "PAID_AFTER_CLOSE",
                &detail,
            )
            .await?;
            Ok(Applied::PaidAfterClose(db::get_order(tx, order.id).await?))
        }
        _ => Ok(Applied::AlreadyPaid),
    }
}
