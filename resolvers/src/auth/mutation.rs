use std::time::Duration;

use async_graphql::{Context, ID, Object};
use minigate_push::wechat::AppCredentials;

use super::{
    AuthPayload, User,
    db::{self, NewUser},
    password, session,
};
use crate::{
    Deps, Error, Result, Role, audit,
    registry::db as registry_db,
    tenant::db as tenant_db,
    validate,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct AuthMutation;

/// Password attempts per tenant and phone before a pause, whatever the client's address.
const PASSWORD_ATTEMPTS: u32 = 10;
const PASSWORD_WINDOW: Duration = Duration::from_secs(15 * 60);

async fn mini_program(d: &Deps, app_id: &str) -> Result<(tenant_db::AppRow, AppCredentials)> {
    let mut c = d.db.conn().await?;
    let app = tenant_db::find_app(&mut c, app_id, tenant_db::MINIPROGRAM)
        .await?
        .ok_or(Error::WechatAppUnknown)?;
    let secret = d
        .secrets
        .resolve(&app.secret_ref)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let creds = AppCredentials {
        app_id: app.app_id.clone(),
        secret,
    };
    Ok((app, creds))
}

#[Object]
impl AuthMutation {
    /// Signs in with the code from `wx.login`. The app id selects the company; a first sign-in
    /// creates the user (a consumer until `bindPhone` makes them a driver).
    async fn login_with_wechat(
        &self,
        ctx: &Context<'_>,
        app_id: String,
        code: String,
    ) -> Result<AuthPayload> {
        let d = deps(ctx)?;
        if code.trim().is_empty() || code.len() > 128 {
            return Err(Error::invalid("code", "the code from wx.login"));
        }
        let (app, creds) = mini_program(d, app_id.trim()).await?;
        let wx = d.wechat.code_to_session(&creds, code.trim()).await?;
        let mut tx = d.db.begin().await?;
        let user = db::upsert_wechat_user(
            &mut tx,
            app.tenant_id,
            &app.app_id,
            &wx.openid,
            wx.unionid.as_deref(),
        )
        .await?;
        if user.disabled_at.is_some() {
            return Err(Error::Forbidden);
        }
        let issued = session::start(&mut tx, &d.tokens, user).await?;
        tx.commit().await?;
        Ok(AuthPayload(issued))
    }

    /// Signs in staff and operators with the phone and password an operator gave them.
    async fn login_with_password(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        phone: String,
        password: String,
    ) -> Result<AuthPayload> {
        let d = deps(ctx)?;
        let phone = validate::phone(&phone).map_err(|_| Error::LoginFailed)?;
        let slug = tenant.trim().to_owned();
        d.limiter
            .hit(
                &format!("login:{slug}:{phone}"),
                PASSWORD_ATTEMPTS,
                PASSWORD_WINDOW,
            )
            .await
            .map_err(Error::from)?;
        let mut c = d.db.conn().await?;
        let tenant = tenant_db::find_tenant_by_slug(&mut c, &slug).await?;
        let user = match &tenant {
            Some(t) => db::find_password_user(&mut c, t.id, &phone).await?,
            None => None,
        };
        drop(c);
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        if !password::verify(password, stored).await? {
            return Err(Error::LoginFailed);
        }
        let user = user.ok_or(Error::LoginFailed)?;
        if user.disabled_at.is_some() {
            return Err(Error::LoginFailed);
        }
        let mut tx = d.db.begin().await?;
        let issued = session::start(&mut tx, &d.tokens, user).await?;
        tx.commit().await?;
        Ok(AuthPayload(issued))
    }

    /// Exchanges the code from the mini-program's `getPhoneNumber` button for the user's phone
    /// number at WeChat. If it matches a driver record of the company, the user becomes that
    /// driver and receives new tokens carrying the new role.
    async fn bind_phone(&self, ctx: &Context<'_>, code: String) -> Result<AuthPayload> {
        let v = viewer(ctx)?;
        let d = deps(ctx)?;
        let mut c = d.db.conn().await?;
        let user = db::get_user(&mut c, v.tenant_id, v.user_id).await?;
        let app_id = user.wx_app_id.clone().ok_or(Error::Forbidden)?;
        drop(c);
        let (_, creds) = mini_program(d, &app_id).await?;
        let phone = d.wechat.phone_number(&creds, code.trim()).await?;
        let phone =
            validate::phone(&phone.pure_phone_number).map_err(|_| Error::PhoneNotRegistered)?;
        let mut tx = d.db.begin().await?;
        let driver = registry_db::find_driver_by_phone(&mut tx, v.tenant_id, &phone)
            .await?
            .ok_or(Error::PhoneNotRegistered)?;
        if let Some(other) = db::find_user_of_driver(&mut tx, driver.id).await?
            && other.id != user.id
        {
            return Err(Error::PhoneAlreadyBound);
        }
        db::bind_driver(&mut tx, user.id, driver.id, driver.branch_id, &phone).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "user.bind_phone",
            "driver",
            &driver.id.to_string(),
            serde_json::json!({}),
        )
        .await?;
        session::revoke_family(&mut tx, v.session_id).await?;
        let user = db::get_user(&mut tx, v.tenant_id, v.user_id).await?;
        let issued = session::start(&mut tx, &d.tokens, user).await?;
        tx.commit().await?;
        Ok(AuthPayload(issued))
    }

    /// Rotates the refresh token. Retrying with the previous token within 60 seconds returns
    /// the same pair; any other reuse revokes the sign-in.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<AuthPayload> {
        let d = deps(ctx)?;
        Ok(AuthPayload(
            session::refresh(&d.db, &d.tokens, refresh_token.trim()).await?,
        ))
    }

    /// Ends this sign-in: its refresh tokens stop working. Access tokens expire on their own.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let v = viewer(ctx)?;
        let mut c = deps(ctx)?.db.conn().await?;
        session::revoke_family(&mut c, v.session_id).await?;
        Ok(true)
    }

    /// Creates a staff member or operator who signs in with a password (operators only).
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        role: Role,
        phone: String,
        password: String,
        display_name: String,
        branch_id: Option<ID>,
    ) -> Result<User> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let d = deps(ctx)?;
        let branch = branch_id
            .map(|b| {
                b.parse()
                    .map_err(|_| Error::invalid("branchId", "not an id"))
            })
            .transpose()?;
        let id = create_password_user(
            &d.db,
            v.tenant_id,
            Some(v.user_id),
            role,
            &phone,
            password,
            &display_name,
            branch,
        )
        .await?;
        let mut c = d.db.conn().await?;
        Ok(User(db::get_user(&mut c, v.tenant_id, id).await?))
    }
}

/// Creates a password user; shared by the `createUser` mutation and `minigate user create`.
#[allow(clippy::too_many_arguments)]
pub async fn create_password_user(
    db_: &minigate_store::Db,
    tenant_id: minigate_store::Id,
    actor: Option<minigate_store::Id>,
    role: Role,
    phone: &str,
    password: String,
    display_name: &str,
    branch_id: Option<minigate_store::Id>,
) -> Result<minigate_store::Id> {
    if !matches!(role, Role::Staff | Role::Admin) {
        return Err(Error::invalid(
            "role",
            "only staff and admin users sign in with a password",
        ));
    }
    if role == Role::Staff && branch_id.is_none() {
        return Err(Error::invalid("branchId", "staff belong to a branch"));
    }
    let phone = validate::phone(phone)?;
    let display_name = validate::name("displayName", display_name, 50)?;
    let hash = password::hash(password).await?;
    let mut tx = db_.begin().await?;
    if let Some(b) = branch_id {
        registry_db::get_branch(&mut tx, tenant_id, b)
            .await
            .map_err(|_| Error::invalid("branchId", "no such branch"))?;
    }
    let id = db::insert_password_user(
        &mut tx,
        NewUser {
            tenant_id,
            role,
            display_name: &display_name,
            phone: &phone,
            password_hash: &hash,
            branch_id,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        Some(tenant_id),
        actor,
        "user.create",
        "user",
        &id.to_string(),
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
