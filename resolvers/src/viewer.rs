use minigate_store::Id;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Driver,
    Staff,
    Consumer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Staff => "staff",
            Role::Consumer => "consumer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "driver" => Some(Role::Driver),
            "staff" => Some(Role::Staff),
            "consumer" => Some(Role::Consumer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is asking: read from a verified access token, attached to each request by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Id,
    pub tenant_id: Id,
    pub role: Role,
    pub branch_id: Option<Id>,
    pub driver_id: Option<Id>,
    /// The sign-in (refresh-token family) this access token belongs to.
    pub session_id: Id,
}

impl Viewer {
    pub fn require_admin(&self) -> Result<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// Staff see their branch, operators the whole tenant; drivers and consumers no registry.
    /// `Ok(None)` means every branch of the tenant.
    pub fn registry_scope(&self) -> Result<Option<Id>> {
        match self.role {
            Role::Admin => Ok(None),
            Role::Staff => self.branch_id.map(Some).ok_or(Error::Forbidden),
            Role::Driver | Role::Consumer => Err(Error::Forbidden),
        }
    }

    /// The branch filter to use when the caller asks for `requested`: staff may only ask for
    /// their own branch.
    pub fn branch_filter(&self, requested: Option<Id>) -> Result<Option<Id>> {
        match (self.registry_scope()?, requested) {
            (None, r) => Ok(r),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(r)) if r == own => Ok(Some(own)),
            (Some(_), Some(_)) => Err(Error::Forbidden),
        }
    }
}

/// The viewer of a GraphQL request, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a Viewer> {
    ctx.data_opt::<Viewer>().ok_or(Error::Unauthenticated)
}

pub(crate) fn deps<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a crate::Deps> {
    ctx.data::<crate::Deps>()
        .map_err(|_| Error::Internal("Deps missing from schema data".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(role: Role, branch: Option<Id>) -> Viewer {
        Viewer {
            user_id: Id::new(),
            tenant_id: Id::new(),
            role,
            branch_id: branch,
            driver_id: None,
            session_id: Id::new(),
        }
    }

    #[test]
    fn staff_are_held_to_their_branch_and_drivers_see_no_registry() {
        let own = Id::new();
        let other = Id::new();
        let staff = v(Role::Staff, Some(own));
        assert_eq!(staff.branch_filter(None).unwrap(), Some(own));
        assert_eq!(staff.branch_filter(Some(own)).unwrap(), Some(own));
        assert!(matches!(
            staff.branch_filter(Some(other)),
            Err(Error::Forbidden)
        ));
        let admin = v(Role::Admin, None);
        assert_eq!(admin.branch_filter(Some(other)).unwrap(), Some(other));
        assert_eq!(admin.branch_filter(None).unwrap(), None);
        assert!(v(Role::Driver, Some(own)).registry_scope().is_err());
        assert!(v(Role::Staff, None).registry_scope().is_err());
    }
}
