//! What field staff do from the staff mini-program (DESIGN.md §1): asset audits of a branch's
//! vehicles with live progress (`audit*`), plate registration and inspection, 验车上牌
//! (`plate*`), and follow-ups of prospects, 意向客户回访 (`follow_up*`).
//!
//! Staff work in their branch, operators in the whole tenant; drivers and consumers see none of
//! it. Reads of another branch's record answer `NOT_FOUND` and writes to one `FORBIDDEN`, as the
//! registry does. Every create mutation takes an `idempotencyKey` whose retry with the same
//! input returns the first record and with other input is refused.

mod audit;
pub mod audit_db;
mod audit_live;
mod audit_object;
mod follow_up;
pub mod follow_up_db;
mod follow_up_object;
mod plate;
pub mod plate_db;
mod plate_object;

use async_graphql::MergedObject;

pub use audit::{AuditFindingInput, AuditStatus, VehicleCondition};
pub use audit_live::{AuditProgress, StaffSubscription};
pub use audit_object::{AssetAudit, AuditDiscrepancy, AuditFinding, AuditListedVehicle};
pub use follow_up::{FollowUpInput, FollowUpOutcome, FollowUpPatch};
pub use follow_up_object::{FollowUp, FollowUpPage};
pub use plate::{PlateRegistrationInput, PlateRegistrationStatus};
pub use plate_object::PlateRegistration;

/// The queries of field staff's work.
#[derive(MergedObject, Default)]
pub struct StaffQuery(
    audit_object::AuditQuery,
    plate_object::PlateQuery,
    follow_up_object::FollowUpQuery,
);

/// The mutations of field staff's work.
#[derive(MergedObject, Default)]
pub struct StaffMutation(
    audit::AuditMutation,
    plate::PlateMutation,
    follow_up::FollowUpMutation,
);
