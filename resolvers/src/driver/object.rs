//! Reports as clients read them.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, NaiveDate, Utc};
use minigate_store::Id;

use super::{
    accident::AccidentStatus,
    db::{AccidentRow, IncomeRow, MaintenanceRow},
    income::RidePlatform,
    maintenance::MaintenanceKind,
};
use crate::{
    Error,
    photos::{self, RecordPhoto},
    registry::{Driver, Loaders, Vehicle},
    workflow::{self, WorkflowStep},
};

async fn driver(ctx: &Context<'_>, id: Id) -> async_graphql::Result<Driver> {
    ctx.data::<Loaders>()?
        .drivers
        .load_one(id)
        .await?
        .map(Driver)
        .ok_or_else(|| Error::NotFound("driver").into())
}

async fn vehicle(ctx: &Context<'_>, id: Id) -> async_graphql::Result<Vehicle> {
    ctx.data::<Loaders>()?
        .vehicles
        .load_one(id)
        .await?
        .map(Vehicle)
        .ok_or_else(|| Error::NotFound("vehicle").into())
}

/// A driver's income on one platform for one week.
pub struct IncomeReport(pub IncomeRow);

#[Object]
impl IncomeReport {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The Monday the week starts.
    async fn week_start(&self) -> NaiveDate {
        self.0.week_start
    }
    async fn platform(&self) -> RidePlatform {
        RidePlatform::parse(&self.0.platform)
    }
    async fn orders(&self) -> i32 {
        self.0.orders
    }
    async fn online_minutes(&self) -> i32 {
        self.0.online_minutes
    }
    async fn gross_income_fen(&self) -> i64 {
        self.0.gross_income_fen
    }
    /// `SUBMITTED` (the driver may still correct it) or `CONFIRMED` by an operator.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.0.confirmed_at
    }
    async fn driver(&self, ctx: &Context<'_>) -> async_graphql::Result<Driver> {
        driver(ctx, self.0.driver_id).await
    }
    /// The platform's income screens.
    async fn screenshots(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RecordPhoto>> {
        photos::visible(ctx, self.0.id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// An accident a driver reported, and where its handling stands.
pub struct AccidentReport(pub AccidentRow);

#[Object]
impl AccidentReport {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> Option<AccidentStatus> {
        AccidentStatus::parse(&self.0.status)
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn latitude(&self) -> f64 {
        self.0.latitude
    }
    async fn longitude(&self) -> f64 {
        self.0.longitude
    }
    async fn address(&self) -> &str {
        &self.0.address
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn other_party(&self) -> Option<&str> {
        self.0.other_party.as_deref()
    }
    async fn police_report_no(&self) -> Option<&str> {
        self.0.police_report_no.as_deref()
    }
    async fn injured_count(&self) -> i32 {
        self.0.injured_count
    }
    async fn injuries(&self) -> Option<&str> {
        self.0.injuries.as_deref()
    }
    /// Why it was rejected, once it is.
    async fn reject_reason(&self) -> Option<&str> {
        self.0.reject_reason.as_deref()
    }
    async fn driver(&self, ctx: &Context<'_>) -> async_graphql::Result<Driver> {
        driver(ctx, self.0.driver_id).await
    }
    async fn vehicle(&self, ctx: &Context<'_>) -> async_graphql::Result<Vehicle> {
        vehicle(ctx, self.0.vehicle_id).await
    }
    /// Scene and damage photos, in the order the driver gave them.
    async fn photos(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RecordPhoto>> {
        photos::visible(ctx, self.0.id).await
    }
    /// Every step so far, oldest first: who moved it to which status, and when.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<WorkflowStep>> {
        let d = crate::viewer::deps(ctx)?;
        let mut c = d.db.conn().await.map_err(Error::from)?;
        let mut steps = workflow::timelines(&mut c, vec![self.0.id]).await?;
        Ok(steps
            .remove(&self.0.id)
            .unwrap_or_default()
            .into_iter()
            .map(WorkflowStep::from)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Maintenance a driver had done.
pub struct MaintenanceReport(pub MaintenanceRow);

#[Object]
impl MaintenanceReport {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn serviced_on(&self) -> NaiveDate {
        self.0.serviced_on
    }
    async fn mileage_km(&self) -> i32 {
        self.0.mileage_km
    }
    async fn kind(&self) -> MaintenanceKind {
        MaintenanceKind::parse(&self.0.kind)
    }
    async fn shop(&self) -> &str {
        &self.0.shop
    }
    async fn cost_fen(&self) -> i64 {
        self.0.cost_fen
    }
    async fn notes(&self) -> &str {
        &self.0.notes
    }
    async fn next_due_mileage_km(&self) -> Option<i32> {
        self.0.next_due_mileage_km
    }
    async fn driver(&self, ctx: &Context<'_>) -> async_graphql::Result<Driver> {
        driver(ctx, self.0.driver_id).await
    }
    async fn vehicle(&self, ctx: &Context<'_>) -> async_graphql::Result<Vehicle> {
        vehicle(ctx, self.0.vehicle_id).await
    }
    /// The shop's invoices.
    async fn invoices(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RecordPhoto>> {
        photos::visible(ctx, self.0.id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
