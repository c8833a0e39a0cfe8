//! State changes of orders, each with its event in the same transaction.

use chrono::Utc;
use minigate_payments::{
    orders::{self, Applied, OrderRow, Source},
    trade::Trade,
};
use minigate_push::events::{self, NewEvent};
use minigate_store::{Conn, Id};

use super::{UPDATED, topic};
use crate::{Deps, Result};

/// Writes the order's `payment.updated` event in `tx`.
pub async fn emit(tx: &mut Conn, d: &Deps, order: &OrderRow) -> Result<()> {
    events::enqueue(
        tx,
        &d.waker,
        NewEvent {
            tenant_id: order.tenant_id,
            topic: topic(order.id),
            kind: UPDATED,
            payload: serde_json::to_value(order)
                .map_err(|e| crate::Error::Internal(format!("order event: {e}")))?,
        },
    )
    .await?;
    Ok(())
}

/// Applies a provider's account of an order (from a query or a reconciliation) in its own
/// transaction; returns what it did and the order as it now is.
pub async fn settle(
    d: &Deps,
    order_id: Id,
    trade: &Trade,
    source: Source,
) -> Result<(Applied, Option<OrderRow>)> {
    let mut tx = d.db.begin().await?;
    let Some(order) = orders::db::lock_order(&mut tx, order_id).await? else {
        tx.rollback().await?;
        return Ok((Applied::NotPaid, None));
    };
    let applied = orders::apply_trade(&mut tx, &order, trade, source, None).await?;
    if let Applied::Credited(o) = &applied {
        crate::delivery::sources::payment_received(&mut tx, o).await?;
    }
    let now = match &applied {
        Applied::Credited(o) | Applied::PaidAfterClose(o) => {
            emit(&mut tx, d, o).await?;
            o.clone()
        }
        _ => order,
    };
    tx.commit().await?;
    Ok((applied, Some(now)))
}

/// Closes a `CREATED` order here (after its provider closed it); `None` if it was paid
/// meanwhile.
pub async fn close_here(d: &Deps, order_id: Id) -> Result<Option<OrderRow>> {
    let mut tx = d.db.begin().await?;
    let closed = orders::db::close_order(&mut tx, order_id, Utc::now()).await?;
    if let Some(o) = &closed {
        emit(&mut tx, d, o).await?;
    }
    tx.commit().await?;
    Ok(closed)
}
