//! Signing what minigate sends to WeChat Pay: API requests, and the `paySign` of
//! `wx.requestPayment`. Both are SHA256-RSA (PKCS#1 v1.5) with the merchant's private key over
//! newline-terminated lines, base64-encoded.

use aws_lc_rs::{rand::SystemRandom, signature::RsaKeyPair};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{Error, Result, pem};

/// A merchant's API certificate key: the private key and the serial number of its certificate.
pub struct MerchantKey {
    pub mch_id: String,
    pub serial: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantKey")
            .field("mch_id", &self.mch_id)
            .field("serial", &self.serial)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl MerchantKey {
    /// From the PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) WeChat Pay issues as `apiclient_key.pem`.
    pub fn from_pem(mch_id: &str, serial: &str, pem_text: &str) -> Result<Self> {
        let der = pem::one(pem_text, "PRIVATE KEY")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| Error::KeyInvalid(format!("merchant key: {e}")))?;
        Ok(Self {
            mch_id: mch_id.to_owned(),
            serial: serial.to_owned(),
            key,
        })
    }

    fn sign(&self, message: &str) -> Result<String> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::KeyInvalid("merchant key cannot sign".into()))?;
        Ok(STANDARD.encode(sig))
    }

    /// The `Authorization` header of a request: `url` is the path with its query string, `body`
    /// the exact bytes sent (empty for GET).
    pub fn authorization(
        &self,
        method: &str,
        url: &str,
        timestamp: i64,
        nonce: &str,
        body: &str,
    ) -> Result<String> {
        let message = format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n");
        let signature = self.sign(&message)?;
        Ok(format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mch_id, self.serial
        ))
    }

    /// The `paySign` of `wx.requestPayment` for a JSAPI order (`package` is `prepay_id=…`).
    pub fn pay_sign(
        &self,
        app_id: &str,
        timestamp: i64,
        nonce: &str,
        package: &str,
    ) -> Result<String> {
        self.sign(&format!("{app_id}\n{timestamp}\n{nonce}\n{package}\n"))
    }
}
