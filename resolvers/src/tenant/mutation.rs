use async_graphql::{Context, InputObject, Object};

use super::{
    TenantApp,
    db::{self, AlipayRow, WechatPayRow},
    object::{AlipayApp, AppKind, WechatPayMerchant},
};
use crate::{
    Error, Result, audit,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct TenantMutation;

#[derive(InputObject)]
pub struct WechatPayInput {
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

#[derive(InputObject)]
pub struct AlipayInput {
    pub app_id: String,
    pub private_key_ref: String,
    pub alipay_public_key_ref: String,
}

#[Object]
impl TenantMutation {
    /// Adds or updates a mini-program or official account of the operator's company. An official
    /// account's callback (`/wechat/oa/callback/{appId}`) needs `oaTokenRef`, and in safe mode
    /// `oaAesKeyRef` (its EncodingAESKey); each left out stays as it was, an empty one is removed.
    // The settings are the API's arguments, one each.
    #[allow(clippy::too_many_arguments)]
    async fn upsert_tenant_app(
        &self,
        ctx: &Context<'_>,
        kind: AppKind,
        app_id: String,
        name: String,
        secret_ref: String,
        oa_token_ref: Option<String>,
        oa_aes_key_ref: Option<String>,
    ) -> Result<TenantApp> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        if kind != AppKind::OfficialAccount && oa_token_ref.is_some() {
            return Err(Error::invalid("oaTokenRef", "only for an official account"));
        }
        if kind != AppKind::OfficialAccount && oa_aes_key_ref.is_some() {
            return Err(Error::invalid(
                "oaAesKeyRef",
                "only for an official account",
            ));
        }
        let mut tx = deps(ctx)?.db.begin().await?;
        let mut app = db::upsert_app(
            &mut tx,
            v.tenant_id,
            kind.as_str(),
            &app_id,
            &name,
            &secret_ref,
        )
        .await?;
        if oa_token_ref.is_some() || oa_aes_key_ref.is_some() {
            db::set_oa_server(
                &mut tx,
                &app.app_id,
                oa_token_ref.as_deref(),
                oa_aes_key_ref.as_deref(),
            )
            .await?;
            app = db::find_app(&mut tx, &app.app_id, kind.as_str())
                .await?
                .ok_or(Error::NotFound("app"))?;
        }
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "tenant_app.upsert",
            "tenant_app",
            &app.app_id,
            serde_json::json!({
                "kind": app.kind,
                "secret_ref": app.secret_ref,
                "oa_token_ref": app.oa_token_ref,
                "oa_aes_key_ref": app.oa_aes_key_ref,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(app.into())
    }

    /// Sets the WeChat Pay merchant that signs this company's orders.
    async fn set_wechat_pay_merchant(
        &self,
        ctx: &Context<'_>,
        input: WechatPayInput,
    ) -> Result<WechatPayMerchant> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let row = WechatPayRow {
            tenant_id: v.tenant_id,
            mch_id: input.mch_id.trim().to_owned(),
            sub_mch_id: input.sub_mch_id.unwrap_or_default().trim().to_owned(),
            app_id: input.app_id.trim().to_owned(),
            merchant_serial: input.merchant_serial.trim().to_owned(),
            private_key_ref: input.private_key_ref,
            apiv3_key_ref: input.apiv3_key_ref,
            public_key_id: input.public_key_id,
            public_key_ref: input.public_key_ref,
            platform_certs_ref: input.platform_certs_ref,
        };
        let mut tx = deps(ctx)?.db.begin().await?;
        db::set_wechat_pay(&mut tx, &row).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "tenant_wechat_pay.set",
            "tenant",
            &v.tenant_id.to_string(),
            serde_json::json!({ "mch_id": row.mch_id, "sub_mch_id": row.sub_mch_id }),
        )
        .await?;
        tx.commit().await?;
        // The next order or notification reads the new identity.
        deps(ctx)?.payments.merchants.invalidate();
        Ok(row.into())
    }

    /// Sets the Alipay app that signs this company's orders.
    async fn set_alipay_app(&self, ctx: &Context<'_>, input: AlipayInput) -> Result<AlipayApp> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let row = AlipayRow {
            tenant_id: v.tenant_id,
            app_id: input.app_id.trim().to_owned(),
            private_key_ref: input.private_key_ref,
            alipay_public_key_ref: input.alipay_public_key_ref,
        };
        let mut tx = deps(ctx)?.db.begin().await?;
        db::set_alipay(&mut tx, &row).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "tenant_alipay.set",
            "tenant",
            &v.tenant_id.to_string(),
            serde_json::json!({ "app_id": row.app_id }),
        )
        .await?;
        tx.commit().await?;
        // The next order or notification reads the new identity.
        deps(ctx)?.payments.merchants.invalidate();
        Ok(row.into())
    }
}
