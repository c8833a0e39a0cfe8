//! A fake of Huawei Push Kit's server API (HMS Core, Android) together with the Huawei account
//! OAuth 2.0 endpoint it takes tokens from, on one local server.
//!
//! * `POST /oauth2/v3/token`: the client-credentials grant of `oauth-login.cloud.huawei.com`;
//!   the client id is the app id, the secret the app secret from AppGallery Connect. Tokens
//!   live an hour.
//! * `POST /v1/{app_id}/messages:send`: one message to up to 1000 device tokens of the app, with
//!   `Authorization: Bearer <access token>`, as `push-api.cloud.huawei.com` serves it.
//!
//! Push Kit answers every send with `{"code": "<8 digits>", "msg": "...", "requestId": "..."}`,
//! `80000000` meaning success; when only some tokens are invalid it still sends to the others
//! and answers `80100000` with the counts and the illegal tokens as JSON text in `msg`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

use crate::support::{self, lock, random_digits, random_hex};

/// The lifetime Huawei states for an access token: one hour.
const ACCESS_TOKEN_EXPIRES_IN: i64 = 3600;
/// The most tokens one message may name.
const MAX_TOKENS: usize = 1000;
const JSON: &str = "application/json;charset=UTF-8";

const SUCCESS: (&str, &str) = ("80000000", "Success");
const PARTIAL: &str = "80100000";
const BAD_PARAMETERS: (&str, &str) = ("80100001", "Incorrect parameters");
const ILLEGAL_PAYLOAD: (&str, &str) = ("80100003", "Illegal payload");
const AUTH_ERROR: (&str, &str) = ("80200001", "Oauth authentication error");
const TOKEN_EXPIRED: (&str, &str) = ("80200003", "Oauth Token expired.");
const ALL_INVALID: (&str, &str) = ("80300007", "All the tokens are invalid");
const TOO_MANY_TOKENS: (&str, &str) = (
    "80300010",
    "The number of tokens in the message body exceeds the default value.",
);

/// A scripted answer to a send in place of the real outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HuaweiFailure {
    /// The HTTP status, e.g. 500, 502, 503.
    pub http_status: u16,
    /// Push Kit's result code, e.g. `81000001` (system inner error). `None` when the answer
    /// comes from in front of Push Kit (503 flow control): the body is then `msg` as plain text.
    pub code: Option<&'static str>,
    pub msg: &'static str,
}

/// A message the fake accepted, with the tokens it reached.
#[derive(Clone, Debug, PartialEq)]
pub struct HuaweiMessage {
    /// The valid tokens among `message.token`, in the order sent.
    pub tokens: Vec<String>,
    /// `message.android.notification.title`, else `message.notification.title`.
    pub title: Option<String>,
    /// `message.android.notification.body`, else `message.notification.body`.
    pub body: Option<String>,
    /// `message.data`: Push Kit carries data as one string (usually JSON text).
    pub data: Option<String>,
    /// The `message` object as sent.
    pub raw: Value,
}

/// A running fake; stops when dropped.
pub struct FakeHuawei {
    /// Scheme, host and port, without a trailing slash: both the OAuth base (for
    /// `{base_url}/oauth2/v3/token`) and the Push Kit base (`{base_url}/v1/{app_id}/...`).
    pub base_url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// app id → client secret
    apps: HashMap<String, String>,
    /// device token → the app it belongs to and whether it is still valid
    devices: HashMap<String, Device>,
    /// access token → what it grants
    access_tokens: HashMap<String, AccessToken>,
    failures: VecDeque<HuaweiFailure>,
    /// app id → messages accepted, in order
    messages: HashMap<String, Vec<HuaweiMessage>>,
    not_recording: bool,
    now: Option<i64>,
    token_requests: usize,
    sends: usize,
    accepted: usize,
}

struct Device {
    app_id: String,
    unregistered: bool,
}

struct AccessToken {
    app_id: String,
    expires_at: i64,
    revoked: bool,
}

impl FakeHuawei {
    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start() -> FakeHuawei {
        let listener = support::bind_local("fake Huawei Push Kit").await;
        let base_url = listener.base_url.clone();
        let state = Arc::new(Mutex::new(State::default()));
        let server = listener.serve(HuaweiEndpoint {
            state: Arc::clone(&state),
        });
        FakeHuawei {
            base_url,
            state,
            server,
        }
    }

    /// Registers an app (adding it again replaces its secret).
    pub fn add_app(&self, app_id: &str, client_secret: &str) {
        self.state()
            .apps
            .insert(app_id.to_owned(), client_secret.to_owned());
    }

    /// A push token the app got on a device (adding it again moves it to this app and undoes
    /// [`FakeHuawei::unregister`]).
    pub fn add_device(&self, app_id: &str, token: &str) {
        self.state().devices.insert(
            token.to_owned(),
            Device {
                app_id: app_id.to_owned(),
                unregistered: false,
            },
        );
    }

    /// The app was uninstalled: the token is now illegal in every send.
    pub fn unregister(&self, token: &str) {
        if let Some(device) = self.state().devices.get_mut(token) {
            device.unregistered = true;
        }
    }

    /// Every access token issued so far is now expired: sends using one get 401 `80200003`.
    pub fn expire_access_tokens(&self) {
        for token in self.state().access_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// The next `times` sends answer `failure` (after failures already queued), whatever they
    /// carry; they are counted in [`FakeHuawei::sends`] and record nothing.
    pub fn fail_next(&self, times: usize, failure: HuaweiFailure) {
        StatusCode::from_u16(failure.http_status).unwrap_or_else(|e| {
            panic!(
                "fake Huawei Push Kit cannot answer HTTP {}: {e}",
                failure.http_status
            )
        });
        self.state()
            .failures
            .extend(std::iter::repeat_n(failure, times));
    }

    /// From now on the fake takes this as the time (Unix seconds) when it issues and checks
    /// access tokens, instead of the system clock.
    pub fn set_now(&self, unix_secs: i64) {
        self.state().now = Some(unix_secs);
    }

    /// The messages accepted for this app, in order (not those only validated, nor those
    /// accepted while recording was off).
    pub fn messages(&self, app_id: &str) -> Vec<HuaweiMessage> {
        self.state()
            .messages
            .get(app_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests reached the token endpoint, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.state().token_requests
    }

    /// How many send requests reached the fake, refused ones included.
    pub fn sends(&self) -> usize {
        self.state().sends
    }

    /// How many messages were accepted (wholly or in part; validate-only ones excluded),
    /// recorded or not.
    pub fn accepted(&self) -> usize {
        self.state().accepted
    }

    /// Whether accepted messages are kept for [`FakeHuawei::messages`] (on at start).
    /// Benchmarks turn it off; accepted messages are still counted.
    pub fn set_recording(&self, on: bool) {
        self.state().not_recording = !on;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeHuawei {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct HuaweiEndpoint {
    state: Arc<Mutex<State>>,
}

impl Endpoint for HuaweiEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let route = match support::push_route(&req, "/oauth2/v3/token", "/v1/") {
            Ok(route) => route,
            Err(status) => return Ok(status.into_response()),
        };
        let mut state = lock(&self.state);
        Ok(match route {
            support::PushRoute::Token => state.token(&body),
            support::PushRoute::Send { id, authorization } => {
                state.send(&id, authorization.as_deref(), &body)
            }
        })
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type(JSON)
        .body(body.to_string())
}

fn oauth_error(error: u32, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

/// Push Kit's answer: `{"code", "msg", "requestId"}`.
fn push_answer(status: StatusCode, code: &str, msg: &str) -> Response {
    json_response(
        status,
        &json!({ "code": code, "msg": msg, "requestId": random_digits(20) }),
    )
}

fn refuse(status: StatusCode, (code, msg): (&str, &str)) -> Response {
    push_answer(status, code, msg)
}

/// What a message passing every check but its tokens' carries.
struct Checked {
    tokens: Vec<String>,
    title: Option<String>,
    body: Option<String>,
    data: Option<String>,
    raw: Value,
    validate_only: bool,
}

impl State {
    fn now(&self) -> i64 {
        self.now.unwrap_or_else(support::unix_now)
    }

    fn token(&mut self, body: &[u8]) -> Response {
        self.token_requests += 1;
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth_error(1102, "unsupported grant type");
        }
        let app_id = form.get("client_id").map(String::as_str).unwrap_or("");
        let secret = form.get("client_secret").map(String::as_str);
        if self.apps.get(app_id).map(String::as_str) != secret || secret.is_none() {
            return oauth_error(1101, "invalid client");
        }
        let access_token = format!("{}{}", random_hex(), random_hex());
        let expires_at = self.now() + ACCESS_TOKEN_EXPIRES_IN;
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                app_id: app_id.to_owned(),
                expires_at,
                revoked: false,
            },
        );
        json_response(
            StatusCode::OK,
            &json!({
                "access_token": access_token,
                "expires_in": ACCESS_TOKEN_EXPIRES_IN,
                "token_type": "Bearer",
            }),
        )
    }

    fn send(&mut self, app_id: &str, authorization: Option<&str>, body: &[u8]) -> Response {
        self.sends += 1;
        if let Some(failure) = self.failures.pop_front() {
            return scripted(failure);
        }
        let granted = authorization
            .and_then(|h| {
                h.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            })
            .and_then(|(_, token)| self.access_tokens.get(token.trim()))
            .filter(|t| t.app_id == app_id);
        let Some(granted) = granted else {
            return refuse(StatusCode::UNAUTHORIZED, AUTH_ERROR);
        };
        if granted.revoked || self.now() >= granted.expires_at {
            return refuse(StatusCode::UNAUTHORIZED, TOKEN_EXPIRED);
        }
        let checked = match check_message(body) {
            Ok(checked) => checked,
            Err(refusal) => return refuse(StatusCode::BAD_REQUEST, refusal),
        };
        let (valid, illegal): (Vec<String>, Vec<String>) =
            checked.tokens.into_iter().partition(|token| {
                self.devices
                    .get(token)
                    .is_some_and(|d| d.app_id == app_id && !d.unregistered)
            });
        if valid.is_empty() {
            return refuse(StatusCode::BAD_REQUEST, ALL_INVALID);
        }
        let (success, failure) = (valid.len(), illegal.len());
        if !checked.validate_only {
            self.accepted += 1;
            if !self.not_recording {
                self.messages
                    .entry(app_id.to_owned())
                    .or_default()
                    .push(HuaweiMessage {
                        tokens: valid,
                        title: checked.title,
                        body: checked.body,
                        data: checked.data,
                        raw: checked.raw,
                    });
            }
        }
        if failure == 0 {
            return refuse(StatusCode::OK, SUCCESS);
        }
        let msg = json!({ "success": success, "failure": failure, "illegal_tokens": illegal });
        push_answer(StatusCode::OK, PARTIAL, &msg.to_string())
    }
}

fn scripted(failure: HuaweiFailure) -> Response {
    // fail_next checked the status when it was scripted.
    let status =
        StatusCode::from_u16(failure.http_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    match failure.code {
        Some(code) => push_answer(status, code, failure.msg),
        None => Response::builder()
            .status(status)
            .content_type("text/plain; charset=utf-8")
            .body(failure.msg),
    }
}

/// A notification's title and body when they are strings (or absent); `None` otherwise.
fn title_body(notification: &Map<String, Value>) -> Option<(Option<String>, Option<String>)> {
    let text = |name: &str| match notification.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    Some((text("title")?, text("body")?))
}

/// Huawei requires an Android notification to say what tapping it does: `type` 1 (an intent or
/// action of the app, given as `intent` or `action`), 2 (open `url`), 3 (open the app) or 4
/// (rich media, `rich_resource`).
fn click_action_valid(click_action: Option<&Value>) -> bool {
    let Some(click_action) = click_action.and_then(Value::as_object) else {
        return false;
    };
    let has = |name: &str| {
        click_action
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    match click_action.get("type").and_then(Value::as_i64) {
        Some(1) => has("intent") || has("action"),
        Some(2) => has("url"),
        Some(3) => true,
        Some(4) => has("rich_resource"),
        _ => false,
    }
}

/// `ttl` is seconds with an `s` suffix and up to nine decimals, e.g. `"86400s"`, `"1.5s"`.
fn ttl_valid(ttl: &str) -> bool {
    let Some(number) = ttl.strip_suffix('s') else {
        return false;
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction) && fraction.len() <= 9
}

/// Reads and checks a send's body the way Push Kit does, up to (not including) whether its
/// tokens are valid.
fn check_message(body: &[u8]) -> Result<Checked, (&'static str, &'static str)> {
    let request: Value = serde_json::from_slice(body).map_err(|_| ILLEGAL_PAYLOAD)?;
    let validate_only = match request.get("validate_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(BAD_PARAMETERS),
    };
    let message = request
        .get("message")
        .and_then(Value::as_object)
        .ok_or(ILLEGAL_PAYLOAD)?;
    let tokens: Vec<String> = match message.get("token") {
        Some(Value::Array(tokens)) => tokens
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(BAD_PARAMETERS)?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(BAD_PARAMETERS),
    };
    if tokens.is_empty() || tokens.len() > MAX_TOKENS {
        return Err(TOO_MANY_TOKENS);
    }

    let data = match message.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ILLEGAL_PAYLOAD),
    };
    let notification = match message.get("notification") {
        None | Some(Value::Null) => None,
        Some(Value::Object(n)) => Some(title_body(n).ok_or(ILLEGAL_PAYLOAD)?),
        Some(_) => return Err(ILLEGAL_PAYLOAD),
    };
    let mut android_notification = None;
    match message.get("android") {
        None | Some(Value::Null) => {}
        Some(Value::Object(android)) => {
            if let Some(urgency) = android.get("urgency")
                && !matches!(urgency.as_str(), Some("HIGH" | "NORMAL"))
            {
                return Err(BAD_PARAMETERS);
            }
            if let Some(ttl) = android.get("ttl")
                && !ttl.as_str().is_some_and(ttl_valid)
            {
                return Err(BAD_PARAMETERS);
            }
            match android.get("notification") {
                None | Some(Value::Null) => {}
                Some(Value::Object(n)) => {
                    if !click_action_valid(n.get("click_action")) {
                        return Err(ILLEGAL_PAYLOAD);
                    }
                    android_notification = Some(title_body(n).ok_or(ILLEGAL_PAYLOAD)?);
                }
                Some(_) => return Err(ILLEGAL_PAYLOAD),
            }
        }
        Some(_) => return Err(ILLEGAL_PAYLOAD),
    }
    if data.is_none() && notification.is_none() && android_notification.is_none() {
        return Err(ILLEGAL_PAYLOAD);
    }
    let (shared_title, shared_body) = notification.unwrap_or_default();
    let (title, text) = android_notification.unwrap_or_default();
    Ok(Checked {
        tokens,
        title: title.or(shared_title),
        body: text.or(shared_body),
        data,
        raw: Value::Object(message.clone()),
        validate_only,
    })
}
