use async_graphql::{Context, Object};

use super::{User, db};
use crate::{
    Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let v = viewer(ctx)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(User(db::get_user(&mut c, v.tenant_id, v.user_id).await?))
    }
}
