use async_graphql::{Context, ID, Subscription};
use futures_util::{Stream, StreamExt, stream};
use minigate_payments::orders::OrderRow;

use super::{Payment, PaymentUpdate, UPDATED, query::visible_order, topic};
use crate::{
    Error, Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct PaymentSubscription;

#[Subscription]
impl PaymentSubscription {
    /// A payment's state: first as it is now (no `eventId`), then each change, PAID within a
    /// second of the provider's callback (or of the query that found it when the callback is
    /// late). After a reconnect pass the last `eventId` as `after`.
    async fn payment_updated(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = async_graphql::Result<PaymentUpdate>> + use<>> {
        let v = viewer(ctx)?.clone();
        let d = deps(ctx)?.clone();
        let id = parse_id("paymentId", &payment_id)?;
        let after = crate::validate::event_id(after.as_ref())?;
        // Registered before the current state is read, so no change falls in between.
        let sub = d.bus.subscribe(vec![topic(id)], after).await?;
        let now = {
            let mut c = d.db.conn().await?;
            visible_order(&mut c, &v, id)
                .await?
                .ok_or(Error::NotFound("payment"))?
        };
        let first = after.is_none().then(|| {
            Ok(PaymentUpdate {
                event_id: None,
                payment: Payment(now),
            })
        });
        let changes = sub.into_stream().filter_map(|event| async move {
            let event = match event {
                Ok(e) => e,
                Err(e) => return Some(Err(Error::from(e).into())),
            };
            if event.kind != UPDATED {
                return None;
            }
            match <OrderRow as serde::Deserialize>::deserialize(&event.payload.0) {
                Ok(order) => Some(Ok(PaymentUpdate {
                    event_id: Some(event.seq),
                    payment: Payment(order),
                })),
                Err(_) => {
                    tracing::error!(seq = event.seq, "unreadable payment event skipped");
                    None
                }
            }
        });
        Ok(stream::iter(first).chain(changes))
    }
}
