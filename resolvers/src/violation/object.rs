use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::db::{self, Filter, ViolationRow};
use crate::{
    Error, Result, Role,
    registry::input::parse_opt_id,
    viewer::{deps, viewer},
};

/// A traffic violation recorded against one of the company's vehicles.
pub struct Violation(pub ViolationRow);

#[Object]
impl Violation {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn vehicle_id(&self) -> ID {
        ID(self.0.vehicle_id.to_string())
    }
    async fn plate(&self) -> &str {
        &self.0.plate
    }
    /// The vehicle's driver when it was recorded; none if it had no driver.
    async fn driver_id(&self) -> Option<ID> {
        self.0.driver_id.map(|d| ID(d.to_string()))
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn place(&self) -> &str {
        &self.0.place
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// The fine in fen (1 yuan = 100 fen).
    async fn fine_fen(&self) -> Result<i32> {
        i32::try_from(self.0.fine_fen)
            .map_err(|_| Error::Internal(format!("violation fine {}", self.0.fine_fen)))
    }
    /// The fine in yuan with two decimals, `"200.00"`.
    async fn fine_yuan(&self) -> String {
        minigate_payments::money::format_yuan(self.0.fine_fen)
    }
    /// Points on the driving licence, 0 to 12.
    async fn points(&self) -> i32 {
        self.0.points
    }
    /// The authorities' decision number, unique in the company.
    async fn reference(&self) -> &str {
        &self.0.reference
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct ViolationQuery;

#[Object]
impl ViolationQuery {
    /// Violations, latest first: operators see the company's, staff their branch's vehicles',
    /// drivers only their own.
    async fn violations(
        &self,
        ctx: &Context<'_>,
        vehicle_id: Option<ID>,
        driver_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Violation>> {
        let v = viewer(ctx)?;
        let vehicle = parse_opt_id("vehicleId", vehicle_id.as_ref())?;
        let driver = parse_opt_id("driverId", driver_id.as_ref())?;
        let filter = match v.role {
            Role::Admin | Role::Staff => Filter {
                vehicle_id: vehicle,
                driver_id: driver,
                branch_id: v.registry_scope()?,
            },
            Role::Driver => {
                let Some(own) = v.driver_id else {
                    return Ok(Vec::new());
                };
                if driver.is_some_and(|d| d != own) {
                    return Err(Error::Forbidden);
                }
                Filter {
                    vehicle_id: vehicle,
                    driver_id: Some(own),
                    branch_id: None,
                }
            }
            Role::Consumer => return Err(Error::Forbidden),
        };
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = db::list(&mut c, v.tenant_id, &filter, i64::from(first.clamp(1, 200))).await?;
        Ok(rows.into_iter().map(Violation).collect())
    }
}
