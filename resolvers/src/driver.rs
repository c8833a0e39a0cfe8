//! What drivers file from the mini-program (DESIGN.md §1): weekly income reports, accident
//! reports followed through a workflow until closed, and maintenance reports, each with photos.
//!
//! A driver sees only their own reports (and their vehicle, through `me`); staff their branch's;
//! operators the tenant's (`scope`). Every create mutation takes an `idempotencyKey` whose
//! retry with the same input returns the first report and with other input is refused.
//! Accident descriptions and maintenance notes are indexed for `search` in the transaction that
//! writes them.

mod accident;
pub mod db;
mod income;
mod maintenance;
mod object;
mod query;
pub mod scope;
mod subscription;

use async_graphql::MergedObject;

pub use accident::{AccidentMutation, AccidentReportInput, AccidentStatus};
pub use income::{IncomeMutation, IncomeReportInput, RidePlatform};
pub use maintenance::{MaintenanceKind, MaintenanceMutation, MaintenanceReportInput};
pub use object::{AccidentReport, IncomeReport, MaintenanceReport};
pub use query::ReportQuery;
pub use subscription::{AccidentEvent, AccidentSubscription};

/// The mutations of drivers' reports.
#[derive(MergedObject, Default)]
pub struct ReportMutation(IncomeMutation, AccidentMutation, MaintenanceMutation);
