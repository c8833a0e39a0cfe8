//! A fake of WeChat's server API for mini-programs: `jscode2session`, `stable_token` and
//! `getuserphonenumber`, answering the way WeChat does: HTTP 200 with `errcode` / `errmsg` for
//! every refusal, the same errcodes for the same mistakes, one-time codes, tokens that a forced
//! refresh invalidates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use poem::http::{Method, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, IntoResponse, Request, Response, Server};
use serde_json::{Value, json};

/// Lifetime WeChat states for an access token.
const TOKEN_EXPIRES_IN: u64 = 7200;

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
    fail_next: Option<i64>,
    calls: HashMap<String, usize>,
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
    pub fn login_code(&self, app_id: &str, openid: &str, unionid: Option<&str>) -> String {
        let code = new_code();
        self.state().login_codes.insert(
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

    /// Invalidates every access token issued so far: requests using one get 40001, and the next
    /// `stable_token` call issues a new one even without `force_refresh`.
    pub fn expire_access_tokens(&self) {
        let mut state = self.state();
        state.valid_tokens.clear();
        state.current_token.clear();
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
            return Ok(respond(Err(errcode), "application/json; encoding=utf-8"));
        }
        let (answer, content_type) = match path.as_str() {
            // WeChat labels this JSON answer as text/plain; clients must not rely on the header.
            "/sns/jscode2session" => (state.code_to_session(&method, &query), "text/plain"),
            "/cgi-bin/stable_token" => (
                state.stable_token(&method, &body),
                "application/json; encoding=utf-8",
            ),
            "/wxa/business/getuserphonenumber" => (
                state.phone_number(&method, &query, &body),
                "application/json; encoding=utf-8",
            ),
            _ => return Ok(StatusCode::NOT_FOUND.into_response()),
        };
        Ok(respond(answer, content_type))
    }
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
        40029 => "invalid code",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40163 => "code been used",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        43001 => "require GET method",
        43002 => "require POST method",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        47001 => "data format error",
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
        if method != Method::POST {
            return Err(43002);
        }
        let token = query
            .get("access_token")
            .filter(|t| !t.is_empty())
            .ok_or(41001)?;
        let app_id = self.valid_tokens.get(token).cloned().ok_or(40001)?;
        let body: Value = serde_json::from_slice(body).map_err(|_| 47001)?;
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
