//! Huawei Push Kit (HMS Core), the server API for Android (`POST /v1/{appId}/messages:send`):
//! FCM does not reach most Android phones sold in mainland China, Huawei's channel does.
//!
//! Authorisation is an OAuth2 client-credentials token (the app id and its secret, an hour's
//! life), kept per process and app and fetched once for all concurrent sends. Huawei answers
//! with a `code` of eight digits beside the HTTP status:
//!
//! | HTTP | code | what it means here |
//! |---|---|---|
//! | 200 | 80000000 | sent |
//! | 200 | 80100000 | some tokens were refused (`msg` lists them): a refused one is removed |
//! | 400 | 80300007 | every token is invalid: permanent, token removed |
//! | 401 | 80200003, 80200001 | our token expired or was refused: refreshed once, then credential |
//! | 400 | 80100001, 80100003, 80100004, 80100016, 80300008, 80300010 | the message was refused (parameters, structure, TTL, content, size, token count): permanent |
//! | 403 | 80300002 | the app may not push (Push Kit not enabled): credential |
//! | 500 | 81000001 | Huawei's internal error: transient |
//! | 503 | — | flow control: transient, honouring `Retry-After` |

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppMessage, AppPushConfig, DeviceAnswer, Reply, base_url, credential, exchange, http_client,
    permanent, token_unavailable,
};
use crate::outcome::SendOutcome;
use crate::tokens::{TokenStore, cached_or_fetched};
use crate::{Error, Result};

const PROVIDER: &str = "huawei";
const SUCCESS: &str = "80000000";
const PARTIAL: &str = "80100000";
/// How long before Huawei's stated expiry a cached token stops being used.
const TOKEN_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long Huawei keeps a message for a phone that is off.
const TTL: &str = "86400s";

/// An app on Huawei's developer platform: its id (the OAuth client id) and secret.
#[derive(Clone)]
pub struct HuaweiApp {
    pub app_id: String,
    secret: SecretString,
}

impl std::fmt::Debug for HuaweiApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiApp")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl HuaweiApp {
    pub fn new(app_id: &str, secret: SecretString) -> Result<HuaweiApp> {
        if app_id.is_empty() || !app_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::PushKeyInvalid {
                provider: PROVIDER,
                reason: "the app id is Huawei's number for the app".to_owned(),
            });
        }
        if secret.expose_secret().trim().is_empty() {
            return Err(Error::PushKeyInvalid {
                provider: PROVIDER,
                reason: "the app secret is empty".to_owned(),
            });
        }
        Ok(HuaweiApp {
            app_id: app_id.to_owned(),
            secret,
        })
    }
}

/// The Huawei client. Cheap to clone: clones share connections and access tokens.
#[derive(Clone)]
pub struct HuaweiClient {
    http: reqwest::Client,
    oauth_url: Arc<str>,
    base: Arc<str>,
    tokens: TokenStore,
    refresh: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    msg: String,
    #[serde(default, rename = "requestId")]
    request_id: Option<String>,
}

impl HuaweiClient {
    pub(crate) fn new(config: &AppPushConfig) -> Result<HuaweiClient> {
        Ok(HuaweiClient {
            http: http_client(PROVIDER, config.timeout, false)?,
            oauth_url: base_url("huawei oauth url", &config.huawei_oauth_url)?,
            base: base_url("huawei api base", &config.huawei_api_base)?,
            tokens: TokenStore::local(),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Sends `msg` to one push token of `app`.
    pub async fn send(&self, app: &HuaweiApp, device: &str, msg: &AppMessage) -> DeviceAnswer {
        let mut token = match self.access_token(app, None).await {
            Ok(token) => token,
            Err(e) => return DeviceAnswer::kept(token_unavailable(&e)),
        };
        let url = format!("{}/v1/{}/messages:send", self.base, app.app_id);
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
            let answer: Answer = serde_json::from_slice(&bytes).unwrap_or_default();
            if matches!(answer.code.as_str(), "80200001" | "80200003") && !refreshed {
                tracing::info!(app_id = %app.app_id, code = %answer.code, "huawei refused the access token; refreshing");
                token = match self.access_token(app, Some(&token)).await {
                    Ok(token) => token,
                    Err(e) => return DeviceAnswer::kept(token_unavailable(&e)),
                };
                refreshed = true;
                continue;
            }
            return classify(status, &answer, device, wait);
        }
    }

    async fn access_token(
        &self,
        app: &HuaweiApp,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString> {
        cached_or_fetched(
            &self.tokens,
            &self.refresh,
            &format!("huawei:access_token:{}", app.app_id),
            rejected,
            "huawei oauth token",
            || self.fetch_token(app),
        )
        .await
    }

    async fn fetch_token(&self, app: &HuaweiApp) -> Result<(SecretString, Duration)> {
        let upstream = |detail: String, source: Option<reqwest::Error>| Error::Upstream {
            service: "huawei oauth token",
            detail,
            source: source.map(reqwest::Error::without_url),
        };
        let response = self
            .http
            .post(&*self.oauth_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.app_id.as_str()),
                ("client_secret", app.secret.expose_secret()),
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
            let why = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .map(|v| format!("error {}: {}", v["error"], v["error_description"]))
                .unwrap_or_else(|| format!("http status {status}"));
            tracing::warn!(app_id = %app.app_id, %why, "huawei refused the app's credentials");
            return Err(Error::PushKeyInvalid {
                provider: PROVIDER,
                reason: format!("huawei refused the app id and secret: {why}"),
            });
        }
        if !status.is_success() {
            return Err(upstream(format!("http status {status}"), None));
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| upstream("unexpected answer shape".to_owned(), None))?;
        let ttl = Duration::from_secs(answer.expires_in).saturating_sub(TOKEN_SAFETY_MARGIN);
        Ok((answer.access_token, ttl))
    }
}

/// The message: an Android notification that opens the app (click action type 3), the data as
/// one JSON string (Huawei's `data` is a string), urgency and a day's TTL.
fn request_body(device: &str, msg: &AppMessage) -> Value {
    let data = serde_json::to_string(&msg.data).unwrap_or_else(|_| "{}".to_owned());
    json!({
        "validate_only": false,
        "message": {
            "data": data,
            "android": {
                "urgency": if msg.urgent { "HIGH" } else { "NORMAL" },
                "ttl": TTL,
                "notification": {
                    "title": msg.title,
                    "body": msg.body,
                    "click_action": { "type": 3 },
                },
            },
            "token": [device],
        }
    })
}

fn classify(status: u16, a: &Answer, device: &str, wait: Option<Duration>) -> DeviceAnswer {
    let code = if a.code.is_empty() {
        format!("HUAWEI_HTTP_{status}")
    } else {
        format!("HUAWEI_{}", a.code)
    };
    let detail = format!("http {status}: {}", a.msg);
    match a.code.as_str() {
        SUCCESS => DeviceAnswer::kept(SendOutcome::Sent {
            provider_msg_id: a.request_id.clone(),
        }),
        PARTIAL => {
            // `msg` is JSON text: {"success":1,"failure":1,"illegal_tokens":["..."]}.
            let refused = serde_json::from_str::<Value>(&a.msg).ok().is_some_and(|m| {
                m["illegal_tokens"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|t| t.as_str() == Some(device)))
            });
            if refused {
                DeviceAnswer::gone(code, detail)
            } else {
                DeviceAnswer::kept(SendOutcome::Sent {
                    provider_msg_id: a.request_id.clone(),
                })
            }
        }
        "80300007" => DeviceAnswer::gone(code, detail),
        "80200001" | "80200003" | "80300002" | "80600003" => {
            DeviceAnswer::kept(credential(code, detail))
        }
        "81000001" => DeviceAnswer::kept(SendOutcome::Transient {
            code,
            detail,
            retry_after: wait,
        }),
        _ if status == 429 || status >= 500 => DeviceAnswer::kept(SendOutcome::Transient {
            code,
            detail,
            retry_after: wait,
        }),
        _ if status == 401 || status == 403 => DeviceAnswer::kept(credential(code, detail)),
        _ => DeviceAnswer::kept(permanent(code, detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str, msg: &str) -> Answer {
        Answer {
            code: code.to_owned(),
            msg: msg.to_owned(),
            request_id: Some("r1".to_owned()),
        }
    }

    #[test]
    fn success_and_partial_success_for_another_token_are_sent() {
        let a = classify(200, &answer(SUCCESS, "Success"), "t1", None);
        assert_eq!(
            a.outcome,
            SendOutcome::Sent {
                provider_msg_id: Some("r1".into())
            }
        );
        let partial = r#"{"success":1,"failure":1,"illegal_tokens":["t2"]}"#;
        assert_eq!(
            classify(200, &answer(PARTIAL, partial), "t1", None)
                .outcome
                .kind(),
            "SENT"
        );
        let a = classify(200, &answer(PARTIAL, partial), "t2", None);
        assert!(a.token_gone);
    }

    #[test]
    fn invalid_tokens_are_removed_and_bad_messages_are_not() {
        let a = classify(
            400,
            &answer("80300007", "All the tokens are invalid"),
            "t",
            None,
        );
        assert!(a.token_gone);
        assert_eq!(a.outcome.code(), "HUAWEI_80300007");
        for code in [
            "80100001", "80100003", "80100004", "80100016", "80300008", "80300010",
        ] {
            let a = classify(400, &answer(code, "m"), "t", None);
            assert!(!a.token_gone, "{code}");
            assert_eq!(a.outcome.kind(), "PERMANENT", "{code}");
        }
    }

    #[test]
    fn flow_control_and_internal_errors_wait_credentials_need_an_operator() {
        let wait = Some(Duration::from_secs(30));
        let a = classify(503, &Answer::default(), "t", wait);
        assert_eq!(a.outcome.code(), "HUAWEI_HTTP_503");
        let SendOutcome::Transient { retry_after, .. } = a.outcome else {
            panic!("503 not transient");
        };
        assert_eq!(retry_after, wait);
        assert_eq!(
            classify(500, &answer("81000001", "m"), "t", None)
                .outcome
                .kind(),
            "TRANSIENT"
        );
        for code in ["80200001", "80200003", "80300002"] {
            assert_eq!(
                classify(401, &answer(code, "m"), "t", None).outcome.kind(),
                "CREDENTIAL"
            );
        }
    }

    #[test]
    fn the_body_is_an_android_notification_that_opens_the_app() {
        let msg = AppMessage {
            id: "d".into(),
            title: "违章提醒".into(),
            body: "沪A12345".into(),
            data: [("kind".to_owned(), "VIOLATION".to_owned())].into(),
            collapse_key: None,
            urgent: false,
        };
        let b = request_body("tok", &msg);
        assert_eq!(b["message"]["token"][0], "tok");
        assert_eq!(
            b["message"]["android"]["notification"]["click_action"]["type"],
            3
        );
        assert_eq!(b["message"]["android"]["urgency"], "NORMAL");
        let data: Value = serde_json::from_str(b["message"]["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["kind"], "VIOLATION");
    }

    #[test]
    fn an_app_id_is_digits_and_a_secret_is_not_empty() {
        assert!(HuaweiApp::new("10234567", SecretString::from("s")).is_ok());
        for (id, secret) in [("", "s"), ("com.x", "s"), ("1023", " ")] {
            let e = HuaweiApp::new(id, SecretString::from(secret)).unwrap_err();
            assert_eq!(e.code(), "PUSH_KEY_INVALID");
        }
    }
}
