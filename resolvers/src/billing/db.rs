use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::{self as store, Conn, Id, Unique};

use crate::{Error, Result};

pub const OPEN: &str = "OPEN";
pub const PAID: &str = "PAID";
pub const CANCELLED: &str = "CANCELLED";

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct BillRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Option<Id>,
    pub driver_id: Option<Id>,
    pub payer_name: String,
    pub kind: String,
    pub title: String,
    pub amount_fen: i64,
    pub due_date: NaiveDate,
    pub status: String,
    pub reference: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_by: Option<Id>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const BILL_REFERENCE: Unique = Unique {
    name: "bill_tenant_id_reference_key",
    table: "bill",
    columns: &["tenant_id", "reference"],
};

/// Turns the reference's unique violation into `BILL_REFERENCE_TAKEN`.
pub fn conflict(e: store::Error) -> Error {
    if e.is_unique(&BILL_REFERENCE) {
        Error::BillReferenceTaken
    } else {
        e.into()
    }
}

/// A bill's values as stored.
pub struct BillFields<'a> {
    pub kind: &'a str,
    pub title: &'a str,
    pub amount_fen: i64,
    pub due_date: NaiveDate,
    pub driver_id: Option<Id>,
    pub payer_name: &'a str,
    pub branch_id: Option<Id>,
    pub reference: Option<&'a str>,
}

impl BillFields<'_> {
    /// Whether `row` already holds these values. A driver's name is copied onto the bill as its
    /// payer, so a driver's bill is compared by driver, not by that copy.
    pub fn same_as(&self, row: &BillRow) -> bool {
        let same_payer = match self.driver_id {
            Some(d) => row.driver_id == Some(d),
            None => row.driver_id.is_none() && row.payer_name == self.payer_name,
        };
        same_payer
            && row.kind == self.kind
            && row.title == self.title
            && row.amount_fen == self.amount_fen
            && row.due_date == self.due_date
            && row.branch_id == self.branch_id
            && row.reference.as_deref() == self.reference
    }
}

pub async fn insert_bill(
    c: &mut Conn,
    tenant_id: Id,
    created_by: Option<Id>,
    b: &BillFields<'_>,
) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into bill (id, tenant_id, branch_id, driver_id, payer_name, kind, title, amount_fen, due_date, reference, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        id,
        tenant_id,
        b.branch_id,
        b.driver_id,
        b.payer_name,
        b.kind,
        b.title,
        b.amount_fen,
        b.due_date,
        b.reference,
        created_by
    )
    .map_err(conflict)?;
    Ok(id)
}

/// Changes an OPEN bill; a bill that is no longer open is `BILL_NOT_OPEN`.
pub async fn update_open_bill(
    c: &mut Conn,
    tenant_id: Id,
    id: Id,
    b: &BillFields<'_>,
) -> Result<()> {
    let n = store::execute!(
        c,
        "update bill set branch_id = $1, driver_id = $2, payer_name = $3, kind = $4, title = $5, amount_fen = $6,
                due_date = $7, reference = $8, updated_at = now()
         where tenant_id = $9 and id = $10 and status = 'OPEN'",
        b.branch_id,
        b.driver_id,
        b.payer_name,
        b.kind,
        b.title,
        b.amount_fen,
        b.due_date,
        b.reference,
        tenant_id,
        id
    )
    .map_err(conflict)?;
    if n == 0 {
        let cur = get_bill(c, tenant_id, id).await?;
        Err(Error::BillNotOpen { status: cur.status })
    } else {
        Ok(())
    }
}

pub async fn get_bill(c: &mut Conn, tenant_id: Id, id: Id) -> Result<BillRow> {
    store::fetch_optional!(
        c,
        BillRow,
        "select * from bill where tenant_id = $1 and id = $2",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("bill"))
}

/// Reads a bill and holds it until the transaction ends (a state change on money; SQLite's
/// write transaction already holds the database).
pub async fn lock_bill(c: &mut Conn, tenant_id: Id, id: Id) -> Result<BillRow> {
    store::fetch_optional!(
        c,
        BillRow,
        "select * from bill where tenant_id = $1 and id = $2 for update",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("bill"))
}

/// The bill with this reference, held until the transaction ends.
pub async fn lock_bill_by_reference(
    c: &mut Conn,
    tenant_id: Id,
    reference: &str,
) -> Result<Option<BillRow>> {
    Ok(store::fetch_optional!(
        c,
        BillRow,
        "select * from bill where tenant_id = $1 and reference = $2 for update",
        tenant_id,
        reference
    )?)
}

/// Whether a payment order of the bill is still waiting to be paid.
pub async fn has_open_payment(c: &mut Conn, bill_id: Id) -> Result<bool> {
    Ok(store::fetch_scalar_optional!(
        c,
        i32,
        "select 1 from payment_order where bill_id = $1 and status = 'CREATED'",
        bill_id
    )?
    .is_some())
}

pub async fn cancel_open_bill(c: &mut Conn, tenant_id: Id, id: Id) -> Result<()> {
    let n = store::execute!(
        c,
        "update bill set status = 'CANCELLED', updated_at = now()
         where tenant_id = $1 and id = $2 and status = 'OPEN'",
        tenant_id,
        id
    )?;
    if n == 0 {
        let cur = get_bill(c, tenant_id, id).await?;
        Err(Error::BillNotOpen { status: cur.status })
    } else {
        Ok(())
    }
}

pub struct BillFilter<'a> {
    pub branch_id: Option<Id>,
    pub driver_id: Option<Id>,
    pub status: Option<&'a str>,
    /// Only overdue bills (true), only the others (false).
    pub overdue: Option<bool>,
    /// The business day that decides what is overdue.
    pub today: NaiveDate,
    /// Keyset cursor: bills after this (due date, id).
    pub after: Option<(NaiveDate, Id)>,
    pub limit: i64,
}

/// Bills ordered by due date, then id.
pub async fn list_bills(c: &mut Conn, tenant_id: Id, f: &BillFilter<'_>) -> Result<Vec<BillRow>> {
    let (after_date, after_id) = f.after.unzip();
    Ok(store::fetch_all!(
        c,
        BillRow,
        "select * from bill
         where tenant_id = $1 and ($2 is null or branch_id = $2) and ($3 is null or driver_id = $3)
           and ($4 is null or status = $4)
           and ($5 is null or (status = 'OPEN' and due_date < $6) = $5)
           and ($7 is null or due_date > $7 or (due_date = $7 and id > $8))
         order by due_date, id limit $9",
        tenant_id,
        f.branch_id,
        f.driver_id,
        f.status,
        f.overdue,
        f.today,
        after_date,
        after_id,
        f.limit
    )?)
}
