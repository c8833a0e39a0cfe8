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
    /// A call to the official account's callback URL is not provably from WeChat: its
    /// `signature` / `msg_signature` does not match, or its timestamp is outside the replay window.
    /// Answer 401 and process nothing.
    #[error("wechat official account callback not authentic: {reason}")]
    OaSignatureInvalid { reason: &'static str },
    /// A signed callback to the official account could not be read: not the documented XML, a
    /// ciphertext that does not decrypt to the documented layout, or one sealed for another app id.
    #[error("wechat official account callback malformed: {reason}")]
    OaMessageMalformed { reason: &'static str },
    /// An app push provider's key cannot be used: a service-account key file that is not
    /// Google's JSON or holds no RSA key, a `.p8` that is not a P-256 key, an empty secret. An
    /// operator has to give the right file.
    #[error("{provider} key unusable: {reason}")]
    PushKeyInvalid {
        provider: &'static str,
        reason: String,
    },
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
            Error::PushKeyInvalid { .. } => "PUSH_KEY_INVALID",
            Error::OaSignatureInvalid { .. } => "WECHAT_OA_SIGNATURE_INVALID",
            Error::OaMessageMalformed { .. } => "WECHAT_OA_MESSAGE_MALFORMED",
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
        "PUSH_KEY_INVALID",
        "An app push provider's key (FCM service-account file, APNs .p8, Huawei secret) cannot be used; give the right one",
    ),
    (
        "RESUME_WINDOW_EXPIRED",
        "The subscription's `after` event is older than what the server keeps; refetch, then subscribe without `after`",
    ),
    (
        "WECHAT_OA_SIGNATURE_INVALID",
        "A WeChat official account callback had a wrong signature or a stale timestamp; it was not processed",
    ),
    (
        "WECHAT_OA_MESSAGE_MALFORMED",
        "A signed WeChat official account callback could not be decrypted or parsed; it was not processed",
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
            Error::PushKeyInvalid {
                provider: "apns",
                reason: String::new(),
            },
            Error::OaSignatureInvalid { reason: "" },
            Error::OaMessageMalformed { reason: "" },
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
