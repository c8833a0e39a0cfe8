//! The tables of asset audits: the audit with its counters, its list (a snapshot of the
//! branch's vehicles), the findings and, once closed, the discrepancies.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub title: String,
    pub status: String,
    pub listed_count: i32,
    pub found_count: i32,
    pub unlisted_count: i32,
    pub opened_by: Id,
    pub closed_by: Option<Id>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A finding with the name of who recorded it.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRow {
    pub id: Id,
    pub audit_id: Id,
    pub vehicle_id: Option<Id>,
    pub plate: Option<String>,
    pub vin: Option<String>,
    pub listed: bool,
    pub mileage_km: i32,
    pub condition: String,
    pub note: Option<String>,
    pub recorded_by: Id,
    pub recorded_by_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A vehicle of the audit's list, and its finding once found.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub vehicle_id: Id,
    pub plate: String,
    pub vin: String,
    pub finding_id: Option<Id>,
}

#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct DiscrepancyRow {
    pub kind: String,
    pub subject_id: Id,
    pub vehicle_id: Option<Id>,
    pub plate: Option<String>,
    pub vin: Option<String>,
}

/// Opens an audit of `branch` whose list is the branch's vehicles that are not retired now.
pub async fn insert_audit(
    tx: &mut Conn,
    id: Id,
    tenant: Id,
    branch: Id,
    title: &str,
    opened_by: Id,
) -> Result<()> {
    store::execute!(
        tx,
        "insert into asset_audit (id, tenant_id, branch_id, title, status, listed_count, opened_by)
         values ($1, $2, $3, $4, 'OPEN', 0, $5)",
        id,
        tenant,
        branch,
        title,
        opened_by
    )?;
    store::execute!(
        tx,
        "insert into asset_audit_item (audit_id, vehicle_id, plate, vin)
         select $1, id, plate, vin from vehicle
         where tenant_id = $2 and branch_id = $3 and status <> 'RETIRED'",
        id,
        tenant,
        branch
    )?;
    store::execute!(
        tx,
        "update asset_audit set listed_count = (select count(*) from asset_audit_item where audit_id = $1)
         where id = $1",
        id
    )?;
    Ok(())
}

pub async fn get_audit(c: &mut Conn, tenant: Id, id: Id) -> Result<AuditRow> {
    store::fetch_optional!(
        c,
        AuditRow,
        "select * from asset_audit where tenant_id = $1 and id = $2",
        tenant,
        id
    )?
    .ok_or(Error::NotFound("asset audit"))
}

/// The audit, held for the rest of the transaction: findings and the close of one audit take
/// their turns, so counts are never lost and nothing is recorded after the close.
pub async fn lock_audit(tx: &mut Conn, tenant: Id, id: Id) -> Result<AuditRow> {
    store::fetch_optional!(
        tx,
        AuditRow,
        "select * from asset_audit where tenant_id = $1 and id = $2 for update",
        tenant,
        id
    )?
    .ok_or(Error::NotFound("asset audit"))
}

/// A tenant's audits (of one branch, in one status, when given), newest first.
pub async fn list_audits(
    c: &mut Conn,
    tenant: Id,
    branch: Option<Id>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>> {
    Ok(store::fetch_all!(
        c,
        AuditRow,
        "select * from asset_audit
         where tenant_id = $1 and ($2 is null or branch_id = $2) and ($3 is null or status = $3)
         order by created_at desc, id desc limit $4",
        tenant,
        branch,
        status,
        limit
    )?)
}

/// Whether `vehicle` is on the audit's list.
pub async fn is_listed(c: &mut Conn, audit: Id, vehicle: Id) -> Result<bool> {
    let n = store::fetch_scalar!(
        c,
        i64,
        "select count(*) from asset_audit_item where audit_id = $1 and vehicle_id = $2",
        audit,
        vehicle
    )?;
    Ok(n > 0)
}

/// What a finding says, as stored.
#[derive(Debug, Clone)]
pub struct FindingFields<'a> {
    pub subject: &'a str,
    pub vehicle_id: Option<Id>,
    pub plate: Option<&'a str>,
    pub vin: Option<&'a str>,
    pub listed: bool,
    pub mileage_km: i32,
    pub condition: &'a str,
    pub note: Option<&'a str>,
    pub recorded_by: Id,
}

/// The finding of `subject` in the audit, if one was recorded.
pub async fn find_finding(c: &mut Conn, audit: Id, subject: &str) -> Result<Option<Id>> {
    Ok(store::fetch_scalar_optional!(
        c,
        Id,
        "select id from asset_audit_finding where audit_id = $1 and subject = $2",
        audit,
        subject
    )?)
}

pub async fn insert_finding(tx: &mut Conn, id: Id, audit: Id, f: &FindingFields<'_>) -> Result<()> {
    store::execute!(
        tx,
        "insert into asset_audit_finding (id, audit_id, subject, vehicle_id, plate, vin, listed,
                                          mileage_km, condition, note, recorded_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        id,
        audit,
        f.subject,
        f.vehicle_id,
        f.plate,
        f.vin,
        f.listed,
        f.mileage_km,
        f.condition,
        f.note,
        f.recorded_by
    )?;
    Ok(())
}

/// Replaces what finding `id` says with the latest record of its vehicle.
pub async fn update_finding(tx: &mut Conn, id: Id, f: &FindingFields<'_>) -> Result<()> {
    store::execute!(
        tx,
        "update asset_audit_finding
         set plate = $1, vin = $2, mileage_km = $3, condition = $4, note = $5, recorded_by = $6,
             updated_at = now()
         where id = $7",
        f.plate,
        f.vin,
        f.mileage_km,
        f.condition,
        f.note,
        f.recorded_by,
        id
    )?;
    Ok(())
}

/// Counts the audit's findings again (the caller holds the audit, see [`lock_audit`]) and
/// returns the audit as it now stands.
pub async fn recount(tx: &mut Conn, audit: Id) -> Result<AuditRow> {
    Ok(store::fetch_one!(
        tx,
        AuditRow,
        "update asset_audit
         set found_count = (select count(*) from asset_audit_finding where audit_id = $1 and listed),
             unlisted_count = (select count(*) from asset_audit_finding where audit_id = $1 and not listed),
             updated_at = now()
         where id = $1
         returning *",
        audit
    )?)
}

macro_rules! select_finding {
    ($rest:literal) => {
        concat!(
            "select f.id, f.audit_id, f.vehicle_id, f.plate, f.vin, f.listed, f.mileage_km,
                    f.condition, f.note, f.recorded_by, u.display_name as recorded_by_name,
                    f.created_at, f.updated_at
             from asset_audit_finding f join app_user u on u.id = f.recorded_by ",
            $rest
        )
    };
}

pub async fn get_finding(c: &mut Conn, id: Id) -> Result<FindingRow> {
    store::fetch_optional!(c, FindingRow, select_finding!("where f.id = $1"), id)?
        .ok_or(Error::NotFound("audit finding"))
}

/// The findings of an audit, in the order they were first recorded.
pub async fn findings_of(c: &mut Conn, audit: Id) -> Result<Vec<FindingRow>> {
    Ok(store::fetch_all!(
        c,
        FindingRow,
        select_finding!("where f.audit_id = $1 order by f.created_at, f.id"),
        audit
    )?)
}

/// The audit's list by plate, each with its finding once found.
pub async fn items_of(c: &mut Conn, audit: Id) -> Result<Vec<ItemRow>> {
    Ok(store::fetch_all!(
        c,
        ItemRow,
        "select i.vehicle_id, i.plate, i.vin, f.id as finding_id
         from asset_audit_item i
         left join asset_audit_finding f on f.audit_id = i.audit_id and f.vehicle_id = i.vehicle_id
         where i.audit_id = $1
         order by i.plate",
        audit
    )?)
}

/// Closes the audit and stores its discrepancies: listed vehicles nobody found (MISSING) and
/// findings of vehicles not listed (UNLISTED). The caller holds the audit.
pub async fn close(tx: &mut Conn, audit: Id, by: Id) -> Result<AuditRow> {
    store::execute!(
        tx,
        "insert into asset_audit_discrepancy (audit_id, kind, subject_id, vehicle_id, plate, vin)
         select i.audit_id, 'MISSING', i.vehicle_id, i.vehicle_id, i.plate, i.vin
         from asset_audit_item i
         where i.audit_id = $1 and not exists (
             select 1 from asset_audit_finding f where f.audit_id = i.audit_id and f.vehicle_id = i.vehicle_id)",
        audit
    )?;
    store::execute!(
        tx,
        "insert into asset_audit_discrepancy (audit_id, kind, subject_id, vehicle_id, plate, vin)
         select f.audit_id, 'UNLISTED', f.id, f.vehicle_id, f.plate, f.vin
         from asset_audit_finding f
         where f.audit_id = $1 and not f.listed",
        audit
    )?;
    Ok(store::fetch_one!(
        tx,
        AuditRow,
        "update asset_audit set status = 'CLOSED', closed_by = $1, closed_at = now(), updated_at = now()
         where id = $2
         returning *",
        by,
        audit
    )?)
}

/// The discrepancies of a closed audit: missing vehicles first, then unlisted ones, by plate.
pub async fn discrepancies_of(c: &mut Conn, audit: Id) -> Result<Vec<DiscrepancyRow>> {
    Ok(store::fetch_all!(
        c,
        DiscrepancyRow,
        "select kind, subject_id, vehicle_id, plate, vin from asset_audit_discrepancy
         where audit_id = $1
         order by kind, coalesce(plate, ''), coalesce(vin, ''), subject_id",
        audit
    )?)
}
