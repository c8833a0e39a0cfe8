//! A company's credentials with each app push provider, as references to secrets: set by an
//! operator (`setAppPushProvider`), checked at once by reading the secret and building the
//! client's credentials from it, so a wrong file is an error now and not at 3 a.m.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_push::app::{Provider, apns::ApnsKey, fcm::FcmAccount, huawei::HuaweiApp};
use minigate_store::{self as store, Conn, Id};
use secrecy::ExposeSecret;

use super::PushPlatform;
use crate::{
    Error, Result, Secrets, audit,
    viewer::{deps, viewer},
};

#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    pub tenant_id: Id,
    pub provider: String,
    pub key_ref: String,
    pub app_id: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub topic: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Credentials ready for a client.
#[derive(Clone, Debug)]
pub enum Credentials {
    Fcm(FcmAccount),
    Apns(ApnsKey),
    Huawei(HuaweiApp),
}

/// Reads the row's secret and builds the provider's credentials from it.
pub fn credentials(secrets: &dyn Secrets, row: &ProviderRow) -> Result<Credentials> {
    let secret = secrets
        .resolve(&row.key_ref)
        .map_err(|e| Error::invalid("keyRef", e.to_string()))?;
    let need = |field: &str, value: &Option<String>| -> Result<String> {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid(field, format!("required for {}", row.provider)))
    };
    match Provider::parse(&row.provider) {
        Some(Provider::Fcm) => Ok(Credentials::Fcm(FcmAccount::from_key_file(
            secret.expose_secret(),
        )?)),
        Some(Provider::Apns) => Ok(Credentials::Apns(ApnsKey::new(
            &need("teamId", &row.team_id)?,
            &need("keyId", &row.key_id)?,
            &need("topic", &row.topic)?,
            secret.expose_secret(),
        )?)),
        Some(Provider::Huawei) => Ok(Credentials::Huawei(HuaweiApp::new(
            &need("appId", &row.app_id)?,
            secret,
        )?)),
        None => Err(Error::Internal(format!(
            "unknown provider {}",
            row.provider
        ))),
    }
}

pub async fn find(c: &mut Conn, tenant: Id, provider: Provider) -> Result<Option<ProviderRow>> {
    Ok(store::fetch_optional!(
        c,
        ProviderRow,
        "select tenant_id, provider, key_ref, app_id, team_id, key_id, topic, updated_at
         from tenant_push_provider where tenant_id = $1 and provider = $2",
        tenant,
        provider.as_str()
    )?)
}

async fn list(c: &mut Conn, tenant: Id) -> Result<Vec<ProviderRow>> {
    Ok(store::fetch_all!(
        c,
        ProviderRow,
        "select tenant_id, provider, key_ref, app_id, team_id, key_id, topic, updated_at
         from tenant_push_provider where tenant_id = $1 order by provider",
        tenant
    )?)
}

async fn upsert(c: &mut Conn, r: &ProviderRow) -> Result<()> {
    store::execute!(
        c,
        "insert into tenant_push_provider (tenant_id, provider, key_ref, app_id, team_id, key_id, topic, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (tenant_id, provider) do update set key_ref = excluded.key_ref,
           app_id = excluded.app_id, team_id = excluded.team_id, key_id = excluded.key_id,
           topic = excluded.topic, updated_at = excluded.updated_at",
        r.tenant_id,
        &r.provider,
        &r.key_ref,
        &r.app_id,
        &r.team_id,
        &r.key_id,
        &r.topic,
        r.updated_at
    )?;
    Ok(())
}

#[derive(InputObject)]
pub struct AppPushProviderInput {
    pub platform: PushPlatform,
    /// Where the key is read from (`file:/path` or `env:NAME`), never the key: FCM's
    /// service-account key file (its project is read from it), APNs' `.p8` key, Huawei's app
    /// secret.
    pub key_ref: String,
    /// Huawei: the app id (for another platform, `INVALID_INPUT`).
    pub app_id: Option<String>,
    /// APNs: the team id, the key's id and the app's bundle id (for another platform, `INVALID_INPUT`).
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub topic: Option<String>,
}

/// A company's credentials with one provider (references, never the secrets).
#[derive(SimpleObject)]
pub struct AppPushProvider {
    pub platform: PushPlatform,
    pub key_ref: String,
    pub app_id: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub topic: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl AppPushProvider {
    fn of(r: ProviderRow) -> Option<AppPushProvider> {
        Some(AppPushProvider {
            platform: PushPlatform::of(Provider::parse(&r.provider)?),
            key_ref: r.key_ref,
            app_id: r.app_id,
            team_id: r.team_id,
            key_id: r.key_id,
            topic: r.topic,
            updated_at: r.updated_at,
        })
    }
}

/// A setting of one provider's, trimmed; given for another provider it is `INVALID_INPUT`
/// rather than dropped unseen.
fn only(
    provider: Provider,
    owner: Provider,
    field: &str,
    value: Option<String>,
) -> Result<Option<String>> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value.is_some() && provider != owner {
        return Err(Error::invalid(
            field,
            format!("only for {}", owner.as_str()),
        ));
    }
    Ok(value)
}

#[derive(Default)]
pub struct AppPushProviderMutation;

#[derive(Default)]
pub struct AppPushProviderQuery;

#[Object]
impl AppPushProviderMutation {
    /// Sets the company's credentials with one app push provider, after checking that the key
    /// can be read and used (`PUSH_KEY_INVALID`, or `INVALID_INPUT` on `keyRef` when it cannot be
    /// read). Messages use them within 30 seconds.
    async fn set_app_push_provider(
        &self,
        ctx: &Context<'_>,
        input: AppPushProviderInput,
    ) -> Result<AppPushProvider> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let provider = input.platform.provider();
        let row = ProviderRow {
            tenant_id: v.tenant_id,
            provider: provider.as_str().to_owned(),
            key_ref: input.key_ref.trim().to_owned(),
            app_id: only(provider, Provider::Huawei, "appId", input.app_id)?,
            team_id: only(provider, Provider::Apns, "teamId", input.team_id)?,
            key_id: only(provider, Provider::Apns, "keyId", input.key_id)?,
            topic: only(provider, Provider::Apns, "topic", input.topic)?,
            updated_at: Utc::now(),
        };
        let d = deps(ctx)?;
        credentials(d.secrets.as_ref(), &row)?;
        let mut tx = d.db.begin().await?;
        upsert(&mut tx, &row).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "tenant_push_provider.set",
            "tenant_push_provider",
            &row.provider,
            serde_json::json!({
                "key_ref": row.key_ref,
                "app_id": row.app_id,
                "team_id": row.team_id,
                "key_id": row.key_id,
                "topic": row.topic,
            }),
        )
        .await?;
        tx.commit().await?;
        AppPushProvider::of(row).ok_or_else(|| Error::Internal("provider name".to_owned()))
    }

    /// Removes the company's credentials with one provider: its devices are then skipped (the
    /// next channel gets the message). Whether there were any.
    async fn delete_app_push_provider(
        &self,
        ctx: &Context<'_>,
        platform: PushPlatform,
    ) -> Result<bool> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let n = store::execute!(
            &mut tx,
            "delete from tenant_push_provider where tenant_id = $1 and provider = $2",
            v.tenant_id,
            platform.provider().as_str()
        )?;
        if n > 0 {
            audit::record(
                &mut tx,
                Some(v.tenant_id),
                Some(v.user_id),
                "tenant_push_provider.delete",
                "tenant_push_provider",
                platform.provider().as_str(),
                serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

#[Object]
impl AppPushProviderQuery {
    /// The company's app push providers.
    async fn app_push_providers(&self, ctx: &Context<'_>) -> Result<Vec<AppPushProvider>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(list(&mut c, v.tenant_id)
            .await?
            .into_iter()
            .filter_map(AppPushProvider::of)
            .collect())
    }
}
