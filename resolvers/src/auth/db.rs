use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, Unique};

use crate::{Error, Result, Role, Viewer};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct UserRow {
    pub id: Id,
    pub tenant_id: Id,
    pub role: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub branch_id: Option<Id>,
    pub driver_id: Option<Id>,
    pub wx_app_id: Option<String>,
    pub wx_openid: Option<String>,
    pub wx_unionid: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        // The column has a check constraint; an unknown value can only be a consumer.
        Role::parse(&self.role).unwrap_or(Role::Consumer)
    }

    pub fn viewer(&self, session_id: Id) -> Viewer {
        Viewer {
            user_id: self.id,
            tenant_id: self.tenant_id,
            role: self.role(),
            branch_id: self.branch_id,
            driver_id: self.driver_id,
            session_id,
        }
    }
}

const LOGIN_KEY: Unique = Unique {
    name: "app_user_login_key",
    table: "app_user",
    columns: &["tenant_id", "phone"],
};
const DRIVER_KEY: Unique = Unique {
    name: "app_user_driver_key",
    table: "app_user",
    columns: &["driver_id"],
};

pub async fn get_user(c: &mut Conn, tenant_id: Id, id: Id) -> Result<UserRow> {
    store::fetch_optional!(
        c,
        UserRow,
        "select * from app_user where tenant_id = $1 and id = $2",
        tenant_id,
        id
    )?
    .ok_or(Error::NotFound("user"))
}

pub async fn find_wechat_user(c: &mut Conn, app_id: &str, openid: &str) -> Result<Option<UserRow>> {
    Ok(store::fetch_optional!(
        c,
        UserRow,
        "select * from app_user where wx_app_id = $1 and wx_openid = $2",
        app_id,
        openid
    )?)
}

/// Finds or creates the user of a WeChat identity. Concurrent first sign-ins of one person
/// converge on one row (the insert yields to the unique index, then both read it).
pub async fn upsert_wechat_user(
    c: &mut Conn,
    tenant_id: Id,
    app_id: &str,
    openid: &str,
    unionid: Option<&str>,
) -> Result<UserRow> {
    store::execute!(
        c,
        "insert into app_user (id, tenant_id, role, wx_app_id, wx_openid, wx_unionid)
         values ($1, $2, 'consumer', $3, $4, $5) on conflict do nothing",
        Id::new(),
        tenant_id,
        app_id,
        openid,
        unionid
    )?;
    if let Some(u) = unionid {
        store::execute!(
            c,
            "update app_user set wx_unionid = $1, updated_at = now()
             where wx_app_id = $2 and wx_openid = $3 and (wx_unionid is null or wx_unionid <> $1)",
            u,
            app_id,
            openid
        )?;
    }
    find_wechat_user(c, app_id, openid)
        .await?
        .ok_or(Error::Internal("wechat user vanished after upsert".into()))
}

pub async fn find_password_user(
    c: &mut Conn,
    tenant_id: Id,
    phone: &str,
) -> Result<Option<UserRow>> {
    Ok(store::fetch_optional!(
        c,
        UserRow,
        "select * from app_user where tenant_id = $1 and phone = $2 and password_hash is not null",
        tenant_id,
        phone
    )?)
}

pub struct NewUser<'a> {
    pub tenant_id: Id,
    pub role: Role,
    pub display_name: &'a str,
    pub phone: &'a str,
    pub password_hash: &'a str,
    pub branch_id: Option<Id>,
}

pub async fn insert_password_user(c: &mut Conn, u: NewUser<'_>) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        c,
        "insert into app_user (id, tenant_id, role, display_name, phone, password_hash, branch_id)
         values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        u.tenant_id,
        u.role.as_str(),
        u.display_name,
        u.phone,
        u.password_hash,
        u.branch_id
    )
    .map_err(|e| {
        if e.is_unique(&LOGIN_KEY) {
            Error::exists("phone", "a user who signs in with this phone exists")
        } else {
            e.into()
        }
    })?;
    Ok(id)
}

/// Makes a WeChat user the driver of `driver_id`.
pub async fn bind_driver(
    c: &mut Conn,
    user_id: Id,
    driver_id: Id,
    branch_id: Id,
    phone: &str,
) -> Result<()> {
    store::execute!(
        c,
        "update app_user set role = 'driver', driver_id = $1, branch_id = $2, phone = $3, updated_at = now()
         where id = $4",
        driver_id,
        branch_id,
        phone,
        user_id
    )
    .map_err(|e| if e.is_unique(&DRIVER_KEY) { Error::PhoneAlreadyBound } else { e.into() })?;
    Ok(())
}

pub async fn find_user_of_driver(c: &mut Conn, driver_id: Id) -> Result<Option<UserRow>> {
    Ok(store::fetch_optional!(
        c,
        UserRow,
        "select * from app_user where driver_id = $1",
        driver_id
    )?)
}
