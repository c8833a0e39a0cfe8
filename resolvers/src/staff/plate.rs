//! Plate registration and inspection (验车上牌): staff (for their branch's vehicles) or
//! operators submit a vehicle with the plate it is to carry and the photos of its certificate
//! and inspection; operators move it SUBMITTED → INSPECTED → PLATED → COMPLETED, or REJECTED
//! with a reason before it completes. At COMPLETED the registry's vehicle takes the plate in
//! the same transaction.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use minigate_store::Id;
use serde::Serialize;

use super::{
    PlateRegistration,
    plate_db::{self, NewRegistration},
};
use crate::{
    Error, Result, audit, idempotency,
    photos::{self, PhotoRole},
    registry::{db as registry_db, input::parse_id},
    validate,
    viewer::{deps, viewer},
    workflow::{self, Flow},
};

/// Where a plate registration stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateRegistrationStatus {
    /// Staff submitted the vehicle and its papers.
    Submitted,
    /// The vehicle passed its inspection (验车).
    Inspected,
    /// The plate was issued (上牌).
    Plated,
    /// Done: the registry's vehicle carries the plate.
    Completed,
    /// Not going ahead, with a reason.
    Rejected,
}

impl PlateRegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlateRegistrationStatus::Submitted => "SUBMITTED",
            PlateRegistrationStatus::Inspected => "INSPECTED",
            PlateRegistrationStatus::Plated => "PLATED",
            PlateRegistrationStatus::Completed => "COMPLETED",
            PlateRegistrationStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<PlateRegistrationStatus> {
        [
            PlateRegistrationStatus::Submitted,
            PlateRegistrationStatus::Inspected,
            PlateRegistrationStatus::Plated,
            PlateRegistrationStatus::Completed,
            PlateRegistrationStatus::Rejected,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// The plate registration workflow's allowed moves.
pub const FLOW: Flow = Flow {
    moves: &[
        ("SUBMITTED", "INSPECTED"),
        ("INSPECTED", "PLATED"),
        ("PLATED", "COMPLETED"),
        ("SUBMITTED", "REJECTED"),
        ("INSPECTED", "REJECTED"),
        ("PLATED", "REJECTED"),
    ],
};

#[derive(InputObject)]
pub struct PlateRegistrationInput {
    /// A vehicle of the company (staff: of their branch).
    pub vehicle_id: ID,
    /// The plate the vehicle is to carry.
    pub plate: String,
    /// Uploads of purpose `certificate` (the vehicle's certificate, 合格证, invoice, insurance):
    /// 1 to 9.
    #[graphql(default)]
    pub certificate_photo_ids: Vec<ID>,
    /// Uploads of purpose `inspection`. At most 9.
    #[graphql(default)]
    pub inspection_photo_ids: Vec<ID>,
    /// Up to 500 characters.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Checked {
    vehicle_id: Id,
    plate: String,
    note: Option<String>,
    photos: Vec<(PhotoRole, Id)>,
}

const MAX_PHOTOS: usize = 9;

fn check(input: &PlateRegistrationInput) -> Result<Checked> {
    let vehicle_id = parse_id("vehicleId", &input.vehicle_id)?;
    let plate = validate::plate(&input.plate)?;
    let certificates = photos::parse_ids(
        "certificatePhotoIds",
        &input.certificate_photo_ids,
        MAX_PHOTOS,
    )?;
    if certificates.is_empty() {
        return Err(Error::invalid(
            "certificatePhotoIds",
            "at least one photo of the certificate",
        ));
    }
    let inspections = photos::parse_ids(
        "inspectionPhotoIds",
        &input.inspection_photo_ids,
        MAX_PHOTOS,
    )?;
    if inspections.iter().any(|i| certificates.contains(i)) {
        return Err(Error::invalid(
            "inspectionPhotoIds",
            "a photo is listed as certificate and as inspection",
        ));
    }
    let photos = certificates
        .into_iter()
        .map(|id| (PhotoRole::Certificate, id))
        .chain(
            inspections
                .into_iter()
                .map(|id| (PhotoRole::Inspection, id)),
        )
        .collect();
    Ok(Checked {
        vehicle_id,
        plate,
        note: validate::optional_text("note", input.note.as_deref(), 500)?,
        photos,
    })
}

#[derive(Default)]
pub struct PlateMutation;

#[Object]
impl PlateMutation {
    /// Submits a vehicle for inspection and a plate (staff for their branch's vehicles,
    /// operators). A vehicle of another company is `INVALID_INPUT` on `vehicleId`, another
    /// branch's `FORBIDDEN`; a plate another vehicle of the company has, or a vehicle with a
    /// registration under way, is `ALREADY_EXISTS`.
    async fn register_plate(
        &self,
        ctx: &Context<'_>,
        input: PlateRegistrationInput,
        idempotency_key: Option<String>,
    ) -> Result<PlateRegistration> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let c = check(&input)?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "registerPlate",
            &c,
            async |tx| {
                let vehicle = match registry_db::get_vehicle(tx, v.tenant_id, c.vehicle_id).await {
                    Ok(row) => row,
                    Err(Error::NotFound(_)) => {
                        return Err(Error::invalid(
                            "vehicleId",
                            "no such vehicle in this company",
                        ));
                    }
                    Err(e) => return Err(e),
                };
                if scope.is_some_and(|own| own != vehicle.branch_id) {
                    return Err(Error::Forbidden);
                }
                if let Some(other) =
                    registry_db::find_vehicle_by_plate(tx, v.tenant_id, &c.plate).await?
                    && other.id != vehicle.id
                {
                    return Err(Error::exists(
                        "plate",
                        "another vehicle of the company has this plate",
                    ));
                }
                let id = Id::new();
                plate_db::insert(
                    tx,
                    &NewRegistration {
                        id,
                        tenant_id: v.tenant_id,
                        branch_id: vehicle.branch_id,
                        vehicle_id: vehicle.id,
                        plate: &c.plate,
                        previous_plate: &vehicle.plate,
                        note: c.note.as_deref(),
                        submitted_by: v.user_id,
                    },
                )
                .await?;
                photos::attach(tx, v, id, &c.photos).await?;
                workflow::record_step(
                    tx,
                    id,
                    "",
                    PlateRegistrationStatus::Submitted.as_str(),
                    v.user_id,
                    c.note.as_deref(),
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        Ok(PlateRegistration(
            plate_db::get(&mut conn, v.tenant_id, id).await?,
        ))
    }

    /// Operators move a registration one step: INSPECTED after SUBMITTED, PLATED after
    /// INSPECTED, COMPLETED after PLATED (the vehicle then carries the plate), or REJECTED
    /// (with the reason as `note`) before it completes. Any other move is
    /// `WORKFLOW_STEP_OUT_OF_ORDER`; a plate another vehicle took meanwhile is `ALREADY_EXISTS`
    /// at COMPLETED. Either changes nothing.
    async fn advance_plate_registration(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: PlateRegistrationStatus,
        note: Option<String>,
    ) -> Result<PlateRegistration> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let note = validate::optional_text("note", note.as_deref(), 500)?;
        if to == PlateRegistrationStatus::Rejected && note.is_none() {
            return Err(Error::invalid("note", "a rejection needs its reason"));
        }
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let row = plate_db::lock(&mut tx, v.tenant_id, id).await?;
        FLOW.guard(&row.status, to.as_str())?;
        workflow::record_step(
            &mut tx,
            id,
            &row.status,
            to.as_str(),
            v.user_id,
            note.as_deref(),
        )
        .await?;
        let reason = (to == PlateRegistrationStatus::Rejected)
            .then_some(note.as_deref())
            .flatten();
        let moved = plate_db::move_to(&mut tx, id, to.as_str(), reason).await?;
        if to == PlateRegistrationStatus::Completed {
            let vehicle = registry_db::get_vehicle(&mut tx, v.tenant_id, row.vehicle_id).await?;
            plate_db::set_vehicle_plate(&mut tx, v.tenant_id, vehicle.id, &row.plate).await?;
            audit::record(
                &mut tx,
                Some(v.tenant_id),
                Some(v.user_id),
                "vehicle.plate",
                "vehicle",
                &vehicle.id.to_string(),
                serde_json::json!({
                    "from": vehicle.plate,
                    "to": row.plate,
                    "plate_registration_id": id,
                }),
            )
            .await?;
        }
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "plate_registration.advance",
            "plate_registration",
            &id.to_string(),
            serde_json::json!({ "from": row.status, "to": to.as_str(), "note": note }),
        )
        .await?;
        tx.commit().await?;
        Ok(PlateRegistration(moved))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<ID> {
        (0..n).map(|_| ID(Id::new().to_string())).collect()
    }

    fn input() -> PlateRegistrationInput {
        PlateRegistrationInput {
            vehicle_id: ID(Id::new().to_string()),
            plate: "粤b·d12345".into(),
            certificate_photo_ids: ids(2),
            inspection_photo_ids: ids(1),
            note: Some(" 新车上牌 ".into()),
        }
    }

    fn field(r: Result<Checked>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_registration_needs_a_plate_and_a_certificate_and_each_bad_field_is_named() {
        let c = check(&input()).unwrap();
        assert_eq!(c.plate, "粤BD12345");
        assert_eq!(c.note.as_deref(), Some("新车上牌"));
        assert_eq!(
            c.photos.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![
                PhotoRole::Certificate,
                PhotoRole::Certificate,
                PhotoRole::Inspection
            ]
        );
        let shared = input().certificate_photo_ids[0].clone();
        type Change = Box<dyn Fn(&mut PlateRegistrationInput)>;
        let cases: Vec<(&str, Change)> = vec![
            ("vehicleId", Box::new(|i| i.vehicle_id = ID("v".into()))),
            ("plate", Box::new(|i| i.plate = "  ".into())),
            ("plate", Box::new(|i| i.plate = "粤BI2345".into())),
            (
                "certificatePhotoIds",
                Box::new(|i| i.certificate_photo_ids = vec![]),
            ),
            (
                "certificatePhotoIds",
                Box::new(|i| i.certificate_photo_ids = ids(10)),
            ),
            (
                "inspectionPhotoIds",
                Box::new(|i| i.inspection_photo_ids = vec![ID("x".into())]),
            ),
            (
                "inspectionPhotoIds",
                Box::new(move |i| {
                    i.certificate_photo_ids = vec![shared.clone()];
                    i.inspection_photo_ids = vec![shared.clone()];
                }),
            ),
            ("note", Box::new(|i| i.note = Some("x".repeat(501)))),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i)).as_deref(), Some(name), "{name}");
        }
    }

    #[test]
    fn the_plate_workflow_moves_one_step_at_a_time_and_rejects_only_before_the_end() {
        assert!(FLOW.allows("SUBMITTED", "INSPECTED"));
        assert!(FLOW.allows("PLATED", "COMPLETED"));
        assert!(!FLOW.allows("SUBMITTED", "PLATED"));
        assert!(!FLOW.allows("SUBMITTED", "COMPLETED"));
        assert!(!FLOW.allows("INSPECTED", "SUBMITTED"));
        assert!(!FLOW.allows("COMPLETED", "REJECTED"));
        assert!(!FLOW.allows("REJECTED", "INSPECTED"));
        for s in ["SUBMITTED", "INSPECTED", "PLATED"] {
            assert!(FLOW.allows(s, "REJECTED"));
            assert!(!FLOW.is_final(s));
        }
        assert!(FLOW.is_final("COMPLETED") && FLOW.is_final("REJECTED"));
        for s in ["SUBMITTED", "INSPECTED", "PLATED", "COMPLETED", "REJECTED"] {
            assert_eq!(PlateRegistrationStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
