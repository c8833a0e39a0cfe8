//! Applying what a provider says to a locked order: the one place an order is credited. First
//! [`decide`] (pure: what the account means for this order), then [`apply_trade`] writes it.

use chrono::{DateTime, Utc};
use minigate_store::{Conn, Id};

use super::{CLOSED, CREATED, OrderRow, Source, db};
use crate::{
    Result,
    trade::{Trade, TradeState},
};

/// What a provider's account of an order calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not paid at the provider: nothing to credit.
    NotPaid,
    /// Paid with another amount than the order's: flag, never credit.
    AmountMismatch { detail: String },
    /// Paid while we wait for it: credit.
    Credit(Payment),
    /// Paid to an order we closed: record the money, flag it for a refund decision.
    PaidAfterClose(Payment),
    /// Seen before: nothing changes.
    AlreadyPaid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub fen: i64,
    pub at: DateTime<Utc>,
    pub provider_trade_no: String,
}

/// What `trade` means for `order` as it is now.
pub fn decide(order: &OrderRow, trade: &Trade, source: Source) -> Decision {
    if trade.state != TradeState::Paid {
        return Decision::NotPaid;
    }
    if trade.amount_fen != Some(order.amount_fen) {
        return Decision::AmountMismatch {
            detail: format!(
                "{} reports {} fen for order {} of {} fen ({})",
                order.provider,
                trade
                    .amount_fen
                    .map_or_else(|| "no amount".to_owned(), |a| a.to_string()),
                order.out_trade_no,
                order.amount_fen,
                source.as_str()
            ),
        };
    }
    let payment = Payment {
        fen: order.amount_fen,
        at: trade.paid_at.unwrap_or_else(Utc::now),
        provider_trade_no: trade
            .provider_trade_no
            .clone()
            .unwrap_or_else(|| order.out_trade_no.clone()),
    };
    match order.status.as_str() {
        CREATED => Decision::Credit(payment),
        CLOSED if order.paid_fen.is_none() => Decision::PaidAfterClose(payment),
        _ => Decision::AlreadyPaid,
    }
}

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
    let decision = decide(order, trade, source);
    apply_decision(tx, order, decision, source, notification).await
}

/// Writes what [`decide`] found, for an order locked since.
pub async fn apply_decision(
    tx: &mut Conn,
    order: &OrderRow,
    decision: Decision,
    source: Source,
    notification: Option<Id>,
) -> Result<Applied> {
    match decision {
        Decision::NotPaid => Ok(Applied::NotPaid),
        Decision::AlreadyPaid => Ok(Applied::AlreadyPaid),
        Decision::AmountMismatch { detail } => {
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
            Ok(Applied::AmountMismatch)
        }
        Decision::Credit(p) => {
            let Some(paid) = db::mark_paid(tx, order.id, &p).await? else {
                return Ok(Applied::AlreadyPaid);
            };
            db::insert_ledger(
                tx,
                order,
                "PAYMENT",
                p.fen,
                &p.provider_trade_no,
                source.as_str(),
            )
            .await?;
            db::mark_bill_paid(tx, order.bill_id, p.at).await?;
            Ok(Applied::Credited(paid))
        }
        Decision::PaidAfterClose(p) => {
            let Some(recorded) = db::record_paid_after_close(tx, order.id, &p).await? else {
                return Ok(Applied::AlreadyPaid);
            };
            db::insert_ledger(
                tx,
                order,
                "PAYMENT",
                p.fen,
                &p.provider_trade_no,
                source.as_str(),
            )
            .await?;
            let detail = format!(
                "{} fen paid to closed order {} ({}): decide on a refund",
                p.fen,
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
            Ok(Applied::PaidAfterClose(recorded))
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn order(status: &str, paid: Option<i64>) -> OrderRow {
        crate::orders::db::sample_order(status, paid)
    }

    fn trade(state: TradeState, fen: Option<i64>) -> Trade {
        Trade {
            out_trade_no: "0123456789abcdef0123456789abcdef".into(),
            state,
            provider_state: "SUCCESS".into(),
            provider_trade_no: Some("4200001".into()),
            amount_fen: fen,
            paid_at: None,
            payer: None,
        }
    }

    #[test]
    fn an_order_moves_forward_only_and_never_on_another_amount() {
        let paid = trade(TradeState::Paid, Some(1_000));
        let q = Source::Query;
        assert!(
            matches!(decide(&order(CREATED, None), &paid, q), Decision::Credit(p) if p.fen == 1_000)
        );
        assert_eq!(
            decide(&order("PAID", Some(1_000)), &paid, q),
            Decision::AlreadyPaid
        );
        assert_eq!(
            decide(&order("REFUNDED", Some(1_000)), &paid, q),
            Decision::AlreadyPaid
        );
        assert!(matches!(
            decide(&order(CLOSED, None), &paid, q),
            Decision::PaidAfterClose(_)
        ));
        // Money already recorded on the closed order is not recorded twice.
        assert_eq!(
            decide(&order(CLOSED, Some(1_000)), &paid, q),
            Decision::AlreadyPaid
        );
        for bad in [Some(999), Some(1_001), None] {
            assert!(matches!(
                decide(&order(CREATED, None), &trade(TradeState::Paid, bad), q),
                Decision::AmountMismatch { .. }
            ));
        }
        for waiting in [
            TradeState::NotPaid,
            TradeState::Closed,
            TradeState::NotFound,
        ] {
            assert_eq!(
                decide(&order(CREATED, None), &trade(waiting, Some(1_000)), q),
                Decision::NotPaid
            );
        }
    }
}
