//! The WeChat Pay merchant the payment benchmarks configure, as the e2e tests do: public-key
//! mode, keys generated for the run and stored as files the tenant's secret references name.

use std::path::Path;

use anyhow::Context;
use minigate_fakes::keys::RsaPem;
use minigate_resolvers::tenant::db::{self as tenant_db, WechatPayRow};
use minigate_store::{Db, Id};

pub const JWT_SECRET: &str = "minigate-bench-secret-0123456789abcdef";
pub const MCH_ID: &str = "1900009191";
pub const APP_ID: &str = "wxd678efh567hg6787";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000091912024";
pub const MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD3A1D4C5E";
pub const APIV3_KEY: &str = "k9Qv2Lm7Xp4Rt8Zw1Ny6Bc3Hd5Fg0Js2";

/// Writes `text` to `dir/name`; returns its `file:` reference.
pub fn secret_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(format!("file:{}", path.display()))
}

/// A tenant whose WeChat Pay merchant signs with `merchant_key` and believes `wxpay` (WeChat
/// Pay's public key).
pub async fn wechat_pay_tenant(
    db: &Db,
    dir: &Path,
    wxpay: &RsaPem,
    merchant_key: &RsaPem,
) -> anyhow::Result<Id> {
    let mut tx = db.begin().await?;
    let tenant = tenant_db::insert_tenant(&mut tx, "bench", "Bench Car Rental")
        .await
        .context("inserting the tenant")?;
    tenant_db::set_wechat_pay(
        &mut tx,
        &WechatPayRow {
            tenant_id: tenant.id,
            mch_id: MCH_ID.into(),
            sub_mch_id: String::new(),
            app_id: APP_ID.into(),
            merchant_serial: MERCHANT_SERIAL.into(),
            private_key_ref: secret_file(dir, "apiclient_key.pem", &merchant_key.private_pem)?,
            apiv3_key_ref: secret_file(dir, "apiv3.key", APIV3_KEY)?,
            public_key_id: Some(PUB_KEY_ID.into()),
            public_key_ref: Some(secret_file(dir, "wxpay_pub.pem", &wxpay.public_pem)?),
            platform_certs_ref: None,
        },
    )
    .await
    .context("configuring the WeChat Pay merchant")?;
    tx.commit().await?;
    Ok(tenant.id)
}
