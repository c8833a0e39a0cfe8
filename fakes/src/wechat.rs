//! A fake of WeChat's server API for mini-programs and official accounts, answering the way
//! WeChat does: HTTP 200 with `errcode` / `errmsg` for every refusal, the same errcodes for the
//! same mistakes, one-time codes, tokens that a forced refresh invalidates or that expire.
//!
//! * Mini-program sign-in: `sns/jscode2session`, `wxa/business/getuserphonenumber`.
//! * Access tokens for every app id, mini-program or official account: `cgi-bin/stable_token`.
//! * Official-account template messages (`cgi-bin/message/template/send`) and mini-program
//!   subscribe messages (`cgi-bin/message/subscribe/send`), in `wechat/messages.rs`: templates,
//!   followers and one-time consents are scripted by the test, accepted messages are recorded.
//! * Official-account followers (`cgi-bin/user/get`, `cgi-bin/user/info/batchget`), in
//!   `wechat/followers.rs`.
//!
//! Tests can make the next calls of one route fail ([`FakeWechat::fail_route`]), expire one app's
//! tokens ([`FakeWechat::expire_access_token`]) and count the calls of each route.

mod followers;
mod messages;

pub use messages::{MiniprogramLink, SubscribeMessage, TemplateMessage};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use poem::http::{Method, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, IntoResponse, Request, Response, Server};
use serde_json::{Value, json};

/// Lifetime WeChat states for an access token.
const TOKEN_EXPIRES_IN: u64 = 7200;

/// The paths the fake serves, for [`FakeWechat::calls`] and [`FakeWechat::fail_route`].
pub mod routes {
    pub const CODE_TO_SESSION: &str = "/sns/jscode2session";
    pub const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
    pub const PHONE_NUMBER: &str = "/wxa/business/getuserphonenumber";
    pub const TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
    pub const SUBSCRIBE_SEND: &str = "/cgi-bin/message/subscribe/send";
    pub const USER_GET: &str = "/cgi-bin/user/get";
    pub const USER_INFO_BATCHGET: &str = "/cgi-bin/user/info/batchget";
}

/// What an injected failure answers instead of the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 200 with this errcode, as WeChat refuses (e.g. -1 system busy, 45009 daily quota
    /// reached, 45011 minute quota reached).
    Errcode(i64),
    /// This HTTP status (e.g. 429, 503) with a plain-text body, and `Retry-After: <seconds>`
    /// when given: what a proxy or gateway in front of WeChat may answer.
    Http {
        status: u16,
        retry_after_secs: Option<u64>,
    },
}

/// A running fake; stops when dropped.
pub struct FakeWechat {
    /// Scheme, host and port to use as the client's API base, without a trailing slash.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// app id → secret
    apps: HashMap<String, String>,
    login_codes: HashMap<String, LoginCode>,
    phone_codes: HashMap<String, PhoneCode>,
    /// every access token still valid → the app it was issued to
    valid_tokens: HashMap<String, String>,
    /// app id → the token a non-forced stable_token call returns
    current_token: HashMap<String, String>,
    /// tokens whose lifetime is over: requests using one get 42001
    expired_tokens: HashSet<String>,
    fail_next: Option<i64>,
    /// path → the failures its next calls answer, in order
    route_failures: HashMap<String, VecDeque<Failure>>,
    calls: HashMap<String, usize>,
    /// app id → openids WeChat knows for it (its users and followers, current or former)
    users: HashMap<String, HashSet<String>>,
    messages: messages::Messages,
    followers: followers::Followers,
}

struct LoginCode {
    app_id: String,
    openid: String,
    unionid: Option<String>,
    used: bool,
}

struct PhoneCode {
    app_id: String,
    phone: String,
    used: bool,
}

/// A refusal: WeChat's errcode; the message is looked up in [`errmsg`].
type Answer = Result<Value, i64>;

impl FakeWechat {
    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start() -> FakeWechat {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap_or_else(|e| panic!("fake wechat could not bind a local port: {e}"));
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or_else(|| panic!("fake wechat is not listening on a socket address"));
        let state = Arc::new(Mutex::new(State::default()));
        let endpoint = FakeEndpoint {
            state: Arc::clone(&state),
        };
        let server = tokio::spawn(async move {
            // Only ends when aborted, or if accepting fails, which the client then sees.
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        FakeWechat {
            base_url: format!("http://{addr}"),
            state,
            server,
        }
    }

    /// Registers a mini-program (adding it again replaces its secret).
    pub fn add_app(&self, app_id: &str, secret: &str) {
        self.state()
            .apps
            .insert(app_id.to_owned(), secret.to_owned());
    }

    /// A one-time `wx.login` code for this app that yields this openid (and unionid).
    /// The openid becomes one of the app's users (see [`FakeWechat::add_user`]).
    pub fn login_code(&self, app_id: &str, openid: &str, unionid: Option<&str>) -> String {
        let code = new_code();
        let mut state = self.state();
        state.add_user(app_id, openid);
        state.login_codes.insert(
            code.clone(),
            LoginCode {
                app_id: app_id.to_owned(),
                openid: openid.to_owned(),
                unionid: unionid.map(str::to_owned),
                used: false,
            },
        );
        code
    }

    /// A one-time `getPhoneNumber` code for this app yielding this mainland phone number
    /// (`purePhoneNumber`; `phoneNumber` is the same, `countryCode` is "86").
    pub fn phone_code(&self, app_id: &str, phone: &str) -> String {
        let code = new_code();
        self.state().phone_codes.insert(
            code.clone(),
            PhoneCode {
                app_id: app_id.to_owned(),
                phone: phone.to_owned(),
                used: false,
            },
        );
        code
    }

    /// The next request, on any route, answers HTTP 200 with this errcode (e.g. -1 system busy).
    pub fn fail_next(&self, errcode: i64) {
        self.state().fail_next = Some(errcode);
    }

    /// The next `times` requests to `path` (see [`routes`]) answer `failure` instead, after
    /// whatever failures were already queued for it. Counted in [`FakeWechat::calls`]; they change
    /// nothing else (no consent used, no message recorded).
    pub fn fail_route(&self, path: &str, times: usize, failure: Failure) {
        if let Failure::Http { status, .. } = failure {
            StatusCode::from_u16(status)
                .unwrap_or_else(|e| panic!("fake wechat cannot answer HTTP {status}: {e}"));
        }
        self.state()
            .route_failures
            .entry(path.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(failure, times));
    }

    /// Invalidates every access token issued so far: requests using one get 40001, and the next
    /// `stable_token` call issues a new one even without `force_refresh`.
    pub fn expire_access_tokens(&self) {
        let mut state = self.state();
        state.valid_tokens.clear();
        state.current_token.clear();
    }

    /// Ends the lifetime of this app's tokens: requests using one get 42001 (access_token
    /// expired), and the next `stable_token` call for the app issues a new one. Other apps'
    /// tokens stay valid.
    pub fn expire_access_token(&self, app_id: &str) {
        let mut state = self.state();
        let expired: Vec<String> = state
            .valid_tokens
            .iter()
            .filter(|(_, app)| app.as_str() == app_id)
            .map(|(token, _)| token.clone())
            .collect();
        for token in expired {
            state.valid_tokens.remove(&token);
            state.expired_tokens.insert(token);
        }
        state.current_token.remove(app_id);
    }

    /// Makes `openid` a user WeChat knows for this app (a mini-program user, or a former
    /// follower of an official account) without any consent or follow: sends to it are refused
    /// with 43101 or 43004 rather than 40003 (invalid openid).
    pub fn add_user(&self, app_id: &str, openid: &str) {
        self.state().add_user(app_id, openid);
    }

    /// How many requests reached `path` (e.g. `"/cgi-bin/stable_token"`), refused ones included.
    pub fn calls(&self, path: &str) -> usize {
        self.state().calls.get(path).copied().unwrap_or(0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding the lock has already failed; keep serving the others.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_code() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct FakeEndpoint {
    state: Arc<Mutex<State>>,
}

impl Endpoint for FakeEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let path = req.uri().path().to_owned();
        let query: HashMap<String, String> = req.params().unwrap_or_default();
        let method = req.method().clone();

        let mut state = lock(&self.state);
        *state.calls.entry(path.clone()).or_default() += 1;
        if let Some(errcode) = state.fail_next.take() {
            return Ok(respond(Err(errcode), JSON));
        }
        let injected = state
            .route_failures
            .get_mut(&path)
            .and_then(VecDeque::pop_front);
        match injected {
            Some(Failure::Errcode(errcode)) => return Ok(respond(Err(errcode), JSON)),
            Some(Failure::Http {
                status,
                retry_after_secs,
            }) => return Ok(http_failure(status, retry_after_secs)),
            None => {}
        }
        let (answer, content_type) = match path.as_str() {
            // WeChat labels this JSON answer as text/plain; clients must not rely on the header.
            routes::CODE_TO_SESSION => (state.code_to_session(&method, &query), "text/plain"),
            routes::STABLE_TOKEN => (state.stable_token(&method, &body), JSON),
            routes::PHONE_NUMBER => (state.phone_number(&method, &query, &body), JSON),
            routes::TEMPLATE_SEND => (state.template_send(&method, &query, &body), JSON),
            routes::SUBSCRIBE_SEND => (state.subscribe_send(&method, &query, &body), JSON),
            routes::USER_GET => (state.user_get(&method, &query), JSON),
            routes::USER_INFO_BATCHGET => (state.user_batchget(&method, &query, &body), JSON),
            _ => return Ok(StatusCode::NOT_FOUND.into_response()),
        };
        Ok(respond(answer, content_type))
    }
}

const JSON: &str = "application/json; encoding=utf-8";

fn http_failure(status: u16, retry_after_secs: Option<u64>) -> Response {
    // fail_route checked the status when it was scripted.
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut builder = Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8");
    if let Some(secs) = retry_after_secs {
        builder = builder.header("Retry-After", secs.to_string());
    }
    builder.body(status.canonical_reason().unwrap_or("error"))
}

fn respond(answer: Answer, content_type: &str) -> Response {
    let value = answer.unwrap_or_else(|errcode| {
        json!({
            "errcode": errcode,
            "errmsg": format!("{}, rid: {}", errmsg(errcode), new_code()),
        })
    });
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .body(value.to_string())
}

fn errmsg(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40013 => "invalid appid",
        40003 => "invalid openid",
        40029 => "invalid code",
        40032 => "invalid openid list size",
        40037 => "invalid template_id",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40163 => "code been used",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        41030 => "invalid page",
        42001 => "access_token expired",
        43001 => "require GET method",
        43002 => "require POST method",
        43004 => "require subscribe",
        43101 => "user refuse to accept the msg",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        47001 => "data format error",
        47003 => "argument invalid!",
        _ => "error",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    fn add_user(&mut self, app_id: &str, openid: &str) {
        self.users
            .entry(app_id.to_owned())
            .or_default()
            .insert(openid.to_owned());
    }

    fn is_user(&self, app_id: &str, openid: &str) -> bool {
        self.users
            .get(app_id)
            .is_some_and(|users| users.contains(openid))
    }

    /// The app whose token `access_token=` carries: missing 41001, expired 42001, never issued
    /// or replaced by a forced refresh 40001.
    /// The preamble of every token-checked POST route: the method, the access token (its app id)
    /// and the JSON body, refused with WeChat's errcodes.
    pub(super) fn authorized_post(
        &self,
        method: &Method,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(String, Value), i64> {
        if method != Method::POST {
            return Err(43002);
        }
        let app_id = self.token_app(query)?;
        let body = serde_json::from_slice(body).map_err(|_| 47001)?;
        Ok((app_id, body))
    }

    fn token_app(&self, query: &HashMap<String, String>) -> Result<String, i64> {
        let token = query
            .get("access_token")
            .filter(|t| !t.is_empty())
            .ok_or(41001)?;
        if let Some(app_id) = self.valid_tokens.get(token) {
            return Ok(app_id.clone());
        }
        if self.expired_tokens.contains(token) {
            return Err(42001);
        }
        Err(40001)
    }

    /// Unknown app 40013, wrong secret 40125.
    fn check_app(&self, app_id: &str, secret: &str) -> Result<(), i64> {
        match self.apps.get(app_id) {
            None => Err(40013),
            Some(s) if s != secret => Err(40125),
            Some(_) => Ok(()),
        }
    }

    fn code_to_session(&mut self, method: &Method, query: &HashMap<String, String>) -> Answer {
        if method != Method::GET {
            return Err(43001);
        }
        let param = |name: &str| {
            query
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let app_id = param("appid").ok_or(41002)?;
        let secret = param("secret").ok_or(41004)?;
        let code = param("js_code").ok_or(41008)?;
        if param("grant_type") != Some("authorization_code") {
            return Err(40002);
        }
        self.check_app(app_id, secret)?;
        let login = self
            .login_codes
            .get_mut(code)
            .filter(|c| c.app_id == app_id)
            .ok_or(40029)?;
        if login.used {
            return Err(40163);
        }
        login.used = true;
        let mut answer = json!({
            "openid": login.openid,
            "session_key": new_code(),
        });
        if let (Some(unionid), Some(obj)) = (&login.unionid, answer.as_object_mut()) {
            obj.insert("unionid".to_owned(), Value::from(unionid.as_str()));
        }
        Ok(answer)
    }

    fn stable_token(&mut self, method: &Method, body: &[u8]) -> Answer {
        if method != Method::POST {
            return Err(43002);
        }
        let body: Value = serde_json::from_slice(body).map_err(|_| 47001)?;
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        if field("grant_type") != Some("client_credential") {
            return Err(40002);
        }
        let app_id = field("appid").ok_or(41002)?;
        let secret = field("secret").ok_or(41004)?;
        let force_refresh = match body.get("force_refresh") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(40097),
        };
        self.check_app(app_id, secret)?;

        let current = self.current_token.get(app_id).cloned();
        let token = match current {
            Some(token) if !force_refresh => token,
            previous => {
                // A forced refresh invalidates the token it replaces.
                if let Some(previous) = previous {
                    self.valid_tokens.remove(&previous);
                }
                let token = format!("{}{}", new_code(), new_code());
                self.valid_tokens.insert(token.clone(), app_id.to_owned());
                self.current_token.insert(app_id.to_owned(), token.clone());
                token
            }
        };
        Ok(json!({ "access_token": token, "expires_in": TOKEN_EXPIRES_IN }))
    }

    fn phone_number(
        &mut self,
        method: &Method,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let (app_id, body) = self.authorized_post(method, query, body)?;
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .ok_or(41008)?;
        let phone = self
            .phone_codes
            .get_mut(code)
            .filter(|c| c.app_id == app_id)
            .ok_or(40029)?;
        if phone.used {
            return Err(40163);
        }
        phone.used = true;
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": phone.phone,
                "purePhoneNumber": phone.phone,
                "countryCode": "86",
                "watermark": { "timestamp": unix_now(), "appid": app_id },
            },
        }))
    }
}
