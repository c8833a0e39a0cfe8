//! Daily reconciliation (DESIGN.md §4): every fen taken must be the money the providers report.
//! For business day D (Asia/Shanghai) each provider's trade bill is downloaded after 10:00 on
//! D+1, checked whole, and matched with our orders and refunds; each difference is recorded with
//! its kind for people to resolve, and a missed callback is repaired only once the provider's
//! answer to a query confirms it. A run is per tenant, provider and day; running it again makes
//! a new pass that keeps what people resolved and drops what no longer differs.

pub mod job;
mod object;
mod run;

pub use minigate_payments::reconcile::{compare, db};
pub use object::{ReconciliationMutation, ReconciliationQuery};
pub use run::{Stage, day_bounds, reconcile};
