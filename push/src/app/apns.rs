//! Apple Push Notification service, provider API over HTTP/2 (`POST /3/device/{token}`), with
//! token-based authentication.
//!
//! The provider token is a JWT (ES256, header `alg` and `kid`, claims `iss` = team id and `iat`)
//! signed with the team's `.p8` key. Apple refuses one older than an hour
//! (`ExpiredProviderToken`) and one renewed more often than every 20 minutes
//! (`TooManyProviderTokenUpdates`), so there is one per team and key for all replicas, kept in
//! the shared [`TokenStore`]: made by whichever replica first needs it, used by all, and renewed
//! once it is [`RENEW_AFTER`] old. An `ExpiredProviderToken` answer renews it at once, but only
//! if it is at least [`MIN_RENEWAL_GAP`] old; a younger one is Apple disagreeing with our clock,
//! and renewing would only earn a 429.
//!
//! Sandbox (development builds) and production are two hosts; a device token belongs to one, and
//! `BadDeviceToken` from one says nothing about the other.
//!
//! | HTTP | reason | what it means here |
//! |---|---|---|
//! | 410 | `Unregistered`, `ExpiredToken` | the app is gone from the device: permanent, token removed |
//! | 400 | `BadDeviceToken`, `DeviceTokenNotForTopic` | not a token of this app in this environment: permanent, token removed |
//! | 400 | `MissingTopic`, `BadTopic`, `TopicDisallowed` | the app's bundle id is configured wrong: credential |
//! | 400, 413 | others (`PayloadEmpty`, `BadCollapseId`, `PayloadTooLarge`, …) | the message was refused: permanent |
//! | 403 | `InvalidProviderToken`, `MissingProviderToken`, `BadCertificate…`, … | the key, team or key id are wrong: credential |
//! | 429 | `TooManyRequests`, `TooManyProviderTokenUpdates` | transient, honouring `Retry-After` |
//! | 500, 503 | `InternalServerError`, `ServiceUnavailable`, `Shutdown` | transient |

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{
    AppMessage, AppPushConfig, Clock, DeviceAnswer, Environment, Reply, base_url, credential,
    exchange, http_client, jwt, permanent, token_unavailable,
};
use crate::outcome::SendOutcome;
use crate::tokens::{Refresh, TokenStore};
use crate::{Error, Result};

const PROVIDER: &str = "apns";
/// A provider token is renewed once it is this old (Apple: every 20 to 60 minutes).
pub const RENEW_AFTER: Duration = Duration::from_secs(50 * 60);
/// Never renewed sooner than this after the last one (Apple answers 429 otherwise).
pub const MIN_RENEWAL_GAP: Duration = Duration::from_secs(20 * 60);
/// The shared store forgets a token after this, well before Apple's hour is over.
const STORE_TTL: Duration = Duration::from_secs(55 * 60);
/// How long Apple keeps trying to deliver a message to a device that is off.
const EXPIRATION_SECS: i64 = 24 * 3600;

/// A team's signing key and the app it sends for.
#[derive(Clone)]
pub struct ApnsKey {
    pub team_id: String,
    pub key_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    key: Arc<EncodingKey>,
}

impl std::fmt::Debug for ApnsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ApnsKey {
    /// From the `.p8` text Apple hands out (a PKCS#8 P-256 key), its key id, the team and the
    /// app's bundle id.
    pub fn new(team_id: &str, key_id: &str, topic: &str, p8: &str) -> Result<ApnsKey> {
        let invalid = |reason: &str| Error::PushKeyInvalid {
            provider: PROVIDER,
            reason: reason.to_owned(),
        };
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !plain(team_id) || !plain(key_id) {
            return Err(invalid(
                "team id and key id are letters and digits (10 of each)",
            ));
        }
        if topic.is_empty() || topic.contains(char::is_whitespace) {
            return Err(invalid("the topic is the app's bundle id"));
        }
        Ok(ApnsKey {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            topic: topic.to_owned(),
            key: Arc::new(jwt::key(PROVIDER, Algorithm::ES256, p8)?),
        })
    }

    fn store_key(&self) -> String {
        format!("apns:provider_token:{}:{}", self.team_id, self.key_id)
    }
}

/// The APNs client. Cheap to clone: clones share the HTTP/2 connections and the token store.
#[derive(Clone)]
pub struct ApnsClient {
    http: reqwest::Client,
    production: Arc<str>,
    sandbox: Arc<str>,
    tokens: TokenStore,
    refresh: Arc<tokio::sync::Mutex<()>>,
    clock: Clock,
}

impl ApnsClient {
    pub(crate) fn new(config: &AppPushConfig, tokens: TokenStore, clock: Clock) -> Result<Self> {
        Ok(ApnsClient {
            http: http_client(PROVIDER, config.timeout, true)?,
            production: base_url("apns production url", &config.apns_production)?,
            sandbox: base_url("apns sandbox url", &config.apns_sandbox)?,
            tokens,
            refresh: Arc::new(tokio::sync::Mutex::new(())),
            clock,
        })
    }

    /// Sends `msg` to one device token of `key`'s app in `env`.
    pub async fn send(
        &self,
        key: &ApnsKey,
        env: Environment,
        device: &str,
        msg: &AppMessage,
    ) -> DeviceAnswer {
        let mut token = match self.provider_token(key, None).await {
            Ok(token) => token,
            Err(outcome) => return DeviceAnswer::kept(outcome),
        };
        let base = match env {
            Environment::Production => &self.production,
            Environment::Sandbox => &self.sandbox,
        };
        let url = format!("{base}/3/device/{device}");
        let body = payload(msg);
        let expiration = ((self.clock)() + EXPIRATION_SECS).to_string();
        let mut renewed = false;
        loop {
            let mut request = self
                .http
                .post(&url)
                .header("authorization", format!("bearer {}", token.expose_secret()))
                .header("apns-topic", &key.topic)
                .header("apns-push-type", "alert")
                .header("apns-priority", if msg.urgent { "10" } else { "5" })
                .header("apns-expiration", &expiration)
                .header("apns-id", &msg.id)
                .json(&body);
            if let Some(collapse) = &msg.collapse_key {
                request = request.header("apns-collapse-id", collapse);
            }
            let Reply {
                status,
                wait,
                headers,
                body: bytes,
            } = match exchange(request).await {
                Ok(reply) => reply,
                Err(answer) => return answer,
            };
            let apns_id = headers
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status == 200 {
                return DeviceAnswer::kept(SendOutcome::Sent {
                    provider_msg_id: apns_id,
                });
            }
            let reason = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("reason")?.as_str().map(str::to_owned))
                .unwrap_or_default();
            if status == 403 && reason == "ExpiredProviderToken" && !renewed {
                token = match self.provider_token(key, Some(&token)).await {
                    Ok(token) => token,
                    Err(outcome) => return DeviceAnswer::kept(outcome),
                };
                renewed = true;
                continue;
            }
            return classify(status, &reason, wait, env);
        }
    }

    /// The team's provider token: the shared one while it is younger than [`RENEW_AFTER`] (and
    /// not `rejected`), else a new one made once for every replica. A rejected token younger
    /// than [`MIN_RENEWAL_GAP`] is not renewed.
    async fn provider_token(
        &self,
        key: &ApnsKey,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, SendOutcome> {
        let store_key = key.store_key();
        let now = (self.clock)();
        let renew_after = i64::try_from(RENEW_AFTER.as_secs()).unwrap_or(i64::MAX);
        let age = |t: &SecretString| jwt::issued_at(t.expose_secret()).map(|iat| now - iat);
        let is_rejected =
            |t: &SecretString| rejected.is_some_and(|r| r.expose_secret() == t.expose_secret());
        let usable = |t: &SecretString| !is_rejected(t) && age(t).is_some_and(|a| a < renew_after);
        if let Some(r) = rejected {
            let gap = i64::try_from(MIN_RENEWAL_GAP.as_secs()).unwrap_or(i64::MAX);
            let current = self.tokens.get(&store_key).await;
            let renewed_elsewhere = matches!(&current, Ok(Some(t)) if !is_rejected(t));
            if !renewed_elsewhere && age(r).is_some_and(|a| a < gap) {
                return Err(credential(
                    "APNS_ExpiredProviderToken",
                    format!(
                        "apple called a provider token made {}s ago expired; not renewed sooner than {} minutes (check this server's clock)",
                        age(r).unwrap_or_default(),
                        MIN_RENEWAL_GAP.as_secs() / 60
                    ),
                ));
            }
        }
        Refresh {
            store: &self.tokens,
            local: &self.refresh,
            key: &store_key,
            usable,
            service: "apns provider token",
        }
        .run(|| async {
            let claims = json!({ "iss": key.team_id, "iat": now });
            let token = jwt::sign(
                PROVIDER,
                Algorithm::ES256,
                &key.key_id,
                false,
                &claims,
                &key.key,
            )?;
            tracing::info!(team = %key.team_id, key = %key.key_id, "made a new apns provider token");
            Ok((SecretString::from(token), STORE_TTL))
        })
        .await
        .map_err(|e| token_unavailable(&e))
    }
}

/// The notification: `aps` with the alert (and the default sound), the data as custom keys
/// beside it.
fn payload(msg: &AppMessage) -> Value {
    let mut root = Map::new();
    for (k, v) in &msg.data {
        if k != "aps" {
            root.insert(k.clone(), Value::String(v.clone()));
        }
    }
    root.insert(
        "aps".to_owned(),
        json!({ "alert": { "title": msg.title, "body": msg.body }, "sound": "default" }),
    );
    Value::Object(root)
}

fn classify(status: u16, reason: &str, wait: Option<Duration>, env: Environment) -> DeviceAnswer {
    let name = if reason.is_empty() {
        format!("HTTP_{status}")
    } else {
        reason.to_owned()
    };
    let code = format!("APNS_{name}");
    let detail = format!("http {status} from apns {}: {reason}", env.as_str());
    match (status, reason) {
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
            DeviceAnswer::gone(code, detail)
        }
        (400, "MissingTopic" | "BadTopic" | "TopicDisallowed") | (403..=405, _) => {
            DeviceAnswer::kept(credential(code, detail))
        }
        (429 | 500.., _) => DeviceAnswer::kept(SendOutcome::Transient {
            code,
            detail,
            retry_after: wait,
        }),
        _ => DeviceAnswer::kept(permanent(code, detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_apple_disowns_are_removed() {
        for (status, reason) in [
            (410, "Unregistered"),
            (410, "ExpiredToken"),
            (400, "BadDeviceToken"),
            (400, "DeviceTokenNotForTopic"),
        ] {
            let a = classify(status, reason, None, Environment::Sandbox);
            assert!(a.token_gone, "{reason}");
            assert_eq!(a.outcome.code(), format!("APNS_{reason}"));
            assert_eq!(a.outcome.kind(), "PERMANENT");
        }
    }

    #[test]
    fn refusals_of_the_message_the_key_or_the_rate_are_classed_apart() {
        let kind = |status, reason| {
            let a = classify(
                status,
                reason,
                Some(Duration::from_secs(3)),
                Environment::Production,
            );
            assert!(!a.token_gone, "{reason}");
            a.outcome.kind()
        };
        assert_eq!(kind(400, "PayloadEmpty"), "PERMANENT");
        assert_eq!(kind(413, "PayloadTooLarge"), "PERMANENT");
        assert_eq!(kind(400, "BadTopic"), "CREDENTIAL");
        assert_eq!(kind(403, "InvalidProviderToken"), "CREDENTIAL");
        assert_eq!(kind(403, "ExpiredProviderToken"), "CREDENTIAL");
        assert_eq!(kind(429, "TooManyRequests"), "TRANSIENT");
        assert_eq!(kind(429, "TooManyProviderTokenUpdates"), "TRANSIENT");
        assert_eq!(kind(503, "ServiceUnavailable"), "TRANSIENT");
        assert_eq!(kind(500, ""), "TRANSIENT");
        let SendOutcome::Transient { retry_after, .. } = classify(
            429,
            "TooManyRequests",
            Some(Duration::from_secs(3)),
            Environment::Production,
        )
        .outcome
        else {
            panic!("not transient");
        };
        assert_eq!(retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_payload_puts_data_beside_aps_and_never_over_it() {
        let msg = AppMessage {
            id: "00000000-0000-0000-0000-000000000001".into(),
            title: "事故处理进度".into(),
            body: "维修中".into(),
            data: [
                ("accidentId".to_owned(), "a1".to_owned()),
                ("aps".to_owned(), "x".to_owned()),
            ]
            .into(),
            collapse_key: None,
            urgent: true,
        };
        let p = payload(&msg);
        assert_eq!(p["aps"]["alert"]["title"], "事故处理进度");
        assert_eq!(p["accidentId"], "a1");
        assert!(p["aps"].is_object());
    }

    #[test]
    fn ids_and_topic_are_checked_before_the_key() {
        for (team, key, topic) in [("", "K", "com.x"), ("T!", "K", "com.x"), ("T", "K", "")] {
            let e = ApnsKey::new(team, key, topic, "").unwrap_err();
            assert_eq!(e.code(), "PUSH_KEY_INVALID");
        }
    }
}
