use async_graphql::{ID, InputObject};
use minigate_store::Id;

use super::VehicleStatus;
use crate::{Error, Result};

pub fn parse_id(field: &str, id: &ID) -> Result<Id> {
    id.parse::<Id>()
        .map_err(|_| Error::invalid(field, "not an id"))
}

pub fn parse_opt_id(field: &str, id: Option<&ID>) -> Result<Option<Id>> {
    id.map(|i| parse_id(field, i)).transpose()
}

#[derive(InputObject)]
pub struct BranchInput {
    pub code: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct VehicleInput {
    pub branch_id: ID,
    pub plate: String,
    pub vin: String,
    pub model: Option<String>,
    #[graphql(default_with = "VehicleStatus::Available")]
    pub status: VehicleStatus,
}

/// Fields left out stay as they are.
#[derive(InputObject)]
pub struct VehiclePatch {
    pub branch_id: Option<ID>,
    pub plate: Option<String>,
    pub vin: Option<String>,
    pub model: Option<String>,
    pub status: Option<VehicleStatus>,
}

#[derive(InputObject)]
pub struct DriverInput {
    pub branch_id: ID,
    pub name: String,
    pub phone: String,
    pub id_number: String,
    pub vehicle_id: Option<ID>,
}

/// Fields left out stay as they are; `clearVehicle` unassigns the vehicle.
#[derive(InputObject)]
pub struct DriverPatch {
    pub branch_id: Option<ID>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    pub vehicle_id: Option<ID>,
    #[graphql(default)]
    pub clear_vehicle: bool,
}
