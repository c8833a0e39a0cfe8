//! Access tokens (JWT, HS256) and refresh-token secrets.

use std::time::Duration;

use aws_lc_rs::{digest, hmac, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use minigate_store::Id;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Role, Viewer};

pub struct TokenConfig {
    /// At least 32 bytes; shared by every replica.
    pub secret: SecretString,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token may still be presented (a retry after a lost response).
    pub reuse_grace: Duration,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    successor_key: hmac::Key,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub reuse_grace: Duration,
}

const ISSUER: &str = "minigate";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Id,
    tid: Id,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    bid: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    did: Option<Id>,
    sid: Id,
    iss: String,
    iat: i64,
    exp: i64,
}

impl Tokens {
    pub fn new(cfg: TokenConfig) -> Result<Self> {
        let secret = cfg.secret.expose_secret().as_bytes();
        if secret.len() < 32 {
            return Err(Error::Internal(
                "the JWT secret must have at least 32 bytes".into(),
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            successor_key: hmac::Key::new(
                hmac::HMAC_SHA256,
                &[secret, b"/refresh-successor"].concat(),
            ),
            access_ttl: cfg.access_ttl,
            refresh_ttl: cfg.refresh_ttl,
            reuse_grace: cfg.reuse_grace,
        })
    }

    /// A signed access token for `viewer`. The same viewer and `issued_at` (to the second) give
    /// the same token, which is what lets a retried refresh receive the very same pair.
    pub fn access_token(
        &self,
        viewer: &Viewer,
        issued_at: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let iat = issued_at.timestamp();
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(7200);
        let claims = Claims {
            sub: viewer.user_id,
            tid: viewer.tenant_id,
            role: viewer.role,
            bid: viewer.branch_id,
            did: viewer.driver_id,
            sid: viewer.session_id,
            iss: ISSUER.to_owned(),
            iat,
            exp: iat + ttl,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("jwt encode: {e}")))?;
        let expires = DateTime::from_timestamp(iat + ttl, 0).unwrap_or(issued_at);
        Ok((token, expires))
    }

    /// Verifies signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Viewer> {
        self.verify_until(token).map(|(v, _)| v)
    }

    /// Like [`Tokens::verify`], with the moment the token expires (a socket closes then).
    pub fn verify_until(&self, token: &str) -> Result<(Viewer, DateTime<Utc>)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => Error::TokenExpired,
                _ => Error::TokenInvalid,
            })?;
        let c = data.claims;
        let expires = DateTime::from_timestamp(c.exp, 0).unwrap_or_else(Utc::now);
        Ok((
            Viewer {
                user_id: c.sub,
                tenant_id: c.tid,
                role: c.role,
                branch_id: c.bid,
                driver_id: c.did,
                session_id: c.sid,
            },
            expires,
        ))
    }

    /// A fresh random refresh token (256 bits).
    pub fn new_refresh_token() -> Result<String> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Internal("no randomness".into()))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token that replaces `raw` on rotation. Derived rather than random so that a client
    /// retrying with `raw` inside the grace window gets the same successor, while only hashes
    /// are stored.
    pub fn successor(&self, raw: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.successor_key, raw.as_bytes()).as_ref())
    }

    /// What the database keeps of a refresh token.
    pub fn hash(raw: &str) -> String {
        digest::digest(&digest::SHA256, raw.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &str) -> Tokens {
        Tokens::new(TokenConfig {
            secret: SecretString::from(secret.to_owned()),
            access_ttl: Duration::from_secs(7200),
            refresh_ttl: Duration::from_secs(30 * 86400),
            reuse_grace: Duration::from_secs(60),
        })
        .unwrap()
    }

    fn viewer() -> Viewer {
        Viewer {
            user_id: Id::new(),
            tenant_id: Id::new(),
            role: Role::Staff,
            branch_id: Some(Id::new()),
            driver_id: None,
            session_id: Id::new(),
        }
    }

    #[test]
    fn access_tokens_round_trip_and_are_deterministic() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let v = viewer();
        let now = Utc::now();
        let (a, _) = t.access_token(&v, now).unwrap();
        let (b, _) = t.access_token(&v, now).unwrap();
        assert_eq!(a, b);
        assert_eq!(t.verify(&a).unwrap(), v);
    }

    #[test]
    fn forged_expired_and_garbage_tokens_are_refused() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let other = tokens("another-secret-another-secret-xx");
        let v = viewer();
        let (forged, _) = other.access_token(&v, Utc::now()).unwrap();
        assert!(matches!(t.verify(&forged), Err(Error::TokenInvalid)));
        let (old, _) = t
            .access_token(&v, Utc::now() - chrono::Duration::hours(3))
            .unwrap();
        assert!(matches!(t.verify(&old), Err(Error::TokenExpired)));
        assert!(matches!(t.verify("not.a.jwt"), Err(Error::TokenInvalid)));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(
            Tokens::new(TokenConfig {
                secret: SecretString::from("short".to_owned()),
                access_ttl: Duration::from_secs(1),
                refresh_ttl: Duration::from_secs(1),
                reuse_grace: Duration::from_secs(1),
            })
            .is_err()
        );
    }

    #[test]
    fn successors_are_stable_and_distinct() {
        let t = tokens("0123456789abcdef0123456789abcdef");
        let raw = Tokens::new_refresh_token().unwrap();
        assert_eq!(t.successor(&raw), t.successor(&raw));
        assert_ne!(t.successor(&raw), raw);
        assert_ne!(Tokens::hash(&raw), Tokens::hash(&t.successor(&raw)));
        assert_eq!(Tokens::hash("x").len(), 64);
    }
}
