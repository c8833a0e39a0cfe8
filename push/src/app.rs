//! App push (DESIGN.md §5): the three providers a phone app's notifications go through, each
//! with its own client that speaks the provider's documented API and turns every answer into a
//! [`DeviceAnswer`] the delivery engine acts on.
//!
//! * [`fcm`]: Firebase Cloud Messaging HTTP v1, authorised by an OAuth2 token made from the
//!   project's service-account key file (per process, as DESIGN.md allows).
//! * [`apns`]: Apple's provider API over HTTP/2 with token authentication (a `.p8` key); one
//!   provider token per team and key, shared by every replica through the [`TokenStore`] and
//!   renewed after 50 minutes, never sooner than 20 ([`apns::RENEW_AFTER`]).
//! * [`huawei`]: Huawei Push Kit, authorised by an OAuth2 client-credentials token; it reaches
//!   the Android phones in mainland China that FCM does not.
//!
//! A device token the provider reports unregistered or invalid comes back with
//! [`DeviceAnswer::token_gone`], so that the caller removes it for that provider and environment
//! only: an APNs sandbox answer never says anything about a production token.

pub mod apns;
pub mod fcm;
pub mod huawei;
mod jwt;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::outcome::{SendOutcome, retry_after, transport_failure};
use crate::tokens::TokenStore;
use crate::{Error, Result};

/// Who carries an app's notifications to the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Fcm,
    Apns,
    Huawei,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Fcm, Provider::Apns, Provider::Huawei];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Fcm => "FCM",
            Provider::Apns => "APNS",
            Provider::Huawei => "HUAWEI",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// APNs keeps development builds' tokens apart from App Store builds' (a token of one is
/// `BadDeviceToken` at the other); FCM and Huawei have only production, and their tokens are
/// registered as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "SANDBOX",
            Environment::Production => "PRODUCTION",
        }
    }

    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "SANDBOX" => Some(Environment::Sandbox),
            "PRODUCTION" => Some(Environment::Production),
            _ => None,
        }
    }
}

/// One notification, the same for every provider; each client puts it in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMessage {
    /// The message's own id (the delivery's, a UUID): APNs' `apns-id`, so that Apple's and our
    /// logs name the same message.
    pub id: String,
    pub title: String,
    pub body: String,
    /// What the app reads when the notification is opened (the kind, the ids it links to).
    pub data: BTreeMap<String, String>,
    /// Undelivered messages with the same key replace each other on the device.
    pub collapse_key: Option<String>,
    /// Payments and accidents: delivered at once, waking the device; others may be batched by
    /// the phone's power management.
    pub urgent: bool,
}

/// What one device's provider made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAnswer {
    pub outcome: SendOutcome,
    /// The provider says the token is no longer (or never was) a device of this app: remove it
    /// for this provider and environment. Only ever set with a [`SendOutcome::Permanent`].
    pub token_gone: bool,
}

impl DeviceAnswer {
    fn kept(outcome: SendOutcome) -> DeviceAnswer {
        DeviceAnswer {
            outcome,
            token_gone: false,
        }
    }

    fn gone(code: String, detail: String) -> DeviceAnswer {
        DeviceAnswer {
            outcome: SendOutcome::Permanent { code, detail },
            token_gone: true,
        }
    }
}

/// Seconds since the Unix epoch. Tokens the providers check by time (JWT `iat`, `exp`) are made
/// with it; tests move it to check lifetimes and renewal without waiting an hour.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The machine's clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

/// Where the providers are. Defaults are the real hosts (set by the gateway's configuration);
/// tests point them at local fakes.
#[derive(Debug, Clone)]
pub struct AppPushConfig {
    /// FCM's API, e.g. `https://fcm.googleapis.com`. (The OAuth token endpoint is the key
    /// file's `token_uri`.)
    pub fcm_api_base: String,
    /// `https://api.push.apple.com`
    pub apns_production: String,
    /// `https://api.sandbox.push.apple.com`
    pub apns_sandbox: String,
    /// `https://oauth-login.cloud.huawei.com/oauth2/v3/token`
    pub huawei_oauth_url: String,
    /// `https://push-api.cloud.huawei.com`
    pub huawei_api_base: String,
    /// Limit for a whole request, connect to last byte.
    pub timeout: Duration,
}

/// The three clients. Cheap to clone: clones share connections and token caches.
#[derive(Clone)]
pub struct AppPush {
    pub fcm: fcm::FcmClient,
    pub apns: apns::ApnsClient,
    pub huawei: huawei::HuaweiClient,
}

impl AppPush {
    /// `tokens` keeps the APNs provider tokens (Redis in production, so that every replica uses
    /// one); FCM's and Huawei's OAuth tokens are kept in this process.
    pub fn new(config: &AppPushConfig, tokens: TokenStore, clock: Clock) -> Result<AppPush> {
        Ok(AppPush {
            fcm: fcm::FcmClient::new(config, clock.clone())?,
            apns: apns::ApnsClient::new(config, tokens, clock)?,
            huawei: huawei::HuaweiClient::new(config)?,
        })
    }
}

const USER_AGENT: &str = concat!("minigate/", env!("CARGO_PKG_VERSION"));

/// A base URL without its trailing slash, refused unless it is http(s) without a query.
fn base_url(name: &str, url: &str) -> Result<Arc<str>> {
    let trimmed = url.trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => {
            Ok(Arc::from(trimmed))
        }
        _ => Err(Error::Setup {
            reason: format!("{name} is not an http(s) URL without a query"),
            source: None,
        }),
    }
}

/// An HTTP client for one provider; `http2_only` for APNs, which speaks nothing else.
fn http_client(name: &str, timeout: Duration, http2_only: bool) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout);
    if http2_only {
        builder = builder
            .http2_prior_knowledge()
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true);
    }
    builder.build().map_err(|e| Error::Setup {
        reason: format!("building the {name} http client failed"),
        source: Some(e),
    })
}

/// A provider's answer, read whole.
struct Reply {
    status: u16,
    /// `Retry-After`, in seconds.
    wait: Option<Duration>,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

/// Sends `request` and reads the answer; no answer (or one cut off) is a transient `TIMEOUT` or
/// `NETWORK` for the device.
async fn exchange(request: reqwest::RequestBuilder) -> Result<Reply, DeviceAnswer> {
    let response = request
        .send()
        .await
        .map_err(|e| DeviceAnswer::kept(transport_failure(e)))?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| DeviceAnswer::kept(transport_failure(e)))?;
    Ok(Reply {
        status,
        wait,
        headers,
        body,
    })
}

fn transient(code: impl Into<String>, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Transient {
        code: code.into(),
        detail: detail.into(),
        retry_after: None,
    }
}

fn credential(code: impl Into<String>, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Credential {
        code: code.into(),
        detail: detail.into(),
    }
}

fn permanent(code: impl Into<String>, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Permanent {
        code: code.into(),
        detail: detail.into(),
    }
}

/// What the engine makes of a token the client could not have at all: the provider refused the
/// key (an operator must act), or could not be reached (later).
fn token_unavailable(e: &Error) -> SendOutcome {
    match e {
        Error::PushKeyInvalid { .. } => credential(e.code(), e.to_string()),
        _ => transient(e.code(), format!("no token: {e}")),
    }
}
