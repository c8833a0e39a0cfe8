use async_graphql::{Context, ID, Object};
use minigate_store::{Conn, Db, Id};

use super::{
    Bill, db,
    import::{self, BillLine},
    input::{BillDraft, CreateBillInput, GRAPHQL_FIELDS, Payer},
};
use crate::{
    Error, Result, audit, idempotency,
    registry::{
        db as registry_db,
        import::{ImportMode, ImportReport, Options},
        input::parse_id,
    },
    validate,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct BillingMutation;

/// Stores a bill of `draft` for `tenant` in the caller's transaction, with its audit entry.
/// The payer and branch must belong to the tenant; `actor` is the operator (none from the CLI).
pub async fn create_bill(
    tx: &mut Conn,
    tenant: Id,
    actor: Option<Id>,
    draft: &BillDraft,
) -> Result<Id> {
    let driver = match draft.payer {
        Payer::Driver(id) => match registry_db::get_driver(tx, tenant, id).await {
            Ok(d) => Some(d),
            Err(Error::NotFound(_)) => {
                return Err(Error::invalid(GRAPHQL_FIELDS.driver, "no such driver"));
            }
            Err(e) => return Err(e),
        },
        Payer::Consumer(_) => None,
    };
    if let (None, Some(b)) = (&driver, draft.branch_id) {
        match registry_db::get_branch(tx, tenant, b).await {
            Ok(_) => {}
            Err(Error::NotFound(_)) => {
                return Err(Error::invalid(GRAPHQL_FIELDS.branch, "no such branch"));
            }
            Err(e) => return Err(e),
        }
    }
    let fields = draft.fields(driver.as_ref(), &GRAPHQL_FIELDS)?;
    let id = db::insert_bill(tx, tenant, actor, &fields).await?;
    audit::record(
        tx,
        Some(tenant),
        actor,
        "bill.create",
        "bill",
        &id.to_string(),
        serde_json::json!({ "kind": fields.kind, "amount_fen": fields.amount_fen,
                            "due_date": fields.due_date, "driver_id": fields.driver_id,
                            "reference": fields.reference }),
    )
    .await?;
    Ok(id)
}

/// Creates one bill written the way a CSV row writes it (payer by phone or name, branch by
/// code, amount in yuan): what `minigate bill create` does. Returns the stored bill.
pub async fn create_from_line(
    db_: &Db,
    tenant: Id,
    actor: Option<Id>,
    line: &BillLine<'_>,
) -> Result<db::BillRow> {
    let mut tx = db_.begin().await?;
    let branches = import::branch_codes(&mut tx, tenant).await?;
    let (draft, _) = import::resolve_line(&mut tx, tenant, &branches, line, false).await?;
    let id = create_bill(&mut tx, tenant, actor, &draft).await?;
    let row = db::get_bill(&mut tx, tenant, id).await?;
    tx.commit().await?;
    Ok(row)
}

#[Object]
impl BillingMutation {
    /// Creates a bill (operators), for a driver of the company or a named consumer.
    async fn create_bill(
        &self,
        ctx: &Context<'_>,
        input: CreateBillInput,
        idempotency_key: Option<String>,
    ) -> Result<Bill> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let draft = input.draft()?;
        let db_ = &deps(ctx)?.db;
        // The values are part of the operation: a key sent again with other values is
        // IDEMPOTENCY_KEY_REUSED rather than answered with the first bill.
        let operation = format!("createBill:{}", draft.fingerprint());
        let id = idempotency::once(
            db_,
            v.user_id,
            idempotency_key.as_deref(),
            &operation,
            async |tx| create_bill(tx, v.tenant_id, Some(v.user_id), &draft).await,
        )
        .await?;
        let mut c = db_.conn().await?;
        Ok(Bill::from(db::get_bill(&mut c, v.tenant_id, id).await?))
    }

    /// Cancels an OPEN bill (operators) that has no payment order waiting to be paid; the
    /// reason goes to the audit log.
    async fn cancel_bill(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Bill> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let reason = validate::name("reason", &reason, 200)?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let cur = db::lock_bill(&mut tx, v.tenant_id, id).await?;
        if cur.status != db::OPEN {
            return Err(Error::BillNotOpen { status: cur.status });
        }
        if db::has_open_payment(&mut tx, id).await? {
            return Err(Error::BillHasOpenPayment);
        }
        db::cancel_open_bill(&mut tx, v.tenant_id, id).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "bill.cancel",
            "bill",
            &id.to_string(),
            serde_json::json!({ "reason": reason, "amount_fen": cur.amount_fen }),
        )
        .await?;
        let row = db::get_bill(&mut tx, v.tenant_id, id).await?;
        tx.commit().await?;
        Ok(Bill::from(row))
    }

    /// Imports bills from CSV text (header row required; see the README), matched to existing
    /// bills by `reference`. Modes and dry runs work as in `importRegistryCsv`; a PAID or
    /// CANCELLED bill is never changed (its row is rejected with BILL_NOT_OPEN).
    async fn import_bills_csv(
        &self,
        ctx: &Context<'_>,
        csv: String,
        #[graphql(default_with = "ImportMode::AllOrNothing")] mode: ImportMode,
        #[graphql(default)] dry_run: bool,
    ) -> Result<ImportReport> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        import::run(
            &deps(ctx)?.db,
            v.tenant_id,
            Some(v.user_id),
            csv.as_bytes(),
            Options { mode, dry_run },
            &mut |_| {},
        )
        .await
    }
}
