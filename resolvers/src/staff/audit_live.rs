//! Live progress of an asset audit (`auditProgress`): the counts after each finding and the
//! close, resumable after a reconnect from the last `eventId` seen.

use async_graphql::{Context, ID, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, stream};

use super::{
    audit::{AuditStatus, PROGRESS, ProgressEvent, VehicleCondition, topic},
    audit_db::{AuditRow, FindingRow},
    audit_object::{progress, visible_audit},
};
use crate::{
    Error, Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

/// An audit's counts at one moment, and what changed them.
pub struct AuditProgress {
    /// `None` for the first message, the state when subscribing.
    pub event_id: Option<i64>,
    pub audit: AuditRow,
    pub finding: Option<FindingRow>,
}

#[Object]
impl AuditProgress {
    /// Pass the last one seen as `after` when subscribing again after a reconnect. Null for
    /// the first message, which is the state when subscribing.
    async fn event_id(&self) -> Option<ID> {
        self.event_id.map(|s| ID(s.to_string()))
    }
    async fn audit_id(&self) -> ID {
        ID(self.audit.id.to_string())
    }
    async fn status(&self) -> Option<AuditStatus> {
        AuditStatus::parse(&self.audit.status)
    }
    async fn listed_count(&self) -> i32 {
        self.audit.listed_count
    }
    async fn found_count(&self) -> i32 {
        self.audit.found_count
    }
    async fn missing_count(&self) -> i32 {
        (self.audit.listed_count - self.audit.found_count).max(0)
    }
    async fn unlisted_count(&self) -> i32 {
        self.audit.unlisted_count
    }
    /// `foundCount / listedCount`, 0 to 1.
    async fn progress(&self) -> f64 {
        progress(self.audit.found_count, self.audit.listed_count)
    }
    /// The finding this event is about; null for the first message and for the close.
    async fn last_finding(&self) -> Option<AuditFindingSummary> {
        self.finding.as_ref().map(AuditFindingSummary::from)
    }
}

/// A finding as an event tells it; its photos are read with `assetAudit`.
#[derive(SimpleObject)]
pub struct AuditFindingSummary {
    pub id: ID,
    pub vehicle_id: Option<ID>,
    pub plate: Option<String>,
    pub vin: Option<String>,
    pub listed: bool,
    pub mileage_km: i32,
    pub condition: Option<VehicleCondition>,
    pub recorded_by_id: ID,
    pub recorded_by_name: String,
    pub updated_at: DateTime<Utc>,
}

impl From<&FindingRow> for AuditFindingSummary {
    fn from(f: &FindingRow) -> Self {
        AuditFindingSummary {
            id: ID(f.id.to_string()),
            vehicle_id: f.vehicle_id.map(|x| ID(x.to_string())),
            plate: f.plate.clone(),
            vin: f.vin.clone(),
            listed: f.listed,
            mileage_km: f.mileage_km,
            condition: VehicleCondition::parse(&f.condition),
            recorded_by_id: ID(f.recorded_by.to_string()),
            recorded_by_name: f.recorded_by_name.clone(),
            updated_at: f.updated_at,
        }
    }
}

#[derive(Default)]
pub struct StaffSubscription;

#[Subscription]
impl StaffSubscription {
    /// An audit's progress (staff of its branch, operators): first its state now, then the
    /// counts after each finding and after the close. After a reconnect pass the last
    /// `eventId` seen as `after` to receive what was missed instead (`RESUME_WINDOW_EXPIRED`:
    /// read `assetAudit` again and subscribe without `after`). Another branch's or company's
    /// audit is `NOT_FOUND`.
    async fn audit_progress(
        &self,
        ctx: &Context<'_>,
        audit_id: ID,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = async_graphql::Result<AuditProgress>> + use<>> {
        let v = viewer(ctx)?;
        let id = parse_id("auditId", &audit_id)?;
        let after = crate::validate::event_id(after.as_ref())?;
        let d = deps(ctx)?;
        {
            // Checked before subscribing, so an audit the viewer may not see costs no slot.
            let mut c = d.db.conn().await?;
            visible_audit(&mut c, v, id).await?;
        }
        // Registered before the current state is read, so no change falls in between.
        let sub = d.bus.subscribe(vec![topic(id)], after).await?;
        let first = match after {
            Some(_) => None,
            None => {
                let mut c = d.db.conn().await?;
                Some(Ok(AuditProgress {
                    event_id: None,
                    audit: visible_audit(&mut c, v, id).await?,
                    finding: None,
                }))
            }
        };
        let changes = sub.into_stream().filter_map(|event| async move {
            let event = match event {
                Ok(e) => e,
                Err(e) => return Some(Err(Error::from(e).into())),
            };
            if event.kind != PROGRESS {
                return None;
            }
            match <ProgressEvent as serde::Deserialize>::deserialize(&event.payload.0) {
                Ok(p) => Some(Ok(AuditProgress {
                    event_id: Some(event.seq),
                    audit: p.audit,
                    finding: p.finding,
                })),
                Err(_) => {
                    tracing::error!(seq = event.seq, "unreadable audit event skipped");
                    None
                }
            }
        });
        Ok(stream::iter(first).chain(changes))
    }
}
