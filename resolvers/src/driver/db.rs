//! The SQL of drivers' reports: income, accidents, maintenance.

use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::{self as store, Conn, Id};
use serde::{Deserialize, Serialize};

use super::scope::Scope;
use crate::{Error, Result};

/// Which rows a list may show and where a page starts: newest first, keyset on
/// (`created_at`, `id`).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub scope: Scope,
    pub after: Option<(DateTime<Utc>, Id)>,
    pub limit: i64,
}

impl Page {
    fn driver(&self) -> Option<Id> {
        match self.scope {
            Scope::Own(d) => Some(d),
            _ => None,
        }
    }
    fn branch(&self) -> Option<Id> {
        match self.scope {
            Scope::Branch(b) => Some(b),
            _ => None,
        }
    }
    fn after_at(&self) -> Option<DateTime<Utc>> {
        self.after.map(|(at, _)| at)
    }
    fn after_id(&self) -> Option<Id> {
        self.after.map(|(_, id)| id)
    }
}

// ---- income ----

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct IncomeRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub driver_id: Id,
    pub filed_by: Id,
    pub week_start: NaiveDate,
    pub platform: String,
    pub orders: i32,
    pub online_minutes: i32,
    pub gross_income_fen: i64,
    pub status: String,
    pub confirmed_by: Option<Id>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an income report says, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncomeFields {
    pub week_start: NaiveDate,
    pub platform: &'static str,
    pub orders: i32,
    pub online_minutes: i32,
    pub gross_income_fen: i64,
}

pub fn income_taken() -> store::Unique {
    store::Unique {
        name: "income_report_driver_platform_week_key",
        table: "income_report",
        columns: &["driver_id", "platform", "week_start"],
    }
}

pub async fn insert_income(
    c: &mut Conn,
    id: Id,
    tenant: Id,
    branch: Id,
    driver: Id,
    filed_by: Id,
    f: &IncomeFields,
) -> Result<()> {
    let r = store::execute!(
        c,
        "insert into income_report (id, tenant_id, branch_id, driver_id, filed_by, week_start,
             platform, orders, online_minutes, gross_income_fen, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'SUBMITTED')",
        id,
        tenant,
        branch,
        driver,
        filed_by,
        f.week_start,
        f.platform,
        f.orders,
        f.online_minutes,
        f.gross_income_fen
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique(&income_taken()) => Err(Error::exists(
            "weekStart",
            "an income report for this platform and week exists; edit it instead",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `select` of one row of `$table` that a scope may see (`$3` driver, `$4` branch, any when
/// null), with `$tail` after it.
macro_rules! one_in_scope {
    ($table:literal, $tail:literal) => {
        concat!(
            "select * from ",
            $table,
            " where tenant_id = $1 and id = $2
               and ($3 is null or driver_id = $3) and ($4 is null or branch_id = $4)",
            $tail
        )
    };
}

/// The report `id` as `scope` may see it.
pub async fn get_income(c: &mut Conn, tenant: Id, scope: Scope, id: Id) -> Result<IncomeRow> {
    let (driver, branch) = scope.filters();
    store::fetch_optional!(
        c,
        IncomeRow,
        one_in_scope!("income_report", ""),
        tenant,
        id,
        driver,
        branch
    )?
    .ok_or(Error::NotFound("income report"))
}

/// [`get_income`], held for the rest of the transaction (an edit or a confirmation reads it
/// first).
pub async fn lock_income(c: &mut Conn, tenant: Id, scope: Scope, id: Id) -> Result<IncomeRow> {
    let (driver, branch) = scope.filters();
    store::fetch_optional!(
        c,
        IncomeRow,
        one_in_scope!("income_report", " for update"),
        tenant,
        id,
        driver,
        branch
    )?
    .ok_or(Error::NotFound("income report"))
}

pub async fn update_income(c: &mut Conn, id: Id, f: &IncomeFields) -> Result<()> {
    let r = store::execute!(
        c,
        "update income_report set week_start = $2, platform = $3, orders = $4, online_minutes = $5,
             gross_income_fen = $6, updated_at = now()
         where id = $1",
        id,
        f.week_start,
        f.platform,
        f.orders,
        f.online_minutes,
        f.gross_income_fen
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique(&income_taken()) => Err(Error::exists(
            "weekStart",
            "an income report for this platform and week exists",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn confirm_income(c: &mut Conn, id: Id, by: Id) -> Result<()> {
    store::execute!(
        c,
        "update income_report set status = 'CONFIRMED', confirmed_by = $2, confirmed_at = now(),
             updated_at = now()
         where id = $1",
        id,
        by
    )?;
    Ok(())
}

pub async fn list_income(
    c: &mut Conn,
    tenant: Id,
    week: Option<NaiveDate>,
    p: &Page,
) -> Result<Vec<IncomeRow>> {
    Ok(store::fetch_all!(
        c,
        IncomeRow,
        "select * from income_report
         where tenant_id = $1 and ($2 is null or driver_id = $2) and ($3 is null or branch_id = $3)
           and ($4 is null or week_start = $4)
           and ($5 is null or created_at < $5 or (created_at = $5 and id < $6))
         order by created_at desc, id desc limit $7",
        tenant,
        p.driver(),
        p.branch(),
        week,
        p.after_at(),
        p.after_id(),
        p.limit
    )?)
}

// ---- accidents ----

#[derive(sqlx::FromRow, Debug, Clone, Serialize, Deserialize)]
pub struct AccidentRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub driver_id: Id,
    pub vehicle_id: Id,
    pub reported_by: Id,
    pub occurred_at: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    pub address: String,
    pub description: String,
    pub other_party: Option<String>,
    pub police_report_no: Option<String>,
    pub injured_count: i32,
    pub injuries: Option<String>,
    pub status: String,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an accident report says, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccidentFields {
    pub vehicle_id: Option<Id>,
    pub occurred_at: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    pub address: String,
    pub description: String,
    pub other_party: Option<String>,
    pub police_report_no: Option<String>,
    pub injured_count: i32,
    pub injuries: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_accident(
    c: &mut Conn,
    id: Id,
    tenant: Id,
    branch: Id,
    driver: Id,
    vehicle: Id,
    reported_by: Id,
    f: &AccidentFields,
) -> Result<()> {
    store::execute!(
        c,
        "insert into accident_report (id, tenant_id, branch_id, driver_id, vehicle_id, reported_by,
             occurred_at, latitude, longitude, address, description, other_party, police_report_no,
             injured_count, injuries, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'SUBMITTED')",
        id,
        tenant,
        branch,
        driver,
        vehicle,
        reported_by,
        f.occurred_at,
        f.latitude,
        f.longitude,
        &f.address,
        &f.description,
        &f.other_party,
        &f.police_report_no,
        f.injured_count,
        &f.injuries
    )?;
    Ok(())
}

/// The accident `id` as `scope` may see it.
pub async fn get_accident(c: &mut Conn, tenant: Id, scope: Scope, id: Id) -> Result<AccidentRow> {
    let (driver, branch) = scope.filters();
    store::fetch_optional!(
        c,
        AccidentRow,
        one_in_scope!("accident_report", ""),
        tenant,
        id,
        driver,
        branch
    )?
    .ok_or(Error::NotFound("accident report"))
}

/// [`get_accident`], held for the rest of the transaction (a status move reads it first).
pub async fn lock_accident(c: &mut Conn, tenant: Id, scope: Scope, id: Id) -> Result<AccidentRow> {
    let (driver, branch) = scope.filters();
    store::fetch_optional!(
        c,
        AccidentRow,
        one_in_scope!("accident_report", " for update"),
        tenant,
        id,
        driver,
        branch
    )?
    .ok_or(Error::NotFound("accident report"))
}

pub async fn move_accident(
    c: &mut Conn,
    id: Id,
    status: &str,
    reject_reason: Option<&str>,
) -> Result<()> {
    store::execute!(
        c,
        "update accident_report set status = $2, reject_reason = coalesce($3, reject_reason),
             updated_at = now()
         where id = $1",
        id,
        status,
        reject_reason
    )?;
    Ok(())
}

pub async fn list_accidents(
    c: &mut Conn,
    tenant: Id,
    status: Option<&str>,
    p: &Page,
) -> Result<Vec<AccidentRow>> {
    Ok(store::fetch_all!(
        c,
        AccidentRow,
        "select * from accident_report
         where tenant_id = $1 and ($2 is null or driver_id = $2) and ($3 is null or branch_id = $3)
           and ($4 is null or status = $4)
           and ($5 is null or created_at < $5 or (created_at = $5 and id < $6))
         order by created_at desc, id desc limit $7",
        tenant,
        p.driver(),
        p.branch(),
        status,
        p.after_at(),
        p.after_id(),
        p.limit
    )?)
}

// ---- maintenance ----

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct MaintenanceRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub driver_id: Id,
    pub vehicle_id: Id,
    pub filed_by: Id,
    pub serviced_on: NaiveDate,
    pub mileage_km: i32,
    pub kind: String,
    pub shop: String,
    pub cost_fen: i64,
    pub notes: String,
    pub next_due_mileage_km: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// What a maintenance report says, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceFields {
    pub vehicle_id: Option<Id>,
    pub serviced_on: NaiveDate,
    pub mileage_km: i32,
    pub kind: &'static str,
    pub shop: String,
    pub cost_fen: i64,
    pub notes: String,
    pub next_due_mileage_km: Option<i32>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_maintenance(
    c: &mut Conn,
    id: Id,
    tenant: Id,
    branch: Id,
    driver: Id,
    vehicle: Id,
    filed_by: Id,
    f: &MaintenanceFields,
) -> Result<()> {
    store::execute!(
        c,
        "insert into maintenance_report (id, tenant_id, branch_id, driver_id, vehicle_id, filed_by,
             serviced_on, mileage_km, kind, shop, cost_fen, notes, next_due_mileage_km)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        id,
        tenant,
        branch,
        driver,
        vehicle,
        filed_by,
        f.serviced_on,
        f.mileage_km,
        f.kind,
        &f.shop,
        f.cost_fen,
        &f.notes,
        f.next_due_mileage_km
    )?;
    Ok(())
}

pub async fn get_maintenance(
    c: &mut Conn,
    tenant: Id,
    scope: Scope,
    id: Id,
) -> Result<MaintenanceRow> {
    let (driver, branch) = scope.filters();
    store::fetch_optional!(
        c,
        MaintenanceRow,
        one_in_scope!("maintenance_report", ""),
        tenant,
        id,
        driver,
        branch
    )?
    .ok_or(Error::NotFound("maintenance report"))
}

pub async fn list_maintenance(
    c: &mut Conn,
    tenant: Id,
    vehicle: Option<Id>,
    p: &Page,
) -> Result<Vec<MaintenanceRow>> {
    Ok(store::fetch_all!(
        c,
        MaintenanceRow,
        "select * from maintenance_report
         where tenant_id = $1 and ($2 is null or driver_id = $2) and ($3 is null or branch_id = $3)
           and ($4 is null or vehicle_id = $4)
           and ($5 is null or created_at < $5 or (created_at = $5 and id < $6))
         order by created_at desc, id desc limit $7",
        tenant,
        p.driver(),
        p.branch(),
        vehicle,
        p.after_at(),
        p.after_id(),
        p.limit
    )?)
}
