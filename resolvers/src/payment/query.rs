use async_graphql::{Context, ID, Object};
use minigate_payments::orders;

use super::{Payment, db};
use crate::{
    Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct PaymentQuery;

#[Object]
impl PaymentQuery {
    /// A payment order, for whoever may see its bill.
    async fn payment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Payment>> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        visible_order(&mut c, v, id).await.map(|o| o.map(Payment))
    }

    /// What the payment system refused to decide alone, newest first, for operators: money paid
    /// to a closed order (decide on a refund), an amount, merchant or order that did not match.
    async fn payment_flags(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<PaymentFlag>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows =
            orders::db::open_flags(&mut c, v.tenant_id, i64::from(first.clamp(1, 200))).await?;
        Ok(rows.into_iter().map(PaymentFlag).collect())
    }
}

/// A payment event a person has to look at.
pub struct PaymentFlag(orders::db::FlagRow);

#[Object]
impl PaymentFlag {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `PAID_AFTER_CLOSE`, `AMOUNT_MISMATCH`, `MERCHANT_MISMATCH` or `UNKNOWN_ORDER`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn detail(&self) -> &str {
        &self.0.detail
    }
    async fn payment_id(&self) -> Option<ID> {
        self.0.order_id.map(|i| ID(i.to_string()))
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
}

/// The order, if `v` may see its bill.
pub(super) async fn visible_order(
    c: &mut minigate_store::Conn,
    v: &crate::Viewer,
    id: minigate_store::Id,
) -> Result<Option<orders::OrderRow>> {
    let Some(o) = orders::db::find_order(c, id).await? else {
        return Ok(None);
    };
    if o.tenant_id != v.tenant_id {
        return Ok(None);
    }
    match db::visible_bill(c, v, o.bill_id).await {
        Ok(_) => Ok(Some(o)),
        Err(crate::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
