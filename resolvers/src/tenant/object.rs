use async_graphql::{Context, ID, Object, SimpleObject};

use super::db::{self, AlipayRow, AppRow, TenantRow, WechatPayRow};
use crate::{Result, viewer::deps};

pub struct Tenant(pub TenantRow);

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Mini-programs and official accounts (operators only).
    async fn apps(&self, ctx: &Context<'_>) -> Result<Vec<TenantApp>> {
        crate::viewer::viewer(ctx)?.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(db::list_apps(&mut c, self.0.id)
            .await?
            .into_iter()
            .map(TenantApp::from)
            .collect())
    }
    /// The WeChat Pay merchant (operators only).
    async fn wechat_pay(&self, ctx: &Context<'_>) -> Result<Option<WechatPayMerchant>> {
        crate::viewer::viewer(ctx)?.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(db::find_wechat_pay(&mut c, self.0.id)
            .await?
            .map(WechatPayMerchant::from))
    }
    /// The Alipay app (operators only).
    async fn alipay(&self, ctx: &Context<'_>) -> Result<Option<AlipayApp>> {
        crate::viewer::viewer(ctx)?.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(db::find_alipay(&mut c, self.0.id)
            .await?
            .map(AlipayApp::from))
    }
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    Miniprogram,
    OfficialAccount,
}

impl AppKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AppKind::Miniprogram => db::MINIPROGRAM,
            AppKind::OfficialAccount => db::OFFICIAL_ACCOUNT,
        }
    }
}

#[derive(SimpleObject)]
pub struct TenantApp {
    pub kind: AppKind,
    pub app_id: String,
    pub name: String,
    /// Where the app secret is read from (`env:NAME` or `file:/path`); never the secret.
    pub secret_ref: String,
    /// An official account's callback token, as a reference like `secretRef`.
    pub oa_token_ref: Option<String>,
    /// An official account's EncodingAESKey (safe mode), as a reference like `secretRef`.
    pub oa_aes_key_ref: Option<String>,
}

impl From<AppRow> for TenantApp {
    fn from(r: AppRow) -> Self {
        Self {
            kind: if r.kind == db::OFFICIAL_ACCOUNT {
                AppKind::OfficialAccount
            } else {
                AppKind::Miniprogram
            },
            app_id: r.app_id,
            name: r.name,
            secret_ref: r.secret_ref,
            oa_token_ref: r.oa_token_ref,
            oa_aes_key_ref: r.oa_aes_key_ref,
        }
    }
}

#[derive(SimpleObject)]
pub struct WechatPayMerchant {
    pub mch_id: String,
    pub sub_mch_id: Option<String>,
    pub app_id: String,
    pub merchant_serial: String,
    pub private_key_ref: String,
    pub apiv3_key_ref: String,
    pub public_key_id: Option<String>,
    pub public_key_ref: Option<String>,
    pub platform_certs_ref: Option<String>,
}

impl From<WechatPayRow> for WechatPayMerchant {
    fn from(r: WechatPayRow) -> Self {
        Self {
            mch_id: r.mch_id,
            sub_mch_id: Some(r.sub_mch_id).filter(|s| !s.is_empty()),
            app_id: r.app_id,
            merchant_serial: r.merchant_serial,
            private_key_ref: r.private_key_ref,
            apiv3_key_ref: r.apiv3_key_ref,
            public_key_id: r.public_key_id,
            public_key_ref: r.public_key_ref,
            platform_certs_ref: r.platform_certs_ref,
        }
    }
}

#[derive(SimpleObject)]
pub struct AlipayApp {
    pub app_id: String,
    pub private_key_ref: String,
    pub alipay_public_key_ref: String,
}

impl From<AlipayRow> for AlipayApp {
    fn from(r: AlipayRow) -> Self {
        Self {
            app_id: r.app_id,
            private_key_ref: r.private_key_ref,
            alipay_public_key_ref: r.alipay_public_key_ref,
        }
    }
}
