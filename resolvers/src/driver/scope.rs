//! Who may see which reports, and who files them.
//!
//! A driver sees only their own reports and vehicle; staff their branch's; operators the
//! tenant's. Reports are filed by drivers bound to a driver record, for a vehicle of their
//! branch (their assigned one unless they name another of the branch).

use minigate_store::{Conn, Id};

use crate::{
    Error, Result, Role, Viewer,
    registry::db::{self as registry_db, DriverRow, VehicleRow},
};

/// The rows a viewer may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A driver: the reports about their driver record.
    Own(Id),
    /// Staff: their branch.
    Branch(Id),
    /// Operators: the whole tenant.
    Tenant,
}

impl Scope {
    /// Consumers, and drivers not bound to a driver record, see no reports.
    pub fn of(v: &Viewer) -> Result<Scope> {
        match v.role {
            Role::Admin => Ok(Scope::Tenant),
            Role::Staff => v.branch_id.map(Scope::Branch).ok_or(Error::Forbidden),
            Role::Driver => v.driver_id.map(Scope::Own).ok_or(Error::Forbidden),
            Role::Consumer => Err(Error::Forbidden),
        }
    }

    /// Staff and operators: those who handle reports, not those who file them.
    pub fn of_staff(v: &Viewer) -> Result<Scope> {
        match Scope::of(v)? {
            Scope::Own(_) => Err(Error::Forbidden),
            s => Ok(s),
        }
    }

    /// (driver, branch) filters for SQL; `None` is any.
    pub fn filters(self) -> (Option<Id>, Option<Id>) {
        match self {
            Scope::Own(d) => (Some(d), None),
            Scope::Branch(b) => (None, Some(b)),
            Scope::Tenant => (None, None),
        }
    }

    /// Whether a report of `driver` in `branch` is within the scope.
    pub fn covers(self, driver: Id, branch: Id) -> bool {
        match self {
            Scope::Own(d) => d == driver,
            Scope::Branch(b) => b == branch,
            Scope::Tenant => true,
        }
    }
}

/// The driver record of a driver viewer: only drivers file reports.
pub async fn filing_driver(c: &mut Conn, v: &Viewer) -> Result<DriverRow> {
    let Some(driver) = v.driver_id.filter(|_| v.role == Role::Driver) else {
        return Err(Error::Forbidden);
    };
    registry_db::get_driver(c, v.tenant_id, driver).await
}

/// The vehicle a report is about: `requested` if it is a vehicle of the driver's branch,
/// otherwise the driver's assigned vehicle. Another branch's or tenant's vehicle, or none at all,
/// is `INVALID_INPUT` on `vehicleId`.
pub async fn report_vehicle(
    c: &mut Conn,
    driver: &DriverRow,
    requested: Option<Id>,
) -> Result<VehicleRow> {
    let Some(id) = requested.or(driver.vehicle_id) else {
        return Err(Error::invalid(
            "vehicleId",
            "no vehicle is assigned to you; name the vehicle",
        ));
    };
    match registry_db::get_vehicle(c, driver.tenant_id, id).await {
        Ok(vehicle) if vehicle.branch_id == driver.branch_id => Ok(vehicle),
        Ok(_) | Err(Error::NotFound(_)) => Err(Error::invalid(
            "vehicleId",
            "no such vehicle in your branch",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_covers_only_its_own_reports() {
        let (d1, d2, b1, b2) = (Id::new(), Id::new(), Id::new(), Id::new());
        assert!(Scope::Own(d1).covers(d1, b2));
        assert!(!Scope::Own(d1).covers(d2, b1));
        assert!(Scope::Branch(b1).covers(d2, b1));
        assert!(!Scope::Branch(b1).covers(d1, b2));
        assert!(Scope::Tenant.covers(d2, b2));
        assert_eq!(Scope::Own(d1).filters(), (Some(d1), None));
        assert_eq!(Scope::Branch(b1).filters(), (None, Some(b1)));
    }
}
