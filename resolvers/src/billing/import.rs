//! CSV import of bills: `reference,kind,title,amount_yuan,due_date[,driver_phone][,payer_name][,branch_code]`.
//!
//! Works as the registry's import (`crate::registry::import`): every row is checked before
//! anything is written, all rows are written in one transaction, rejects are reported by line
//! and field. Rows are matched to existing bills by `reference` (required), so importing the same
//! file twice changes nothing; a changed row updates an OPEN bill, and a PAID or CANCELLED bill is
//! never changed (the row is rejected with `BILL_NOT_OPEN`).

use std::collections::{HashMap, HashSet};

use minigate_store::{Conn, Db, Id};

use super::{
    BillKind, db,
    input::{
        BillDraft, CSV_FIELDS, Payer, check_payer_name, check_reference, check_title,
        parse_amount_yuan, parse_due_date,
    },
};
use crate::{
    Error, Result, audit,
    registry::{
        db::{self as registry_db, DriverRow},
        import::{
            ImportMode, ImportReport, Options, Outcome, Progress, RejectedRow, Row, branch_of,
            once_in_file, read_rows, reject,
        },
    },
    validate,
};

/// One bill as a CSV row (or the CLI) writes it: the payer by phone or name, the branch by code,
/// the amount in yuan.
#[derive(Debug, Clone, Copy)]
pub struct BillLine<'a> {
    pub reference: Option<&'a str>,
    pub kind: &'a str,
    pub title: &'a str,
    pub amount_yuan: &'a str,
    pub due_date: &'a str,
    pub driver_phone: Option<&'a str>,
    pub payer_name: Option<&'a str>,
    pub branch_code: Option<&'a str>,
}

impl<'a> BillLine<'a> {
    fn of(row: &'a Row) -> Self {
        BillLine {
            reference: row.opt("reference"),
            kind: row.get("kind"),
            title: row.get("title"),
            amount_yuan: row.get("amount_yuan"),
            due_date: row.get("due_date"),
            driver_phone: row.opt("driver_phone"),
            payer_name: row.opt("payer_name"),
            branch_code: row.opt("branch_code"),
        }
    }
}

/// Checks a line and finds its driver and branch in the tenant. Errors name the CSV column.
/// `branches` maps the tenant's branch codes to ids.
pub(crate) async fn resolve_line(
    tx: &mut Conn,
    tenant: Id,
    branches: &HashMap<String, Id>,
    line: &BillLine<'_>,
    reference_required: bool,
) -> Result<(BillDraft, Option<DriverRow>)> {
    let reference = match line.reference {
        Some(r) => Some(check_reference("reference", r)?),
        None if reference_required => {
            return Err(Error::invalid(
                "reference",
                "required: re-imports find their bills by it",
            ));
        }
        None => None,
    };
    let kind = BillKind::parse(line.kind)
        .ok_or_else(|| Error::invalid("kind", "rent, deposit, fine or purchase"))?;
    let title = check_title("title", line.title)?;
    let amount_fen = parse_amount_yuan("amount_yuan", line.amount_yuan)?;
    let due_date = parse_due_date("due_date", line.due_date)?;
    let branch_id = line
        .branch_code
        .map(|code| branch_of(branches, code))
        .transpose()?;
    let (payer, driver) = payer_of(tx, tenant, line).await?;
    let draft = BillDraft {
        kind,
        title,
        amount_fen,
        due_date,
        payer,
        branch_id,
        reference,
    };
    // A branch that is not the driver's is refused here, under its CSV column.
    draft.fields(driver.as_ref(), &CSV_FIELDS)?;
    Ok((draft, driver))
}

async fn payer_of(
    tx: &mut Conn,
    tenant: Id,
    line: &BillLine<'_>,
) -> Result<(Payer, Option<DriverRow>)> {
    match (line.driver_phone, line.payer_name) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "payer_name",
            "give driver_phone or payer_name, not both",
        )),
        (None, None) => Err(Error::invalid(
            "driver_phone",
            "give driver_phone (a driver) or payer_name (a consumer)",
        )),
        (Some(p), None) => {
            let phone = validate::phone(p)
                .map_err(|_| Error::invalid("driver_phone", "not a mainland mobile number"))?;
            let d = registry_db::find_driver_by_phone(tx, tenant, &phone)
                .await?
                .ok_or_else(|| Error::invalid("driver_phone", "no driver with this phone"))?;
            Ok((Payer::Driver(d.id), Some(d)))
        }
        (None, Some(name)) => Ok((Payer::Consumer(check_payer_name("payer_name", name)?), None)),
    }
}

pub(crate) async fn branch_codes(tx: &mut Conn, tenant: Id) -> Result<HashMap<String, Id>> {
    Ok(registry_db::list_branches(tx, tenant, None)
        .await?
        .into_iter()
        .map(|b| (b.code, b.id))
        .collect())
}

/// A rejected row; a bill's state is about the bill its `reference` names.
fn rejected(line: i32, e: &Error) -> RejectedRow {
    let mut r = reject(line, e);
    if r.field.is_none() {
        r.field = Some("reference".to_owned());
    }
    r
}

/// Runs an import for `tenant_id`; `actor` is recorded in the audit log and as the creator.
pub async fn run(
    db_: &Db,
    tenant_id: Id,
    actor: Option<Id>,
    input: &[u8],
    opts: Options,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport> {
    let rows = read_rows(
        input,
        &["reference", "kind", "title", "amount_yuan", "due_date"],
        &["driver_phone", "payer_name", "branch_code"],
    )?;
    let mut report = ImportReport {
        total_rows: i32::try_from(rows.len()).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let mut tx = db_.begin().await?;
    let branches = branch_codes(&mut tx, tenant_id).await?;
    let mut seen: HashSet<String> = HashSet::new();
    let total = rows.len();
    for (n, row) in rows.iter().enumerate() {
        match bill_row(&mut tx, tenant_id, actor, &branches, &mut seen, row).await {
            Ok(Outcome::Inserted) => report.inserted += 1,
            Ok(Outcome::Updated) => report.updated += 1,
            Ok(Outcome::Unchanged) => report.unchanged += 1,
            Err(
                e @ (Error::Invalid { .. } | Error::BillNotOpen { .. } | Error::BillHasOpenPayment),
            ) => report.rejected.push(rejected(row.line, &e)),
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
        "bill.import",
        "bill",
        "*",
        serde_json::json!({ "inserted": report.inserted, "updated": report.updated, "rejected": report.rejected.len() }),
    )
    .await?;
    tx.commit().await?;
    report.applied = true;
    Ok(report)
}

async fn bill_row(
    tx: &mut Conn,
    tenant: Id,
    actor: Option<Id>,
    branches: &HashMap<String, Id>,
    seen: &mut HashSet<String>,
    row: &Row,
) -> Result<Outcome> {
    let (draft, driver) = resolve_line(tx, tenant, branches, &BillLine::of(row), true).await?;
    let fields = draft.fields(driver.as_ref(), &CSV_FIELDS)?;
    let reference = fields.reference.unwrap_or_default();
    once_in_file(seen, "reference", reference)?;
    match db::lock_bill_by_reference(tx, tenant, reference).await? {
        None => {
            db::insert_bill(tx, tenant, actor, &fields).await?;
            Ok(Outcome::Inserted)
        }
        Some(b) if fields.same_as(&b) => Ok(Outcome::Unchanged),
        Some(b) if b.status != db::OPEN => Err(Error::BillNotOpen { status: b.status }),
        Some(b) => {
            // The amount a waiting QR code asks for must stay the bill's.
            if db::has_open_payment(tx, b.id).await? {
                return Err(Error::BillHasOpenPayment);
            }
            db::update_open_bill(tx, tenant, b.id, &fields).await?;
            Ok(Outcome::Updated)
        }
    }
}
