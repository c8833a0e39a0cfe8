//! What one attempt to deliver a message on one channel came to, in the four kinds the delivery
//! engine acts on: sent; refused for good on this channel (the next channel gets its turn);
//! worth retrying later; or refused because of the app's own configuration (an operator has to
//! act, retrying only helps once they have).
//!
//! Providers say what went wrong in their own vocabulary (WeChat's `errcode`, HTTP statuses,
//! transport failures); each outcome keeps that as a stable `code` so that attempts can be
//! counted and searched, and the provider's own words as `detail` (WeChat's `errmsg` carries a
//! `rid` its support asks for).
//!
//! [`classify_wechat`] is the table for WeChat's template and subscribe messages.

use std::time::Duration;

/// What one attempt to deliver a message on a channel came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider accepted the message; its id for it, when it gave one.
    Sent { provider_msg_id: Option<String> },
    /// Never worth retrying on this channel (user refused / no consent, not a follower, invalid
    /// openid, template invalid or its data rejected): the engine falls through to the next
    /// channel.
    Permanent { code: String, detail: String },
    /// Worth retrying later (network, timeout, 5xx, system busy -1, rate limits
    /// 45009/45047/45011 etc., HTTP 429); `retry_after` when the provider said (HTTP
    /// Retry-After seconds).
    Transient {
        code: String,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The credential was refused even after the one refresh the client does: an operator must
    /// fix the app's configuration (wrong secret, IP whitelist, API not granted). The engine
    /// treats it as transient with a long wait and reports it.
    Credential { code: String, detail: String },
}

impl SendOutcome {
    /// Stable code of what happened; never renamed, since attempts are stored and counted by it:
    ///
    /// * `SENT` when the message was accepted;
    /// * `WECHAT_<errcode>` for a WeChat refusal, e.g. `WECHAT_43004`, `WECHAT_-1`;
    /// * `HTTP_<status>` for an HTTP status other than 2xx, e.g. `HTTP_503`, `HTTP_429`;
    /// * `TIMEOUT` when no answer came in time, `NETWORK` when the request or the answer was
    ///   lost on the way;
    /// * `MALFORMED_ANSWER` for an answer that is not the provider's documented JSON;
    /// * the crate's [`crate::Error::code`] when the access token could not be had at all
    ///   (`UPSTREAM_UNAVAILABLE`, `CACHE_UNAVAILABLE`), or `WECHAT_<errcode>` when WeChat
    ///   refused to issue one.
    pub fn code(&self) -> &str {
        match self {
            SendOutcome::Sent { .. } => "SENT",
            SendOutcome::Permanent { code, .. }
            | SendOutcome::Transient { code, .. }
            | SendOutcome::Credential { code, .. } => code,
        }
    }

    /// Which of the four kinds this is, as stored with an attempt: `SENT`, `PERMANENT`,
    /// `TRANSIENT` or `CREDENTIAL`.
    pub fn kind(&self) -> &'static str {
        match self {
            SendOutcome::Sent { .. } => "SENT",
            SendOutcome::Permanent { .. } => "PERMANENT",
            SendOutcome::Transient { .. } => "TRANSIENT",
            SendOutcome::Credential { .. } => "CREDENTIAL",
        }
    }
}

/// A request that got no answer: `TIMEOUT` or `NETWORK`, worth a later try.
pub(crate) fn transport_failure(e: reqwest::Error) -> SendOutcome {
    // Its URL may carry an access token in the query string.
    let e = e.without_url();
    let code = if e.is_timeout() { "TIMEOUT" } else { "NETWORK" };
    SendOutcome::Transient {
        code: code.to_owned(),
        detail: e.to_string(),
        retry_after: None,
    }
}

/// An answer's `Retry-After` in seconds (the providers do not use the HTTP-date form).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The stable code of a WeChat errcode.
pub(crate) fn wechat_code(errcode: i64) -> String {
    format!("WECHAT_{errcode}")
}

/// What a WeChat `message/template/send` or `message/subscribe/send` answer's `errcode` means
/// for the delivery. 0 is [`SendOutcome::Sent`] (without an id: the caller reads `msgid`).
///
/// Refused for good, on this channel, for this message ([`SendOutcome::Permanent`]):
///
/// | errcode | meaning |
/// |---|---|
/// | 40003 | invalid openid: not a user of this app (e.g. the mini-program openid sent to the official account) |
/// | 40036, 40037 | invalid template_id: none such for this app, or its length is wrong |
/// | 41028, 41029 | the form_id of the old mini-program template messages is invalid or used |
/// | 41030 | invalid `page`: not a page of the published mini-program, or it starts with `/` |
/// | 43004 | require subscribe: the user does not follow the official account |
/// | 43101 | the user refused: no unused subscribe consent, or the template turned off |
/// | 43107 | the template, or the app's subscribe messages, are banned |
/// | 47001 | data format error: the body is not the documented JSON |
/// | 47003 | argument invalid: the data's keywords are not the template's, or a value does not fit its keyword's type (`thing` over 20 characters, an empty value) |
///
/// Worth retrying later ([`SendOutcome::Transient`]; WeChat gives no Retry-After):
///
/// | errcode | meaning |
/// |---|---|
/// | -1 | system busy |
/// | 43108 | concurrent sends to the same user clashed |
/// | 45009 | the API's daily quota is used up (until midnight, Beijing time) |
/// | 45011 | the API's minute quota is used up |
/// | 45047 | too many messages to this user |
/// | anything else | unknown: WeChat adds codes without notice, and a later retry is safer than dropping the channel on a guess (the engine's attempt limit ends it) |
///
/// The app's credentials or permissions ([`SendOutcome::Credential`]):
///
/// | errcode | meaning |
/// |---|---|
/// | 40001, 40014, 42001 | the access token is invalid, malformed or expired; seen here only once the client's one refresh and retry did not help |
/// | 41001 | access_token missing |
/// | 40013, 41002 | invalid or missing appid |
/// | 40125, 41004 | invalid or missing secret |
/// | 40164 | this server's IP is not on the app's whitelist |
/// | 48001, 48004 | the API is not granted to the app, or banned for it |
pub fn classify_wechat(errcode: i64, errmsg: &str) -> SendOutcome {
    let permanent = |meaning: &str| SendOutcome::Permanent {
        code: wechat_code(errcode),
        detail: format!("{meaning}: {errmsg}"),
    };
    let transient = |meaning: &str| SendOutcome::Transient {
        code: wechat_code(errcode),
        detail: format!("{meaning}: {errmsg}"),
        retry_after: None,
    };
    let credential = |meaning: &str| SendOutcome::Credential {
        code: wechat_code(errcode),
        detail: format!("{meaning}: {errmsg}"),
    };
    match errcode {
        0 => SendOutcome::Sent {
            provider_msg_id: None,
        },

        40003 => permanent("invalid openid for this app"),
        40036 | 40037 => permanent("invalid template_id for this app"),
        41028 | 41029 => permanent("form_id invalid or already used"),
        41030 => permanent("invalid page"),
        43004 => permanent("the user does not follow the official account"),
        43101 => permanent("the user refused the message or has no consent left"),
        43107 => permanent("the template or the app's subscribe messages are banned"),
        47001 => permanent("request format rejected"),
        47003 => permanent("template data rejected"),

        -1 => transient("wechat system busy"),
        43108 => transient("concurrent sends to the user clashed"),
        45009 => transient("daily api quota reached"),
        45011 => transient("minute api quota reached"),
        45047 => transient("too many messages to the user"),

        40001 | 40014 | 42001 => credential("access token rejected after a refresh"),
        41001 => credential("access token missing"),
        40013 | 41002 => credential("app id invalid or missing"),
        40125 | 41004 => credential("app secret invalid or missing"),
        40164 => credential("server ip not whitelisted for the app"),
        48001 | 48004 => credential("api not granted to the app"),

        _ => SendOutcome::Transient {
            code: wechat_code(errcode),
            detail: format!("unknown errcode: {errmsg}"),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(errcode: i64) -> &'static str {
        classify_wechat(errcode, "msg, rid: 1").kind()
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let read = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::RETRY_AFTER,
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            );
            retry_after(&headers)
        };
        assert_eq!(read("7"), Some(Duration::from_secs(7)));
        assert_eq!(read(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(read("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(read("-3"), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn zero_is_sent() {
        assert_eq!(
            classify_wechat(0, "ok"),
            SendOutcome::Sent {
                provider_msg_id: None
            }
        );
    }

    #[test]
    fn refusals_about_the_user_the_template_or_the_data_are_permanent() {
        for errcode in [
            40003, 40036, 40037, 41028, 41029, 41030, 43004, 43101, 43107, 47001, 47003,
        ] {
            assert_eq!(kind_of(errcode), "PERMANENT", "{errcode}");
        }
    }

    #[test]
    fn busy_rate_limits_and_unknown_codes_are_transient_without_a_wait() {
        for errcode in [-1, 43108, 45009, 45011, 45047, 99999, 12] {
            let outcome = classify_wechat(errcode, "msg");
            let SendOutcome::Transient { retry_after, .. } = &outcome else {
                panic!("{errcode}: {outcome:?}");
            };
            assert_eq!(*retry_after, None, "{errcode}");
        }
    }

    #[test]
    fn rejected_tokens_and_app_configuration_are_credential_problems() {
        for errcode in [
            40001, 40014, 42001, 41001, 40013, 41002, 40125, 41004, 40164, 48001, 48004,
        ] {
            assert_eq!(kind_of(errcode), "CREDENTIAL", "{errcode}");
        }
    }

    #[test]
    fn codes_name_the_errcode_and_details_keep_wechats_message() {
        let outcome = classify_wechat(43004, "require subscribe, rid: 6651-ab");
        assert_eq!(outcome.code(), "WECHAT_43004");
        let SendOutcome::Permanent { detail, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            detail.ends_with("require subscribe, rid: 6651-ab"),
            "{detail}"
        );

        assert_eq!(classify_wechat(-1, "system error").code(), "WECHAT_-1");
        assert_eq!(classify_wechat(40164, "").code(), "WECHAT_40164");
        assert_eq!(classify_wechat(0, "ok").code(), "SENT");
    }

    #[test]
    fn kinds_are_the_four_stored_names() {
        let transient = SendOutcome::Transient {
            code: "HTTP_503".to_owned(),
            detail: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(transient.kind(), "TRANSIENT");
        assert_eq!(transient.code(), "HTTP_503");
        assert_eq!(kind_of(0), "SENT");
        assert_eq!(kind_of(43101), "PERMANENT");
        assert_eq!(kind_of(40001), "CREDENTIAL");
    }
}
