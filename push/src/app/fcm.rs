//! Firebase Cloud Messaging, HTTP v1 API (`POST /v1/projects/{project}/messages:send`). The legacy
//! API with its server key was shut down in 2024 (DEPENDENCIES.md), hence this client.
//!
//! Authorisation is an OAuth2 access token that Google's token endpoint (the key file's
//! `token_uri`) gives for a JWT assertion signed with the service account's private key (RS256,
//! scope `firebase.messaging`). The account is built from the key file's text, which the gateway
//! reads through a secret reference, never from the process environment (`GOOGLE_APPLICATION_
//! CREDENTIALS` would tie every tenant to one project). Tokens are kept per process and
//! account, each fetched once for all concurrent sends; one that FCM refuses (401) is replaced
//! once and the message sent once more.
//!
//! FCM's errors come in Google's JSON error shape, with an `FcmError` detail naming the case:
//!
//! | HTTP | errorCode | what it means here |
//! |---|---|---|
//! | 404 | `UNREGISTERED` | the app is gone from the device: permanent, token removed |
//! | 400 | `INVALID_ARGUMENT` with a `message.token` field violation | not a registration token: permanent, token removed |
//! | 400 | `INVALID_ARGUMENT` otherwise | the message itself was refused: permanent |
//! | 403 | `SENDER_ID_MISMATCH` | the token belongs to another Firebase project: permanent, token removed |
//! | 429 | `QUOTA_EXCEEDED` | sending too fast (project, device or topic): transient, honouring `Retry-After` |
//! | 503 / 500 | `UNAVAILABLE` / `INTERNAL` | FCM is overloaded or failed: transient, honouring `Retry-After` |
//! | 401 | `THIRD_PARTY_AUTH_ERROR` | FCM's own APNs or web-push credentials are wrong: credential |
//! | 401 | none | our access token was refused even after a refresh: credential |
//! | 403 | none (`PERMISSION_DENIED`) | the service account may not send for this project: credential |

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppMessage, AppPushConfig, Clock, DeviceAnswer, Reply, base_url, credential, exchange,
    http_client, jwt, permanent, token_unavailable,
};
use crate::outcome::SendOutcome;
use crate::tokens::{TokenStore, cached_or_fetched};
use crate::{Error, Result};

const PROVIDER: &str = "fcm";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google takes assertions valid for at most an hour.
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// How long before Google's stated expiry a cached access token stops being used.
const TOKEN_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A Firebase project's service account, read from its key file.
#[derive(Clone)]
pub struct FcmAccount {
    pub project_id: String,
    pub client_email: String,
    private_key_id: String,
    token_uri: String,
    key: Arc<EncodingKey>,
}

impl std::fmt::Debug for FcmAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

impl FcmAccount {
    /// From the text of the service-account key file Google hands out (JSON with `type`
    /// `service_account`, the project, the key and the token endpoint).
    pub fn from_key_file(text: &str) -> Result<FcmAccount> {
        let invalid = |reason: &str| Error::PushKeyInvalid {
            provider: PROVIDER,
            reason: reason.to_owned(),
        };
        // serde's message could quote the private key.
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|_| invalid("not a service-account key file (JSON with project_id, private_key_id, private_key, client_email, token_uri)"))?;
        if file.kind != "service_account" {
            return Err(invalid("the key file's type is not service_account"));
        }
        if file.project_id.trim().is_empty() || file.client_email.trim().is_empty() {
            return Err(invalid("the key file names no project or account"));
        }
        base_url("the key file's token_uri", &file.token_uri)
            .map_err(|_| invalid("the key file's token_uri is not an http(s) URL"))?;
        let key = jwt::key(PROVIDER, Algorithm::RS256, &file.private_key)?;
        Ok(FcmAccount {
            project_id: file.project_id,
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            token_uri: file.token_uri,
            key: Arc::new(key),
        })
    }
}

/// The FCM client. Cheap to clone: clones share connections and access tokens.
#[derive(Clone)]
pub struct FcmClient {
    http: reqwest::Client,
    base: Arc<str>,
    tokens: TokenStore,
    refresh: Arc<tokio::sync::Mutex<()>>,
    clock: Clock,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct OAuthRefusal {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl FcmClient {
    pub(crate) fn new(config: &AppPushConfig, clock: Clock) -> Result<FcmClient> {
        Ok(FcmClient {
            http: http_client(PROVIDER, config.timeout, false)?,
            base: base_url("fcm api base", &config.fcm_api_base)?,
            tokens: TokenStore::local(),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
            clock,
        })
    }

    /// Sends `msg` to one registration token of `account`'s project.
    pub async fn send(&self, account: &FcmAccount, device: &str, msg: &AppMessage) -> DeviceAnswer {
        let mut token = match self.access_token(account, None).await {
            Ok(token) => token,
            Err(e) => return DeviceAnswer::kept(token_unavailable(&e)),
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.base, account.project_id
        );
        let body = request_body(device, msg);
        let mut refreshed = false;
        loop {
            let request = self
                .http
                .post(&url)
                .bearer_auth(token.expose_secret())
                .json(&body);
            let Reply {
                status,
                wait,
                body: bytes,
                ..
            } = match exchange(request).await {
                Ok(reply) => reply,
                Err(answer) => return answer,
            };
            if (200..300).contains(&status) {
                let name = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("name")?.as_str().map(str::to_owned));
                return DeviceAnswer::kept(SendOutcome::Sent {
                    provider_msg_id: name,
                });
            }
            let refusal = Refusal::parse(&bytes);
            if status == 401 && refusal.error_code.is_none() && !refreshed {
                tracing::info!(account = %account.client_email, "fcm refused the access token; refreshing");
                token = match self.access_token(account, Some(&token)).await {
                    Ok(token) => token,
                    Err(e) => return DeviceAnswer::kept(token_unavailable(&e)),
                };
                refreshed = true;
                continue;
            }
            return classify(status, &refusal, wait);
        }
    }

    /// The account's access token: cached, or fetched once for every task of this process.
    /// With `rejected`, a cached token other than that one is taken as already refreshed.
    async fn access_token(
        &self,
        account: &FcmAccount,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString> {
        cached_or_fetched(
            &self.tokens,
            &self.refresh,
            &format!("fcm:access_token:{}", account.client_email),
            rejected,
            "fcm oauth token",
            || self.fetch_token(account),
        )
        .await
    }

    async fn fetch_token(&self, account: &FcmAccount) -> Result<(SecretString, Duration)> {
        let now = (self.clock)();
        let claims = json!({
            "iss": account.client_email,
            "scope": SCOPE,
            "aud": account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let assertion = jwt::sign(
            PROVIDER,
            Algorithm::RS256,
            &account.private_key_id,
            true,
            &claims,
            &account.key,
        )?;
        let upstream = |detail: String, source: Option<reqwest::Error>| Error::Upstream {
            service: "fcm oauth token",
            detail,
            source: source.map(reqwest::Error::without_url),
        };
        let response = self
            .http
            .post(&account.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| upstream("request failed".to_owned(), Some(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| upstream("reading the answer failed".to_owned(), Some(e)))?;
        if status.is_client_error() {
            // Google refuses the assertion: a deleted key, a disabled account, a clock far off.
            let why = serde_json::from_slice::<OAuthRefusal>(&bytes)
                .map(|r| format!("{}: {}", r.error, r.error_description))
                .unwrap_or_else(|_| format!("http status {status}"));
            tracing::warn!(account = %account.client_email, %why, "google refused the fcm service account");
            return Err(Error::PushKeyInvalid {
                provider: PROVIDER,
                reason: format!("google refused the service account: {why}"),
            });
        }
        if !status.is_success() {
            return Err(upstream(format!("http status {status}"), None));
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| upstream("unexpected answer shape".to_owned(), None))?;
        let ttl = Duration::from_secs(answer.expires_in).saturating_sub(TOKEN_SAFETY_MARGIN);
        tracing::info!(account = %account.client_email, expires_in = answer.expires_in, "fetched fcm access token");
        Ok((answer.access_token, ttl))
    }
}

/// The v1 message: the notification shown by the system, the data the app reads, and each
/// platform's priority (and collapse key).
fn request_body(device: &str, msg: &AppMessage) -> Value {
    let mut android = json!({ "priority": if msg.urgent { "HIGH" } else { "NORMAL" } });
    let mut apns_headers = json!({ "apns-priority": if msg.urgent { "10" } else { "5" } });
    if let Some(key) = &msg.collapse_key {
        android["collapse_key"] = json!(key);
        apns_headers["apns-collapse-id"] = json!(key);
    }
    json!({
        "message": {
            "token": device,
            "notification": { "title": msg.title, "body": msg.body },
            "data": msg.data,
            "android": android,
            "apns": { "headers": apns_headers },
        }
    })
}

/// What Google's error answer says: its status name, the `FcmError` code, and whether a field
/// violation names the registration token.
#[derive(Debug, Default, PartialEq, Eq)]
struct Refusal {
    status: Option<String>,
    message: String,
    error_code: Option<String>,
    token_violation: bool,
}

impl Refusal {
    fn parse(body: &[u8]) -> Refusal {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Refusal::default();
        };
        let error = &value["error"];
        let details = error["details"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        fn of_type<'v>(
            details: &'v [Value],
            suffix: &'static str,
        ) -> impl Iterator<Item = &'v Value> {
            details
                .iter()
                .filter(move |d| d["@type"].as_str().is_some_and(|t| t.ends_with(suffix)))
        }
        Refusal {
            status: error["status"].as_str().map(str::to_owned),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
            error_code: of_type(details, "google.firebase.fcm.v1.FcmError")
                .find_map(|d| d["errorCode"].as_str().map(str::to_owned)),
            token_violation: of_type(details, "google.rpc.BadRequest").any(|d| {
                d["fieldViolations"].as_array().is_some_and(|vs| {
                    vs.iter()
                        .any(|v| v["field"].as_str() == Some("message.token"))
                })
            }),
        }
    }
}

fn classify(status: u16, r: &Refusal, wait: Option<Duration>) -> DeviceAnswer {
    let name = r
        .error_code
        .clone()
        .or_else(|| r.status.clone())
        .unwrap_or_else(|| format!("HTTP_{status}"));
    let code = format!("FCM_{name}");
    let detail = format!("http {status}: {}", r.message);
    let retry = |code: String, detail: String| SendOutcome::Transient {
        code,
        detail,
        retry_after: wait,
    };
    match (r.error_code.as_deref(), status) {
        (Some("UNREGISTERED"), _) | (Some("SENDER_ID_MISMATCH"), _) => {
            DeviceAnswer::gone(code, detail)
        }
        (Some("INVALID_ARGUMENT") | None, 400) if r.token_violation => {
            DeviceAnswer::gone(code, detail)
        }
        (Some("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL"), _) => {
            DeviceAnswer::kept(retry(code, detail))
        }
        (Some("THIRD_PARTY_AUTH_ERROR"), _) | (None, 401 | 403 | 404) => {
            DeviceAnswer::kept(credential(code, detail))
        }
        (_, 429 | 500..) => DeviceAnswer::kept(retry(code, detail)),
        _ => DeviceAnswer::kept(permanent(code, detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google_error(status: u16, name: &str, code: Option<&str>, token: bool) -> Vec<u8> {
        let mut details = Vec::new();
        if let Some(code) = code {
            details.push(json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}));
        }
        if token {
            details.push(json!({"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}));
        }
        serde_json::to_vec(
            &json!({"error": {"code": status, "message": "m", "status": name, "details": details}}),
        )
        .unwrap()
    }

    fn answer(status: u16, name: &str, code: Option<&str>, token: bool) -> DeviceAnswer {
        classify(
            status,
            &Refusal::parse(&google_error(status, name, code, token)),
            Some(Duration::from_secs(9)),
        )
    }

    #[test]
    fn tokens_fcm_disowns_are_removed_and_nothing_else_is() {
        let a = answer(404, "NOT_FOUND", Some("UNREGISTERED"), false);
        assert!(a.token_gone);
        assert_eq!(a.outcome.code(), "FCM_UNREGISTERED");
        assert!(answer(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), true).token_gone);
        assert!(answer(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), false).token_gone);

        let a = answer(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), false);
        assert!(!a.token_gone);
        assert_eq!(a.outcome.kind(), "PERMANENT");
    }

    #[test]
    fn quota_and_outages_are_retried_after_what_fcm_says() {
        for (status, name, code) in [
            (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
            (503, "UNAVAILABLE", "UNAVAILABLE"),
            (500, "INTERNAL", "INTERNAL"),
        ] {
            let a = answer(status, name, Some(code), false);
            assert!(!a.token_gone);
            let SendOutcome::Transient { retry_after, .. } = a.outcome else {
                panic!("{code}: {:?}", a.outcome);
            };
            assert_eq!(retry_after, Some(Duration::from_secs(9)));
        }
        // A proxy's 502 without Google's JSON is transient too.
        let a = classify(502, &Refusal::parse(b"<html>bad gateway</html>"), None);
        assert_eq!(a.outcome.kind(), "TRANSIENT");
        assert_eq!(a.outcome.code(), "FCM_HTTP_502");
    }

    #[test]
    fn refused_credentials_are_for_an_operator() {
        for (status, name, code) in [
            (401, "UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR")),
            (401, "UNAUTHENTICATED", None),
            (403, "PERMISSION_DENIED", None),
        ] {
            let a = answer(status, name, code, false);
            assert_eq!(a.outcome.kind(), "CREDENTIAL", "{status} {code:?}");
            assert!(!a.token_gone);
        }
    }

    #[test]
    fn the_body_carries_notification_data_and_priorities() {
        let msg = AppMessage {
            id: "d1".into(),
            title: "付款成功".into(),
            body: "已收到 100.00 元".into(),
            data: [("kind".to_owned(), "PAYMENT".to_owned())].into(),
            collapse_key: Some("bill-1".into()),
            urgent: true,
        };
        let body = request_body("tok", &msg);
        assert_eq!(body["message"]["token"], "tok");
        assert_eq!(body["message"]["notification"]["title"], "付款成功");
        assert_eq!(body["message"]["data"]["kind"], "PAYMENT");
        assert_eq!(body["message"]["android"]["priority"], "HIGH");
        assert_eq!(body["message"]["android"]["collapse_key"], "bill-1");
        assert_eq!(body["message"]["apns"]["headers"]["apns-priority"], "10");
    }

    #[test]
    fn a_key_file_that_is_not_a_service_account_is_refused() {
        for text in [
            "",
            "{}",
            r#"{"type":"authorized_user","project_id":"p","private_key_id":"k","private_key":"x","client_email":"a@b","token_uri":"https://oauth2.googleapis.com/token"}"#,
            r#"{"type":"service_account","project_id":"p","private_key_id":"k","private_key":"not a key","client_email":"a@b","token_uri":"https://oauth2.googleapis.com/token"}"#,
        ] {
            let e = FcmAccount::from_key_file(text).unwrap_err();
            assert_eq!(e.code(), "PUSH_KEY_INVALID", "{text}");
        }
    }
}
