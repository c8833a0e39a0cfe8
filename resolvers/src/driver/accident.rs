//! Accident reports: a driver reports one with its place, photos and the other party; staff of
//! the branch and operators move it through SUBMITTED → ACKNOWLEDGED → IN_REPAIR → CLOSED, or
//! REJECTED with a reason. Every step is on the timeline with who and when, is published to the
//! accident's live subscribers, and tells the driver (an essential `ACCIDENT` message).

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Duration, Utc};
use minigate_push::events::{self, NewEvent};
use minigate_store::{Conn, Id};

use super::{
    AccidentReport,
    db::{self, AccidentFields, AccidentRow},
    scope::{Scope, filing_driver, report_vehicle},
};
use crate::{
    Error, Result, audit,
    delivery::sources::{self, AccidentChange},
    idempotency,
    photos::{self, PhotoRole},
    registry::{db as registry_db, input::parse_id},
    search::{self, SearchKind},
    validate,
    viewer::{deps, viewer},
    workflow::{self, Flow},
};

/// Where an accident report stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccidentStatus {
    /// The driver reported it.
    Submitted,
    /// Staff have seen it and taken it on.
    Acknowledged,
    /// The vehicle is being repaired.
    InRepair,
    /// Settled.
    Closed,
    /// Not accepted (a duplicate, not an accident of the fleet, …), with a reason.
    Rejected,
}

impl AccidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccidentStatus::Submitted => "SUBMITTED",
            AccidentStatus::Acknowledged => "ACKNOWLEDGED",
            AccidentStatus::InRepair => "IN_REPAIR",
            AccidentStatus::Closed => "CLOSED",
            AccidentStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<AccidentStatus> {
        [
            AccidentStatus::Submitted,
            AccidentStatus::Acknowledged,
            AccidentStatus::InRepair,
            AccidentStatus::Closed,
            AccidentStatus::Rejected,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    /// As the driver's message says it.
    fn spoken(self) -> &'static str {
        match self {
            AccidentStatus::Submitted => "已提交",
            AccidentStatus::Acknowledged => "已受理",
            AccidentStatus::InRepair => "维修中",
            AccidentStatus::Closed => "已结案",
            AccidentStatus::Rejected => "已驳回",
        }
    }
}

/// The accident workflow's allowed moves.
pub const FLOW: Flow = Flow {
    moves: &[
        ("SUBMITTED", "ACKNOWLEDGED"),
        ("ACKNOWLEDGED", "IN_REPAIR"),
        ("IN_REPAIR", "CLOSED"),
        ("SUBMITTED", "REJECTED"),
        ("ACKNOWLEDGED", "REJECTED"),
        ("IN_REPAIR", "REJECTED"),
    ],
};

/// Outbox event kinds and topics of accidents.
pub const REPORTED: &str = "ACCIDENT_REPORTED";
pub const UPDATED: &str = "ACCIDENT_UPDATED";

/// Every new accident of a tenant (staff filter by branch per event).
pub fn reported_topic(tenant: Id) -> String {
    format!("accidents:{tenant}")
}

/// One accident's steps.
pub fn updated_topic(accident: Id) -> String {
    format!("accident:{accident}")
}

#[derive(InputObject)]
pub struct AccidentReportInput {
    /// The vehicle; the driver's assigned vehicle when absent. Another vehicle of the driver's
    /// branch may be named (a replacement car).
    pub vehicle_id: Option<ID>,
    /// When it happened: not in the future, at most 30 days ago.
    pub occurred_at: DateTime<Utc>,
    /// Where (GCJ-02 as the mini-program's `wx.getLocation` gives it).
    pub latitude: f64,
    pub longitude: f64,
    /// The address, 1 to 200 characters.
    pub address: String,
    /// What happened, 1 to 2,000 characters.
    pub description: String,
    /// The other party (name, plate, insurer), up to 200 characters.
    pub other_party: Option<String>,
    /// The traffic police's report number, up to 64 characters, no spaces.
    pub police_report_no: Option<String>,
    /// People injured, 0 to 99.
    #[graphql(default)]
    pub injured_count: i32,
    /// The injuries, up to 500 characters; required when anyone is injured.
    pub injuries: Option<String>,
    /// Uploads of purpose `accident`: the scene. At most 9.
    #[graphql(default)]
    pub scene_photo_ids: Vec<ID>,
    /// Uploads of purpose `damage` (or `accident`): damage to the vehicles. At most 9.
    #[graphql(default)]
    pub damage_photo_ids: Vec<ID>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Checked {
    fields: AccidentFields,
    photos: Vec<(PhotoRole, Id)>,
}

const CLOCK_SKEW_MINUTES: i64 = 10;
const OLDEST_DAYS: i64 = 30;
const MAX_PHOTOS: usize = 9;

fn check(input: &AccidentReportInput, now: DateTime<Utc>) -> Result<Checked> {
    let vehicle_id = input
        .vehicle_id
        .as_ref()
        .map(|id| parse_id("vehicleId", id))
        .transpose()?;
    if input.occurred_at > now + Duration::minutes(CLOCK_SKEW_MINUTES) {
        return Err(Error::invalid("occurredAt", "not in the future"));
    }
    if input.occurred_at < now - Duration::days(OLDEST_DAYS) {
        return Err(Error::invalid("occurredAt", "at most 30 days ago"));
    }
    if !(input.latitude.is_finite() && (-90.0..=90.0).contains(&input.latitude)) {
        return Err(Error::invalid("latitude", "-90 to 90"));
    }
    if !(input.longitude.is_finite() && (-180.0..=180.0).contains(&input.longitude)) {
        return Err(Error::invalid("longitude", "-180 to 180"));
    }
    let address = validate::name("address", &input.address, 200)?;
    let description = validate::name("description", &input.description, 2_000)?;
    let other_party = validate::optional_text("otherParty", input.other_party.as_deref(), 200)?;
    let police_report_no =
        validate::optional_text("policeReportNo", input.police_report_no.as_deref(), 64)?;
    if police_report_no
        .as_deref()
        .is_some_and(|p| p.chars().any(char::is_whitespace))
    {
        return Err(Error::invalid("policeReportNo", "no spaces"));
    }
    if !(0..=99).contains(&input.injured_count) {
        return Err(Error::invalid("injuredCount", "0 to 99"));
    }
    let injuries = validate::optional_text("injuries", input.injuries.as_deref(), 500)?;
    if input.injured_count > 0 && injuries.is_none() {
        return Err(Error::invalid("injuries", "say what the injuries are"));
    }
    let scene = photos::parse_ids("scenePhotoIds", &input.scene_photo_ids, MAX_PHOTOS)?;
    let damage = photos::parse_ids("damagePhotoIds", &input.damage_photo_ids, MAX_PHOTOS)?;
    if scene.iter().any(|s| damage.contains(s)) {
        return Err(Error::invalid(
            "damagePhotoIds",
            "a photo is listed as scene and as damage",
        ));
    }
    let photos = scene
        .into_iter()
        .map(|id| (PhotoRole::Scene, id))
        .chain(damage.into_iter().map(|id| (PhotoRole::Damage, id)))
        .collect();
    Ok(Checked {
        fields: AccidentFields {
            vehicle_id,
            occurred_at: input.occurred_at,
            latitude: input.latitude,
            longitude: input.longitude,
            address,
            description,
            other_party,
            police_report_no,
            injured_count: input.injured_count,
            injuries,
        },
        photos,
    })
}

/// Publishes `row`'s new status on its own topic (and, when it was just reported, on the
/// tenant's accident feed), and tells its driver, all in the caller's transaction.
async fn announce(
    tx: &mut Conn,
    waker: &events::Waker,
    row: &AccidentRow,
    plate: &str,
    note: Option<&str>,
) -> Result<()> {
    let payload = serde_json::to_value(row)
        .map_err(|e| Error::Internal(format!("accident not serialisable: {e}")))?;
    if row.status == "SUBMITTED" {
        events::enqueue(
            tx,
            waker,
            NewEvent {
                tenant_id: row.tenant_id,
                topic: reported_topic(row.tenant_id),
                kind: REPORTED,
                payload: payload.clone(),
            },
        )
        .await?;
    }
    events::enqueue(
        tx,
        waker,
        NewEvent {
            tenant_id: row.tenant_id,
            topic: updated_topic(row.id),
            kind: UPDATED,
            payload,
        },
    )
    .await?;
    let status = AccidentStatus::parse(&row.status)
        .ok_or_else(|| Error::Internal(format!("accident status {}", row.status)))?;
    sources::accident_status_changed(
        tx,
        &AccidentChange {
            tenant_id: row.tenant_id,
            accident_id: row.id,
            driver_id: row.driver_id,
            status: status.spoken(),
            plate,
            at: row.updated_at,
            note: note.unwrap_or(""),
        },
    )
    .await?;
    Ok(())
}

/// The search entry of an accident: its description, under the vehicle's plate.
fn search_doc<'a>(row: &'a AccidentRow, title: &'a str) -> search::Doc<'a> {
    search::Doc {
        id: row.id,
        tenant_id: row.tenant_id,
        kind: SearchKind::Accident,
        branch_id: Some(row.branch_id),
        owner_id: Some(row.reported_by),
        title,
        body: &row.description,
        created_at: row.created_at,
    }
}

#[derive(Default)]
pub struct AccidentMutation;

#[Object]
impl AccidentMutation {
    /// A driver reports an accident of their vehicle (or another of their branch). Staff of the
    /// branch and operators see it at once on `accidentReported`.
    async fn report_accident(
        &self,
        ctx: &Context<'_>,
        input: AccidentReportInput,
        idempotency_key: Option<String>,
    ) -> Result<AccidentReport> {
        let v = viewer(ctx)?;
        let c = check(&input, Utc::now())?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "reportAccident",
            &c,
            async |tx| {
                let driver = filing_driver(tx, v).await?;
                let vehicle = report_vehicle(tx, &driver, c.fields.vehicle_id).await?;
                let id = Id::new();
                db::insert_accident(
                    tx,
                    id,
                    v.tenant_id,
                    driver.branch_id,
                    driver.id,
                    vehicle.id,
                    v.user_id,
                    &c.fields,
                )
                .await?;
                photos::attach(tx, v, id, &c.photos).await?;
                workflow::record_step(tx, id, "", "SUBMITTED", v.user_id, None).await?;
                let row = db::get_accident(tx, v.tenant_id, Scope::Tenant, id).await?;
                let title = format!("{} 事故", vehicle.plate);
                search::index(tx, &search_doc(&row, &title)).await?;
                announce(tx, &d.waker, &row, &vehicle.plate, None).await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        let row = db::get_accident(&mut conn, v.tenant_id, Scope::of(v)?, id).await?;
        Ok(AccidentReport(row))
    }

    /// Staff of the accident's branch, or an operator, move it one step: ACKNOWLEDGED after
    /// SUBMITTED, IN_REPAIR after ACKNOWLEDGED, CLOSED after IN_REPAIR, or REJECTED (with the
    /// reason as `note`) before it is closed. Any other move is `WORKFLOW_STEP_OUT_OF_ORDER`
    /// and changes nothing.
    async fn advance_accident(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: AccidentStatus,
        note: Option<String>,
    ) -> Result<AccidentReport> {
        let v = viewer(ctx)?;
        let scope = Scope::of_staff(v)?;
        let id = parse_id("id", &id)?;
        let note = validate::optional_text("note", note.as_deref(), 500)?;
        if to == AccidentStatus::Rejected && note.is_none() {
            return Err(Error::invalid("note", "a rejection needs its reason"));
        }
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let row = db::lock_accident(&mut tx, v.tenant_id, scope, id).await?;
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
        let reason = (to == AccidentStatus::Rejected)
            .then_some(note.as_deref())
            .flatten();
        db::move_accident(&mut tx, id, to.as_str(), reason).await?;
        let moved = db::get_accident(&mut tx, v.tenant_id, scope, id).await?;
        let vehicle = registry_db::get_vehicle(&mut tx, v.tenant_id, moved.vehicle_id).await?;
        announce(&mut tx, &d.waker, &moved, &vehicle.plate, note.as_deref()).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "accident.advance",
            "accident_report",
            &id.to_string(),
            serde_json::json!({ "from": row.status, "to": to.as_str(), "note": note }),
        )
        .await?;
        tx.commit().await?;
        Ok(AccidentReport(moved))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T02:00:00Z".parse().unwrap()
    }

    fn input() -> AccidentReportInput {
        AccidentReportInput {
            vehicle_id: None,
            occurred_at: "2026-11-21T01:20:00Z".parse().unwrap(),
            latitude: 22.5431,
            longitude: 114.0579,
            address: " 深圳市南山区深南大道9678号 ".into(),
            description: "等红灯时被后车追尾，后保险杠凹陷".into(),
            other_party: Some("粤B·7K2Q9 平安保险".into()),
            police_report_no: Some("  ".into()),
            injured_count: 0,
            injuries: None,
            scene_photo_ids: vec![ID(Id::new().to_string())],
            damage_photo_ids: vec![ID(Id::new().to_string()), ID(Id::new().to_string())],
        }
    }

    fn field(r: Result<Checked>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn an_accident_report_is_trimmed_and_each_bad_field_is_named() {
        let c = check(&input(), now()).unwrap();
        assert_eq!(c.fields.address, "深圳市南山区深南大道9678号");
        assert_eq!(c.fields.police_report_no, None);
        assert_eq!(c.photos.len(), 3);
        assert_eq!(c.photos[0].0, PhotoRole::Scene);
        assert_eq!(c.photos[2].0, PhotoRole::Damage);
        type Change = Box<dyn Fn(&mut AccidentReportInput)>;
        let shared = ID(Id::new().to_string());
        let twice = shared.clone();
        let cases: Vec<(&str, Change)> = vec![
            (
                "vehicleId",
                Box::new(|i| i.vehicle_id = Some(ID("v".into()))),
            ),
            (
                "occurredAt",
                Box::new(|i| i.occurred_at = "2026-11-21T03:00:00Z".parse().unwrap()),
            ),
            (
                "occurredAt",
                Box::new(|i| i.occurred_at = "2026-10-01T00:00:00Z".parse().unwrap()),
            ),
            ("latitude", Box::new(|i| i.latitude = 91.0)),
            ("latitude", Box::new(|i| i.latitude = f64::NAN)),
            ("longitude", Box::new(|i| i.longitude = -181.0)),
            ("address", Box::new(|i| i.address = " ".into())),
            ("description", Box::new(|i| i.description = String::new())),
            (
                "description",
                Box::new(|i| i.description = "撞".repeat(2_001)),
            ),
            (
                "otherParty",
                Box::new(|i| i.other_party = Some("x".repeat(201))),
            ),
            (
                "policeReportNo",
                Box::new(|i| i.police_report_no = Some("4403 0512".into())),
            ),
            ("injuredCount", Box::new(|i| i.injured_count = -1)),
            ("injuries", Box::new(|i| i.injured_count = 1)),
            (
                "scenePhotoIds",
                Box::new(|i| i.scene_photo_ids = vec![ID("nope".into())]),
            ),
            (
                "damagePhotoIds",
                Box::new(move |i| {
                    i.scene_photo_ids = vec![shared.clone()];
                    i.damage_photo_ids = vec![twice.clone()];
                }),
            ),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i, now())).as_deref(), Some(name), "{name}");
        }
    }

    #[test]
    fn the_accident_workflow_only_moves_forward_one_step_at_a_time() {
        assert!(FLOW.allows("SUBMITTED", "ACKNOWLEDGED"));
        assert!(!FLOW.allows("SUBMITTED", "IN_REPAIR"));
        assert!(!FLOW.allows("SUBMITTED", "CLOSED"));
        assert!(!FLOW.allows("ACKNOWLEDGED", "SUBMITTED"));
        assert!(!FLOW.allows("CLOSED", "REJECTED"));
        assert!(!FLOW.allows("REJECTED", "ACKNOWLEDGED"));
        assert!(FLOW.is_final("CLOSED") && FLOW.is_final("REJECTED"));
        for s in [
            "SUBMITTED",
            "ACKNOWLEDGED",
            "IN_REPAIR",
            "CLOSED",
            "REJECTED",
        ] {
            assert_eq!(AccidentStatus::parse(s).unwrap().as_str(), s);
        }
    }
}
