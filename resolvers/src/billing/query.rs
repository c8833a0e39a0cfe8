use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::NaiveDate;
use minigate_store::{Conn, Id};

use super::{Bill, BillStatus, db};
use crate::{
    Error, Result, Role, Viewer,
    registry::{
        self,
        input::{parse_id, parse_opt_id},
        query::{decode_cursor, encode_cursor, page_size},
    },
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct BillingQuery;

#[derive(SimpleObject)]
pub struct BillConnection {
    pub items: Vec<Bill>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Whether the viewer may read `bill`: operators every bill of the company, staff their branch's,
/// drivers their own; and anyone signed in to the company a consumer's bill (it has no driver:
/// whoever holds its QR code pays it).
pub fn may_read(v: &Viewer, bill: &db::BillRow) -> bool {
    if bill.tenant_id != v.tenant_id {
        return false;
    }
    if bill.driver_id.is_none() {
        return true;
    }
    match v.role {
        Role::Admin => true,
        Role::Staff => v.branch_id.is_some() && bill.branch_id == v.branch_id,
        Role::Driver => v.driver_id.is_some() && bill.driver_id == v.driver_id,
        Role::Consumer => false,
    }
}

fn cursor_of(row: &db::BillRow) -> String {
    encode_cursor(&format!("{}/{}", row.due_date, row.id))
}

fn parse_cursor(after: Option<&str>) -> Result<Option<(NaiveDate, Id)>> {
    decode_cursor(after)?
        .map(|s| {
            s.split_once('/')
                .and_then(|(d, i)| Some((d.parse().ok()?, i.parse().ok()?)))
                .ok_or_else(|| Error::invalid("after", "not a cursor from this list"))
        })
        .transpose()
}

/// Reads the drivers of a page on the connection the list already holds and hands them to the
/// request's driver loader, as the registry's lists do with branches.
async fn prefetch_drivers(
    ctx: &Context<'_>,
    c: &mut Conn,
    tenant: Id,
    ids: impl Iterator<Item = Id>,
) -> Result<()> {
    let mut ids: Vec<Id> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let Ok(loaders) = ctx.data::<registry::Loaders>() else {
        return Ok(());
    };
    let drivers = registry::db::drivers_by_ids(c, tenant, ids).await?;
    loaders
        .drivers
        .feed_many(drivers.into_iter().map(|d| (d.id, d)))
        .await;
    Ok(())
}

#[Object]
impl BillingQuery {
    /// Bills by due date: the company's for operators, the branch's for staff, their own for
    /// drivers. `overdue` keeps only OPEN bills due before today (true) or every other (false).
    // The filters are the API's arguments, one each.
    #[allow(clippy::too_many_arguments)]
    async fn bills(
        &self,
        ctx: &Context<'_>,
        status: Option<BillStatus>,
        driver_id: Option<ID>,
        branch_id: Option<ID>,
        overdue: Option<bool>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<BillConnection> {
        let v = viewer(ctx)?;
        let driver = parse_opt_id("driverId", driver_id.as_ref())?;
        let branch = parse_opt_id("branchId", branch_id.as_ref())?;
        let (branch, driver) = match v.role {
            Role::Driver => {
                let own = v.driver_id.ok_or(Error::Forbidden)?;
                if driver.is_some_and(|d| d != own) {
                    return Err(Error::Forbidden);
                }
                (branch, Some(own))
            }
            Role::Admin | Role::Staff | Role::Consumer => (v.branch_filter(branch)?, driver),
        };
        let limit = page_size(first)?;
        let after = parse_cursor(after.as_deref())?;
        let mut c = deps(ctx)?.db.conn().await?;
        let mut rows = db::list_bills(
            &mut c,
            v.tenant_id,
            &db::BillFilter {
                branch_id: branch,
                driver_id: driver,
                status: status.map(BillStatus::as_str),
                overdue,
                today: super::today(),
                after,
                limit: limit + 1,
            },
        )
        .await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if ctx.look_ahead().field("items").field("driver").exists() {
            prefetch_drivers(
                ctx,
                &mut c,
                v.tenant_id,
                rows.iter().filter_map(|r| r.driver_id),
            )
            .await?;
        }
        let next_cursor = more.then(|| rows.last().map(cursor_of)).flatten();
        Ok(BillConnection {
            items: rows.into_iter().map(Bill::from).collect(),
            next_cursor,
        })
    }

    /// One bill the viewer may read (see `bills`); a consumer's bill may be read by anyone
    /// signed in to the company. Any other is NOT_FOUND.
    async fn bill(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Bill>> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        let row = db::get_bill(&mut c, v.tenant_id, id).await?;
        if !may_read(v, &row) {
            return Err(Error::NotFound("bill"));
        }
        Ok(Some(Bill::from(row)))
    }
}
