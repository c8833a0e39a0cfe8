//! Alipay RSA2: SHA256-RSA over the parameters sorted by name and joined as `k=v&k=v`, leaving
//! out empty values and the signature itself (`sign`, and for notifications also `sign_type`).

use std::collections::BTreeMap;

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{Error, Result, pem};

/// The text that is signed.
pub fn signing_content(params: &BTreeMap<String, String>, leave_out: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !leave_out.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The app's private key (PKCS#8 PEM).
pub struct AppKey(RsaKeyPair);

impl AppKey {
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let der = pem::one(pem_text, "PRIVATE KEY")?;
        RsaKeyPair::from_pkcs8(&der)
            .map(AppKey)
            .map_err(|e| Error::KeyInvalid(format!("alipay app key: {e}")))
    }

    /// The `sign` of a request: every parameter but `sign` (`sign_type` included).
    pub fn sign_request(&self, params: &BTreeMap<String, String>) -> Result<String> {
        let content = signing_content(params, &["sign"]);
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                content.as_bytes(),
                &mut sig,
            )
            .map_err(|_| Error::KeyInvalid("alipay app key cannot sign".into()))?;
        Ok(STANDARD.encode(sig))
    }
}

/// Alipay's public key (`-----BEGIN PUBLIC KEY-----`).
#[derive(Clone)]
pub struct AlipayKey(Vec<u8>);

impl AlipayKey {
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        pem::one(pem_text, "PUBLIC KEY").map(AlipayKey)
    }

    /// Verifies an asynchronous notification's parameters (`sign` and `sign_type` left out).
    pub fn verify_notification(&self, params: &BTreeMap<String, String>) -> Result<()> {
        let sign = params.get("sign").ok_or(Error::SignatureInvalid)?;
        self.verify(
            signing_content(params, &["sign", "sign_type"]).as_bytes(),
            sign,
        )
    }

    /// Verifies a synchronous answer: the signature is over the raw JSON text of the response
    /// node, exactly as received.
    pub fn verify_response(&self, raw_node: &str, sign: &str) -> Result<()> {
        self.verify(raw_node.as_bytes(), sign)
    }

    fn verify(&self, message: &[u8], sign_b64: &str) -> Result<()> {
        let sig = STANDARD
            .decode(sign_b64.trim())
            .map_err(|_| Error::SignatureInvalid)?;
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.0)
            .verify(message, &sig)
            .map_err(|_| Error::SignatureInvalid)
    }
}
