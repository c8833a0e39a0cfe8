//! Weekly income reports: one per driver, platform and week, editable by the driver until an
//! operator confirms it.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use minigate_payments::money::MAX_FEN;
use minigate_store::Id;

use super::{
    IncomeReport,
    db::{self, IncomeFields},
    scope::{Scope, filing_driver},
};
use crate::{
    Error, Result, audit, idempotency,
    photos::{self, PhotoRole},
    registry::input::parse_id,
    viewer::{deps, viewer},
};

/// The ride-hailing platform the income was earned on.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RidePlatform {
    /// 滴滴出行
    Didi,
    /// 高德打车
    Amap,
    /// T3 出行
    T3,
    /// 曹操出行
    Caocao,
    /// 美团打车
    Meituan,
    /// 花小猪
    Huaxiaozhu,
    /// 如祺出行
    Ruqi,
    Other,
}

impl RidePlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            RidePlatform::Didi => "DIDI",
            RidePlatform::Amap => "AMAP",
            RidePlatform::T3 => "T3",
            RidePlatform::Caocao => "CAOCAO",
            RidePlatform::Meituan => "MEITUAN",
            RidePlatform::Huaxiaozhu => "HUAXIAOZHU",
            RidePlatform::Ruqi => "RUQI",
            RidePlatform::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> RidePlatform {
        [
            RidePlatform::Didi,
            RidePlatform::Amap,
            RidePlatform::T3,
            RidePlatform::Caocao,
            RidePlatform::Meituan,
            RidePlatform::Huaxiaozhu,
            RidePlatform::Ruqi,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .unwrap_or(RidePlatform::Other)
    }
}

#[derive(InputObject)]
pub struct IncomeReportInput {
    /// The Monday the week starts (Asia/Shanghai); this week or up to a year back.
    pub week_start: NaiveDate,
    pub platform: RidePlatform,
    /// Orders completed in the week, 0 to 5,000.
    pub orders: i32,
    /// Time online in the week, in minutes (hours × 60), at most 7 × 24 × 60.
    pub online_minutes: i32,
    /// Gross income in fen, as the platform's screen shows it.
    pub gross_income_fen: i64,
    /// Uploads of purpose `income_screenshot`, at most 9.
    #[graphql(default)]
    pub screenshot_ids: Vec<ID>,
}

/// The input, checked without the database.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Checked {
    fields: IncomeFields,
    screenshots: Vec<Id>,
}

const MAX_ORDERS: i32 = 5_000;
const WEEK_MINUTES: i32 = 7 * 24 * 60;
const MAX_PHOTOS: usize = 9;

fn check(input: &IncomeReportInput, today: NaiveDate) -> Result<Checked> {
    let week = input.week_start;
    if week.weekday() != Weekday::Mon {
        return Err(Error::invalid("weekStart", "a Monday"));
    }
    if week > today {
        return Err(Error::invalid("weekStart", "a week that has started"));
    }
    if week < today - Duration::days(371) {
        return Err(Error::invalid("weekStart", "at most a year ago"));
    }
    if !(0..=MAX_ORDERS).contains(&input.orders) {
        return Err(Error::invalid("orders", format!("0 to {MAX_ORDERS}")));
    }
    if !(0..=WEEK_MINUTES).contains(&input.online_minutes) {
        return Err(Error::invalid(
            "onlineMinutes",
            format!("0 to {WEEK_MINUTES} minutes"),
        ));
    }
    if !(0..=MAX_FEN).contains(&input.gross_income_fen) {
        return Err(Error::invalid("grossIncomeFen", "0 to 2,147,483,647 fen"));
    }
    Ok(Checked {
        fields: IncomeFields {
            week_start: week,
            platform: input.platform.as_str(),
            orders: input.orders,
            online_minutes: input.online_minutes,
            gross_income_fen: input.gross_income_fen,
        },
        screenshots: photos::parse_ids("screenshotIds", &input.screenshot_ids, MAX_PHOTOS)?,
    })
}

fn screenshots(ids: &[Id]) -> Vec<(PhotoRole, Id)> {
    ids.iter().map(|id| (PhotoRole::Screenshot, *id)).collect()
}

#[derive(Default)]
pub struct IncomeMutation;

#[Object]
impl IncomeMutation {
    /// Files the driver's income on one platform for one week. A second report for the same
    /// platform and week is `ALREADY_EXISTS` (edit the first with `updateIncomeReport`).
    async fn file_income_report(
        &self,
        ctx: &Context<'_>,
        input: IncomeReportInput,
        idempotency_key: Option<String>,
    ) -> Result<IncomeReport> {
        let v = viewer(ctx)?;
        let c = check(&input, crate::billing::today())?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "fileIncomeReport",
            &c,
            async |tx| {
                let driver = filing_driver(tx, v).await?;
                let id = Id::new();
                db::insert_income(
                    tx,
                    id,
                    v.tenant_id,
                    driver.branch_id,
                    driver.id,
                    v.user_id,
                    &c.fields,
                )
                .await?;
                photos::attach(tx, v, id, &screenshots(&c.screenshots)).await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        let row = db::get_income(&mut conn, v.tenant_id, Scope::of(v)?, id).await?;
        Ok(IncomeReport(row))
    }

    /// Corrects a report the driver filed, until an operator confirms it (`RECORD_LOCKED`
    /// after). The screenshots are replaced by the new list.
    async fn update_income_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: IncomeReportInput,
    ) -> Result<IncomeReport> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let c = check(&input, crate::billing::today())?;
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let driver = filing_driver(&mut tx, v).await?;
        let row = db::lock_income(&mut tx, v.tenant_id, Scope::Own(driver.id), id).await?;
        if row.status != "SUBMITTED" {
            return Err(Error::RecordLocked { status: row.status });
        }
        db::update_income(&mut tx, id, &c.fields).await?;
        photos::replace(&mut tx, v, id, &screenshots(&c.screenshots)).await?;
        let row = db::get_income(&mut tx, v.tenant_id, Scope::Own(driver.id), id).await?;
        tx.commit().await?;
        Ok(IncomeReport(row))
    }

    /// An operator confirms a report: from then on it is the week's figure and cannot change.
    /// Confirming a confirmed report is `RECORD_LOCKED`.
    async fn confirm_income_report(&self, ctx: &Context<'_>, id: ID) -> Result<IncomeReport> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let row = db::lock_income(&mut tx, v.tenant_id, Scope::Tenant, id).await?;
        if row.status != "SUBMITTED" {
            return Err(Error::RecordLocked { status: row.status });
        }
        db::confirm_income(&mut tx, id, v.user_id).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "income_report.confirm",
            "income_report",
            &id.to_string(),
            serde_json::json!({
                "driver_id": row.driver_id,
                "week_start": row.week_start,
                "platform": row.platform,
                "gross_income_fen": row.gross_income_fen,
            }),
        )
        .await?;
        let row = db::get_income(&mut tx, v.tenant_id, Scope::Tenant, id).await?;
        tx.commit().await?;
        Ok(IncomeReport(row))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn input() -> IncomeReportInput {
        IncomeReportInput {
            week_start: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
            platform: RidePlatform::Didi,
            orders: 182,
            online_minutes: 62 * 60,
            gross_income_fen: 498_050,
            screenshot_ids: vec![ID(Id::new().to_string())],
        }
    }

    fn field(r: Result<Checked>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn an_income_report_names_each_bad_field() {
        let c = check(&input(), today()).unwrap();
        assert_eq!(c.fields.platform, "DIDI");
        assert_eq!(c.screenshots.len(), 1);
        type Change = Box<dyn Fn(&mut IncomeReportInput)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "weekStart",
                Box::new(|i| i.week_start = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap()),
            ),
            (
                "weekStart",
                Box::new(|i| i.week_start = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()),
            ),
            (
                "weekStart",
                Box::new(|i| i.week_start = NaiveDate::from_ymd_opt(2025, 11, 10).unwrap()),
            ),
            ("orders", Box::new(|i| i.orders = -1)),
            ("orders", Box::new(|i| i.orders = MAX_ORDERS + 1)),
            (
                "onlineMinutes",
                Box::new(|i| i.online_minutes = WEEK_MINUTES + 1),
            ),
            ("grossIncomeFen", Box::new(|i| i.gross_income_fen = -5)),
            (
                "screenshotIds",
                Box::new(|i| i.screenshot_ids = vec![ID("x".into())]),
            ),
            (
                "screenshotIds",
                Box::new(|i| {
                    i.screenshot_ids = (0..10).map(|_| ID(Id::new().to_string())).collect()
                }),
            ),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i, today())).as_deref(), Some(name));
        }
    }

    #[test]
    fn the_same_input_has_the_same_fingerprint_and_any_change_another() {
        let i = input();
        let a = check(&i, today()).unwrap();
        let b = check(&i, today()).unwrap();
        assert_eq!(
            idempotency::fingerprint(&a).unwrap(),
            idempotency::fingerprint(&b).unwrap()
        );
        let mut changed = a.clone();
        changed.fields.orders += 1;
        assert_ne!(
            idempotency::fingerprint(&a).unwrap(),
            idempotency::fingerprint(&changed).unwrap()
        );
        assert_eq!(RidePlatform::parse("T3"), RidePlatform::T3);
    }
}
