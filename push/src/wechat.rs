//! WeChat's server APIs for mini-programs: login (`jscode2session`), the user's phone number
//! (`getuserphonenumber`), and the access token those calls need (stable-token API), cached per app
//! in a [`TokenStore`].
//!
//! WeChat answers HTTP 200 for most failures and says what went wrong in `errcode` / `errmsg`
//! (absent or 0 means success); `classify` turns those into this crate's [`Error`]s.

pub mod followers;
pub mod messages;
pub mod oa_crypto;
mod oa_xml;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

pub use crate::tokens::TokenStore;
use crate::tokens::cached_or_fetched;

/// How long before WeChat's stated expiry a cached token stops being used, so that a token is
/// never sent in its last minutes (WeChat's clock and ours differ, and requests take time).
const TOKEN_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);

const USER_AGENT: &str = concat!("minigate/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct WechatConfig {
    /// Scheme and host of WeChat's API, e.g. `https://api.weixin.qq.com` (a fake's in tests).
    pub api_base: String,
    /// Limit for a whole request, connect to last byte.
    pub timeout: Duration,
}

/// A mini-program's identity on WeChat's side.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_id: String,
    pub secret: SecretString,
}

/// The answer to a `wx.login` code.
#[derive(Debug, Clone)]
pub struct WxSession {
    pub openid: String,
    /// Only when the app is bound to a WeChat Open Platform account.
    pub unionid: Option<String>,
    pub session_key: SecretString,
}

/// The answer to a `getPhoneNumber` code.
#[derive(Debug, Clone)]
pub struct PhoneNumber {
    /// With the country code when it is not mainland China's.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    pub country_code: String,
}

/// Client for WeChat's server APIs. Cheap to clone: clones share the HTTP pool and token cache.
#[derive(Clone)]
pub struct WechatClient {
    http: reqwest::Client,
    base: Arc<str>,
    tokens: TokenStore,
    /// Serializes token refreshes in this process, so concurrent callers that miss the cache (or
    /// see the same token rejected) ask WeChat once instead of each forcing a new token and
    /// invalidating the one the others just got.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

/// The WeChat endpoints we call; names their errors and decides what an errcode means for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    CodeToSession,
    StableToken,
    PhoneNumber,
    UserGet,
    UserInfoBatchget,
}

impl Api {
    fn service(self) -> &'static str {
        match self {
            Api::CodeToSession => "wechat jscode2session",
            Api::StableToken => "wechat stable_token",
            Api::PhoneNumber => "wechat getuserphonenumber",
            Api::UserGet => "wechat user/get",
            Api::UserInfoBatchget => "wechat user/info/batchget",
        }
    }
}

/// A non-zero `errcode` answer.
#[derive(Debug)]
struct WxFailure {
    errcode: i64,
    errmsg: String,
}

impl WxFailure {
    /// The access token sent was invalid, expired or not the latest one.
    fn is_token_rejected(&self) -> bool {
        matches!(self.errcode, 40001 | 40014 | 42001)
    }
}

/// What an errcode means, per API. Unknown codes count as transient: WeChat adds codes without
/// notice, and retrying later is safer than telling a user their code is bad.
fn classify(api: Api, failure: WxFailure) -> Error {
    let WxFailure { errcode, errmsg } = failure;
    match (api, errcode) {
        // invalid code, code already used, high-risk user blocked
        (Api::CodeToSession | Api::PhoneNumber, 40029 | 40163 | 40226) => {
            Error::WechatCodeInvalid { errcode, errmsg }
        }
        // invalid appid, invalid secret, IP not whitelisted, appid / secret missing,
        // API not granted to this app
        (_, 40013 | 40125 | 40164 | 41002 | 41004 | 48001) => {
            Error::WechatConfig { errcode, errmsg }
        }
        // From the token API itself, 40001 means the secret is wrong (there is no token yet).
        (Api::StableToken, 40001) => Error::WechatConfig { errcode, errmsg },
        _ => Error::Upstream {
            service: api.service(),
            detail: format!("errcode {errcode}: {errmsg}"),
            source: None,
        },
    }
}

fn upstream(api: Api, detail: impl Into<String>, source: Option<reqwest::Error>) -> Error {
    Error::Upstream {
        service: api.service(),
        detail: detail.into(),
        source: source.map(reqwest::Error::without_url),
    }
}

#[derive(Deserialize)]
struct SessionAnswer {
    openid: String,
    session_key: SecretString,
    #[serde(default)]
    unionid: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct PhoneAnswer {
    phone_info: PhoneInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneInfo {
    phone_number: String,
    pure_phone_number: String,
    country_code: String,
}

impl WechatClient {
    pub fn new(config: WechatConfig, tokens: TokenStore) -> Result<Self> {
        let base = config.api_base.trim_end_matches('/');
        match reqwest::Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.query().is_none() => {}
            _ => {
                return Err(Error::Setup {
                    reason: "wechat api_base is not an http(s) URL without a query".to_owned(),
                    source: None,
                });
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| Error::Setup {
                reason: "building the wechat http client failed".to_owned(),
                source: Some(e),
            })?;
        Ok(WechatClient {
            http,
            base: Arc::from(base),
            tokens,
            refresh: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Exchanges a `wx.login` code for the user's openid (and unionid) in this app.
    pub async fn code_to_session(&self, app: &AppCredentials, code: &str) -> Result<WxSession> {
        let api = Api::CodeToSession;
        let request = self
            .http
            .get(format!("{}/sns/jscode2session", self.base))
            .query(&[
                ("appid", app.app_id.as_str()),
                ("secret", app.secret.expose_secret()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ]);
        let answer: SessionAnswer = self.send(api, request).await?.map_err(|f| {
            tracing::info!(app_id = %app.app_id, errcode = f.errcode, "wechat login refused");
            classify(api, f)
        })?;
        Ok(WxSession {
            openid: answer.openid,
            unionid: answer.unionid.filter(|u| !u.is_empty()),
            session_key: answer.session_key,
        })
    }

    /// Exchanges a `getPhoneNumber` code for the user's phone number. A token WeChat no longer
    /// accepts is refreshed (forced) once and the call retried once.
    pub async fn phone_number(&self, app: &AppCredentials, code: &str) -> Result<PhoneNumber> {
        let api = Api::PhoneNumber;
        let mut token = self.access_token(app).await?;
        let mut retried = false;
        let answer: PhoneAnswer = loop {
            let request = self
                .http
                .post(format!("{}/wxa/business/getuserphonenumber", self.base))
                .query(&[("access_token", token.expose_secret())])
                .json(&serde_json::json!({ "code": code }));
            match self.send(api, request).await? {
                Ok(answer) => break answer,
                Err(f) if f.is_token_rejected() && !retried => {
                    tracing::info!(app_id = %app.app_id, errcode = f.errcode,
                        "wechat rejected the cached access token; refreshing");
                    token = self.replace_rejected_token(app, &token).await?;
                    retried = true;
                }
                Err(f) => {
                    tracing::info!(app_id = %app.app_id, errcode = f.errcode,
                        "wechat phone number refused");
                    return Err(classify(api, f));
                }
            }
        };
        Ok(PhoneNumber {
            phone_number: answer.phone_info.phone_number,
            pure_phone_number: answer.phone_info.pure_phone_number,
            country_code: answer.phone_info.country_code,
        })
    }

    /// The app's access token, from the cache or else from the stable-token API (then cached
    /// until five minutes before WeChat says it expires).
    pub async fn access_token(&self, app: &AppCredentials) -> Result<SecretString> {
        self.token(app, None).await
    }

    /// A token to use instead of `rejected`: one another task or replica already cached, or a
    /// newly forced one.
    async fn replace_rejected_token(
        &self,
        app: &AppCredentials,
        rejected: &SecretString,
    ) -> Result<SecretString> {
        self.token(app, Some(rejected)).await
    }

    /// The cached token, or one fetched once for all tasks and replicas; after a rejection the
    /// fetch forces a new token.
    async fn token(
        &self,
        app: &AppCredentials,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString> {
        cached_or_fetched(
            &self.tokens,
            &self.refresh,
            &token_key(&app.app_id),
            rejected,
            Api::StableToken.service(),
            || self.fetch_token(app, rejected.is_some()),
        )
        .await
    }

    async fn fetch_token(
        &self,
        app: &AppCredentials,
        force_refresh: bool,
    ) -> Result<(SecretString, Duration)> {
        let api = Api::StableToken;
        let request = self
            .http
            .post(format!("{}/cgi-bin/stable_token", self.base))
            .json(&serde_json::json!({
                "grant_type": "client_credential",
                "appid": app.app_id,
                "secret": app.secret.expose_secret(),
                "force_refresh": force_refresh,
            }));
        let answer: TokenAnswer = self.send(api, request).await?.map_err(|f| {
            tracing::warn!(app_id = %app.app_id, errcode = f.errcode, errmsg = %f.errmsg,
                "wechat refused an access token");
            classify(api, f)
        })?;
        let ttl = Duration::from_secs(answer.expires_in).saturating_sub(TOKEN_SAFETY_MARGIN);
        tracing::info!(app_id = %app.app_id, force_refresh, expires_in = answer.expires_in,
            "fetched wechat access token");
        Ok((answer.access_token, ttl))
    }

    /// Sends `request` and reads WeChat's JSON answer: `Ok(Ok(T))` on success, `Ok(Err(..))` when
    /// WeChat answered with a non-zero errcode, `Err` when there was no usable answer at all.
    async fn send<T: DeserializeOwned>(
        &self,
        api: Api,
        request: reqwest::RequestBuilder,
    ) -> Result<Result<T, WxFailure>> {
        let response = request.send().await.map_err(|e| {
            // Its URL carries the secret or the access token in the query string.
            let e = e.without_url();
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            tracing::warn!(service = api.service(), error = %e, "{what}");
            upstream(api, what, Some(e))
        })?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(service = api.service(), %status, "unexpected http status");
            return Err(upstream(api, format!("http status {status}"), None));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| upstream(api, "reading the answer failed", Some(e)))?;
        parse_answer(api, &body)
    }
}

/// Where an app's access token is kept.
fn token_key(app_id: &str) -> String {
    format!("wechat:access_token:{app_id}")
}

/// 128 random bits as hex: a lock holder's mark.
pub(crate) fn nonce() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // Not secret, only distinct: the time will do.
        return format!("{:?}", std::time::SystemTime::now());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits an answer into success (`errcode` absent or 0) and WeChat's refusal.
fn parse_answer<T: DeserializeOwned>(api: Api, body: &[u8]) -> Result<Result<T, WxFailure>> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| upstream(api, "answer is not JSON", None))?;
    let errcode = match value.get("errcode") {
        None | Some(serde_json::Value::Null) => 0,
        Some(code) => code
            .as_i64()
            .ok_or_else(|| upstream(api, "errcode is not an integer", None))?,
    };
    if errcode != 0 {
        let errmsg = value
            .get("errmsg")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return Ok(Err(WxFailure { errcode, errmsg }));
    }
    serde_json::from_value(value)
        .map(Ok)
        // serde's message may quote a value from the answer, which may be a secret.
        .map_err(|_| upstream(api, "unexpected answer shape", None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(errcode: i64) -> WxFailure {
        WxFailure {
            errcode,
            errmsg: "msg".to_owned(),
        }
    }

    #[test]
    fn bad_login_and_phone_codes_are_the_clients_problem() {
        for api in [Api::CodeToSession, Api::PhoneNumber] {
            for errcode in [40029, 40163, 40226] {
                let e = classify(api, failure(errcode));
                assert_eq!(e.code(), "WECHAT_CODE_INVALID", "{api:?} {errcode}");
            }
        }
    }

    #[test]
    fn rejected_app_credentials_are_a_configuration_problem() {
        for api in [Api::CodeToSession, Api::PhoneNumber, Api::StableToken] {
            for errcode in [40013, 40125, 40164, 41002, 41004, 48001] {
                let e = classify(api, failure(errcode));
                assert_eq!(e.code(), "WECHAT_CONFIG_INVALID", "{api:?} {errcode}");
            }
        }
        assert_eq!(
            classify(Api::StableToken, failure(40001)).code(),
            "WECHAT_CONFIG_INVALID"
        );
    }

    #[test]
    fn busy_rate_limited_and_unknown_errcodes_are_transient() {
        for errcode in [-1, 45011, 45009, 40001, 42001, 99999] {
            let e = classify(Api::PhoneNumber, failure(errcode));
            assert_eq!(e.code(), "UPSTREAM_UNAVAILABLE", "{errcode}");
            assert!(e.is_transient());
        }
        assert_eq!(
            classify(Api::StableToken, failure(-1)).code(),
            "UPSTREAM_UNAVAILABLE"
        );
    }

    #[test]
    fn only_token_errcodes_trigger_a_refresh() {
        for errcode in [40001, 40014, 42001] {
            assert!(failure(errcode).is_token_rejected());
        }
        for errcode in [0, -1, 40029, 40013, 41001] {
            assert!(!failure(errcode).is_token_rejected());
        }
    }

    #[derive(Debug, Deserialize)]
    struct Answer {
        x: i64,
    }

    #[test]
    fn errcode_absent_or_zero_is_success() {
        let a: Answer = parse_answer(Api::CodeToSession, br#"{"x":1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.x, 1);
        let a: Answer = parse_answer(Api::CodeToSession, br#"{"errcode":0,"errmsg":"ok","x":2}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.x, 2);
    }

    #[test]
    fn a_nonzero_errcode_is_returned_as_wechats_refusal() {
        let f = parse_answer::<Answer>(
            Api::CodeToSession,
            br#"{"errcode":40163,"errmsg":"code been used"}"#,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(f.errcode, 40163);
        assert_eq!(f.errmsg, "code been used");
    }

    #[test]
    fn non_json_or_misshapen_answers_are_upstream_failures() {
        for body in [
            &b"<html>502</html>"[..],
            br#"{"errcode":"x"}"#,
            br#"{"y":1}"#,
        ] {
            let e = parse_answer::<Answer>(Api::StableToken, body).unwrap_err();
            assert_eq!(e.code(), "UPSTREAM_UNAVAILABLE");
        }
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused_at_setup() {
        let config = WechatConfig {
            api_base: "not a url".to_owned(),
            timeout: Duration::from_secs(1),
        };
        let Err(e) = WechatClient::new(config, TokenStore::local()) else {
            panic!("accepted a malformed base URL");
        };
        assert_eq!(e.code(), "INTERNAL");
    }
}
