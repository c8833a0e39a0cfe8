/// What can go wrong with a payment provider: its cryptography, its answers, our orders.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or certificate could not be read (wrong format, wrong kind, corrupt).
    #[error("payment key unusable: {0}")]
    KeyInvalid(String),
    /// A signature does not match: the message was changed or was not signed by the provider.
    #[error("payment signature invalid")]
    SignatureInvalid,
    /// The signature names a key (`Wechatpay-Serial`) we do not have.
    #[error("payment signature by unknown key {0}")]
    UnknownSerial(String),
    /// `Wechatpay-Timestamp` is more than 5 minutes from now: a replay or a wrong clock.
    #[error("payment signature timestamp outside the allowed window")]
    TimestampSkew,
    /// The encrypted resource of a callback could not be decrypted (wrong APIv3 key or tampered).
    #[error("payment resource could not be decrypted")]
    DecryptFailed,
    /// A yuan amount that is not a plain decimal with at most two places.
    #[error("amount {0:?} is not a yuan amount with at most two decimals")]
    AmountMalformed(String),
    /// A notification or answer that is not what the provider documents (bad JSON or form,
    /// missing fields).
    #[error("payment message malformed: {0}")]
    Malformed(String),
    /// The provider could not be reached or did not answer in time.
    #[error("payment provider unreachable: {0}")]
    Unreachable(String),
    /// The provider answered with a refusal (its own code and message).
    #[error("payment provider refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The bill already has an open order (a concurrent request opened it).
    #[error("the bill already has an open payment order")]
    OrderOpen,
    #[error(transparent)]
    Store(#[from] minigate_store::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Stable code; never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Error::KeyInvalid(_) => "PAYMENT_KEY_INVALID",
            Error::SignatureInvalid => "PAYMENT_SIGNATURE_INVALID",
            Error::UnknownSerial(_) => "PAYMENT_UNKNOWN_SERIAL",
            Error::TimestampSkew => "PAYMENT_TIMESTAMP_SKEW",
            Error::DecryptFailed => "PAYMENT_DECRYPT_FAILED",
            Error::AmountMalformed(_) => "AMOUNT_MALFORMED",
            Error::Malformed(_) => "PAYMENT_MESSAGE_MALFORMED",
            Error::Unreachable(_) => "PAYMENT_PROVIDER_UNAVAILABLE",
            Error::Refused { .. } => "PAYMENT_PROVIDER_REFUSED",
            Error::OrderOpen => "PAYMENT_IN_PROGRESS",
            Error::Store(e) => e.code(),
        }
    }

    /// Whether the provider's own refusal carries `code` (WeChat `code`, Alipay `sub_code`).
    pub fn is_refusal(&self, code: &str) -> bool {
        matches!(self, Error::Refused { code: c, .. } if c == code)
    }
}

/// Every code this crate can produce, for the client contract.
pub const CODES: &[(&str, &str)] = &[
    (
        "PAYMENT_KEY_INVALID",
        "A configured payment key or certificate cannot be read.",
    ),
    (
        "PAYMENT_SIGNATURE_INVALID",
        "A payment provider's signature does not match.",
    ),
    (
        "PAYMENT_UNKNOWN_SERIAL",
        "A payment provider signed with a key this merchant has not configured.",
    ),
    (
        "PAYMENT_TIMESTAMP_SKEW",
        "A payment provider's signature is too old or from the future.",
    ),
    (
        "PAYMENT_DECRYPT_FAILED",
        "A payment notification's resource could not be decrypted.",
    ),
    (
        "AMOUNT_MALFORMED",
        "An amount is not a yuan amount with at most two decimals.",
    ),
    (
        "PAYMENT_MESSAGE_MALFORMED",
        "A payment provider's message is not in its documented form.",
    ),
    (
        "PAYMENT_PROVIDER_UNAVAILABLE",
        "The payment provider could not be reached; try again.",
    ),
    (
        "PAYMENT_PROVIDER_REFUSED",
        "The payment provider refused the request; the message says why.",
    ),
    (
        "PAYMENT_IN_PROGRESS",
        "Another payment for this bill is being opened; try again.",
    ),
];
