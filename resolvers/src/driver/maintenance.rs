//! Maintenance reports: a driver records work done on their vehicle (where, what, for how much,
//! when it is due again), with the invoice photos. The notes are searchable.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{Duration, NaiveDate};
use minigate_payments::money::MAX_FEN;
use minigate_store::Id;

use super::{
    MaintenanceReport,
    db::{self, MaintenanceFields, MaintenanceRow},
    scope::{Scope, filing_driver, report_vehicle},
};
use crate::{
    Error, Result, idempotency,
    photos::{self, PhotoRole},
    registry::input::parse_id,
    search::{self, SearchKind},
    validate,
    viewer::{deps, viewer},
};

/// What was done.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceKind {
    /// Routine service (保养): oil, filters.
    Routine,
    /// A repair (维修).
    Repair,
    /// Tyres (轮胎).
    Tyres,
    /// The battery (电瓶).
    Battery,
    /// Bodywork and paint (钣金喷漆).
    Bodywork,
    /// The annual inspection (年检).
    Inspection,
    Other,
}

impl MaintenanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceKind::Routine => "ROUTINE",
            MaintenanceKind::Repair => "REPAIR",
            MaintenanceKind::Tyres => "TYRES",
            MaintenanceKind::Battery => "BATTERY",
            MaintenanceKind::Bodywork => "BODYWORK",
            MaintenanceKind::Inspection => "INSPECTION",
            MaintenanceKind::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> MaintenanceKind {
        [
            MaintenanceKind::Routine,
            MaintenanceKind::Repair,
            MaintenanceKind::Tyres,
            MaintenanceKind::Battery,
            MaintenanceKind::Bodywork,
            MaintenanceKind::Inspection,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(MaintenanceKind::Other)
    }
}

#[derive(InputObject)]
pub struct MaintenanceReportInput {
    /// The vehicle; the driver's assigned vehicle when absent.
    pub vehicle_id: Option<ID>,
    /// The day of the work (Asia/Shanghai): not in the future, at most a year ago.
    pub serviced_on: NaiveDate,
    /// The odometer, 0 to 2,000,000 km.
    pub mileage_km: i32,
    pub kind: MaintenanceKind,
    /// The shop, 1 to 100 characters.
    pub shop: String,
    /// What it cost, in fen.
    pub cost_fen: i64,
    /// What was done, up to 1,000 characters.
    #[graphql(default)]
    pub notes: String,
    /// When the next service is due, above `mileageKm`.
    pub next_due_mileage_km: Option<i32>,
    /// Uploads of purpose `invoice`, at most 9.
    #[graphql(default)]
    pub invoice_photo_ids: Vec<ID>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Checked {
    fields: MaintenanceFields,
    invoices: Vec<Id>,
}

const MAX_MILEAGE: i32 = 2_000_000;
const MAX_PHOTOS: usize = 9;

fn check(input: &MaintenanceReportInput, today: NaiveDate) -> Result<Checked> {
    let vehicle_id = input
        .vehicle_id
        .as_ref()
        .map(|id| parse_id("vehicleId", id))
        .transpose()?;
    if input.serviced_on > today {
        return Err(Error::invalid("servicedOn", "not in the future"));
    }
    if input.serviced_on < today - Duration::days(366) {
        return Err(Error::invalid("servicedOn", "at most a year ago"));
    }
    if !(0..=MAX_MILEAGE).contains(&input.mileage_km) {
        return Err(Error::invalid("mileageKm", "0 to 2,000,000 km"));
    }
    let shop = validate::name("shop", &input.shop, 100)?;
    if !(0..=MAX_FEN).contains(&input.cost_fen) {
        return Err(Error::invalid("costFen", "0 to 2,147,483,647 fen"));
    }
    let notes = input.notes.trim();
    if notes.chars().count() > 1_000 || notes.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid(
            "notes",
            "up to 1,000 characters, no control characters",
        ));
    }
    if let Some(next) = input.next_due_mileage_km
        && !(input.mileage_km < next && next <= MAX_MILEAGE)
    {
        return Err(Error::invalid(
            "nextDueMileageKm",
            "above the mileage of this service",
        ));
    }
    Ok(Checked {
        fields: MaintenanceFields {
            vehicle_id,
            serviced_on: input.serviced_on,
            mileage_km: input.mileage_km,
            kind: input.kind.as_str(),
            shop,
            cost_fen: input.cost_fen,
            notes: notes.to_owned(),
            next_due_mileage_km: input.next_due_mileage_km,
        },
        invoices: photos::parse_ids("invoicePhotoIds", &input.invoice_photo_ids, MAX_PHOTOS)?,
    })
}

/// The search entry of a report: the shop and the notes, under the plate.
fn search_body(row: &MaintenanceRow) -> String {
    format!("{} {}", row.shop, row.notes)
}

#[derive(Default)]
pub struct MaintenanceMutation;

#[Object]
impl MaintenanceMutation {
    /// A driver records maintenance of their vehicle (or another of their branch).
    async fn file_maintenance_report(
        &self,
        ctx: &Context<'_>,
        input: MaintenanceReportInput,
        idempotency_key: Option<String>,
    ) -> Result<MaintenanceReport> {
        let v = viewer(ctx)?;
        let c = check(&input, crate::billing::today())?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "fileMaintenanceReport",
            &c,
            async |tx| {
                let driver = filing_driver(tx, v).await?;
                let vehicle = report_vehicle(tx, &driver, c.fields.vehicle_id).await?;
                let id = Id::new();
                db::insert_maintenance(
                    tx,
                    id,
                    v.tenant_id,
                    driver.branch_id,
                    driver.id,
                    vehicle.id,
                    v.user_id,
                    &c.fields,
                )
                .await?;
                let invoices: Vec<(PhotoRole, Id)> = c
                    .invoices
                    .iter()
                    .map(|id| (PhotoRole::Invoice, *id))
                    .collect();
                photos::attach(tx, v, id, &invoices).await?;
                let row = db::get_maintenance(tx, v.tenant_id, Scope::Tenant, id).await?;
                let title = format!("{} 维保", vehicle.plate);
                let body = search_body(&row);
                search::index(
                    tx,
                    &search::Doc {
                        id,
                        tenant_id: row.tenant_id,
                        kind: SearchKind::Maintenance,
                        branch_id: Some(row.branch_id),
                        owner_id: Some(v.user_id),
                        title: &title,
                        body: &body,
                        created_at: row.created_at,
                    },
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        let row = db::get_maintenance(&mut conn, v.tenant_id, Scope::of(v)?, id).await?;
        Ok(MaintenanceReport(row))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn input() -> MaintenanceReportInput {
        MaintenanceReportInput {
            vehicle_id: None,
            serviced_on: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            mileage_km: 58_200,
            kind: MaintenanceKind::Routine,
            shop: " 途虎养车(科技园店) ".into(),
            cost_fen: 38_000,
            notes: "小保养，换机油机滤\n空调滤芯也换了".into(),
            next_due_mileage_km: Some(63_200),
            invoice_photo_ids: vec![],
        }
    }

    fn field(r: Result<Checked>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_maintenance_report_names_each_bad_field() {
        let c = check(&input(), today()).unwrap();
        assert_eq!(c.fields.shop, "途虎养车(科技园店)");
        assert_eq!(c.fields.kind, "ROUTINE");
        type Change = Box<dyn Fn(&mut MaintenanceReportInput)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "vehicleId",
                Box::new(|i| i.vehicle_id = Some(ID("?".into()))),
            ),
            (
                "servicedOn",
                Box::new(|i| i.serviced_on = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()),
            ),
            (
                "servicedOn",
                Box::new(|i| i.serviced_on = NaiveDate::from_ymd_opt(2025, 11, 1).unwrap()),
            ),
            ("mileageKm", Box::new(|i| i.mileage_km = -1)),
            ("shop", Box::new(|i| i.shop = "".into())),
            ("costFen", Box::new(|i| i.cost_fen = MAX_FEN + 1)),
            ("notes", Box::new(|i| i.notes = "油".repeat(1_001))),
            (
                "nextDueMileageKm",
                Box::new(|i| i.next_due_mileage_km = Some(58_200)),
            ),
            (
                "invoicePhotoIds",
                Box::new(|i| i.invoice_photo_ids = vec![ID("x".into())]),
            ),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i, today())).as_deref(), Some(name), "{name}");
        }
        assert_eq!(MaintenanceKind::parse("TYRES"), MaintenanceKind::Tyres);
    }
}
