/// Everything that can go wrong reaching a client after the fact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// WeChat refused a one-time code from the mini-program (`wx.login` or `getPhoneNumber`):
    /// unknown, already used, or its user is blocked as high-risk. The client should get a new
    /// code; retrying this one never helps.
    #[error("wechat rejected the code: {errmsg} (errcode {errcode})")]
    WechatCodeInvalid { errcode: i64, errmsg: String },
    /// WeChat refused the app's own credentials or this server (unknown app id, wrong secret, IP
    /// not whitelisted, API not granted to the app). An operator has to fix the configuration.
    #[error("wechat rejected the app configuration: {errmsg} (errcode {errcode})")]
    WechatConfig { errcode: i64, errmsg: String },
    /// A provider could not be reached or gave no usable answer (network, timeout, HTTP 5xx, a body
    /// that is not the documented JSON, "system busy", rate limits). Worth retrying later.
    #[error("{service} unavailable: {detail}")]
    Upstream {
        service: &'static str,
        detail: String,
        /// Stripped of its URL: query strings carry secrets and access tokens.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The shared credential cache (Redis) failed.
    #[error("credential cache unavailable")]
    Redis(#[from] redis::RedisError),
    /// The database failed (the outbox, the replay log).
    #[error(transparent)]
    Store(#[from] minigate_store::Error),
    /// A subscriber asked to resume after an event older than what is kept; it must refetch.
    #[error("event {after} is older than the resume window; refetch and subscribe again")]
    ResumeWindowExpired { after: i64 },
    /// A client could not be built from its configuration (malformed base URL, TLS backend). A
    /// startup error, never a request's.
    #[error("client setup failed: {reason}")]
    Setup {
        reason: String,
        #[source]
        source: Option<reqwest::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Stable code for the GraphQL boundary; never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Error::WechatCodeInvalid { .. } => "WECHAT_CODE_INVALID",
            Error::WechatConfig { .. } => "WECHAT_CONFIG_INVALID",
            Error::Upstream { .. } => "UPSTREAM_UNAVAILABLE",
            Error::Redis(_) => "CACHE_UNAVAILABLE",
            Error::Store(e) => e.code(),
            Error::ResumeWindowExpired { .. } => "RESUME_WINDOW_EXPIRED",
            Error::Setup { .. } => "INTERNAL",
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Upstream { .. }
                | Error::Redis(_)
                | Error::Store(minigate_store::Error::Unavailable(_))
        )
    }
}

/// Every code this crate can produce, with a one-line description, for the client contract export.
pub const CODES: &[(&str, &str)] = &[
    (
        "WECHAT_CODE_INVALID",
        "WeChat rejected the one-time code (unknown, already used, or user blocked); get a new code",
    ),
    (
        "WECHAT_CONFIG_INVALID",
        "WeChat rejected the server's app credentials or IP; an operator must fix the configuration",
    ),
    (
        "UPSTREAM_UNAVAILABLE",
        "An outside provider was unreachable, busy or gave an unusable answer; retry later",
    ),
    (
        "CACHE_UNAVAILABLE",
        "The shared credential cache could not be reached; retry later",
    ),
    (
        "INTERNAL",
        "An internal error; details are only in the server log",
    ),
    (
        "RESUME_WINDOW_EXPIRED",
        "The subscription's `after` event is older than what the server keeps; refetch, then subscribe without `after`",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_code_is_listed_in_codes() {
        let samples = [
            Error::WechatCodeInvalid {
                errcode: 40029,
                errmsg: String::new(),
            },
            Error::WechatConfig {
                errcode: 40013,
                errmsg: String::new(),
            },
            Error::Upstream {
                service: "wechat",
                detail: String::new(),
                source: None,
            },
            Error::Redis(redis::RedisError::from((redis::ErrorKind::Io, "down"))),
            Error::Setup {
                reason: String::new(),
                source: None,
            },
            Error::ResumeWindowExpired { after: 1 },
        ];
        for e in &samples {
            assert!(
                CODES.iter().any(|(code, _)| *code == e.code()),
                "{} missing from CODES",
                e.code()
            );
        }
        assert_eq!(CODES.len(), samples.len());
    }
}
