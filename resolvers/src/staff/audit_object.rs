//! Asset audits as clients read them, and the queries that list them.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_store::Id;

use super::{
    audit::{AuditStatus, VehicleCondition},
    audit_db::{self, AuditRow, DiscrepancyRow, FindingRow},
};
use crate::{
    Error, Result, Viewer,
    photos::{self, RecordPhoto},
    registry::{
        Branch, Loaders,
        input::{parse_id, parse_opt_id},
        query::page_size,
    },
    viewer::{deps, viewer},
};

/// The share of the list found, 0 to 1; an empty list is complete.
pub fn progress(found: i32, listed: i32) -> f64 {
    if listed <= 0 {
        1.0
    } else {
        f64::from(found.clamp(0, listed)) / f64::from(listed)
    }
}

pub(crate) async fn branch(ctx: &Context<'_>, id: Id) -> async_graphql::Result<Branch> {
    ctx.data::<Loaders>()?
        .branches
        .load_one(id)
        .await?
        .map(Branch)
        .ok_or_else(|| Error::NotFound("branch").into())
}

/// The audit `id` if `v` may read it: staff their branch's, operators the tenant's. Anything
/// else is `NOT_FOUND`, as the registry answers for another branch's vehicle.
pub(crate) async fn visible_audit(
    c: &mut minigate_store::Conn,
    v: &Viewer,
    id: Id,
) -> Result<AuditRow> {
    let scope = v.registry_scope()?;
    let row = audit_db::get_audit(c, v.tenant_id, id).await?;
    if scope.is_some_and(|own| own != row.branch_id) {
        return Err(Error::NotFound("asset audit"));
    }
    Ok(row)
}

/// An asset audit of one branch's vehicles.
pub struct AssetAudit(pub AuditRow);

#[Object]
impl AssetAudit {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn status(&self) -> Option<AuditStatus> {
        AuditStatus::parse(&self.0.status)
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Branch> {
        branch(ctx, self.0.branch_id).await
    }
    /// Vehicles on the list (the branch's vehicles not retired when the audit opened).
    async fn listed_count(&self) -> i32 {
        self.0.listed_count
    }
    /// Listed vehicles found so far.
    async fn found_count(&self) -> i32 {
        self.0.found_count
    }
    /// Listed vehicles not found (yet, while the audit is open).
    async fn missing_count(&self) -> i32 {
        (self.0.listed_count - self.0.found_count).max(0)
    }
    /// Vehicles found that are not on the list.
    async fn unlisted_count(&self) -> i32 {
        self.0.unlisted_count
    }
    /// `foundCount / listedCount`, 0 to 1.
    async fn progress(&self) -> f64 {
        progress(self.0.found_count, self.0.listed_count)
    }
    async fn opened_by_id(&self) -> ID {
        ID(self.0.opened_by.to_string())
    }
    async fn opened_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn closed_by_id(&self) -> Option<ID> {
        self.0.closed_by.map(|u| ID(u.to_string()))
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The vehicles found, in the order they were first recorded.
    async fn findings(&self, ctx: &Context<'_>) -> Result<Vec<AuditFinding>> {
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(audit_db::findings_of(&mut c, self.0.id)
            .await?
            .into_iter()
            .map(AuditFinding)
            .collect())
    }
    /// The list, by plate, each with whether it was found.
    async fn listed_vehicles(&self, ctx: &Context<'_>) -> Result<Vec<AuditListedVehicle>> {
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(audit_db::items_of(&mut c, self.0.id)
            .await?
            .into_iter()
            .map(|i| AuditListedVehicle {
                vehicle_id: ID(i.vehicle_id.to_string()),
                plate: i.plate,
                vin: i.vin,
                found: i.finding_id.is_some(),
                finding_id: i.finding_id.map(|f| ID(f.to_string())),
            })
            .collect())
    }
    /// What the close found wrong: missing vehicles, then unlisted ones. Empty while open.
    async fn discrepancies(&self, ctx: &Context<'_>) -> Result<Vec<AuditDiscrepancy>> {
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(audit_db::discrepancies_of(&mut c, self.0.id)
            .await?
            .into_iter()
            .filter_map(AuditDiscrepancy::from_row)
            .collect())
    }
}

/// A vehicle found during an audit.
pub struct AuditFinding(pub FindingRow);

#[Object]
impl AuditFinding {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn audit_id(&self) -> ID {
        ID(self.0.audit_id.to_string())
    }
    /// The audit as it stands now (its counts after this finding).
    async fn audit(&self, ctx: &Context<'_>) -> Result<AssetAudit> {
        let v = viewer(ctx)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(AssetAudit(visible_audit(&mut c, v, self.0.audit_id).await?))
    }
    /// The registry's vehicle; null for a vehicle the registry does not know.
    async fn vehicle_id(&self) -> Option<ID> {
        self.0.vehicle_id.map(|x| ID(x.to_string()))
    }
    /// The plate as scanned (normalised), else the registry's.
    async fn plate(&self) -> Option<&str> {
        self.0.plate.as_deref()
    }
    /// The VIN as scanned, else the registry's.
    async fn vin(&self) -> Option<&str> {
        self.0.vin.as_deref()
    }
    /// Whether the vehicle is on the audit's list.
    async fn listed(&self) -> bool {
        self.0.listed
    }
    async fn mileage_km(&self) -> i32 {
        self.0.mileage_km
    }
    async fn condition(&self) -> Option<VehicleCondition> {
        VehicleCondition::parse(&self.0.condition)
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// Who recorded it last.
    async fn recorded_by_id(&self) -> ID {
        ID(self.0.recorded_by.to_string())
    }
    async fn recorded_by_name(&self) -> &str {
        &self.0.recorded_by_name
    }
    /// When it was first recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was last recorded.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Photos of the vehicle the viewer may see, in the order they were given.
    async fn photos(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RecordPhoto>> {
        photos::visible(ctx, self.0.id).await
    }
}

/// A vehicle of an audit's list.
#[derive(SimpleObject)]
pub struct AuditListedVehicle {
    pub vehicle_id: ID,
    /// Plate and VIN when the audit opened.
    pub plate: String,
    pub vin: String,
    pub found: bool,
    pub finding_id: Option<ID>,
}

/// What a closed audit found wrong.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscrepancyKind {
    /// On the list, not found.
    Missing,
    /// Found, not on the list.
    Unlisted,
}

/// One discrepancy of a closed audit.
#[derive(SimpleObject)]
pub struct AuditDiscrepancy {
    pub kind: DiscrepancyKind,
    /// The registry's vehicle (null for an unlisted vehicle the registry does not know).
    pub vehicle_id: Option<ID>,
    /// The finding of an unlisted vehicle.
    pub finding_id: Option<ID>,
    pub plate: Option<String>,
    pub vin: Option<String>,
}

impl AuditDiscrepancy {
    fn from_row(r: DiscrepancyRow) -> Option<Self> {
        let kind = match r.kind.as_str() {
            "MISSING" => DiscrepancyKind::Missing,
            "UNLISTED" => DiscrepancyKind::Unlisted,
            _ => return None,
        };
        Some(AuditDiscrepancy {
            kind,
            vehicle_id: r.vehicle_id.map(|x| ID(x.to_string())),
            finding_id: (kind == DiscrepancyKind::Unlisted).then(|| ID(r.subject_id.to_string())),
            plate: r.plate,
            vin: r.vin,
        })
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Asset audits, newest first: staff see their branch's, operators the company's (of one
    /// branch when given).
    async fn asset_audits(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        status: Option<AuditStatus>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<AssetAudit>> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(audit_db::list_audits(
            &mut c,
            v.tenant_id,
            branch,
            status.map(AuditStatus::as_str),
            limit,
        )
        .await?
        .into_iter()
        .map(AssetAudit)
        .collect())
    }

    /// One asset audit; another branch's (for staff) or company's is `NOT_FOUND`.
    async fn asset_audit(&self, ctx: &Context<'_>, id: ID) -> Result<AssetAudit> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(AssetAudit(visible_audit(&mut c, v, id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_share_of_the_list_found() {
        assert!((progress(0, 4) - 0.0).abs() < f64::EPSILON);
        assert!((progress(1, 4) - 0.25).abs() < f64::EPSILON);
        assert!((progress(4, 4) - 1.0).abs() < f64::EPSILON);
        assert!((progress(0, 0) - 1.0).abs() < f64::EPSILON);
        assert!((progress(5, 4) - 1.0).abs() < f64::EPSILON);
    }
}
