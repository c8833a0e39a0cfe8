//! The two WeChat messages the delivery engine sends: an official account's template message
//! (`cgi-bin/message/template/send`, to a follower of the account) and a mini-program's
//! subscribe message (`cgi-bin/message/subscribe/send`, one per consent the user gave in
//! `wx.requestSubscribeMessage`).
//!
//! Unlike the sign-in calls in [`super`], these never fail with an [`Error`]: every answer, and
//! every way of getting none, is a [`SendOutcome`] the engine acts on, so an HTTP status keeps its
//! number and its `Retry-After`, and a refusal keeps WeChat's errcode and errmsg. The access
//! token comes from the cache as for every call; one WeChat rejects (40001, 40014, 42001) is
//! replaced once and the message sent once more, and a second rejection is a
//! [`SendOutcome::Credential`].
//!
//! Values are sent as given: WeChat's limits per keyword type (`thing` at most 20 characters and
//! so on) are the caller's business, and a value over them comes back as 47003, permanent.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::ser::Serializer;

use super::{AppCredentials, WechatClient};
use crate::Error;
use crate::outcome::{SendOutcome, classify_wechat, retry_after, transport_failure, wechat_code};

const TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
const SUBSCRIBE_SEND: &str = "/cgi-bin/message/subscribe/send";

/// An official-account template message.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TemplateMessage<'a> {
    /// The user's openid in the official account (not their mini-program openid).
    pub touser: &'a str,
    pub template_id: &'a str,
    /// A web page the message opens when tapped (WeChat prefers `miniprogram` when both are set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    /// A mini-program page the message opens when tapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniprogramLink<'a>>,
    /// Makes a resend safe: WeChat sends a message with the same id to the same openid once
    /// within ten minutes, answering a repeat with the first message's msgid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<&'a str>,
    /// keyword → value, exactly the template's keywords, sent in this order.
    #[serde(serialize_with = "serialize_data")]
    pub data: &'a [(&'a str, &'a str)],
}

/// The mini-program page a template message opens.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MiniprogramLink<'a> {
    pub appid: &'a str,
    /// Page path with its query, e.g. `pages/bill/index?id=42`.
    pub pagepath: &'a str,
}

/// A mini-program subscribe message.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SubscribeMessage<'a> {
    /// The user's openid in the mini-program.
    pub touser: &'a str,
    pub template_id: &'a str,
    /// The page the message opens, with its query, without a leading `/`
    /// (e.g. `pages/order/detail?id=7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<&'a str>,
    /// Which version of the mini-program the page opens in (WeChat's default: the released one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<MiniprogramState>,
    /// The language the message is shown in: `zh_CN` (WeChat's default), `en_US`, `zh_HK`,
    /// `zh_TW`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<&'a str>,
    /// keyword → value, exactly the template's keywords, sent in this order.
    #[serde(serialize_with = "serialize_data")]
    pub data: &'a [(&'a str, &'a str)],
}

/// A version of a mini-program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MiniprogramState {
    Developer,
    Trial,
    Formal,
}

/// `[(k, v), ..]` as WeChat's `{"k": {"value": v}, ..}`.
fn serialize_data<S: Serializer>(data: &&[(&str, &str)], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Item<'v> {
        value: &'v str,
    }
    serializer.collect_map(data.iter().map(|&(key, value)| (key, Item { value })))
}

/// Which message; names it in logs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Template,
    Subscribe,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Template => TEMPLATE_SEND,
            Kind::Subscribe => SUBSCRIBE_SEND,
        }
    }

    fn service(self) -> &'static str {
        match self {
            Kind::Template => "wechat template message",
            Kind::Subscribe => "wechat subscribe message",
        }
    }
}

/// WeChat's JSON answer to a send.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    errcode: i64,
    errmsg: String,
    msgid: Option<String>,
}

impl WechatClient {
    /// Sends an official-account template message with `app`'s access token (`app` is the
    /// official account). Sent carries WeChat's `msgid`.
    ///
    /// A [`SendOutcome::Transient`] after a timeout or a lost answer may hide a message that went
    /// out; only a `client_msg_id` makes sending it again safe.
    pub async fn send_template(
        &self,
        app: &AppCredentials,
        msg: &TemplateMessage<'_>,
    ) -> SendOutcome {
        self.send_message(app, Kind::Template, msg).await
    }

    /// Sends a mini-program subscribe message with `app`'s access token, using up one of the
    /// user's consents for the template. Sent carries WeChat's `msgid`.
    ///
    /// WeChat has no idempotency key for these: a [`SendOutcome::Transient`] after a timeout or a
    /// lost answer may hide a message that went out (and used the consent), so a retry may be
    /// refused with 43101 or, with consents left, arrive twice.
    pub async fn send_subscribe(
        &self,
        app: &AppCredentials,
        msg: &SubscribeMessage<'_>,
    ) -> SendOutcome {
        self.send_message(app, Kind::Subscribe, msg).await
    }

    async fn send_message<B: Serialize + ?Sized>(
        &self,
        app: &AppCredentials,
        kind: Kind,
        body: &B,
    ) -> SendOutcome {
        let outcome = self.send_with_token(app, kind, body).await;
        match &outcome {
            SendOutcome::Sent { .. } => {
                tracing::debug!(app_id = %app.app_id, service = kind.service(), "sent");
            }
            SendOutcome::Permanent { code, detail } => {
                tracing::info!(app_id = %app.app_id, service = kind.service(), code, detail,
                    "message refused");
            }
            SendOutcome::Transient { code, detail, .. } => {
                tracing::warn!(app_id = %app.app_id, service = kind.service(), code, detail,
                    "message not sent; retry later");
            }
            SendOutcome::Credential { code, detail } => {
                tracing::warn!(app_id = %app.app_id, service = kind.service(), code, detail,
                    "wechat refused the app's credentials");
            }
        }
        outcome
    }

    async fn send_with_token<B: Serialize + ?Sized>(
        &self,
        app: &AppCredentials,
        kind: Kind,
        body: &B,
    ) -> SendOutcome {
        let mut token = match self.access_token(app).await {
            Ok(token) => token,
            Err(e) => return token_unavailable(e),
        };
        let mut refreshed = false;
        loop {
            let answer = match self.post_message(kind, &token, body).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            match answer.errcode {
                0 => {
                    return SendOutcome::Sent {
                        provider_msg_id: answer.msgid,
                    };
                }
                40001 | 40014 | 42001 if !refreshed => {
                    tracing::info!(app_id = %app.app_id, errcode = answer.errcode,
                        "wechat rejected the cached access token; refreshing");
                    token = match self.replace_rejected_token(app, &token).await {
                        Ok(token) => token,
                        Err(e) => return token_unavailable(e),
                    };
                    refreshed = true;
                }
                errcode => return classify_wechat(errcode, &answer.errmsg),
            }
        }
    }

    /// One POST of `body` with `token`; `Err` is the outcome when there is no WeChat answer to
    /// read.
    async fn post_message<B: Serialize + ?Sized>(
        &self,
        kind: Kind,
        token: &SecretString,
        body: &B,
    ) -> Result<Answer, SendOutcome> {
        let response = self
            .http
            .post(format!("{}{}", self.base, kind.path()))
            .query(&[("access_token", token.expose_secret())])
            .json(body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        // WeChat answers its refusals with HTTP 200; any other status comes from something on
        // the way (a gateway, a proxy, an overloaded front end) and says nothing about the
        // message or its recipient, so each one is worth a later try.
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            return Err(SendOutcome::Transient {
                code: format!("HTTP_{}", status.as_u16()),
                detail: format!("http status {status}"),
                retry_after,
            });
        }
        let body = response.bytes().await.map_err(transport_failure)?;
        read_answer(&body)
    }
}

/// The access token could not be had. WeChat refusing the app's credentials needs an operator;
/// anything else (WeChat or the token cache unreachable or busy) passes.
fn token_unavailable(e: Error) -> SendOutcome {
    match e {
        Error::WechatConfig { errcode, errmsg } => SendOutcome::Credential {
            code: wechat_code(errcode),
            detail: format!("no access token: {errmsg}"),
        },
        e => SendOutcome::Transient {
            code: e.code().to_owned(),
            detail: format!("no access token: {e}"),
            retry_after: None,
        },
    }
}

/// WeChat's answer: `errcode` (absent or 0 is success), `errmsg`, and on success `msgid` (a
/// number; a string is kept as given). Anything else is a transient `MALFORMED_ANSWER`: a proxy's
/// error page, or WeChat's answer cut short.
fn read_answer(body: &[u8]) -> Result<Answer, SendOutcome> {
    let malformed = |detail: &str| SendOutcome::Transient {
        code: "MALFORMED_ANSWER".to_owned(),
        detail: detail.to_owned(),
        retry_after: None,
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| malformed("answer is not JSON"))?;
    if !value.is_object() {
        return Err(malformed("answer is not a JSON object"));
    }
    let errcode = match value.get("errcode") {
        None | Some(serde_json::Value::Null) => 0,
        Some(code) => code
            .as_i64()
            .ok_or_else(|| malformed("errcode is not an integer"))?,
    };
    let errmsg = value
        .get("errmsg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let msgid = match value.get("msgid") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok(Answer {
        errcode,
        errmsg,
        msgid,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wechat::{TokenStore, WechatConfig};

    #[test]
    fn a_template_message_is_wechats_json_with_data_in_the_given_order() {
        let msg = TemplateMessage {
            touser: "oa-open-1",
            template_id: "tmpl-1",
            url: None,
            miniprogram: Some(MiniprogramLink {
                appid: "wx_mp",
                pagepath: "pages/bill/index?id=42",
            }),
            client_msg_id: Some("outbox-17"),
            data: &[("time2", "2025年6月1日 15:01"), ("thing1", "粤A8Z888")],
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"touser":"oa-open-1","template_id":"tmpl-1","miniprogram":{"appid":"wx_mp","pagepath":"pages/bill/index?id=42"},"client_msg_id":"outbox-17","data":{"time2":{"value":"2025年6月1日 15:01"},"thing1":{"value":"粤A8Z888"}}}"#
        );
    }

    #[test]
    fn a_subscribe_message_leaves_out_what_is_not_set() {
        let msg = SubscribeMessage {
            touser: "mp-open-1",
            template_id: "tmpl-2",
            page: Some("pages/order/detail?id=7"),
            miniprogram_state: Some(MiniprogramState::Formal),
            lang: None,
            data: &[("thing1", "深圳北站停车场")],
        };
        let json: serde_json::Value = serde_json::to_value(msg).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "touser": "mp-open-1",
                "template_id": "tmpl-2",
                "page": "pages/order/detail?id=7",
                "miniprogram_state": "formal",
                "data": { "thing1": { "value": "深圳北站停车场" } },
            })
        );
    }

    #[test]
    fn answers_are_read_with_their_msgid_or_their_refusal() {
        let a = read_answer(br#"{"errcode":0,"errmsg":"ok","msgid":2000000001}"#).unwrap();
        assert_eq!(a.errcode, 0);
        assert_eq!(a.msgid.as_deref(), Some("2000000001"));
        let a = read_answer(br#"{"msgid":"abc"}"#).unwrap();
        assert_eq!((a.errcode, a.msgid.as_deref()), (0, Some("abc")));
        let a = read_answer(br#"{"errcode":43004,"errmsg":"require subscribe"}"#).unwrap();
        assert_eq!(a.errcode, 43004);
        assert_eq!(a.errmsg, "require subscribe");
        assert_eq!(a.msgid, None);
    }

    #[test]
    fn answers_that_are_not_wechats_json_are_transient() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            br#"{"errcode":"43004"}"#,
            b"[1]",
            br#"{"errcode":0,"msgid":"#,
        ] {
            let outcome = read_answer(body).unwrap_err();
            assert_eq!(outcome.kind(), "TRANSIENT", "{body:?}");
            assert_eq!(outcome.code(), "MALFORMED_ANSWER");
        }
    }

    #[test]
    fn token_failures_are_credential_or_transient() {
        let outcome = token_unavailable(Error::WechatConfig {
            errcode: 40125,
            errmsg: "invalid appsecret".to_owned(),
        });
        assert_eq!(outcome.kind(), "CREDENTIAL");
        assert_eq!(outcome.code(), "WECHAT_40125");
        let outcome = token_unavailable(Error::Upstream {
            service: "wechat stable_token",
            detail: "timed out".to_owned(),
            source: None,
        });
        assert_eq!(outcome.kind(), "TRANSIENT");
        assert_eq!(outcome.code(), "UPSTREAM_UNAVAILABLE");
    }

    /// A server that accepts connections and never answers; the send (with a cached token)
    /// times out.
    #[tokio::test]
    async fn a_send_without_an_answer_in_time_is_a_transient_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let tokens = TokenStore::local();
        tokens
            .put(
                &super::super::token_key("wx_mp"),
                &SecretString::from("cached-token"),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let client = WechatClient::new(
            WechatConfig {
                api_base: format!("http://{addr}"),
                timeout: Duration::from_millis(200),
            },
            tokens,
        )
        .unwrap();
        let app = AppCredentials {
            app_id: "wx_mp".to_owned(),
            secret: SecretString::from("secret"),
        };
        let msg = SubscribeMessage {
            touser: "mp-open-1",
            template_id: "tmpl-2",
            page: None,
            miniprogram_state: None,
            lang: None,
            data: &[("thing1", "x")],
        };

        let outcome = client.send_subscribe(&app, &msg).await;
        assert_eq!(outcome.code(), "TIMEOUT", "{outcome:?}");
        assert_eq!(outcome.kind(), "TRANSIENT");
        let SendOutcome::Transient { detail, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(!detail.contains("cached-token"), "{detail}");
        silent.abort();
    }
}
