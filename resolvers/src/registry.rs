//! The minimal registry minigate keeps until ERP connectors exist (DESIGN.md §2): branches,
//! vehicles (plate, VIN, branch, status) and driver records, filled by operators through
//! GraphQL, the CLI and CSV imports.

pub mod db;
pub mod import;
pub mod input;
mod loader;
mod mutation;
mod object;
pub(crate) mod query;

pub use loader::{LoadError, Loaders};
pub use mutation::RegistryMutation;
pub use object::{Branch, Driver, Vehicle, VehicleStatus};
pub use query::RegistryQuery;
