//! Verifying what WeChat Pay sends: API responses and callbacks carry `Wechatpay-Timestamp`,
//! `Wechatpay-Nonce`, `Wechatpay-Signature` and `Wechatpay-Serial`; the signature is SHA256-RSA
//! over `timestamp\nnonce\nbody\n`.
//!
//! The serial names the key: a WeChat Pay public key id (`PUB_KEY_ID_…`, the only mode new
//! merchants get) or the serial of a platform certificate. During a migration WeChat signs with
//! either, so both are accepted at the same time.

use std::collections::HashMap;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{Error, Result, der, pem};

/// How far `Wechatpay-Timestamp` may be from now.
pub const WINDOW_SECS: i64 = 5 * 60;

/// The signature headers of a response or callback.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub serial: &'a str,
    pub body: &'a [u8],
}

/// The keys a merchant accepts WeChat Pay's signatures from, by serial or public key id.
#[derive(Default, Clone)]
pub struct Verifier {
    keys: HashMap<String, Vec<u8>>,
}

impl Verifier {
    /// Adds the WeChat Pay public key (`-----BEGIN PUBLIC KEY-----`) with its id.
    pub fn add_public_key(&mut self, id: &str, pem_text: &str) -> Result<()> {
        if !id.starts_with("PUB_KEY_ID_") {
            return Err(Error::KeyInvalid(
                "a WeChat Pay public key id starts with PUB_KEY_ID_".into(),
            ));
        }
        let der = pem::one(pem_text, "PUBLIC KEY")?;
        self.keys.insert(id.to_owned(), der);
        Ok(())
    }

    /// Adds every platform certificate in `pem_text`, each under its serial number. Returns the
    /// serials added.
    pub fn add_platform_certificates(&mut self, pem_text: &str) -> Result<Vec<String>> {
        let mut serials = Vec::new();
        for cert in pem::blocks(pem_text, "CERTIFICATE")? {
            let (serial, spki) = der::certificate_serial_and_key(&cert)?;
            self.keys.insert(serial.clone(), spki);
            serials.push(serial);
        }
        if serials.is_empty() {
            return Err(Error::KeyInvalid("no certificate found".into()));
        }
        Ok(serials)
    }

    /// Every key id and certificate serial accepted.
    pub fn serials(&self) -> impl Iterator<Item = String> + '_ {
        self.keys.keys().cloned()
    }

    pub fn knows(&self, serial: &str) -> bool {
        self.keys.contains_key(serial)
    }

    /// Checks a fresh response or callback: the signature and the 5-minute window around `now`
    /// (Unix seconds).
    pub fn verify(&self, s: &Signed<'_>, now: i64) -> Result<()> {
        let ts: i64 = s
            .timestamp
            .trim()
            .parse()
            .map_err(|_| Error::SignatureInvalid)?;
        if (now - ts).abs() > WINDOW_SECS {
            return Err(Error::TimestampSkew);
        }
        self.verify_stored(s)
    }

    /// Checks the signature only: for a notification stored earlier and verified again later.
    pub fn verify_stored(&self, s: &Signed<'_>) -> Result<()> {
        let key = self
            .keys
            .get(s.serial.trim())
            .ok_or_else(|| Error::UnknownSerial(s.serial.trim().to_owned()))?;
        let signature = STANDARD
            .decode(s.signature.trim())
            .map_err(|_| Error::SignatureInvalid)?;
        let mut message = Vec::with_capacity(s.body.len() + 64);
        message.extend_from_slice(s.timestamp.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(s.nonce.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(s.body);
        message.push(b'\n');
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(&message, &signature)
            .map_err(|_| Error::SignatureInvalid)
    }
}
