//! Development and test RSA keys, and the one signature both payment providers use:
//! SHA256-RSA with PKCS#1 v1.5 padding, carried as base64.
//!
//! Keys are PEM text, as merchants configure them: the private key is PKCS#8
//! (`-----BEGIN PRIVATE KEY-----`), the public key SubjectPublicKeyInfo
//! (`-----BEGIN PUBLIC KEY-----`).

use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};

/// A freshly generated 2048-bit RSA key pair as PEM text.
#[derive(Clone)]
pub struct RsaPem {
    pub private_pem: String,
    pub public_pem: String,
}

impl std::fmt::Debug for RsaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPem")
            .field("private_pem", &"[redacted]")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

impl RsaPem {
    /// Generates a new key pair (takes a few tens of milliseconds).
    pub fn generate() -> RsaPem {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("RSA key generation failed: {e}"));
        let private: Pkcs8V1Der<'static> = key
            .as_der()
            .unwrap_or_else(|e| panic!("RSA private key cannot be encoded: {e}"));
        let public: PublicKeyX509Der<'static> = key
            .public_key()
            .as_der()
            .unwrap_or_else(|e| panic!("RSA public key cannot be encoded: {e}"));
        RsaPem {
            private_pem: pem_encode("PRIVATE KEY", private.as_ref()),
            public_pem: pem_encode("PUBLIC KEY", public.as_ref()),
        }
    }

    /// A self-signed X.509 certificate (`-----BEGIN CERTIFICATE-----`) for this key, with the
    /// given serial number (hex, as WeChat Pay writes platform certificate serials) and common
    /// name, valid from yesterday for ten years. What a WeChat Pay platform certificate looks
    /// like to a merchant that only reads its serial and public key.
    pub fn certificate(&self, serial_hex: &str, common_name: &str) -> String {
        let signer = RsaSigner::from_pem(&self.private_pem);
        let spki = pem_decode(&self.public_pem, "PUBLIC KEY")
            .unwrap_or_else(|| panic!("RsaPem holds no PUBLIC KEY block"));
        let der = der::self_signed_certificate(&signer, serial_hex, common_name, &spki);
        pem_encode("CERTIFICATE", &der)
    }
}

/// PEM text: base64 of `der` in lines of 64 characters between BEGIN and END lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER body of the first `label` block in `text`, if there is one and it is valid base64.
pub fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let after = text.split_once(&begin)?.1;
    let body = after.split_once(&end)?.0;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok()
}

/// A private key that signs, shared cheaply between the fake's state and its tasks.
#[derive(Clone)]
pub(crate) struct RsaSigner(Arc<KeyPair>);

impl RsaSigner {
    /// Panics on a key that is not PKCS#8 RSA: a fake configured wrongly cannot do anything
    /// useful, and the test that configured it should fail right there.
    pub(crate) fn from_pem(private_pem: &str) -> RsaSigner {
        let der = pem_decode(private_pem, "PRIVATE KEY")
            .unwrap_or_else(|| panic!("not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)"));
        let key = KeyPair::from_pkcs8(&der)
            .unwrap_or_else(|e| panic!("not an RSA PKCS#8 private key: {e}"));
        RsaSigner(Arc::new(key))
    }

    /// The raw signature bytes.
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
            .unwrap_or_else(|e| panic!("RSA signing failed: {e}"));
        sig
    }

    /// The signature, base64-encoded.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.sign_raw(message))
    }
}

/// A public key (SubjectPublicKeyInfo DER) that checks signatures.
#[derive(Clone)]
pub(crate) struct RsaVerifier(Vec<u8>);

impl RsaVerifier {
    /// Panics on text without a PUBLIC KEY block, for the same reason as [`RsaSigner::from_pem`].
    pub(crate) fn from_pem(public_pem: &str) -> RsaVerifier {
        RsaVerifier(
            pem_decode(public_pem, "PUBLIC KEY")
                .unwrap_or_else(|| panic!("not a PEM public key (BEGIN PUBLIC KEY)")),
        )
    }

    /// Whether `signature_b64` is this key's signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.0)
            .verify(message, &sig)
            .is_ok()
    }
}

/// A fresh P-256 key as Apple hands out an APNs auth key (a `.p8` file): PKCS#8 PEM text
/// (`-----BEGIN PRIVATE KEY-----`), with its public key as the uncompressed point
/// (`04 || x || y`, 65 bytes), which checks ES256 signatures.
pub fn ec_p256_p8() -> (String, Vec<u8>) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap_or_else(|e| panic!("P-256 key generation failed: {e}"));
    let pkcs8 = key
        .to_pkcs8v1()
        .unwrap_or_else(|e| panic!("P-256 private key cannot be encoded: {e}"));
    (
        pem_encode("PRIVATE KEY", pkcs8.as_ref()),
        key.public_key().as_ref().to_vec(),
    )
}

/// A JWT (JWS compact serialization) taken apart, before any check of its signature.
pub(crate) struct Jwt<'a> {
    pub(crate) header: serde_json::Value,
    pub(crate) claims: serde_json::Value,
    /// `base64url(header) "." base64url(claims)`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
}

/// Splits a JWT into its three base64url parts (no padding, as RFC 7515 writes them) and
/// decodes them; `None` unless there are exactly three parts, the first two JSON objects.
pub(crate) fn decode_jwt(token: &str) -> Option<Jwt<'_>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, claims) = signing_input.split_once('.')?;
    let object = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object)
    };
    Some(Jwt {
        header: object(header)?,
        claims: object(claims)?,
        signing_input,
        signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
    })
}

/// A different, still well-formed signature: what a tampered answer carries.
pub(crate) fn corrupt_signature(signature_b64: &str) -> String {
    let mut raw = STANDARD.decode(signature_b64).unwrap_or_default();
    if let Some(first) = raw.first_mut() {
        *first ^= 0x01;
    }
    STANDARD.encode(raw)
}

/// Just enough DER to write a self-signed certificate.
mod der {
    use super::{Duration, RsaSigner, Utc};

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap_or(0));
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11) with NULL parameters.
    fn sha256_with_rsa() -> Vec<u8> {
        let oid = tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        );
        seq(&[&oid, &[0x05, 0x00]])
    }

    /// A Name with one commonName (2.5.4.3).
    fn name(common_name: &str) -> Vec<u8> {
        let cn_oid = tlv(0x06, &[0x55, 0x04, 0x03]);
        let atv = seq(&[&cn_oid, &tlv(0x0c, common_name.as_bytes())]);
        seq(&[&tlv(0x31, &atv)])
    }

    fn serial(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex
            .bytes()
            .filter_map(|b| char::from(b).to_digit(16))
            .filter_map(|d| u8::try_from(d).ok())
            .collect();
        let mut bytes: Vec<u8> = digits
            .rchunks(2)
            .rev()
            .map(|pair| pair.iter().fold(0u8, |acc, d| (acc << 4) | d))
            .collect();
        if bytes.is_empty() {
            bytes.push(1);
        }
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        tlv(0x02, &bytes)
    }

    fn utc_time(offset: Duration) -> Vec<u8> {
        let t = Utc::now() + offset;
        tlv(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    }

    pub(super) fn self_signed_certificate(
        key: &RsaSigner,
        serial_hex: &str,
        common_name: &str,
        spki: &[u8],
    ) -> Vec<u8> {
        let version = tlv(0xa0, &tlv(0x02, &[0x02]));
        let alg = sha256_with_rsa();
        let name = name(common_name);
        let validity = seq(&[
            &utc_time(Duration::days(-1)),
            &utc_time(Duration::days(3650)),
        ]);
        let tbs = seq(&[
            &version,
            &serial(serial_hex),
            &alg,
            &name,
            &validity,
            &name,
            spki,
        ]);
        let mut bits = vec![0u8];
        bits.extend(key.sign_raw(&tbs));
        seq(&[&tbs, &alg, &tlv(0x03, &bits)])
    }
}
