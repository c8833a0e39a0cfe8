use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, List, Unique};

use crate::{Error, Result};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct BranchRow {
    pub id: Id,
    pub tenant_id: Id,
    pub code: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct VehicleRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub plate: String,
    pub vin: String,
    pub model: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct DriverRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub vehicle_id: Option<Id>,
    pub name: String,
    pub phone: String,
    pub id_number: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const BRANCH_CODE: Unique = Unique {
    name: "branch_tenant_code_key",
    table: "branch",
    columns: &["tenant_id", "code"],
};
pub const VEHICLE_PLATE: Unique = Unique {
    name: "vehicle_tenant_plate_key",
    table: "vehicle",
    columns: &["tenant_id", "plate"],
};
pub const VEHICLE_VIN: Unique = Unique {
    name: "vehicle_tenant_vin_key",
    table: "vehicle",
    columns: &["tenant_id", "vin"],
};
pub const DRIVER_PHONE: Unique = Unique {
    name: "driver_tenant_phone_key",
    table: "driver",
    columns: &["tenant_id", "phone"],
};
pub const DRIVER_ID_NUMBER: Unique = Unique {
    name: "driver_tenant_id_number_key",
    table: "driver",
    columns: &["tenant_id", "id_number"],
};

/// Turns the unique violations of the registry into `ALREADY_EXISTS` on the right field.
pub fn conflict(e: store::Error) -> Error {
    let named = [
        (BRANCH_CODE, "code", "a branch with this code exists"),
        (VEHICLE_PLATE, "plate", "a vehicle with this plate exists"),
        (VEHICLE_VIN, "vin", "a vehicle with this VIN exists"),
        (DRIVER_PHONE, "phone", "a driver with this phone exists"),
        (
            DRIVER_ID_NUMBER,
            "idNumber",
            "a driver with this ID number exists",
        ),
    ];
    for (c, field, message) in named {
        if e.is_unique(&c) {
            return Error::exists(field, message);
        }
    }
    e.into()
}

// ---- branches ----

pub async fn insert_branch(c: &mut Conn, tenant_id: Id, code: &str, name: &str) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into branch (id, tenant_id, code, name) values ($1, $2, $3, $4)",
        id,
        tenant_id,
        code,
        name
    )
    .map_err(conflict)?;
    Ok(id)
}

pub async fn update_branch_name(c: &mut Conn, tenant_id: Id, id: Id, name: &str) -> Result<()> {
    let n = store::execute!(
        c,
        "update branch set name = $1, updated_at = now() where tenant_id = $2 and id = $3",
        name,
        tenant_id,
        id
    )?;
    if n == 0 {
        Err(Error::NotFound("branch"))
    } else {
        Ok(())
    }
}

pub async fn get_branch(c: &mut Conn, tenant_id: Id, id: Id) -> Result<BranchRow> {
    store::fetch_optional!(
        c,
        BranchRow,
        "select * from branch where tenant_id = $1 and id = $2",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("branch"))
}

pub async fn list_branches(
    c: &mut Conn,
    tenant_id: Id,
    only: Option<Id>,
) -> Result<Vec<BranchRow>> {
    Ok(store::fetch_all!(
        c,
        BranchRow,
        "select * from branch where tenant_id = $1 and ($2 is null or id = $2) order by code",
        tenant_id,
        only
    )?)
}

pub async fn branches_by_ids(c: &mut Conn, tenant_id: Id, ids: Vec<Id>) -> Result<Vec<BranchRow>> {
    Ok(store::fetch_all!(
        c,
        BranchRow,
        "select * from branch where tenant_id = $1 and id = any($2)",
        tenant_id,
        List(ids)
    )?)
}

// ---- vehicles ----

pub struct VehicleFilter<'a> {
    pub branch_id: Option<Id>,
    pub status: Option<&'a str>,
    /// Plates starting with this text.
    pub plate_prefix: Option<&'a str>,
    /// Keyset cursor: plates after this one.
    pub after_plate: Option<&'a str>,
    pub limit: i64,
}

pub async fn list_vehicles(
    c: &mut Conn,
    tenant_id: Id,
    f: &VehicleFilter<'_>,
) -> Result<Vec<VehicleRow>> {
    let prefix = f
        .plate_prefix
        .map(|p| format!("{}%", p.replace(['%', '_'], "")));
    Ok(store::fetch_all!(
        c,
        VehicleRow,
        "select * from vehicle
         where tenant_id = $1 and ($2 is null or branch_id = $2) and ($3 is null or status = $3)
           and ($4 is null or plate like $4) and ($5 is null or plate > $5)
         order by plate limit $6",
        tenant_id,
        f.branch_id,
        f.status,
        prefix,
        f.after_plate,
        f.limit
    )?)
}

pub async fn get_vehicle(c: &mut Conn, tenant_id: Id, id: Id) -> Result<VehicleRow> {
    store::fetch_optional!(
        c,
        VehicleRow,
        "select * from vehicle where tenant_id = $1 and id = $2",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("vehicle"))
}

pub async fn find_vehicle_by_plate(
    c: &mut Conn,
    tenant_id: Id,
    plate: &str,
) -> Result<Option<VehicleRow>> {
    Ok(store::fetch_optional!(
        c,
        VehicleRow,
        "select * from vehicle where tenant_id = $1 and plate = $2",
        tenant_id,
        plate
    )?)
}

pub async fn find_vehicle_by_vin(
    c: &mut Conn,
    tenant_id: Id,
    vin: &str,
) -> Result<Option<VehicleRow>> {
    Ok(store::fetch_optional!(
        c,
        VehicleRow,
        "select * from vehicle where tenant_id = $1 and vin = $2",
        tenant_id,
        vin
    )?)
}

pub async fn vehicles_by_ids(c: &mut Conn, tenant_id: Id, ids: Vec<Id>) -> Result<Vec<VehicleRow>> {
    Ok(store::fetch_all!(
        c,
        VehicleRow,
        "select * from vehicle where tenant_id = $1 and id = any($2)",
        tenant_id,
        List(ids)
    )?)
}

pub struct VehicleFields<'a> {
    pub branch_id: Id,
    pub plate: &'a str,
    pub vin: &'a str,
    pub model: Option<&'a str>,
    pub status: &'a str,
}

pub async fn insert_vehicle(c: &mut Conn, tenant_id: Id, v: &VehicleFields<'_>) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into vehicle (id, tenant_id, branch_id, plate, vin, model, status) values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        tenant_id,
        v.branch_id,
        v.plate,
        v.vin,
        v.model,
        v.status
    )
    .map_err(conflict)?;
    Ok(id)
}

pub async fn update_vehicle(
    c: &mut Conn,
    tenant_id: Id,
    id: Id,
    v: &VehicleFields<'_>,
) -> Result<()> {
    let n = store::execute!(
        c,
        "update vehicle set branch_id = $1, plate = $2, vin = $3, model = $4, status = $5, updated_at = now()
         where tenant_id = $6 and id = $7",
        v.branch_id,
        v.plate,
        v.vin,
        v.model,
        v.status,
        tenant_id,
        id
    )
    .map_err(conflict)?;
    if n == 0 {
        Err(Error::NotFound("vehicle"))
    } else {
        Ok(())
    }
}

// ---- drivers ----

pub async fn list_drivers(
    c: &mut Conn,
    tenant_id: Id,
    branch_id: Option<Id>,
    after_id: Option<Id>,
    limit: i64,
) -> Result<Vec<DriverRow>> {
    Ok(store::fetch_all!(
        c,
        DriverRow,
        "select * from driver where tenant_id = $1 and ($2 is null or branch_id = $2) and ($3 is null or id > $3)
         order by id limit $4",
        tenant_id,
        branch_id,
        after_id,
        limit
    )?)
}

pub async fn get_driver(c: &mut Conn, tenant_id: Id, id: Id) -> Result<DriverRow> {
    store::fetch_optional!(
        c,
        DriverRow,
        "select * from driver where tenant_id = $1 and id = $2",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("driver"))
}

pub async fn drivers_by_ids(c: &mut Conn, tenant_id: Id, ids: Vec<Id>) -> Result<Vec<DriverRow>> {
    Ok(store::fetch_all!(
        c,
        DriverRow,
        "select * from driver where tenant_id = $1 and id = any($2)",
        tenant_id,
        List(ids)
    )?)
}

pub async fn find_driver_by_phone(
    c: &mut Conn,
    tenant_id: Id,
    phone: &str,
) -> Result<Option<DriverRow>> {
    Ok(store::fetch_optional!(
        c,
        DriverRow,
        "select * from driver where tenant_id = $1 and phone = $2",
        tenant_id,
        phone
    )?)
}

pub async fn find_driver_by_id_number(
    c: &mut Conn,
    tenant_id: Id,
    id_number: &str,
) -> Result<Option<DriverRow>> {
    Ok(store::fetch_optional!(
        c,
        DriverRow,
        "select * from driver where tenant_id = $1 and id_number = $2",
        tenant_id,
        id_number
    )?)
}

pub struct DriverFields<'a> {
    pub branch_id: Id,
    pub vehicle_id: Option<Id>,
    pub name: &'a str,
    pub phone: &'a str,
    pub id_number: &'a str,
}

pub async fn insert_driver(c: &mut Conn, tenant_id: Id, d: &DriverFields<'_>) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into driver (id, tenant_id, branch_id, vehicle_id, name, phone, id_number)
         values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        tenant_id,
        d.branch_id,
        d.vehicle_id,
        d.name,
        d.phone,
        d.id_number
    )
    .map_err(conflict)?;
    Ok(id)
}

pub async fn update_driver(
    c: &mut Conn,
    tenant_id: Id,
    id: Id,
    d: &DriverFields<'_>,
) -> Result<()> {
    let n = store::execute!(
        c,
        "update driver set branch_id = $1, vehicle_id = $2, name = $3, phone = $4, id_number = $5, updated_at = now()
         where tenant_id = $6 and id = $7",
        d.branch_id,
        d.vehicle_id,
        d.name,
        d.phone,
        d.id_number,
        tenant_id,
        id
    )
    .map_err(conflict)?;
    if n == 0 {
        Err(Error::NotFound("driver"))
    } else {
        Ok(())
    }
}
