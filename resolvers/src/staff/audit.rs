//! Asset audits (资产盘点): an operator opens one over a branch, whose list is the branch's
//! vehicles that are not retired; staff of the branch (and operators) record each vehicle they
//! find by plate or VIN with its mileage, condition and photos; the operator closes it, and the
//! listed vehicles nobody found (MISSING) and the vehicles found but not listed (UNLISTED) are
//! stored as its discrepancies. Every finding and the close are published on the audit's topic
//! for `auditProgress`.
//!
//! Recording a vehicle the audit already has updates its finding (the latest mileage,
//! condition, note and photos win): a second pass over the yard corrects, it does not count
//! twice.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use minigate_push::events::{self, NewEvent};
use minigate_store::{Conn, Id};
use serde::{Deserialize, Serialize};

use super::{
    AssetAudit, AuditFinding,
    audit_db::{self, AuditRow, FindingFields, FindingRow},
};
use crate::{
    Error, Result, audit, idempotency,
    photos::{self, PhotoRole},
    registry::{
        db::{self as registry_db, VehicleRow},
        input::parse_id,
    },
    validate,
    viewer::{deps, viewer},
};

/// Whether an audit still takes findings.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStatus {
    /// Staff are recording what they find.
    Open,
    /// Closed by an operator; its discrepancies are stored.
    Closed,
}

impl AuditStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditStatus::Open => "OPEN",
            AuditStatus::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<AuditStatus> {
        [AuditStatus::Open, AuditStatus::Closed]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// The state a vehicle was found in.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VehicleCondition {
    Good,
    /// Scratches, small dents: it can be rented as it is.
    MinorDamage,
    /// Needs repair before it is rented again.
    MajorDamage,
    /// Cannot be driven away.
    NotDrivable,
}

impl VehicleCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleCondition::Good => "GOOD",
            VehicleCondition::MinorDamage => "MINOR_DAMAGE",
            VehicleCondition::MajorDamage => "MAJOR_DAMAGE",
            VehicleCondition::NotDrivable => "NOT_DRIVABLE",
        }
    }

    pub fn parse(s: &str) -> Option<VehicleCondition> {
        [
            VehicleCondition::Good,
            VehicleCondition::MinorDamage,
            VehicleCondition::MajorDamage,
            VehicleCondition::NotDrivable,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A vehicle found during an audit.
#[derive(InputObject)]
pub struct AuditFindingInput {
    /// The plate as scanned or typed (`粤B·12345` and `粤b 12345` are the same plate). Give
    /// the plate, the VIN or both.
    pub plate: Option<String>,
    /// The 17-character VIN as scanned; preferred over the plate when both name a vehicle.
    pub vin: Option<String>,
    /// The odometer, 0 to 2,000,000 km.
    pub mileage_km: i32,
    pub condition: VehicleCondition,
    /// What staff want to say about it, up to 500 characters.
    pub note: Option<String>,
    /// Uploads of purpose `audit` (or `inspection`) showing the vehicle. At most 9.
    #[graphql(default)]
    pub photo_ids: Vec<ID>,
}

/// A finding as checked without the database: the idempotency fingerprint of its request.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct CheckedFinding {
    audit_id: Id,
    plate: Option<String>,
    vin: Option<String>,
    mileage_km: i32,
    condition: VehicleCondition,
    note: Option<String>,
    photos: Vec<Id>,
}

const MAX_PHOTOS: usize = 9;
const MAX_MILEAGE_KM: i32 = 2_000_000;

fn check_finding(audit_id: Id, input: &AuditFindingInput) -> Result<CheckedFinding> {
    fn given(s: &Option<String>) -> Option<&str> {
        s.as_deref().map(str::trim).filter(|t| !t.is_empty())
    }
    let plate = given(&input.plate).map(validate::plate).transpose()?;
    let vin = given(&input.vin).map(validate::vin).transpose()?;
    if plate.is_none() && vin.is_none() {
        return Err(Error::invalid("plate", "give the plate, the VIN or both"));
    }
    if !(0..=MAX_MILEAGE_KM).contains(&input.mileage_km) {
        return Err(Error::invalid("mileageKm", "0 to 2,000,000 km"));
    }
    Ok(CheckedFinding {
        audit_id,
        plate,
        vin,
        mileage_km: input.mileage_km,
        condition: input.condition,
        note: validate::optional_text("note", input.note.as_deref(), 500)?,
        photos: photos::parse_ids("photoIds", &input.photo_ids, MAX_PHOTOS)?,
    })
}

/// Which vehicle a finding is about within its audit: a registry vehicle by its id, any other
/// by its VIN, else its plate. Findings with the same subject are one finding.
fn subject(vehicle: Option<Id>, plate: Option<&str>, vin: Option<&str>) -> String {
    match (vehicle, vin, plate) {
        (Some(id), _, _) => format!("vehicle:{id}"),
        (None, Some(vin), _) => format!("vin:{vin}"),
        (None, None, Some(plate)) => format!("plate:{plate}"),
        (None, None, None) => String::new(),
    }
}

/// The tenant's vehicle a finding names: by VIN first (the plate may have changed), else by
/// plate; `None` for a vehicle the registry does not know (it is kept as found but unlisted).
/// A plate and a VIN of two different vehicles are refused.
async fn matched_vehicle(
    tx: &mut Conn,
    tenant: Id,
    c: &CheckedFinding,
) -> Result<Option<VehicleRow>> {
    let by_vin = match &c.vin {
        Some(vin) => registry_db::find_vehicle_by_vin(tx, tenant, vin).await?,
        None => None,
    };
    let by_plate = match &c.plate {
        Some(plate) => registry_db::find_vehicle_by_plate(tx, tenant, plate).await?,
        None => None,
    };
    match (by_vin, by_plate) {
        (Some(a), Some(b)) if a.id != b.id => Err(Error::invalid(
            "vin",
            "the plate and the VIN belong to two different vehicles",
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// Outbox event kind and topic of an audit's progress.
pub const PROGRESS: &str = "AUDIT_PROGRESS";

pub fn topic(audit: Id) -> String {
    format!("audit:{audit}")
}

/// What an audit's event carries: the audit as the change left it, and the finding recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub audit: AuditRow,
    pub finding: Option<FindingRow>,
}

/// Publishes the audit's new state in the caller's transaction.
async fn publish(
    tx: &mut Conn,
    waker: &events::Waker,
    audit: &AuditRow,
    finding: Option<&FindingRow>,
) -> Result<()> {
    let payload = serde_json::to_value(ProgressEvent {
        audit: audit.clone(),
        finding: finding.cloned(),
    })
    .map_err(|e| Error::Internal(format!("audit event not serialisable: {e}")))?;
    events::enqueue(
        tx,
        waker,
        NewEvent {
            tenant_id: audit.tenant_id,
            topic: topic(audit.id),
            kind: PROGRESS,
            payload,
        },
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct CheckedOpen {
    branch_id: Id,
    title: String,
}

#[derive(Default)]
pub struct AuditMutation;

#[Object]
impl AuditMutation {
    /// Opens an asset audit of a branch (operators). Its list is the branch's vehicles that are
    /// not retired at this moment; vehicles added later are not on it.
    async fn open_asset_audit(
        &self,
        ctx: &Context<'_>,
        branch_id: ID,
        title: String,
        idempotency_key: Option<String>,
    ) -> Result<AssetAudit> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let c = CheckedOpen {
            branch_id: parse_id("branchId", &branch_id)?,
            title: validate::name("title", &title, 100)?,
        };
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "openAssetAudit",
            &c,
            async |tx| {
                match registry_db::get_branch(tx, v.tenant_id, c.branch_id).await {
                    Ok(_) => {}
                    Err(Error::NotFound(_)) => {
                        return Err(Error::invalid("branchId", "no such branch in this company"));
                    }
                    Err(e) => return Err(e),
                }
                let id = Id::new();
                audit_db::insert_audit(tx, id, v.tenant_id, c.branch_id, &c.title, v.user_id)
                    .await?;
                let row = audit_db::get_audit(tx, v.tenant_id, id).await?;
                audit::record(
                    tx,
                    Some(v.tenant_id),
                    Some(v.user_id),
                    "asset_audit.open",
                    "asset_audit",
                    &id.to_string(),
                    serde_json::json!({
                        "branch_id": row.branch_id,
                        "title": row.title,
                        "listed": row.listed_count,
                    }),
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        Ok(AssetAudit(
            audit_db::get_audit(&mut conn, v.tenant_id, id).await?,
        ))
    }

    /// Records a vehicle found during an open audit (staff of its branch, operators). The same
    /// vehicle recorded again updates its finding. A vehicle not on the list, of another branch
    /// or unknown to the registry, is kept as found but unlisted. A closed audit is
    /// `AUDIT_CLOSED` and stores nothing.
    async fn record_audit_finding(
        &self,
        ctx: &Context<'_>,
        audit_id: ID,
        input: AuditFindingInput,
        idempotency_key: Option<String>,
    ) -> Result<AuditFinding> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let c = check_finding(parse_id("auditId", &audit_id)?, &input)?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "recordAuditFinding",
            &c,
            async |tx| {
                let audit = audit_db::lock_audit(tx, v.tenant_id, c.audit_id).await?;
                if scope.is_some_and(|own| own != audit.branch_id) {
                    return Err(Error::Forbidden);
                }
                if audit.status != AuditStatus::Open.as_str() {
                    return Err(Error::AuditClosed);
                }
                let vehicle = matched_vehicle(tx, v.tenant_id, &c).await?;
                let listed = match &vehicle {
                    Some(found) => audit_db::is_listed(tx, audit.id, found.id).await?,
                    None => false,
                };
                // What was scanned, completed from the registry.
                let plate = c
                    .plate
                    .as_deref()
                    .or(vehicle.as_ref().map(|x| x.plate.as_str()));
                let vin = c
                    .vin
                    .as_deref()
                    .or(vehicle.as_ref().map(|x| x.vin.as_str()));
                let vehicle_id = vehicle.as_ref().map(|x| x.id);
                let subject = subject(vehicle_id, c.plate.as_deref(), c.vin.as_deref());
                let fields = FindingFields {
                    subject: &subject,
                    vehicle_id,
                    plate,
                    vin,
                    listed,
                    mileage_km: c.mileage_km,
                    condition: c.condition.as_str(),
                    note: c.note.as_deref(),
                    recorded_by: v.user_id,
                };
                let attached: Vec<(PhotoRole, Id)> =
                    c.photos.iter().map(|p| (PhotoRole::Vehicle, *p)).collect();
                let id = match audit_db::find_finding(tx, audit.id, &subject).await? {
                    Some(id) => {
                        audit_db::update_finding(tx, id, &fields).await?;
                        photos::replace(tx, v, id, &attached).await?;
                        id
                    }
                    None => {
                        let id = Id::new();
                        audit_db::insert_finding(tx, id, audit.id, &fields).await?;
                        photos::attach(tx, v, id, &attached).await?;
                        id
                    }
                };
                let now = audit_db::recount(tx, audit.id).await?;
                let finding = audit_db::get_finding(tx, id).await?;
                publish(tx, &d.waker, &now, Some(&finding)).await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        Ok(AuditFinding(audit_db::get_finding(&mut conn, id).await?))
    }

    /// Closes an open audit (operators) and stores its discrepancies: MISSING for listed
    /// vehicles nobody found, UNLISTED for vehicles found but not listed. Closing a closed
    /// audit is `AUDIT_CLOSED` and changes nothing.
    async fn close_asset_audit(&self, ctx: &Context<'_>, audit_id: ID) -> Result<AssetAudit> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("auditId", &audit_id)?;
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let open = audit_db::lock_audit(&mut tx, v.tenant_id, id).await?;
        if open.status != AuditStatus::Open.as_str() {
            return Err(Error::AuditClosed);
        }
        let closed = audit_db::close(&mut tx, id, v.user_id).await?;
        publish(&mut tx, &d.waker, &closed, None).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "asset_audit.close",
            "asset_audit",
            &id.to_string(),
            serde_json::json!({
                "listed": closed.listed_count,
                "found": closed.found_count,
                "unlisted": closed.unlisted_count,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(AssetAudit(closed))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const VIN: &str = "LSVAU218XN2183294";

    fn input() -> AuditFindingInput {
        AuditFindingInput {
            plate: Some(" 粤b·12345 ".into()),
            vin: None,
            mileage_km: 42_000,
            condition: VehicleCondition::MinorDamage,
            note: Some("  ".into()),
            photo_ids: vec![ID(Id::new().to_string())],
        }
    }

    fn field(r: Result<CheckedFinding>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_finding_needs_a_plate_or_a_vin_and_each_bad_field_is_named() {
        let audit = Id::new();
        let c = check_finding(audit, &input()).unwrap();
        assert_eq!(c.plate.as_deref(), Some("粤B12345"));
        assert_eq!(c.vin, None);
        assert_eq!(c.note, None);
        let mut by_vin = input();
        by_vin.plate = Some(" ".into());
        by_vin.vin = Some(VIN.to_lowercase());
        let c = check_finding(audit, &by_vin).unwrap();
        assert_eq!((c.plate, c.vin.as_deref()), (None, Some(VIN)));

        type Change = Box<dyn Fn(&mut AuditFindingInput)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "plate",
                Box::new(|i| {
                    i.plate = None;
                    i.vin = Some("".into());
                }),
            ),
            ("plate", Box::new(|i| i.plate = Some("B12345".into()))),
            (
                "vin",
                Box::new(|i| i.vin = Some("LSVAU2180N2183294".into())),
            ),
            ("mileageKm", Box::new(|i| i.mileage_km = -1)),
            ("mileageKm", Box::new(|i| i.mileage_km = 2_000_001)),
            ("note", Box::new(|i| i.note = Some("车".repeat(501)))),
            ("photoIds", Box::new(|i| i.photo_ids = vec![ID("x".into())])),
            (
                "photoIds",
                Box::new(|i| {
                    i.photo_ids = (0..10).map(|_| ID(Id::new().to_string())).collect();
                }),
            ),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(
                field(check_finding(audit, &i)).as_deref(),
                Some(name),
                "{name}"
            );
        }
    }

    #[test]
    fn a_vehicle_is_one_subject_per_audit_whatever_was_scanned() {
        let id = Id::new();
        assert_eq!(
            subject(Some(id), Some("粤B12345"), None),
            format!("vehicle:{id}")
        );
        assert_eq!(
            subject(Some(id), None, Some(VIN)),
            subject(Some(id), Some("粤B12345"), None)
        );
        assert_eq!(
            subject(None, Some("粤B12345"), Some(VIN)),
            format!("vin:{VIN}")
        );
        assert_eq!(subject(None, Some("粤B12345"), None), "plate:粤B12345");
    }

    #[test]
    fn statuses_and_conditions_read_back() {
        for s in ["OPEN", "CLOSED"] {
            assert_eq!(AuditStatus::parse(s).unwrap().as_str(), s);
        }
        for s in ["GOOD", "MINOR_DAMAGE", "MAJOR_DAMAGE", "NOT_DRIVABLE"] {
            assert_eq!(VehicleCondition::parse(s).unwrap().as_str(), s);
        }
        let id = Id::new();
        assert_eq!(topic(id), format!("audit:{id}"));
    }
}
