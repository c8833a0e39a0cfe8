//! A tenant's identities at the providers, with their keys parsed once: the WeChat Pay merchant
//! and the Alipay app. Built by the caller from the secret files it resolved.

use minigate_store::Id;

use crate::{
    Error, Result,
    alipay::{AlipayKey, AppKey},
    wechat::{sign::MerchantKey, verify::Verifier},
};

/// The key material of a WeChat Pay merchant, as configured.
pub struct WechatKeys<'a> {
    pub merchant_serial: &'a str,
    pub private_key_pem: &'a str,
    /// 32 ASCII characters.
    pub apiv3_key: &'a str,
    /// The WeChat Pay public key (`PUB_KEY_ID_…`, PEM).
    pub public_key: Option<(&'a str, &'a str)>,
    /// Platform certificates (PEM, one or more).
    pub platform_certificates: Option<&'a str>,
}

/// A WeChat Pay merchant, ready to sign requests and verify what WeChat Pay sends.
pub struct WechatMerchant {
    pub tenant_id: Id,
    pub mch_id: String,
    /// The app (mini-program or official account) orders are made for.
    pub app_id: String,
    pub key: MerchantKey,
    pub verifier: Verifier,
    apiv3_key: Vec<u8>,
}

impl std::fmt::Debug for WechatMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatMerchant")
            .field("tenant_id", &self.tenant_id)
            .field("mch_id", &self.mch_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl WechatMerchant {
    pub fn new(tenant_id: Id, mch_id: &str, app_id: &str, keys: &WechatKeys<'_>) -> Result<Self> {
        let key = MerchantKey::from_pem(mch_id, keys.merchant_serial, keys.private_key_pem)?;
        if keys.apiv3_key.len() != 32 {
            return Err(Error::KeyInvalid("the APIv3 key has 32 characters".into()));
        }
        let mut verifier = Verifier::default();
        if let Some((id, pem)) = keys.public_key {
            verifier.add_public_key(id, pem)?;
        }
        if let Some(certs) = keys.platform_certificates {
            verifier.add_platform_certificates(certs)?;
        }
        if keys.public_key.is_none() && keys.platform_certificates.is_none() {
            return Err(Error::KeyInvalid(
                "a WeChat Pay public key or platform certificates are needed to verify WeChat Pay"
                    .into(),
            ));
        }
        Ok(Self {
            tenant_id,
            mch_id: mch_id.to_owned(),
            app_id: app_id.to_owned(),
            key,
            verifier,
            apiv3_key: keys.apiv3_key.as_bytes().to_vec(),
        })
    }

    pub fn apiv3_key(&self) -> &[u8] {
        &self.apiv3_key
    }
}

/// An Alipay app, ready to sign requests and verify what Alipay sends.
pub struct AlipayMerchant {
    pub tenant_id: Id,
    pub app_id: String,
    pub key: AppKey,
    pub alipay_key: AlipayKey,
}

impl std::fmt::Debug for AlipayMerchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayMerchant")
            .field("tenant_id", &self.tenant_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl AlipayMerchant {
    pub fn new(
        tenant_id: Id,
        app_id: &str,
        app_private_pem: &str,
        alipay_public_pem: &str,
    ) -> Result<Self> {
        Ok(Self {
            tenant_id,
            app_id: app_id.to_owned(),
            key: AppKey::from_pem(app_private_pem)?,
            alipay_key: AlipayKey::from_pem(alipay_public_pem)?,
        })
    }
}
