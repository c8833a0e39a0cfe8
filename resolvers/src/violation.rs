//! Traffic violations (违章) the authorities recorded against the fleet's vehicles: operators and
//! staff record them (`recordViolation`), the vehicle's driver at that moment is named and told
//! (a `VIOLATION` message, in the same transaction), and people list them (`violations`),
//! drivers only their own.

pub mod db;
mod mutation;
mod object;

pub use mutation::{ViolationInput, ViolationMutation};
pub use object::{Violation, ViolationQuery};
