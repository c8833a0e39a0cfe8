use async_graphql::{Context, ID, Object, SimpleObject};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{
    Branch, Driver, Vehicle, VehicleStatus, db,
    input::{parse_id, parse_opt_id},
};
use crate::{
    Error, Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct RegistryQuery;

#[derive(SimpleObject)]
pub struct VehiclePage {
    pub items: Vec<Vehicle>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct DriverPage {
    pub items: Vec<Driver>,
    pub next_cursor: Option<String>,
}

pub const MAX_PAGE: i32 = 100;

pub(crate) fn page_size(first: i32) -> Result<i64> {
    if (1..=MAX_PAGE).contains(&first) {
        Ok(i64::from(first))
    } else {
        Err(Error::invalid("first", format!("between 1 and {MAX_PAGE}")))
    }
}

pub(crate) fn decode_cursor(after: Option<&str>) -> Result<Option<String>> {
    after
        .map(|a| {
            URL_SAFE_NO_PAD
                .decode(a)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::invalid("after", "not a cursor from this list"))
        })
        .transpose()
}

pub(crate) fn encode_cursor(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// Reads the branches of a page on the connection the list already holds and hands them to the
/// request's branch loader: the page's `branch` fields are then answered from memory instead of
/// a batched load per request (which dominated the cost of a 50-row page).
async fn prefetch_branches(
    ctx: &Context<'_>,
    c: &mut minigate_store::Conn,
    tenant: minigate_store::Id,
    ids: impl Iterator<Item = minigate_store::Id>,
) -> Result<()> {
    let mut ids: Vec<minigate_store::Id> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let Ok(loaders) = ctx.data::<super::Loaders>() else {
        return Ok(());
    };
    let branches = db::branches_by_ids(c, tenant, ids).await?;
    loaders
        .branches
        .feed_many(branches.into_iter().map(|b| (b.id, b)))
        .await;
    Ok(())
}

#[Object]
impl RegistryQuery {
    /// Branches the viewer may see: all of the company for operators, their own for staff.
    async fn branches(&self, ctx: &Context<'_>) -> Result<Vec<Branch>> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(db::list_branches(&mut c, v.tenant_id, scope)
            .await?
            .into_iter()
            .map(Branch)
            .collect())
    }

    /// Vehicles ordered by plate.
    async fn vehicles(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        status: Option<VehicleStatus>,
        plate_prefix: Option<String>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<VehiclePage> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let after = decode_cursor(after.as_deref())?;
        let prefix = plate_prefix.map(|p| p.trim().to_uppercase());
        let mut c = deps(ctx)?.db.conn().await?;
        let mut rows = db::list_vehicles(
            &mut c,
            v.tenant_id,
            &db::VehicleFilter {
                branch_id: branch,
                status: status.map(VehicleStatus::as_str),
                plate_prefix: prefix.as_deref(),
                after_plate: after.as_deref(),
                limit: limit + 1,
            },
        )
        .await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if ctx.look_ahead().field("items").field("branch").exists() {
            prefetch_branches(ctx, &mut c, v.tenant_id, rows.iter().map(|r| r.branch_id)).await?;
        }
        let next_cursor = more
            .then(|| rows.last().map(|r| encode_cursor(&r.plate)))
            .flatten();
        Ok(VehiclePage {
            items: rows.into_iter().map(Vehicle).collect(),
            next_cursor,
        })
    }

    async fn vehicle(&self, ctx: &Context<'_>, id: ID) -> Result<Vehicle> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let row = db::get_vehicle(&mut c, v.tenant_id, parse_id("id", &id)?).await?;
        if scope.is_some_and(|b| b != row.branch_id) {
            return Err(Error::NotFound("vehicle"));
        }
        Ok(Vehicle(row))
    }

    /// Driver records, in creation order.
    async fn drivers(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<DriverPage> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let after = decode_cursor(after.as_deref())?
            .map(|s| {
                s.parse()
                    .map_err(|_| Error::invalid("after", "not a cursor from this list"))
            })
            .transpose()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let mut rows = db::list_drivers(&mut c, v.tenant_id, branch, after, limit + 1).await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        if ctx.look_ahead().field("items").field("branch").exists() {
            prefetch_branches(ctx, &mut c, v.tenant_id, rows.iter().map(|r| r.branch_id)).await?;
        }
        let next_cursor = more
            .then(|| rows.last().map(|r| encode_cursor(&r.id.to_string())))
            .flatten();
        Ok(DriverPage {
            items: rows.into_iter().map(Driver).collect(),
            next_cursor,
        })
    }

    async fn driver(&self, ctx: &Context<'_>, id: ID) -> Result<Driver> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        // A driver may read their own record; otherwise the registry scope applies.
        if v.driver_id == Some(id) {
            return Ok(Driver(db::get_driver(&mut c, v.tenant_id, id).await?));
        }
        let scope = v.registry_scope()?;
        let row = db::get_driver(&mut c, v.tenant_id, id).await?;
        if scope.is_some_and(|b| b != row.branch_id) {
            return Err(Error::NotFound("driver"));
        }
        Ok(Driver(row))
    }
}
