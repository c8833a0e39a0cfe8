//! A fake of the Apple Push Notification service provider API with token-based authentication:
//! `POST /3/device/{device_token}` over HTTP/2, one instance per APNs environment (a test starts
//! one for `api.sandbox.push.apple.com` and one for `api.push.apple.com`).
//!
//! Like APNs it speaks only HTTP/2 (here in clear text with prior knowledge; requests over
//! HTTP/1.x get 505), checks the provider token (an ES256 JWT signed with a `.p8` key from
//! [`FakeApns::add_key`], its age, how often it changes), the `apns-*` headers, the payload and
//! the device token, and answers errors as `{"reason": "..."}` with Apple's status codes.
//! Successes are 200 with an empty body; every answer carries `apns-id`.
//!
//! Verified provider tokens are cached, as APNs does, so that benchmarks pushing thousands of
//! notifications a second do not pay for an ECDSA verification each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use poem::http::{Method, StatusCode, Version};
use poem::{Endpoint, Request, Response};
use serde_json::{Value, json};

use crate::keys::{decode_jwt, ec_p256_p8, pem_decode};
use crate::support::{self, lock};

/// A provider token is refused as expired once its `iat` is more than an hour old.
const TOKEN_MAX_AGE: i64 = 3600;
/// APNs refuses a new provider token for a key sooner than 20 minutes after the previous one.
const MIN_TOKEN_UPDATE_INTERVAL: i64 = 1200;
/// The payload limit of every push type but VoIP.
const MAX_PAYLOAD: usize = 4096;
/// The payload limit of VoIP notifications.
const MAX_VOIP_PAYLOAD: usize = 5120;
const MAX_COLLAPSE_ID: usize = 64;
/// How many verified provider tokens the fake remembers before starting its cache afresh.
const TOKEN_CACHE_LIMIT: usize = 10_000;
const JSON: &str = "application/json";

/// A notification the fake accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct ApnsNotification {
    /// The device token from the path, as sent.
    pub device_token: String,
    /// `apns-topic`.
    pub topic: String,
    /// `apns-push-type`.
    pub push_type: String,
    /// `apns-priority`, when sent.
    pub priority: Option<u8>,
    /// `apns-collapse-id`, when sent.
    pub collapse_id: Option<String>,
    /// The `apns-id` answered: the request's, or the one the fake made up.
    pub apns_id: String,
    /// The JSON payload.
    pub payload: Value,
}

/// A running fake; stops when dropped.
pub struct FakeApns {
    /// Scheme, host and port, without a trailing slash; requests go to
    /// `{base_url}/3/device/{device_token}` over HTTP/2.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// key id → the key
    keys: HashMap<String, SigningKey>,
    /// provider token (the JWT text) → what it proved, once its signature was checked
    verified: HashMap<String, Verified>,
    /// key id → the distinct `iat`s accepted, in first-seen order
    iats: HashMap<String, Vec<i64>>,
    /// lowercase device token → the device
    devices: HashMap<String, Device>,
    failures: VecDeque<Scripted>,
    notifications: Vec<ApnsNotification>,
    not_recording: bool,
    now: Option<i64>,
    sends: usize,
    accepted: usize,
}

struct SigningKey {
    team_id: String,
    /// The uncompressed P-256 point.
    public: Vec<u8>,
}

#[derive(Clone)]
struct Verified {
    key_id: String,
    iat: i64,
}

struct Device {
    /// The app's bundle id; `None` for a token only ever unregistered, valid for any topic.
    topic: Option<String>,
    /// When APNs learned the token is no longer valid, in milliseconds since the epoch.
    unregistered_at_ms: Option<i64>,
}

#[derive(Clone, Copy)]
struct Scripted {
    status: u16,
    reason: &'static str,
    retry_after_secs: Option<u64>,
}

impl FakeApns {
    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start() -> FakeApns {
        let listener = support::bind_local("fake APNs").await;
        let base_url = listener.base_url.clone();
        let state = Arc::new(Mutex::new(State::default()));
        let server = listener.serve(ApnsEndpoint {
            state: Arc::clone(&state),
        });
        FakeApns {
            base_url,
            state,
            server,
        }
    }

    /// A fresh APNs auth key of this team with this key id (replacing a key with the same id);
    /// returns the `.p8` text Apple lets the developer download once: a PKCS#8 PEM P-256
    /// private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn add_key(&self, team_id: &str, key_id: &str) -> String {
        let (pem, public) = ec_p256_p8();
        let mut state = self.state();
        state.keys.insert(
            key_id.to_owned(),
            SigningKey {
                team_id: team_id.to_owned(),
                public,
            },
        );
        // Tokens checked against a key this replaced prove nothing any more.
        state.verified.clear();
        pem
    }

    /// Trusts an existing `.p8` key (PKCS#8 PEM, P-256) as this team's key `key_id`, e.g. the
    /// one [`FakeApns::add_key`] made for the other environment: Apple's keys work in both.
    pub fn add_existing_key(&self, team_id: &str, key_id: &str, p8: &str) {
        let der = pem_decode(p8, "PRIVATE KEY")
            .unwrap_or_else(|| panic!("not a .p8 key (BEGIN PRIVATE KEY)"));
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .unwrap_or_else(|e| panic!("not a P-256 PKCS#8 private key: {e}"));
        let mut state = self.state();
        state.keys.insert(
            key_id.to_owned(),
            SigningKey {
                team_id: team_id.to_owned(),
                public: key.public_key().as_ref().to_vec(),
            },
        );
        state.verified.clear();
    }

    /// A device token the app got on a device, for the app with this bundle id (`topic`).
    /// Adding it again moves it to this topic and undoes [`FakeApns::unregister`].
    pub fn add_device(&self, topic: &str, device_token: &str) {
        self.state().devices.insert(
            device_token.to_ascii_lowercase(),
            Device {
                topic: Some(topic.to_owned()),
                unregistered_at_ms: None,
            },
        );
    }

    /// The app was uninstalled: notifications to the token now get 410 `Unregistered`, with
    /// the time of this call (by the fake's clock) as `timestamp`.
    pub fn unregister(&self, device_token: &str) {
        let mut state = self.state();
        let at_ms = state.now().saturating_mul(1000);
        state
            .devices
            .entry(device_token.to_ascii_lowercase())
            .or_insert(Device {
                topic: None,
                unregistered_at_ms: None,
            })
            .unregistered_at_ms = Some(at_ms);
    }

    /// The next `times` requests answer `status` with `{"reason": reason}` (and
    /// `Retry-After` when given) whatever they carry, after failures already queued, e.g.
    /// 429 `TooManyRequests`, 500 `InternalServerError`, 503 `ServiceUnavailable`.
    pub fn fail_next(
        &self,
        times: usize,
        status: u16,
        reason: &'static str,
        retry_after_secs: Option<u64>,
    ) {
        StatusCode::from_u16(status)
            .unwrap_or_else(|e| panic!("fake APNs cannot answer HTTP {status}: {e}"));
        self.state().failures.extend(std::iter::repeat_n(
            Scripted {
                status,
                reason,
                retry_after_secs,
            },
            times,
        ));
    }

    /// From now on the fake takes this as the time (Unix seconds) when it judges provider
    /// tokens' age, instead of the system clock.
    pub fn set_now(&self, unix_secs: i64) {
        self.state().now = Some(unix_secs);
    }

    /// The notifications accepted, in order (not those accepted while recording was off).
    pub fn notifications(&self) -> Vec<ApnsNotification> {
        self.state().notifications.clone()
    }

    /// Whether accepted notifications are kept for [`FakeApns::notifications`] (on at
    /// start). Benchmarks turn it off; accepted notifications are still counted.
    pub fn set_recording(&self, on: bool) {
        self.state().not_recording = !on;
    }

    /// How many HTTP/2 requests reached the fake, refused ones included.
    pub fn sends(&self) -> usize {
        self.state().sends
    }

    /// How many notifications were accepted, recorded or not.
    pub fn accepted(&self) -> usize {
        self.state().accepted
    }

    /// The distinct `iat`s of the provider tokens accepted for this key, in the order first
    /// seen.
    pub fn provider_tokens(&self, team_id: &str, key_id: &str) -> Vec<i64> {
        let state = self.state();
        if state.keys.get(key_id).is_none_or(|k| k.team_id != team_id) {
            return Vec::new();
        }
        state.iats.get(key_id).cloned().unwrap_or_default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeApns {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct ApnsEndpoint {
    state: Arc<Mutex<State>>,
}

/// A refusal: the status and Apple's reason.
type Refusal = (u16, &'static str);

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    // A value that is not text is as wrong as a badly formed one.
    req.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

impl Endpoint for ApnsEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !matches!(req.version(), Version::HTTP_2 | Version::HTTP_3) {
            return Ok(Response::builder()
                .status(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
                .body("APNs requires HTTP/2"));
        }
        let body = req.take_body().into_bytes().await?;
        let given_id = header(&req, "apns-id");
        let apns_id = given_id
            .filter(|id| is_uuid(id))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase());
        let Some(device_token) = req.uri().path().strip_prefix("/3/device/") else {
            return Ok(refusal(&apns_id, (404, "BadPath")));
        };
        if req.method() != Method::POST {
            return Ok(refusal(&apns_id, (405, "MethodNotAllowed")));
        }
        let mut state = lock(&self.state);
        state.sends += 1;
        if let Some(failure) = state.failures.pop_front() {
            let mut answer = refusal(&apns_id, (failure.status, failure.reason));
            if let Some(secs) = failure.retry_after_secs
                && let Ok(value) = secs.to_string().parse()
            {
                answer.headers_mut().insert("Retry-After", value);
            }
            return Ok(answer);
        }
        if given_id.is_some_and(|id| !is_uuid(id)) {
            return Ok(refusal(&apns_id, (400, "BadMessageId")));
        }
        if let Err(refused) = state.check_provider_token(header(&req, "authorization")) {
            return Ok(refusal(&apns_id, refused));
        }
        let notification = match check_request(&req, device_token, &body) {
            Ok(notification) => notification,
            Err(refused) => return Ok(refusal(&apns_id, refused)),
        };
        let device = state
            .devices
            .get(&device_token.to_ascii_lowercase())
            .ok_or((400, "BadDeviceToken"));
        let device = match device {
            Ok(device) => device,
            Err(refused) => return Ok(refusal(&apns_id, refused)),
        };
        if let Some(topic) = &device.topic {
            let expected = format!("{topic}{}", topic_suffix(&notification.push_type));
            if notification.topic != expected {
                return Ok(refusal(&apns_id, (400, "DeviceTokenNotForTopic")));
            }
        }
        if let Some(at_ms) = device.unregistered_at_ms {
            return Ok(answer(
                &apns_id,
                StatusCode::GONE,
                json!({ "reason": "Unregistered", "timestamp": at_ms }).to_string(),
            ));
        }
        state.accepted += 1;
        if !state.not_recording {
            state.notifications.push(ApnsNotification {
                apns_id: apns_id.clone(),
                ..notification
            });
        }
        Ok(answer(&apns_id, StatusCode::OK, String::new()))
    }
}

fn answer(apns_id: &str, status: StatusCode, body: String) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header("apns-id", apns_id);
    if !body.is_empty() {
        builder = builder.content_type(JSON);
    }
    builder.body(body)
}

fn refusal(apns_id: &str, (status, reason): Refusal) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer(apns_id, status, json!({ "reason": reason }).to_string())
}

/// `8-4-4-4-12` hexadecimal digits, the only form of `apns-id` APNs accepts.
fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// What the push type appends to the bundle id in `apns-topic`.
fn topic_suffix(push_type: &str) -> &'static str {
    match push_type {
        "voip" => ".voip",
        "complication" => ".complication",
        "fileprovider" => ".pushkit.fileprovider",
        "liveactivity" => ".push-type.liveactivity",
        _ => "",
    }
}

const PUSH_TYPES: [&str; 8] = [
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
];

/// Checks the headers, device token and payload; the notification to record (its `apns_id`
/// still empty), or the refusal. The device token is checked for its form only.
fn check_request(
    req: &Request,
    device_token: &str,
    body: &[u8],
) -> Result<ApnsNotification, Refusal> {
    let topic = header(req, "apns-topic")
        .filter(|t| !t.is_empty())
        .ok_or((400, "MissingTopic"))?;
    let push_type = header(req, "apns-push-type")
        .filter(|t| PUSH_TYPES.contains(t))
        .ok_or((400, "InvalidPushType"))?;
    let priority = match header(req, "apns-priority") {
        None => None,
        Some(p) => Some(
            p.parse::<u8>()
                .ok()
                .filter(|p| matches!(p, 1 | 5 | 10))
                .ok_or((400, "BadPriority"))?,
        ),
    };
    if let Some(expiration) = header(req, "apns-expiration")
        && expiration.parse::<i64>().is_err()
    {
        return Err((400, "BadExpirationDate"));
    }
    let collapse_id = header(req, "apns-collapse-id");
    if collapse_id.is_some_and(|c| c.len() > MAX_COLLAPSE_ID) {
        return Err((400, "BadCollapseId"));
    }
    if device_token.is_empty() || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((400, "BadDeviceToken"));
    }
    let payload = check_payload(push_type, body)?;
    Ok(ApnsNotification {
        device_token: device_token.to_owned(),
        topic: topic.to_owned(),
        push_type: push_type.to_owned(),
        priority,
        collapse_id: collapse_id.map(str::to_owned),
        apns_id: String::new(),
        payload,
    })
}

/// Empty: 400 `PayloadEmpty`; over 4 KB (5 KB for VoIP): 413 `PayloadTooLarge`. A body that is
/// not a JSON object with an `aps` dictionary: 400 `BadPayload`. Apple's documented reasons
/// name none for malformed JSON; this one is the fake's.
fn check_payload(push_type: &str, body: &[u8]) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Err((400, "PayloadEmpty"));
    }
    let limit = if push_type == "voip" {
        MAX_VOIP_PAYLOAD
    } else {
        MAX_PAYLOAD
    };
    if body.len() > limit {
        return Err((413, "PayloadTooLarge"));
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|p| p.get("aps").is_some_and(Value::is_object))
        .ok_or((400, "BadPayload"))
}

impl State {
    fn now(&self) -> i64 {
        self.now.unwrap_or_else(support::unix_now)
    }

    /// Missing: 403 `MissingProviderToken`; not a token signed by a key of its `iss` team:
    /// 403 `InvalidProviderToken`; over an hour old: 403 `ExpiredProviderToken`; a new token
    /// sooner than 20 minutes after the key's previous one: 429 `TooManyProviderTokenUpdates`.
    fn check_provider_token(&mut self, authorization: Option<&str>) -> Result<(), Refusal> {
        const INVALID: Refusal = (403, "InvalidProviderToken");
        let authorization = authorization
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or((403, "MissingProviderToken"))?;
        let token = authorization
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(INVALID)?;
        let verified = match self.verified.get(token) {
            Some(verified) => verified.clone(),
            None => {
                let verified = self.verify(token).ok_or(INVALID)?;
                if self.verified.len() >= TOKEN_CACHE_LIMIT {
                    self.verified.clear();
                }
                self.verified.insert(token.to_owned(), verified.clone());
                verified
            }
        };
        if self.now() - verified.iat > TOKEN_MAX_AGE {
            return Err((403, "ExpiredProviderToken"));
        }
        let iats = self.iats.entry(verified.key_id).or_default();
        if !iats.contains(&verified.iat) {
            if let Some(previous) = iats.last()
                && verified.iat - previous < MIN_TOKEN_UPDATE_INTERVAL
            {
                return Err((429, "TooManyProviderTokenUpdates"));
            }
            iats.push(verified.iat);
        }
        Ok(())
    }

    /// The key and `iat` of a JWT with header `{"alg":"ES256","kid":...}` and claims
    /// `{"iss": <the key's team>, "iat": <seconds>}`, signed (r || s) by that key.
    fn verify(&self, token: &str) -> Option<Verified> {
        let jwt = decode_jwt(token)?;
        if jwt.header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return None;
        }
        let key_id = jwt.header.get("kid").and_then(Value::as_str)?;
        let key = self.keys.get(key_id)?;
        if jwt.claims.get("iss").and_then(Value::as_str) != Some(key.team_id.as_str()) {
            return None;
        }
        let iat = jwt.claims.get("iat").and_then(Value::as_i64)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.public)
            .verify(jwt.signing_input.as_bytes(), &jwt.signature)
            .ok()?;
        Some(Verified {
            key_id: key_id.to_owned(),
            iat,
        })
    }
}
