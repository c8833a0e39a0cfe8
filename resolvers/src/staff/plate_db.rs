//! The table of plate registrations (验车上牌) and the registry change their completion makes.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, Unique};

use crate::{Error, Result, registry::db as registry_db};

#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct RegistrationRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub vehicle_id: Id,
    pub plate: String,
    pub previous_plate: String,
    pub status: String,
    pub note: Option<String>,
    pub reject_reason: Option<String>,
    pub submitted_by: Id,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One registration under way per vehicle.
pub const OPEN_PER_VEHICLE: Unique = Unique {
    name: "plate_registration_vehicle_open_key",
    table: "plate_registration",
    columns: &["vehicle_id"],
};

/// A registration as submitted.
#[derive(Debug, Clone)]
pub struct NewRegistration<'a> {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub vehicle_id: Id,
    pub plate: &'a str,
    pub previous_plate: &'a str,
    pub note: Option<&'a str>,
    pub submitted_by: Id,
}

/// Inserts `r` as SUBMITTED; a vehicle with a registration under way is `ALREADY_EXISTS` on
/// `vehicleId`.
pub async fn insert(tx: &mut Conn, r: &NewRegistration<'_>) -> Result<()> {
    let done = store::execute!(
        tx,
        "insert into plate_registration (id, tenant_id, branch_id, vehicle_id, plate, previous_plate,
                                         status, note, submitted_by)
         values ($1, $2, $3, $4, $5, $6, 'SUBMITTED', $7, $8)",
        r.id,
        r.tenant_id,
        r.branch_id,
        r.vehicle_id,
        r.plate,
        r.previous_plate,
        r.note,
        r.submitted_by
    );
    match done {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique(&OPEN_PER_VEHICLE) => Err(Error::exists(
            "vehicleId",
            "this vehicle has a plate registration under way",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(c: &mut Conn, tenant: Id, id: Id) -> Result<RegistrationRow> {
    store::fetch_optional!(
        c,
        RegistrationRow,
        "select * from plate_registration where tenant_id = $1 and id = $2",
        tenant,
        id
    )?
    .ok_or(Error::NotFound("plate registration"))
}

/// The registration, held for the rest of the transaction (one step at a time).
pub async fn lock(tx: &mut Conn, tenant: Id, id: Id) -> Result<RegistrationRow> {
    store::fetch_optional!(
        tx,
        RegistrationRow,
        "select * from plate_registration where tenant_id = $1 and id = $2 for update",
        tenant,
        id
    )?
    .ok_or(Error::NotFound("plate registration"))
}

/// Moves a registration to `status` (the caller checked the step).
pub async fn move_to(
    tx: &mut Conn,
    id: Id,
    status: &str,
    reject_reason: Option<&str>,
) -> Result<RegistrationRow> {
    Ok(store::fetch_one!(
        tx,
        RegistrationRow,
        "update plate_registration set status = $1, reject_reason = $2, updated_at = now()
         where id = $3
         returning *",
        status,
        reject_reason,
        id
    )?)
}

/// A tenant's registrations (of one branch, in one status, when given), newest first.
pub async fn list(
    c: &mut Conn,
    tenant: Id,
    branch: Option<Id>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<RegistrationRow>> {
    Ok(store::fetch_all!(
        c,
        RegistrationRow,
        "select * from plate_registration
         where tenant_id = $1 and ($2 is null or branch_id = $2) and ($3 is null or status = $3)
         order by created_at desc, id desc limit $4",
        tenant,
        branch,
        status,
        limit
    )?)
}

/// Gives the vehicle its registered plate. A plate another vehicle of the tenant has is
/// `ALREADY_EXISTS` on `plate`.
pub async fn set_vehicle_plate(tx: &mut Conn, tenant: Id, vehicle: Id, plate: &str) -> Result<()> {
    let n = store::execute!(
        tx,
        "update vehicle set plate = $1, updated_at = now() where tenant_id = $2 and id = $3",
        plate,
        tenant,
        vehicle
    )
    .map_err(registry_db::conflict)?;
    if n == 0 {
        Err(Error::NotFound("vehicle"))
    } else {
        Ok(())
    }
}
