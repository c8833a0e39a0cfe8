use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Duration, Utc};
use minigate_payments::money::MAX_FEN;
use minigate_store::Id;

use super::{
    Violation,
    db::{self, NewViolation, ViolationRow},
};
use crate::{
    Error, Result, audit,
    delivery::sources,
    idempotency,
    registry::{db as registry_db, input::parse_id},
    validate,
    viewer::{deps, viewer},
};

#[derive(InputObject)]
pub struct ViolationInput {
    /// A vehicle of the company; the violation names the driver who has it now.
    pub vehicle_id: ID,
    /// When it happened: not in the future, at most three years ago.
    pub occurred_at: DateTime<Utc>,
    /// Where it happened, 1 to 200 characters.
    pub place: String,
    /// What happened, 1 to 500 characters.
    pub description: String,
    /// The fine in fen, 0 to 2,147,483,647.
    pub fine_fen: i64,
    /// Points on the driving licence, 0 to 12.
    pub points: i32,
    /// The authorities' decision number: 1 to 64 characters, no spaces. Recording one
    /// reference again returns the violation recorded first.
    pub reference: String,
}

/// What the input says, checked without the database.
#[derive(Debug, Clone, PartialEq)]
struct Checked {
    vehicle_id: Id,
    occurred_at: DateTime<Utc>,
    place: String,
    description: String,
    fine_fen: i64,
    points: i32,
    reference: String,
}

/// How far ahead of our clock an `occurredAt` may be (the recorder's clock may run ahead).
const CLOCK_SKEW_MINUTES: i64 = 10;
/// How old a violation may be: the authorities pursue one for two years; a year's margin for
/// records entered late.
const OLDEST_DAYS: i64 = 3 * 365;

fn check(input: &ViolationInput, now: DateTime<Utc>) -> Result<Checked> {
    let vehicle_id = parse_id("vehicleId", &input.vehicle_id)?;
    if input.occurred_at > now + Duration::minutes(CLOCK_SKEW_MINUTES) {
        return Err(Error::invalid("occurredAt", "not in the future"));
    }
    if input.occurred_at < now - Duration::days(OLDEST_DAYS) {
        return Err(Error::invalid("occurredAt", "at most three years ago"));
    }
    let place = validate::name("place", &input.place, 200)?;
    let description = validate::name("description", &input.description, 500)?;
    if !(0..=MAX_FEN).contains(&input.fine_fen) {
        return Err(Error::invalid("fineFen", "0 to 2,147,483,647 fen"));
    }
    if !(0..=12).contains(&input.points) {
        return Err(Error::invalid("points", "0 to 12"));
    }
    let reference = input.reference.trim();
    if reference.is_empty()
        || reference.chars().count() > 64
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid("reference", "1 to 64 characters, no spaces"));
    }
    Ok(Checked {
        vehicle_id,
        occurred_at: input.occurred_at,
        place,
        description,
        fine_fen: input.fine_fen,
        points: input.points,
        reference: reference.to_owned(),
    })
}

/// A reference recorded before is the same violation if it is about the same vehicle.
fn recorded_before(existing: ViolationRow, vehicle: Id) -> Result<Id> {
    if existing.vehicle_id == vehicle {
        Ok(existing.id)
    } else {
        Err(Error::exists(
            "reference",
            "a violation with this reference is recorded for another vehicle",
        ))
    }
}

#[derive(Default)]
pub struct ViolationMutation;

#[Object]
impl ViolationMutation {
    /// Records a traffic violation (operators; staff for their branch's vehicles) and tells the
    /// vehicle's driver, in one transaction. A reference recorded before returns that violation
    /// and tells nobody again.
    async fn record_violation(
        &self,
        ctx: &Context<'_>,
        input: ViolationInput,
        idempotency_key: Option<String>,
    ) -> Result<Violation> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let c = check(&input, Utc::now())?;
        let d = deps(ctx)?;
        let id = idempotency::once(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "recordViolation",
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
                if let Some(existing) = db::find_by_reference(tx, v.tenant_id, &c.reference).await?
                {
                    return recorded_before(existing, vehicle.id);
                }
                let new = NewViolation {
                    id: Id::new(),
                    tenant_id: v.tenant_id,
                    vehicle_id: vehicle.id,
                    driver_id: db::current_driver(tx, v.tenant_id, vehicle.id).await?,
                    occurred_at: c.occurred_at,
                    place: &c.place,
                    description: &c.description,
                    fine_fen: c.fine_fen,
                    points: c.points,
                    reference: &c.reference,
                    created_by: v.user_id,
                };
                if !db::insert(tx, &new).await? {
                    // A twin request recorded it while this one waited.
                    let existing = db::find_by_reference(tx, v.tenant_id, &c.reference)
                        .await?
                        .ok_or_else(|| Error::Internal("violation reference race".into()))?;
                    return recorded_before(existing, vehicle.id);
                }
                let row = db::get(tx, v.tenant_id, new.id).await?;
                sources::violation_recorded(tx, &row).await?;
                audit::record(
                    tx,
                    Some(v.tenant_id),
                    Some(v.user_id),
                    "violation.record",
                    "traffic_violation",
                    &row.id.to_string(),
                    serde_json::json!({
                        "reference": row.reference,
                        "vehicle_id": row.vehicle_id,
                        "driver_id": row.driver_id,
                        "fine_fen": row.fine_fen,
                        "points": row.points,
                    }),
                )
                .await?;
                Ok(row.id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        Ok(Violation(db::get(&mut conn, v.tenant_id, id).await?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input() -> ViolationInput {
        ViolationInput {
            vehicle_id: ID(Id::new().to_string()),
            occurred_at: "2026-11-20T02:00:00Z".parse().unwrap(),
            place: " 深南大道与科技路交叉口 ".into(),
            description: "机动车违反禁止标线指示".into(),
            fine_fen: 20_000,
            points: 3,
            reference: " 4403051234567890 ".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-21T02:00:00Z".parse().unwrap()
    }

    fn field(r: Result<Checked>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_violation_is_trimmed_and_each_bad_field_is_named() {
        let c = check(&input(), now()).unwrap();
        assert_eq!(c.place, "深南大道与科技路交叉口");
        assert_eq!(c.reference, "4403051234567890");
        type Change = Box<dyn Fn(&mut ViolationInput)>;
        let cases: Vec<(&str, Change)> = vec![
            ("vehicleId", Box::new(|i| i.vehicle_id = ID("x".into()))),
            (
                "occurredAt",
                Box::new(|i| i.occurred_at = "2026-11-21T03:00:00Z".parse().unwrap()),
            ),
            (
                "occurredAt",
                Box::new(|i| i.occurred_at = "2020-01-01T00:00:00Z".parse().unwrap()),
            ),
            ("place", Box::new(|i| i.place = "  ".into())),
            ("description", Box::new(|i| i.description = "x".repeat(501))),
            ("fineFen", Box::new(|i| i.fine_fen = -1)),
            ("fineFen", Box::new(|i| i.fine_fen = MAX_FEN + 1)),
            ("points", Box::new(|i| i.points = 13)),
            ("points", Box::new(|i| i.points = -1)),
            ("reference", Box::new(|i| i.reference = "".into())),
            ("reference", Box::new(|i| i.reference = "44 03".into())),
            ("reference", Box::new(|i| i.reference = "9".repeat(65))),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i, now())).as_deref(), Some(name));
        }
        // The edges are allowed.
        let mut i = input();
        i.points = 12;
        i.fine_fen = 0;
        i.occurred_at = now() + Duration::minutes(5);
        assert!(check(&i, now()).is_ok());
    }
}
