//! A fake of Firebase Cloud Messaging's HTTP v1 API together with Google's OAuth 2.0 token
//! endpoint, on one local server, checking requests the way Google does.
//!
//! * `POST /token`: Google's token endpoint (`https://oauth2.googleapis.com/token`) for the
//!   service-account flow. The client signs a JWT (RS256) with the service account's private key
//!   and trades it for an access token that lives an hour (`expires_in` 3599).
//! * `POST /v1/projects/{project_id}/messages:send`: one message to one registration token, with
//!   `Authorization: Bearer <access token>`. Google answers errors in its JSON error shape
//!   (`error.code`, `error.status`, `error.details`), FCM's own reason being the `errorCode` of a
//!   `google.firebase.fcm.v1.FcmError` detail.
//!
//! A test creates projects ([`FakeFcm::add_project`] returns the key file Google would issue, with
//! `token_uri` pointing at this fake), registers devices, uninstalls apps, scripts failures,
//! expires access tokens and moves the fake's clock. The server speaks HTTP/1.1 and HTTP/2
//! (prior knowledge), as Google does. Topics and conditions are not supported: every message
//! names a `token`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

use crate::keys::{RsaPem, decode_jwt, pem_decode};
use crate::support::{self, lock, random_digits, random_hex};

/// What the token endpoint states as an access token's lifetime: Google says 3599 seconds.
const ACCESS_TOKEN_EXPIRES_IN: i64 = 3599;
/// The longest lifetime Google accepts for the signed assertion: one hour.
const MAX_ASSERTION_LIFETIME: i64 = 3600;
/// How far ahead of Google's clock an assertion's `iat` may be.
const CLOCK_SKEW: i64 = 60;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Either scope lets a service account send FCM messages.
const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
];
const TIME_PROBLEM: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
     reasonable timeframe. Check your iat and exp values in the JWT claim.";
const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
     access token, login cookie or other valid authentication credential. See \
     https://developers.google.com/identity/sign-in/web/devconsole-project.";
const JSON: &str = "application/json; charset=UTF-8";

/// A scripted answer to a send in place of the real outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FcmFailure {
    /// The HTTP status, e.g. 429, 500, 503, 401.
    pub status: u16,
    /// FCM's `errorCode`, e.g. `QUOTA_EXCEEDED`, `UNAVAILABLE`, `INTERNAL`,
    /// `THIRD_PARTY_AUTH_ERROR`.
    pub error_code: &'static str,
    /// Sent as `Retry-After: <seconds>` when given (FCM does so with 429 and some 503s).
    pub retry_after_secs: Option<u64>,
}

/// A message the fake accepted (and did not just validate).
#[derive(Clone, Debug, PartialEq)]
pub struct FcmMessage {
    /// The registration token it was sent to.
    pub token: String,
    /// `message.notification.title`.
    pub title: Option<String>,
    /// `message.notification.body`.
    pub body: Option<String>,
    /// `message.data`.
    pub data: BTreeMap<String, String>,
    /// The `message` object as sent.
    pub raw: Value,
}

/// A running fake; stops when dropped.
pub struct FakeFcm {
    /// Scheme, host and port, without a trailing slash: the OAuth endpoint is
    /// `{base_url}/token` and the FCM API base is `{base_url}/v1`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

struct State {
    /// `{base_url}/token`: the `token_uri` of the key files and the `aud` assertions must carry.
    token_uri: String,
    /// client_email → the service account
    accounts: HashMap<String, Account>,
    /// registration token → the device
    devices: HashMap<String, Device>,
    /// access token → what it grants
    access_tokens: HashMap<String, AccessToken>,
    failures: VecDeque<FcmFailure>,
    /// project id → messages accepted, in order
    messages: HashMap<String, Vec<FcmMessage>>,
    recording: bool,
    now: Option<i64>,
    token_requests: usize,
    sends: usize,
    accepted: usize,
}

struct Account {
    project_id: String,
    /// (private_key_id, public key as SubjectPublicKeyInfo DER): a service account may have
    /// several keys, all valid.
    keys: Vec<(String, Vec<u8>)>,
}

struct Device {
    project_id: String,
    unregistered: bool,
}

struct AccessToken {
    project_id: String,
    expires_at: i64,
    revoked: bool,
}

impl FakeFcm {
    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start() -> FakeFcm {
        let listener = support::bind_local("fake FCM").await;
        let base_url = listener.base_url.clone();
        let state = Arc::new(Mutex::new(State {
            token_uri: format!("{base_url}/token"),
            accounts: HashMap::new(),
            devices: HashMap::new(),
            access_tokens: HashMap::new(),
            failures: VecDeque::new(),
            messages: HashMap::new(),
            recording: true,
            now: None,
            token_requests: 0,
            sends: 0,
            accepted: 0,
        }));
        let server = listener.serve(FcmEndpoint {
            state: Arc::clone(&state),
        });
        FakeFcm {
            base_url,
            state,
            server,
        }
    }

    /// Creates the service account `minigate-push@<project>.iam.gserviceaccount.com` (or gives it
    /// one more key) with a fresh RSA-2048 key, and returns the key file Google lets one
    /// download for it: JSON with `private_key` (PKCS#8 PEM), `private_key_id`, `client_email`
    /// and `token_uri` (this fake's `/token`).
    pub fn add_project(&self, project_id: &str) -> String {
        let key = RsaPem::generate();
        let public = pem_decode(&key.public_pem, "PUBLIC KEY")
            .unwrap_or_else(|| panic!("fake FCM generated a key without a public key"));
        let key_id = format!("{}{}", random_hex(), &random_hex()[..8]);
        let client_email = format!("minigate-push@{project_id}.iam.gserviceaccount.com");
        let client_id = random_digits(21);
        let mut state = self.state();
        let account = state
            .accounts
            .entry(client_email.clone())
            .or_insert_with(|| Account {
                project_id: project_id.to_owned(),
                keys: Vec::new(),
            });
        account.keys.push((key_id.clone(), public));
        let encoded_email = client_email.replace('@', "%40");
        json!({
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": key.private_pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": state.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url":
                format!("https://www.googleapis.com/robot/v1/metadata/x509/{encoded_email}"),
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// A registration token the app got from FCM on a device, valid for this project (adding it
    /// again moves it to this project and undoes [`FakeFcm::unregister`]).
    pub fn add_device(&self, project_id: &str, token: &str) {
        self.state().devices.insert(
            token.to_owned(),
            Device {
                project_id: project_id.to_owned(),
                unregistered: false,
            },
        );
    }

    /// The app was uninstalled (or the token otherwise expired): sends to the token now get
    /// 404 `UNREGISTERED`. A token the fake never heard of becomes known and unregistered.
    pub fn unregister(&self, token: &str) {
        let mut state = self.state();
        match state.devices.get_mut(token) {
            Some(device) => device.unregistered = true,
            None => {
                state.devices.insert(
                    token.to_owned(),
                    Device {
                        project_id: String::new(),
                        unregistered: true,
                    },
                );
            }
        }
    }

    /// The next `times` sends answer `failure` (after failures already queued), whatever they
    /// carry; they are counted in [`FakeFcm::sends`] and record nothing.
    pub fn fail_next(&self, times: usize, failure: FcmFailure) {
        StatusCode::from_u16(failure.status)
            .unwrap_or_else(|e| panic!("fake FCM cannot answer HTTP {}: {e}", failure.status));
        self.state()
            .failures
            .extend(std::iter::repeat_n(failure, times));
    }

    /// Every access token issued so far is now expired: sends using one get 401. New token
    /// requests are answered as usual.
    pub fn expire_access_tokens(&self) {
        for token in self.state().access_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// From now on the fake takes this as the time (Unix seconds) when it checks assertions and
    /// issues and checks access tokens, instead of the system clock.
    pub fn set_now(&self, unix_secs: i64) {
        self.state().now = Some(unix_secs);
    }

    /// The messages accepted for this project, in order (not those only validated, nor those
    /// accepted while recording was off).
    pub fn messages(&self, project_id: &str) -> Vec<FcmMessage> {
        self.state()
            .messages
            .get(project_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests reached `/token`, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.state().token_requests
    }

    /// How many send requests reached the fake, refused ones included.
    pub fn sends(&self) -> usize {
        self.state().sends
    }

    /// How many messages were accepted (validate-only ones excluded), recorded or not.
    pub fn accepted(&self) -> usize {
        self.state().accepted
    }

    /// Whether accepted messages are kept for [`FakeFcm::messages`] (on at start). Benchmarks
    /// that send hundreds of thousands turn it off; they are still counted.
    pub fn set_recording(&self, on: bool) {
        self.state().recording = on;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct FcmEndpoint {
    state: Arc<Mutex<State>>,
}

impl Endpoint for FcmEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let route = match support::push_route(&req, "/token", "/v1/projects/") {
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

/// An OAuth error as Google's token endpoint answers it.
fn oauth_error(error: &str, description: &str) -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type(JSON)
        .body(json!({ "error": error, "error_description": description }).to_string())
}

/// Google's name for the gRPC status behind an HTTP status.
fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// An error in Google's JSON shape: `{"error": {"code", "message", "status", "details"?}}`.
fn google_error(status: u16, message: &str, details: Vec<Value>) -> Response {
    let mut error = json!({
        "code": status,
        "message": message,
        "status": google_status(status),
    });
    if let (false, Some(obj)) = (details.is_empty(), error.as_object_mut()) {
        obj.insert("details".to_owned(), Value::Array(details));
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status).content_type(JSON);
    if status == StatusCode::UNAUTHORIZED {
        builder = builder.header(
            "WWW-Authenticate",
            "Bearer realm=\"https://accounts.google.com/\"",
        );
    }
    builder.body(json!({ "error": error }).to_string())
}

/// An error to answer in Google's shape, before it is made a response.
struct Refusal {
    status: u16,
    message: String,
    details: Vec<Value>,
}

impl Refusal {
    fn into_response(self) -> Response {
        google_error(self.status, &self.message, self.details)
    }
}

fn fcm_error(code: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
        "errorCode": code,
    })
}

fn bad_request(field: &str, description: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{ "field": field, "description": description }],
    })
}

/// 400 `INVALID_ARGUMENT` with FCM's `INVALID_ARGUMENT` errorCode.
fn invalid_argument(message: &str, extra: Option<Value>) -> Refusal {
    let mut details = vec![fcm_error("INVALID_ARGUMENT")];
    details.extend(extra);
    Refusal {
        status: 400,
        message: message.to_owned(),
        details,
    }
}

/// What Google answers to a body its JSON mapping cannot read: no FcmError detail.
fn invalid_json(description: &str, field: &str) -> Refusal {
    let message = format!("Invalid JSON payload received. {description}");
    Refusal {
        status: 400,
        details: vec![bad_request(field, &message)],
        message,
    }
}

fn invalid_token() -> Refusal {
    invalid_argument(
        "The registration token is not a valid FCM registration token",
        Some(bad_request("message.token", "Invalid registration token")),
    )
}

/// The names Google's JSON mapping knows in the request, the message and its notification
/// (proto field names and their lowerCamelCase forms); any other name is refused.
const REQUEST_FIELDS: &[&str] = &["validate_only", "validateOnly", "message"];
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "fcmOptions",
    "token",
    "topic",
    "condition",
];
const NOTIFICATION_FIELDS: &[&str] = &["title", "body", "image"];

fn unknown_field(object: &Map<String, Value>, known: &[&str], at: &str) -> Option<Refusal> {
    let name = object.keys().find(|k| !known.contains(&k.as_str()))?;
    let description = format!("Unknown name \"{name}\" at '{at}': Cannot find field.");
    Some(invalid_json(&description, at))
}

/// Data keys FCM keeps for itself: `from`, `message_type`, and any starting with `google` or
/// `gcm`.
fn reserved_data_key(key: &str) -> bool {
    matches!(key, "from" | "message_type") || key.starts_with("google") || key.starts_with("gcm")
}

/// What the message to record carries, once it passed every check but the token's.
struct Checked {
    token: String,
    title: Option<String>,
    body: Option<String>,
    data: BTreeMap<String, String>,
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
        let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
        if grant_type != JWT_BEARER {
            return oauth_error(
                "unsupported_grant_type",
                &format!("Invalid grant_type: {grant_type}"),
            );
        }
        let Some(assertion) = form.get("assertion").filter(|a| !a.is_empty()) else {
            return oauth_error("invalid_request", "Missing required parameter: assertion");
        };
        let project_id = match self.check_assertion(assertion) {
            Ok(project_id) => project_id,
            Err((error, description)) => return oauth_error(error, description),
        };
        let access_token = format!("ya29.c.{}{}", random_hex(), random_hex());
        let expires_at = self.now() + ACCESS_TOKEN_EXPIRES_IN;
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                project_id,
                expires_at,
                revoked: false,
            },
        );
        Response::builder()
            .status(StatusCode::OK)
            .content_type(JSON)
            .body(
                json!({
                    "access_token": access_token,
                    "expires_in": ACCESS_TOKEN_EXPIRES_IN,
                    "token_type": "Bearer",
                })
                .to_string(),
            )
    }

    /// The project of the service account that signed the assertion, or the OAuth error and
    /// description Google gives: signature first, then audience, times and scope.
    fn check_assertion(&self, assertion: &str) -> Result<String, (&'static str, &'static str)> {
        let bad_signature = ("invalid_grant", BAD_SIGNATURE);
        let jwt = decode_jwt(assertion).ok_or(bad_signature)?;
        if jwt.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(bad_signature);
        }
        let iss = jwt
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(("invalid_request", "Invalid JWT: No issuer ('iss') claim."))?;
        let account = self
            .accounts
            .get(iss)
            .ok_or(("invalid_grant", "Invalid grant: account not found"))?;
        // Without `kid` Google tries each of the account's keys; with it, only that key.
        let kid = jwt.header.get("kid").and_then(Value::as_str);
        let verified = account
            .keys
            .iter()
            .filter(|(key_id, _)| kid.is_none_or(|kid| kid == key_id))
            .any(|(_, public)| {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
                    .verify(jwt.signing_input.as_bytes(), &jwt.signature)
                    .is_ok()
            });
        if !verified {
            return Err(bad_signature);
        }
        if jwt.claims.get("aud").and_then(Value::as_str) != Some(self.token_uri.as_str()) {
            return Err(("invalid_grant", "Invalid JWT: Failed audience check."));
        }
        let time = |name: &str| jwt.claims.get(name).and_then(Value::as_i64);
        let now = self.now();
        let in_timeframe = match (time("iat"), time("exp")) {
            (Some(iat), Some(exp)) => {
                iat <= now + CLOCK_SKEW
                    && exp > now
                    && exp > iat
                    && exp - iat <= MAX_ASSERTION_LIFETIME
            }
            _ => false,
        };
        if !in_timeframe {
            return Err(("invalid_grant", TIME_PROBLEM));
        }
        let scope = jwt
            .claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("");
        if scope.trim().is_empty() {
            return Err(("invalid_scope", "Empty or missing scope not allowed."));
        }
        if !scope.split(' ').any(|s| SCOPES.contains(&s)) {
            return Err((
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            ));
        }
        Ok(account.project_id.clone())
    }

    fn send(&mut self, project: &str, authorization: Option<&str>, body: &[u8]) -> Response {
        self.sends += 1;
        if let Some(failure) = self.failures.pop_front() {
            return scripted(failure);
        }
        let now = self.now();
        let granted = authorization
            .and_then(|h| {
                h.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            })
            .and_then(|(_, token)| self.access_tokens.get(token.trim()))
            .filter(|t| !t.revoked && now < t.expires_at);
        let Some(granted) = granted else {
            return google_error(401, UNAUTHENTICATED, Vec::new());
        };
        if granted.project_id != project {
            let message = format!(
                "Permission 'cloudmessaging.messages.create' denied on resource \
                 '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            );
            return google_error(403, &message, Vec::new());
        }
        let checked = match check_message(body) {
            Ok(checked) => checked,
            Err(refusal) => return refusal.into_response(),
        };
        match self.devices.get(&checked.token) {
            None => return invalid_token().into_response(),
            Some(device) if device.unregistered => {
                return google_error(
                    404,
                    "Requested entity was not found.",
                    vec![fcm_error("UNREGISTERED")],
                );
            }
            Some(device) if device.project_id != project => {
                return google_error(
                    403,
                    "SenderId mismatch",
                    vec![fcm_error("SENDER_ID_MISMATCH")],
                );
            }
            Some(_) => {}
        }
        let name = if checked.validate_only {
            // What FCM names a message it only validated.
            format!("projects/{project}/messages/fake_message_id")
        } else {
            self.accepted += 1;
            if self.recording {
                self.messages
                    .entry(project.to_owned())
                    .or_default()
                    .push(FcmMessage {
                        token: checked.token,
                        title: checked.title,
                        body: checked.body,
                        data: checked.data,
                        raw: checked.raw,
                    });
            }
            format!(
                "projects/{project}/messages/0:{}%{}",
                random_digits(16),
                &random_hex()[..16]
            )
        };
        Response::builder()
            .status(StatusCode::OK)
            .content_type(JSON)
            .body(json!({ "name": name }).to_string())
    }
}

fn scripted(failure: FcmFailure) -> Response {
    let message = match failure.status {
        429 => {
            "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per \
                minute' of service 'fcm.googleapis.com'."
        }
        401 => UNAUTHENTICATED,
        500 => "Internal error encountered.",
        503 => "The service is currently unavailable.",
        _ => "Request failed.",
    };
    let mut answer = google_error(failure.status, message, vec![fcm_error(failure.error_code)]);
    if let Some(secs) = failure.retry_after_secs
        && let Ok(value) = secs.to_string().parse()
    {
        answer.headers_mut().insert("Retry-After", value);
    }
    answer
}

/// Reads and checks the body of a send the way FCM does, up to (not including) the token's
/// registration.
fn check_message(body: &[u8]) -> Result<Checked, Refusal> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_json(&format!("Unexpected token: {e}"), ""))?;
    let request = request
        .as_object()
        .ok_or_else(|| invalid_json("Expected an object.", ""))?;
    if let Some(refusal) = unknown_field(request, REQUEST_FIELDS, "") {
        return Err(refusal);
    }
    let validate_only = match request.get("validate_only").or(request.get("validateOnly")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid_json(
                &format!("Invalid value at 'validate_only' (TYPE_BOOL), {other}"),
                "validate_only",
            ));
        }
    };
    let Some(message) = request.get("message").and_then(Value::as_object) else {
        return Err(invalid_token());
    };
    if let Some(refusal) = unknown_field(message, MESSAGE_FIELDS, "message") {
        return Err(refusal);
    }
    let Some(token) = message
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err(invalid_token());
    };

    let mut data = BTreeMap::new();
    match message.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (index, (key, value)) in map.iter().enumerate() {
                let Some(value) = value.as_str() else {
                    return Err(invalid_argument(
                        &format!(
                            "Invalid value at 'message.data[{index}].value' (TYPE_STRING), {value}"
                        ),
                        None,
                    ));
                };
                if reserved_data_key(key) {
                    return Err(invalid_argument(
                        &format!("Invalid data payload key: {key}"),
                        None,
                    ));
                }
                data.insert(key.clone(), value.to_owned());
            }
        }
        Some(other) => {
            return Err(invalid_argument(
                &format!("Invalid value at 'message.data' (map<string, string>), {other}"),
                None,
            ));
        }
    }

    let (mut title, mut text) = (None, None);
    let notification = message.get("notification").filter(|n| !n.is_null());
    if let Some(notification) = notification {
        let Some(fields) = notification.as_object() else {
            return Err(invalid_json(
                "Invalid value at 'message.notification': expected an object.",
                "message.notification",
            ));
        };
        if let Some(refusal) = unknown_field(fields, NOTIFICATION_FIELDS, "message.notification") {
            return Err(refusal);
        }
        for (name, slot) in [("title", &mut title), ("body", &mut text)] {
            match fields.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => *slot = Some(s.clone()),
                Some(other) => {
                    return Err(invalid_json(
                        &format!(
                            "Invalid value at 'message.notification.{name}' (TYPE_STRING), {other}"
                        ),
                        &format!("message.notification.{name}"),
                    ));
                }
            }
        }
    }

    // A notification or data payload, shared or platform-specific.
    let present = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    let android = message.get("android");
    let has_content = notification.is_some()
        || present(message.get("data"))
        || present(android.and_then(|a| a.get("notification")))
        || present(android.and_then(|a| a.get("data")))
        || present(message.get("apns").and_then(|a| a.get("payload")))
        || present(message.get("webpush"));
    if !has_content {
        return Err(invalid_argument(
            "Message must contain a notification or a data payload.",
            None,
        ));
    }

    Ok(Checked {
        token: token.to_owned(),
        title,
        body: text,
        data,
        raw: Value::Object(message.clone()),
        validate_only,
    })
}
