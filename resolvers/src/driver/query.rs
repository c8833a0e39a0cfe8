//! Lists of reports, newest first, each viewer seeing only what they may: drivers their own,
//! staff their branch's, operators the tenant's.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::Id;

use super::{
    AccidentReport, IncomeReport, MaintenanceReport,
    accident::AccidentStatus,
    db::{self, Page},
    scope::Scope,
};
use crate::{
    Error, Result,
    registry::{
        input::{parse_id, parse_opt_id},
        query::{decode_cursor, encode_cursor, page_size},
    },
    viewer::{deps, viewer},
};

#[derive(SimpleObject)]
#[graphql(concrete(name = "IncomeReportPage", params(IncomeReport)))]
#[graphql(concrete(name = "AccidentReportPage", params(AccidentReport)))]
#[graphql(concrete(name = "MaintenanceReportPage", params(MaintenanceReport)))]
pub struct ReportPage<T: async_graphql::OutputType> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A cursor is the last row's (created_at, id).
fn cursor(at: DateTime<Utc>, id: Id) -> String {
    encode_cursor(&format!("{}|{id}", at.to_rfc3339()))
}

fn parse_cursor(after: Option<&str>) -> Result<Option<(DateTime<Utc>, Id)>> {
    let Some(raw) = decode_cursor(after)? else {
        return Ok(None);
    };
    let bad = || Error::invalid("after", "not a cursor from this list");
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = id.parse::<Id>().map_err(|_| bad())?;
    Ok(Some((at.with_timezone(&Utc), id)))
}

fn page(v: &crate::Viewer, first: i32, after: Option<&str>) -> Result<Page> {
    Ok(Page {
        scope: Scope::of(v)?,
        after: parse_cursor(after)?,
        limit: page_size(first)? + 1,
    })
}

/// The first `limit - 1` rows and the cursor of the next page, if there is one.
fn split<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> (DateTime<Utc>, Id),
    wrap: impl Fn(R) -> T,
) -> ReportPage<T>
where
    T: async_graphql::OutputType,
{
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    if more {
        rows.pop();
    }
    let next_cursor = more
        .then(|| rows.last().map(&key))
        .flatten()
        .map(|(at, id)| cursor(at, id));
    ReportPage {
        items: rows.into_iter().map(wrap).collect(),
        next_cursor,
    }
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// Income reports, optionally of one week.
    async fn income_reports(
        &self,
        ctx: &Context<'_>,
        week_start: Option<NaiveDate>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ReportPage<IncomeReport>> {
        let v = viewer(ctx)?;
        let p = page(v, first, after.as_deref())?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = db::list_income(&mut c, v.tenant_id, week_start, &p).await?;
        Ok(split(rows, p.limit, |r| (r.created_at, r.id), IncomeReport))
    }

    /// Accident reports, optionally in one status.
    async fn accident_reports(
        &self,
        ctx: &Context<'_>,
        status: Option<AccidentStatus>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ReportPage<AccidentReport>> {
        let v = viewer(ctx)?;
        let p = page(v, first, after.as_deref())?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows =
            db::list_accidents(&mut c, v.tenant_id, status.map(AccidentStatus::as_str), &p).await?;
        Ok(split(
            rows,
            p.limit,
            |r| (r.created_at, r.id),
            AccidentReport,
        ))
    }

    /// One accident report; someone else's is `NOT_FOUND`.
    async fn accident_report(&self, ctx: &Context<'_>, id: ID) -> Result<AccidentReport> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        let row = db::get_accident(&mut c, v.tenant_id, Scope::of(v)?, id).await?;
        Ok(AccidentReport(row))
    }

    /// Maintenance reports, optionally of one vehicle.
    async fn maintenance_reports(
        &self,
        ctx: &Context<'_>,
        vehicle_id: Option<ID>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ReportPage<MaintenanceReport>> {
        let v = viewer(ctx)?;
        let vehicle = parse_opt_id("vehicleId", vehicle_id.as_ref())?;
        let p = page(v, first, after.as_deref())?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = db::list_maintenance(&mut c, v.tenant_id, vehicle, &p).await?;
        Ok(split(
            rows,
            p.limit,
            |r| (r.created_at, r.id),
            MaintenanceReport,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        let at: DateTime<Utc> = "2026-11-21T02:00:00.123456Z".parse().unwrap();
        let id = Id::new();
        let c = cursor(at, id);
        assert_eq!(parse_cursor(Some(&c)).unwrap(), Some((at, id)));
        assert_eq!(parse_cursor(None).unwrap(), None);
        for bad in ["", "!!", &encode_cursor("2026|x"), &encode_cursor("nope")] {
            assert!(parse_cursor(Some(bad)).is_err(), "{bad}");
        }
    }
}
