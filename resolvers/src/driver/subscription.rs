//! Live accidents: new ones for the branch's staff and the tenant's operators
//! (`accidentReported`), and each step of one accident for its driver, the branch's staff and
//! operators (`accidentUpdated`). Both resume after a reconnect from the last `eventId` seen.

use async_graphql::{Context, ID, SimpleObject, Subscription};
use futures_util::Stream;
use minigate_push::bus::Subscription as BusSubscription;

use super::{
    AccidentReport,
    accident::{REPORTED, UPDATED, reported_topic, updated_topic},
    db::{self, AccidentRow},
    scope::Scope,
};
use crate::{
    Error, Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

/// An accident as an event delivered it.
#[derive(SimpleObject)]
pub struct AccidentEvent {
    /// Pass as `after` when subscribing again after a reconnect.
    pub event_id: i64,
    pub accident: AccidentReport,
}

/// The accidents of `kind` on `sub` that `scope` covers, as they come.
fn accidents(
    sub: BusSubscription,
    kind: &'static str,
    scope: Scope,
) -> impl Stream<Item = async_graphql::Result<AccidentEvent>> {
    futures_util::stream::unfold(sub, move |mut sub| async move {
        loop {
            let event = match sub.next().await? {
                Ok(e) => e,
                Err(e) => return Some((Err(Error::from(e).into()), sub)),
            };
            if event.kind != kind {
                continue;
            }
            let Ok(row) = <AccidentRow as serde::Deserialize>::deserialize(&event.payload.0) else {
                tracing::error!(seq = event.seq, "unreadable accident event skipped");
                continue;
            };
            // Authorised for each event, not only when subscribing.
            if !scope.covers(row.driver_id, row.branch_id) {
                continue;
            }
            let item = AccidentEvent {
                event_id: event.seq,
                accident: AccidentReport(row),
            };
            return Some((Ok(item), sub));
        }
    })
}

#[derive(Default)]
pub struct AccidentSubscription;

#[Subscription]
impl AccidentSubscription {
    /// New accident reports: the branch's for staff, every branch's for operators.
    async fn accident_reported(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = async_graphql::Result<AccidentEvent>> + use<>> {
        let v = viewer(ctx)?;
        let scope = Scope::of_staff(v)?;
        let after = crate::validate::event_id(after.as_ref())?;
        let d = deps(ctx)?;
        let sub = d
            .bus
            .subscribe(vec![reported_topic(v.tenant_id)], after)
            .await?;
        Ok(accidents(sub, REPORTED, scope))
    }

    /// Each step of one accident (its driver, the branch's staff, operators). Someone else's
    /// accident is `NOT_FOUND`.
    async fn accident_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = async_graphql::Result<AccidentEvent>> + use<>> {
        let v = viewer(ctx)?;
        let scope = Scope::of(v)?;
        let id = parse_id("id", &id)?;
        let after = crate::validate::event_id(after.as_ref())?;
        let d = deps(ctx)?;
        let mut c = d.db.conn().await?;
        db::get_accident(&mut c, v.tenant_id, scope, id).await?;
        drop(c);
        let sub = d.bus.subscribe(vec![updated_topic(id)], after).await?;
        Ok(accidents(sub, UPDATED, scope))
    }
}
