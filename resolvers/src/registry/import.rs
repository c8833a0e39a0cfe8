//! CSV import of vehicles and drivers.
//!
//! Every row is checked before anything is written, then all rows are written in one
//! transaction: a failure half-way rolls everything back, so a file is never half-imported.
//! Rows are matched to what exists (vehicles by plate and VIN, drivers by ID number and phone),
//! so importing the same file twice changes nothing the second time.
//!
//! Vehicles: `plate,vin,branch_code[,model][,status]`.
//! Drivers: `name,phone,id_number,branch_code[,plate]`.

use std::collections::{HashMap, HashSet};

use async_graphql::{Enum, SimpleObject};
use minigate_store::{Conn, Db, Id};

use super::{
    VehicleStatus, db,
    mutation::{DriverValues, VehicleValues, check_model},
};
use crate::{Error, Result, audit, validate};

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImportKind {
    Vehicles,
    Drivers,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImportMode {
    /// One bad row rejects the whole file.
    AllOrNothing,
    /// Good rows are stored, bad rows reported.
    SkipInvalid,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub mode: ImportMode,
    pub dry_run: bool,
}

#[derive(SimpleObject, Debug, Default)]
pub struct ImportReport {
    pub total_rows: i32,
    pub inserted: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub rejected: Vec<RejectedRow>,
    /// Whether anything was written (false for a dry run or a rejected file).
    pub applied: bool,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct RejectedRow {
    /// The line in the file, the header being line 1.
    pub line: i32,
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// How far an import has got, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

pub const MAX_ROWS: usize = 50_000;

/// One data row of a CSV file, its cells by column name.
pub(crate) struct Row {
    pub(crate) line: i32,
    cells: HashMap<&'static str, String>,
}

/// Reads a CSV file with a header row: `required` columns must be present, `optional` may be.
pub(crate) fn read_rows(
    input: &[u8],
    required: &[&'static str],
    optional: &[&'static str],
) -> Result<Vec<Row>> {
    let text = std::str::from_utf8(input)
        .map_err(|_| Error::invalid("csv", "the file is not UTF-8 text; save it as 'CSV UTF-8'"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::invalid("csv", format!("unreadable header: {e}")))?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut columns = Vec::new();
    for &name in required {
        let i =
            index(name).ok_or_else(|| Error::invalid("csv", format!("missing column '{name}'")))?;
        columns.push((name, i));
    }
    for &name in optional {
        if let Some(i) = index(name) {
            columns.push((name, i));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::invalid("csv", format!("unreadable row: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(Error::invalid(
                "csv",
                format!("at most {MAX_ROWS} rows per file"),
            ));
        }
        let line = record
            .position()
            .and_then(|p| i32::try_from(p.line()).ok())
            .unwrap_or(0);
        let cells = columns
            .iter()
            .map(|&(name, i)| (name, record.get(i).unwrap_or("").to_owned()))
            .collect();
        rows.push(Row { line, cells });
    }
    Ok(rows)
}

impl Row {
    pub(crate) fn get(&self, k: &str) -> &str {
        self.cells.get(k).map_or("", String::as_str)
    }
    pub(crate) fn opt(&self, k: &str) -> Option<&str> {
        Some(self.get(k)).filter(|s| !s.is_empty())
    }
}

pub(crate) fn reject(line: i32, e: &Error) -> RejectedRow {
    RejectedRow {
        line,
        field: e.field().map(str::to_owned),
        code: e.code().to_owned(),
        message: e.public_message(),
    }
}

pub(crate) enum Outcome {
    Inserted,
    Updated,
    Unchanged,
}

/// Runs an import for `tenant_id`; `actor` is recorded in the audit log.
pub async fn run(
    db: &Db,
    tenant_id: Id,
    actor: Option<Id>,
    kind: ImportKind,
    input: &[u8],
    opts: Options,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport> {
    let rows = match kind {
        ImportKind::Vehicles => read_rows(
            input,
            &["plate", "vin", "branch_code"],
            &["model", "status"],
        )?,
        ImportKind::Drivers => read_rows(
            input,
            &["name", "phone", "id_number", "branch_code"],
            &["plate"],
        )?,
    };
    let mut report = ImportReport {
        total_rows: i32::try_from(rows.len()).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let mut tx = db.begin().await?;
    let branches: HashMap<String, Id> = db::list_branches(&mut tx, tenant_id, None)
        .await?
        .into_iter()
        .map(|b| (b.code, b.id))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let total = rows.len();
    for (n, row) in rows.iter().enumerate() {
        let outcome = match kind {
            ImportKind::Vehicles => {
                vehicle_row(&mut tx, tenant_id, &branches, &mut seen, row).await
            }
            ImportKind::Drivers => driver_row(&mut tx, tenant_id, &branches, &mut seen, row).await,
        };
        match outcome {
            Ok(Outcome::Inserted) => report.inserted += 1,
            Ok(Outcome::Updated) => report.updated += 1,
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Err(e @ (Error::Invalid { .. } | Error::AlreadyExists { .. })) => {
                report.rejected.push(reject(row.line, &e))
            }
            Err(e) => return Err(e),
        }
        if (n + 1) % 100 == 0 || n + 1 == total {
            progress(Progress { done: n + 1, total });
        }
    }
    let refuse = opts.mode == ImportMode::AllOrNothing && !report.rejected.is_empty();
    if opts.dry_run || refuse {
        tx.rollback().await?;
        return Ok(report);
    }
    audit::record(
        &mut tx,
        Some(tenant_id),
        actor,
        "registry.import",
        match kind {
            ImportKind::Vehicles => "vehicle",
            ImportKind::Drivers => "driver",
        },
        "*",
        serde_json::json!({ "inserted": report.inserted, "updated": report.updated, "rejected": report.rejected.len() }),
    )
    .await?;
    tx.commit().await?;
    report.applied = true;
    Ok(report)
}

pub(crate) fn branch_of(branches: &HashMap<String, Id>, code: &str) -> Result<Id> {
    branches
        .get(code)
        .copied()
        .ok_or_else(|| Error::invalid("branch_code", format!("no branch with code '{code}'")))
}

pub(crate) fn once_in_file(seen: &mut HashSet<String>, field: &str, value: &str) -> Result<()> {
    if seen.insert(format!("{field}:{value}")) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "appears on an earlier line of this file",
        ))
    }
}

async fn vehicle_row(
    tx: &mut Conn,
    tenant: Id,
    branches: &HashMap<String, Id>,
    seen: &mut HashSet<String>,
    row: &Row,
) -> Result<Outcome> {
    let plate = validate::plate(row.get("plate"))?;
    let vin = validate::vin(row.get("vin"))?;
    let branch_id = branch_of(branches, row.get("branch_code"))?;
    let model = check_model(row.opt("model"))?;
    let status = match row.opt("status") {
        None => VehicleStatus::Available,
        Some(s) => VehicleStatus::parse(s)
            .ok_or_else(|| Error::invalid("status", "AVAILABLE, RENTED, MAINTENANCE or RETIRED"))?,
    };
    once_in_file(seen, "plate", &plate)?;
    once_in_file(seen, "vin", &vin)?;
    let values = VehicleValues {
        branch_id,
        plate,
        vin,
        model,
        status: status.as_str(),
    };
    let by_plate = db::find_vehicle_by_plate(tx, tenant, &values.plate).await?;
    let by_vin = db::find_vehicle_by_vin(tx, tenant, &values.vin).await?;
    match (by_plate, by_vin) {
        (None, None) => {
            db::insert_vehicle(tx, tenant, &values.fields()).await?;
            Ok(Outcome::Inserted)
        }
        (Some(a), Some(b)) if a.id == b.id => {
            let same = a.branch_id == values.branch_id
                && a.model == values.model
                && a.status == values.status;
            if same {
                return Ok(Outcome::Unchanged);
            }
            db::update_vehicle(tx, tenant, a.id, &values.fields()).await?;
            Ok(Outcome::Updated)
        }
        (Some(_), _) => Err(Error::exists(
            "plate",
            "this plate belongs to a vehicle with another VIN",
        )),
        (None, Some(_)) => Err(Error::exists(
            "vin",
            "this VIN belongs to a vehicle with another plate",
        )),
    }
}

async fn driver_row(
    tx: &mut Conn,
    tenant: Id,
    branches: &HashMap<String, Id>,
    seen: &mut HashSet<String>,
    row: &Row,
) -> Result<Outcome> {
    let name = validate::name("name", row.get("name"), 50)?;
    let phone = validate::phone(row.get("phone"))?;
    let id_number = validate::id_number(row.get("id_number"))?;
    let branch_id = branch_of(branches, row.get("branch_code"))?;
    let vehicle_id = match row.opt("plate") {
        None => None,
        Some(p) => {
            let plate = validate::plate(p)?;
            Some(
                db::find_vehicle_by_plate(tx, tenant, &plate)
                    .await?
                    .ok_or_else(|| Error::invalid("plate", "no vehicle with this plate"))?
                    .id,
            )
        }
    };
    once_in_file(seen, "phone", &phone)?;
    once_in_file(seen, "idNumber", &id_number)?;
    let values = DriverValues {
        branch_id,
        vehicle_id,
        name,
        phone,
        id_number,
    };
    let by_id = db::find_driver_by_id_number(tx, tenant, &values.id_number).await?;
    let by_phone = db::find_driver_by_phone(tx, tenant, &values.phone).await?;
    match (by_id, by_phone) {
        (None, None) => {
            db::insert_driver(tx, tenant, &values.fields()).await?;
            Ok(Outcome::Inserted)
        }
        (Some(a), Some(b)) if a.id != b.id => Err(Error::exists(
            "phone",
            "this phone belongs to another driver",
        )),
        (None, Some(_)) => Err(Error::exists(
            "phone",
            "this phone belongs to another driver",
        )),
        (Some(a), _) => {
            let same = a.branch_id == values.branch_id
                && a.vehicle_id == values.vehicle_id
                && a.name == values.name
                && a.phone == values.phone;
            if same {
                return Ok(Outcome::Unchanged);
            }
            db::update_driver(tx, tenant, a.id, &values.fields()).await?;
            Ok(Outcome::Updated)
        }
    }
}
