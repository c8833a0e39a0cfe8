use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{
    Loaders,
    db::{BranchRow, DriverRow, VehicleRow},
};
use crate::{Error, Result, Role, pii, viewer::viewer};

pub struct Branch(pub BranchRow);

#[Object]
impl Branch {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn code(&self) -> &str {
        &self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum VehicleStatus {
    Available,
    Rented,
    Maintenance,
    Retired,
}

impl VehicleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleStatus::Available => "AVAILABLE",
            VehicleStatus::Rented => "RENTED",
            VehicleStatus::Maintenance => "MAINTENANCE",
            VehicleStatus::Retired => "RETIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AVAILABLE" => Some(VehicleStatus::Available),
            "RENTED" => Some(VehicleStatus::Rented),
            "MAINTENANCE" => Some(VehicleStatus::Maintenance),
            "RETIRED" => Some(VehicleStatus::Retired),
            _ => None,
        }
    }
}

pub struct Vehicle(pub VehicleRow);

async fn load_branch(
    ctx: &Context<'_>,
    id: minigate_store::Id,
) -> Result<Branch, async_graphql::Error> {
    let loaders = ctx.data::<Loaders>()?;
    loaders
        .branches
        .load_one(id)
        .await?
        .map(Branch)
        .ok_or_else(|| Error::NotFound("branch").into())
}

#[Object]
impl Vehicle {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn plate(&self) -> &str {
        &self.0.plate
    }
    async fn vin(&self) -> &str {
        &self.0.vin
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn status(&self) -> VehicleStatus {
        VehicleStatus::parse(&self.0.status).unwrap_or(VehicleStatus::Retired)
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Branch> {
        load_branch(ctx, self.0.branch_id).await
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct Driver(pub DriverRow);

#[Object]
impl Driver {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// In full for operators, branch staff and the driver; masked (`138****8000`) otherwise.
    async fn phone(&self, ctx: &Context<'_>) -> Result<String> {
        let v = viewer(ctx)?;
        let full = matches!(v.role, Role::Admin | Role::Staff) || v.driver_id == Some(self.0.id);
        Ok(if full {
            self.0.phone.clone()
        } else {
            pii::mask_phone(&self.0.phone)
        })
    }
    /// In full for operators and the driver only.
    async fn id_number(&self, ctx: &Context<'_>) -> Result<String> {
        let v = viewer(ctx)?;
        let full = v.role == Role::Admin || v.driver_id == Some(self.0.id);
        Ok(if full {
            self.0.id_number.clone()
        } else {
            pii::mask_id_number(&self.0.id_number)
        })
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Branch> {
        load_branch(ctx, self.0.branch_id).await
    }
    async fn vehicle(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vehicle>> {
        let Some(id) = self.0.vehicle_id else {
            return Ok(None);
        };
        Ok(ctx
            .data::<Loaders>()?
            .vehicles
            .load_one(id)
            .await?
            .map(Vehicle))
    }
}
