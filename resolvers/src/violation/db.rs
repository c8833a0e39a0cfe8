use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::{Error, Result};

/// A violation with its vehicle's plate.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ViolationRow {
    pub id: Id,
    pub tenant_id: Id,
    pub vehicle_id: Id,
    pub plate: String,
    pub driver_id: Option<Id>,
    pub occurred_at: DateTime<Utc>,
    pub place: String,
    pub description: String,
    pub fine_fen: i64,
    pub points: i32,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

macro_rules! select_violation {
    ($rest:literal) => {
        concat!(
            "select t.id, t.tenant_id, t.vehicle_id, v.plate, t.driver_id, t.occurred_at, t.place,
                    t.description, t.fine_fen, t.points, t.reference, t.created_at
             from traffic_violation t join vehicle v on v.id = t.vehicle_id ",
            $rest
        )
    };
}

/// A violation as recorded.
#[derive(Debug, Clone)]
pub struct NewViolation<'a> {
    pub id: Id,
    pub tenant_id: Id,
    pub vehicle_id: Id,
    pub driver_id: Option<Id>,
    pub occurred_at: DateTime<Utc>,
    pub place: &'a str,
    pub description: &'a str,
    pub fine_fen: i64,
    pub points: i32,
    pub reference: &'a str,
    pub created_by: Id,
}

/// Inserts `v` unless the tenant has a violation with its reference. Whether it was inserted.
pub async fn insert(c: &mut Conn, v: &NewViolation<'_>) -> Result<bool> {
    let n = store::execute!(
        c,
        "insert into traffic_violation (id, tenant_id, vehicle_id, driver_id, occurred_at, place, description,
                                        fine_fen, points, reference, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (tenant_id, reference) do nothing",
        v.id,
        v.tenant_id,
        v.vehicle_id,
        v.driver_id,
        v.occurred_at,
        v.place,
        v.description,
        v.fine_fen,
        v.points,
        v.reference,
        v.created_by
    )?;
    Ok(n == 1)
}

pub async fn find_by_reference(
    c: &mut Conn,
    tenant: Id,
    reference: &str,
) -> Result<Option<ViolationRow>> {
    Ok(store::fetch_optional!(
        c,
        ViolationRow,
        select_violation!("where t.tenant_id = $1 and t.reference = $2"),
        tenant,
        reference
    )?)
}

pub async fn get(c: &mut Conn, tenant: Id, id: Id) -> Result<ViolationRow> {
    store::fetch_optional!(
        c,
        ViolationRow,
        select_violation!("where t.tenant_id = $1 and t.id = $2"),
        tenant,
        id
    )?
    .ok_or(Error::NotFound("violation"))
}

/// The driver who has `vehicle` now; the one assigned last if the registry names several.
pub async fn current_driver(c: &mut Conn, tenant: Id, vehicle: Id) -> Result<Option<Id>> {
    Ok(store::fetch_scalar_optional!(
        c,
        Id,
        "select id from driver where tenant_id = $1 and vehicle_id = $2 order by updated_at desc, id desc limit 1",
        tenant,
        vehicle
    )?)
}

/// Which violations a list shows; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub vehicle_id: Option<Id>,
    pub driver_id: Option<Id>,
    /// Vehicles of this branch only (staff).
    pub branch_id: Option<Id>,
}

/// A tenant's violations, latest first.
pub async fn list(c: &mut Conn, tenant: Id, f: &Filter, limit: i64) -> Result<Vec<ViolationRow>> {
    Ok(store::fetch_all!(
        c,
        ViolationRow,
        select_violation!(
            "where t.tenant_id = $1 and ($2 is null or t.vehicle_id = $2)
               and ($3 is null or t.driver_id = $3) and ($4 is null or v.branch_id = $4)
             order by t.occurred_at desc, t.id desc limit $5"
        ),
        tenant,
        f.vehicle_id,
        f.driver_id,
        f.branch_id,
        limit
    )?)
}
