use async_graphql::{Context, Object};

use super::{Tenant, db};
use crate::{
    Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct TenantQuery;

#[Object]
impl TenantQuery {
    /// The signed-in user's company.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let v = viewer(ctx)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(Tenant(db::get_tenant(&mut c, v.tenant_id).await?))
    }
}
