//! The table of prospects' follow-ups (意向客户回访).

use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::{Error, Result};

/// A follow-up with its author's name.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct FollowUpRow {
    pub id: Id,
    pub tenant_id: Id,
    pub branch_id: Id,
    pub author_id: Id,
    pub author_name: String,
    pub prospect_name: String,
    pub prospect_phone: String,
    pub notes: String,
    pub outcome: String,
    pub next_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a follow-up says, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FollowUpFields {
    pub prospect_name: String,
    pub prospect_phone: String,
    pub notes: String,
    pub outcome: String,
    pub next_date: Option<NaiveDate>,
}

macro_rules! select_follow_up {
    ($rest:literal) => {
        concat!(
            "select f.id, f.tenant_id, f.branch_id, f.author_id, u.display_name as author_name,
                    f.prospect_name, f.prospect_phone, f.notes, f.outcome, f.next_date,
                    f.created_at, f.updated_at
             from follow_up f join app_user u on u.id = f.author_id ",
            $rest
        )
    };
}

pub async fn insert(
    tx: &mut Conn,
    id: Id,
    tenant: Id,
    branch: Id,
    author: Id,
    f: &FollowUpFields,
) -> Result<()> {
    store::execute!(
        tx,
        "insert into follow_up (id, tenant_id, branch_id, author_id, prospect_name, prospect_phone,
                                notes, outcome, next_date)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        tenant,
        branch,
        author,
        &f.prospect_name,
        &f.prospect_phone,
        &f.notes,
        &f.outcome,
        f.next_date
    )?;
    Ok(())
}

pub async fn update(tx: &mut Conn, id: Id, f: &FollowUpFields) -> Result<()> {
    store::execute!(
        tx,
        "update follow_up
         set prospect_name = $1, prospect_phone = $2, notes = $3, outcome = $4, next_date = $5,
             updated_at = now()
         where id = $6",
        &f.prospect_name,
        &f.prospect_phone,
        &f.notes,
        &f.outcome,
        f.next_date,
        id
    )?;
    Ok(())
}

pub async fn get(c: &mut Conn, tenant: Id, id: Id) -> Result<FollowUpRow> {
    store::fetch_optional!(
        c,
        FollowUpRow,
        select_follow_up!("where f.tenant_id = $1 and f.id = $2"),
        tenant,
        id
    )?
    .ok_or(Error::NotFound("follow-up"))
}

/// The follow-up, held for the rest of the transaction (two edits apply one after the other).
pub async fn lock(tx: &mut Conn, tenant: Id, id: Id) -> Result<()> {
    store::fetch_scalar_optional!(
        tx,
        Id,
        "select id from follow_up where tenant_id = $1 and id = $2 for update",
        tenant,
        id
    )?
    .map(|_| ())
    .ok_or(Error::NotFound("follow-up"))
}

/// A tenant's follow-ups (of one branch when given), newest first, after the cursor `after`.
pub async fn list(
    c: &mut Conn,
    tenant: Id,
    branch: Option<Id>,
    after: Option<Id>,
    limit: i64,
) -> Result<Vec<FollowUpRow>> {
    // Ids are UUID v7: their order is the order of creation.
    Ok(store::fetch_all!(
        c,
        FollowUpRow,
        select_follow_up!(
            "where f.tenant_id = $1 and ($2 is null or f.branch_id = $2)
               and ($3 is null or f.id < $3)
             order by f.id desc limit $4"
        ),
        tenant,
        branch,
        after,
        limit
    )?)
}

/// Follow-ups to make by `today` (due today or overdue), the oldest date first. Closed
/// outcomes have no next date, so they never appear.
pub async fn due(
    c: &mut Conn,
    tenant: Id,
    branch: Option<Id>,
    today: NaiveDate,
    limit: i64,
) -> Result<Vec<FollowUpRow>> {
    Ok(store::fetch_all!(
        c,
        FollowUpRow,
        select_follow_up!(
            "where f.tenant_id = $1 and ($2 is null or f.branch_id = $2)
               and f.next_date is not null and f.next_date <= $3
             order by f.next_date, f.id limit $4"
        ),
        tenant,
        branch,
        today,
        limit
    )?)
}
