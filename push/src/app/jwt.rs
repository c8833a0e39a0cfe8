//! The signed JWTs two providers want: Google's OAuth assertion (RS256, from the service
//! account's key) and Apple's provider token (ES256, from the `.p8` key).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::{Error, Result};

/// A private key read once and checked by signing with it, so that a wrong file is refused when
/// it is configured, not at the first message.
pub(crate) fn key(provider: &'static str, alg: Algorithm, pem: &str) -> Result<EncodingKey> {
    let invalid = |reason: String| Error::PushKeyInvalid { provider, reason };
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .map_err(|e| invalid(format!("not a PKCS#8 PEM private key: {e}")))?;
    jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({}), &key)
        .map_err(|e| invalid(format!("cannot sign with it: {e}")))?;
    Ok(key)
}

/// `claims` signed with `key`, the header naming the key by `kid`. `typ` is left out where the
/// provider documents a header of `alg` and `kid` only (Apple).
pub(crate) fn sign(
    provider: &'static str,
    alg: Algorithm,
    kid: &str,
    with_typ: bool,
    claims: &impl Serialize,
    key: &EncodingKey,
) -> Result<String> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    if !with_typ {
        header.typ = None;
    }
    jsonwebtoken::encode(&header, claims, key).map_err(|e| Error::PushKeyInvalid {
        provider,
        reason: format!("signing a token failed: {e}"),
    })
}

/// The `iat` claim of a token this process or another replica made (read, not verified: it is
/// our own, from our own cache).
pub(crate) fn issued_at(token: &str) -> Option<i64> {
    let claims = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iat")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_at_reads_the_claim_of_a_signed_token() {
        let key = EncodingKey::from_secret(b"k");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"iss": "T", "iat": 1_700_000_000}),
            &key,
        )
        .unwrap();
        assert_eq!(issued_at(&token), Some(1_700_000_000));
        assert_eq!(issued_at("not.a-token"), None);
        assert_eq!(issued_at(""), None);
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_with_its_code() {
        let Err(e) = key(
            "apns",
            Algorithm::ES256,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n",
        ) else {
            panic!("accepted garbage as a key");
        };
        assert_eq!(e.code(), "PUSH_KEY_INVALID");
        let Err(e) = key("fcm", Algorithm::RS256, "") else {
            panic!("accepted an empty key");
        };
        assert_eq!(e.code(), "PUSH_KEY_INVALID");
    }
}
