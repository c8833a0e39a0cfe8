use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, Unique};

use crate::{Error, Result, validate};

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct TenantRow {
    pub id: Id,
    pub slug: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AppRow {
    pub id: Id,
    pub tenant_id: Id,
    pub kind: String,
    pub app_id: String,
    pub name: String,
    pub secret_ref: String,
    /// An official account's callback token (服务器配置 Token), as a secret reference.
    pub oa_token_ref: Option<String>,
    /// An official account's EncodingAESKey (safe mode), as a secret reference; none: plain mode.
    pub oa_aes_key_ref: Option<String>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct WechatPayRow {
    pub tenant_id: Id,
    pub mch_id: String,
    pub sub_mch_id: String,
    pub app_id: String,
    pub merchant_serial: String,
    pub private_key_ref: String,
    pub apiv3_key_ref: String,
    pub public_key_id: Option<String>,
    pub public_key_ref: Option<String>,
    pub platform_certs_ref: Option<String>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AlipayRow {
    pub tenant_id: Id,
    pub app_id: String,
    pub private_key_ref: String,
    pub alipay_public_key_ref: String,
}

pub const MINIPROGRAM: &str = "miniprogram";
pub const OFFICIAL_ACCOUNT: &str = "official_account";

const SLUG_KEY: Unique = Unique {
    name: "tenant_slug_key",
    table: "tenant",
    columns: &["slug"],
};
const APP_KEY: Unique = Unique {
    name: "tenant_app_app_id_key",
    table: "tenant_app",
    columns: &["app_id"],
};
const ALIPAY_KEY: Unique = Unique {
    name: "tenant_alipay_app_id_key",
    table: "tenant_alipay",
    columns: &["app_id"],
};
const MCH_KEY: Unique = Unique {
    name: "tenant_wechat_pay_mch_key",
    table: "tenant_wechat_pay",
    columns: &["mch_id", "sub_mch_id"],
};

pub async fn insert_tenant(c: &mut Conn, slug: &str, name: &str) -> Result<TenantRow> {
    let slug = validate::code("slug", slug)?;
    let name = validate::name("name", name, 100)?;
    let id = Id::new();
    store::execute!(
        c,
        "insert into tenant (id, slug, name) values ($1, $2, $3)",
        id,
        &slug,
        &name
    )
    .map_err(|e| {
        if e.is_unique(&SLUG_KEY) {
            Error::exists("slug", "a tenant with this slug exists")
        } else {
            e.into()
        }
    })?;
    get_tenant(c, id).await
}

pub async fn get_tenant(c: &mut Conn, id: Id) -> Result<TenantRow> {
    store::fetch_optional!(c, TenantRow, "select * from tenant where id = $1", id)?
        .ok_or(Error::NotFound("tenant"))
}

pub async fn find_tenant_by_slug(c: &mut Conn, slug: &str) -> Result<Option<TenantRow>> {
    Ok(store::fetch_optional!(
        c,
        TenantRow,
        "select * from tenant where slug = $1",
        slug
    )?)
}

pub async fn find_app(c: &mut Conn, app_id: &str, kind: &str) -> Result<Option<AppRow>> {
    Ok(store::fetch_optional!(
        c,
        AppRow,
        "select * from tenant_app where app_id = $1 and kind = $2",
        app_id,
        kind
    )?)
}

pub async fn list_apps(c: &mut Conn, tenant_id: Id) -> Result<Vec<AppRow>> {
    Ok(store::fetch_all!(
        c,
        AppRow,
        "select * from tenant_app where tenant_id = $1 order by app_id",
        tenant_id
    )?)
}

/// Adds an app to a tenant or updates its name and secret reference. An app id belongs to one
/// tenant only.
pub async fn upsert_app(
    c: &mut Conn,
    tenant_id: Id,
    kind: &str,
    app_id: &str,
    name: &str,
    secret_ref: &str,
) -> Result<AppRow> {
    let app_id = validate::app_id("appId", app_id)?;
    let name = validate::name("name", name, 100)?;
    let secret_ref = validate::secret_ref("secretRef", secret_ref)?;
    if let Some(existing) = store::fetch_optional!(
        c,
        AppRow,
        "select * from tenant_app where app_id = $1",
        &app_id
    )? {
        if existing.tenant_id != tenant_id {
            return Err(Error::exists(
                "appId",
                "this app id belongs to another tenant",
            ));
        }
        store::execute!(
            c,
            "update tenant_app set kind = $1, name = $2, secret_ref = $3, updated_at = now() where id = $4",
            kind,
            &name,
            &secret_ref,
            existing.id
        )?;
    } else {
        store::execute!(
            c,
            "insert into tenant_app (id, tenant_id, kind, app_id, name, secret_ref) values ($1, $2, $3, $4, $5, $6)",
            Id::new(),
            tenant_id,
            kind,
            &app_id,
            &name,
            &secret_ref
        )
        .map_err(|e| {
            if e.is_unique(&APP_KEY) { Error::exists("appId", "this app id belongs to another tenant") } else { e.into() }
        })?;
    }
    store::fetch_optional!(
        c,
        AppRow,
        "select * from tenant_app where app_id = $1",
        &app_id
    )?
    .ok_or(Error::NotFound("app"))
}

/// Sets where an official account's callback token and EncodingAESKey are read from (each given
/// one replaces the stored one; an empty one removes it).
pub async fn set_oa_server(
    c: &mut Conn,
    app_id: &str,
    token_ref: Option<&str>,
    aes_key_ref: Option<&str>,
) -> Result<()> {
    let valid = |field: &str, r: Option<&str>| -> Result<Option<Option<String>>> {
        match r.map(str::trim) {
            None => Ok(None),
            Some("") => Ok(Some(None)),
            Some(r) => Ok(Some(Some(validate::secret_ref(field, r)?))),
        }
    };
    let token_ref = valid("oaTokenRef", token_ref)?;
    let aes_key_ref = valid("oaAesKeyRef", aes_key_ref)?;
    if let Some(token_ref) = token_ref {
        store::execute!(
            c,
            "update tenant_app set oa_token_ref = $1, updated_at = now() where app_id = $2",
            token_ref,
            app_id
        )?;
    }
    if let Some(aes_key_ref) = aes_key_ref {
        store::execute!(
            c,
            "update tenant_app set oa_aes_key_ref = $1, updated_at = now() where app_id = $2",
            aes_key_ref,
            app_id
        )?;
    }
    Ok(())
}

pub async fn find_wechat_pay(c: &mut Conn, tenant_id: Id) -> Result<Option<WechatPayRow>> {
    Ok(store::fetch_optional!(
        c,
        WechatPayRow,
        "select * from tenant_wechat_pay where tenant_id = $1",
        tenant_id
    )?)
}

pub async fn find_alipay(c: &mut Conn, tenant_id: Id) -> Result<Option<AlipayRow>> {
    Ok(store::fetch_optional!(
        c,
        AlipayRow,
        "select * from tenant_alipay where tenant_id = $1",
        tenant_id
    )?)
}

pub async fn set_wechat_pay(c: &mut Conn, r: &WechatPayRow) -> Result<()> {
    validate::app_id("mchId", &r.mch_id)?;
    if !r.sub_mch_id.is_empty() {
        validate::app_id("subMchId", &r.sub_mch_id)?;
    }
    validate::app_id("appId", &r.app_id)?;
    validate::app_id("merchantSerial", &r.merchant_serial)?;
    validate::secret_ref("privateKeyRef", &r.private_key_ref)?;
    validate::secret_ref("apiv3KeyRef", &r.apiv3_key_ref)?;
    if let Some(p) = &r.public_key_ref {
        validate::secret_ref("publicKeyRef", p)?;
        if r.public_key_id
            .as_deref()
            .is_none_or(|id| !id.starts_with("PUB_KEY_ID_"))
        {
            return Err(Error::invalid(
                "publicKeyId",
                "required with publicKeyRef, starts with PUB_KEY_ID_",
            ));
        }
    }
    if let Some(p) = &r.platform_certs_ref {
        validate::secret_ref("platformCertsRef", p)?;
    }
    if r.public_key_ref.is_none() && r.platform_certs_ref.is_none() {
        return Err(Error::invalid(
            "publicKeyRef",
            "give the WeChat Pay public key, platform certificates, or both",
        ));
    }
    store::execute!(
        c,
        "insert into tenant_wechat_pay (tenant_id, mch_id, sub_mch_id, app_id, merchant_serial, private_key_ref,
             apiv3_key_ref, public_key_id, public_key_ref, platform_certs_ref)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (tenant_id) do update set mch_id = excluded.mch_id, sub_mch_id = excluded.sub_mch_id,
             app_id = excluded.app_id, merchant_serial = excluded.merchant_serial,
             private_key_ref = excluded.private_key_ref, apiv3_key_ref = excluded.apiv3_key_ref,
             public_key_id = excluded.public_key_id, public_key_ref = excluded.public_key_ref,
             platform_certs_ref = excluded.platform_certs_ref, updated_at = now()",
        r.tenant_id,
        &r.mch_id,
        &r.sub_mch_id,
        &r.app_id,
        &r.merchant_serial,
        &r.private_key_ref,
        &r.apiv3_key_ref,
        &r.public_key_id,
        &r.public_key_ref,
        &r.platform_certs_ref
    )
    .map_err(|e| {
        if e.is_unique(&MCH_KEY) { Error::exists("mchId", "this merchant belongs to another tenant") } else { e.into() }
    })?;
    Ok(())
}

pub async fn set_alipay(c: &mut Conn, r: &AlipayRow) -> Result<()> {
    validate::app_id("appId", &r.app_id)?;
    validate::secret_ref("privateKeyRef", &r.private_key_ref)?;
    validate::secret_ref("alipayPublicKeyRef", &r.alipay_public_key_ref)?;
    store::execute!(
        c,
        "insert into tenant_alipay (tenant_id, app_id, private_key_ref, alipay_public_key_ref)
         values ($1, $2, $3, $4)
         on conflict (tenant_id) do update set app_id = excluded.app_id, private_key_ref = excluded.private_key_ref,
             alipay_public_key_ref = excluded.alipay_public_key_ref, updated_at = now()",
        r.tenant_id,
        &r.app_id,
        &r.private_key_ref,
        &r.alipay_public_key_ref
    )
    .map_err(|e| {
        if e.is_unique(&ALIPAY_KEY) { Error::exists("appId", "this Alipay app belongs to another tenant") } else { e.into() }
    })?;
    Ok(())
}
