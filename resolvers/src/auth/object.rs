use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{db::UserRow, session::Issued};
use crate::{
    Result, Role, pii,
    registry::{Branch, Driver, Loaders, db as registry_db},
    tenant::{Tenant, db as tenant_db},
    viewer::{deps, viewer},
};

pub struct User(pub UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn role(&self) -> Role {
        self.0.role()
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// In full for the user and operators, masked for others.
    async fn phone(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let v = viewer(ctx)?;
        let full = v.user_id == self.0.id || v.role == Role::Admin;
        Ok(self.0.phone.as_deref().map(|p| {
            if full {
                p.to_owned()
            } else {
                pii::mask_phone(p)
            }
        }))
    }
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(Tenant(
            tenant_db::get_tenant(&mut c, self.0.tenant_id).await?,
        ))
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Branch>> {
        let Some(id) = self.0.branch_id else {
            return Ok(None);
        };
        Ok(ctx
            .data::<Loaders>()?
            .branches
            .load_one(id)
            .await?
            .map(Branch))
    }
    /// The driver record this user is bound to (drivers only).
    async fn driver(&self, ctx: &Context<'_>) -> Result<Option<Driver>> {
        let Some(id) = self.0.driver_id else {
            return Ok(None);
        };
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(Some(Driver(
            registry_db::get_driver(&mut c, self.0.tenant_id, id).await?,
        )))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// What a sign-in returns. Keep the refresh token in secure storage; send the access token as
/// `Authorization: Bearer …`.
pub struct AuthPayload(pub Issued);

#[Object]
impl AuthPayload {
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }
    async fn access_token_expires_at(&self) -> DateTime<Utc> {
        self.0.access_expires_at
    }
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }
    async fn refresh_token_expires_at(&self) -> DateTime<Utc> {
        self.0.refresh_expires_at
    }
    async fn user(&self) -> User {
        User(self.0.user.clone())
    }
}
