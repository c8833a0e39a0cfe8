//! The errors a client can see, each with a stable code (never renamed; see
//! `mobile-contracts/error-codes.json`).

use minigate_store as store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sign-in required")]
    Unauthenticated,
    #[error("access token expired")]
    TokenExpired,
    #[error("access token invalid")]
    TokenInvalid,
    #[error("not allowed for this user")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field}: {message}")]
    AlreadyExists { field: String, message: String },
    #[error("wrong tenant, phone or password")]
    LoginFailed,
    #[error("refresh token invalid or expired")]
    RefreshTokenInvalid,
    #[error("refresh token was already used; every session of this sign-in is revoked")]
    RefreshTokenReused,
    #[error("this phone number matches no driver of this company")]
    PhoneNotRegistered,
    #[error("this driver is already bound to another WeChat user")]
    PhoneAlreadyBound,
    #[error("unknown mini-program app id")]
    WechatAppUnknown,
    #[error("idempotency key was used for a different operation or input")]
    IdempotencyKeyReused,
    #[error("reference: a bill with this reference exists")]
    BillReferenceTaken,
    #[error("the bill is {status}, not OPEN; it can no longer be changed")]
    BillNotOpen { status: String },
    #[error("the bill has an open payment order; close it first")]
    BillHasOpenPayment,
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0} payments are not configured for this company")]
    PaymentNotConfigured(&'static str),
    #[error(
        "paying inside the mini-program needs a WeChat sign-in with this company's mini-program"
    )]
    PayerNotWechat,
    #[error("this needs a WeChat sign-in from a mini-program")]
    WechatSignInRequired,
    #[error("a reconciliation of this day is running; wait for it to finish")]
    ReconciliationRunning,
    #[error("this difference was resolved before")]
    DifferenceResolved,
    #[error("a {from} record cannot move to {to}")]
    StepOutOfOrder { from: String, to: String },
    #[error("this record can no longer be changed: it is {status}")]
    RecordLocked { status: String },
    #[error("this audit is closed; nothing more can be recorded in it")]
    AuditClosed,
    #[error(transparent)]
    Payment(#[from] minigate_payments::Error),
    #[error(transparent)]
    Push(#[from] minigate_push::Error),
    #[error(transparent)]
    Media(#[from] minigate_media::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("rate limiter unavailable")]
    LimiterUnavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::RateLimited> for Error {
    fn from(l: crate::RateLimited) -> Self {
        match l {
            crate::RateLimited::Exceeded { retry_after } => Error::RateLimited {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            crate::RateLimited::Unavailable => Error::LimiterUnavailable,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn exists(field: &str, message: impl Into<String>) -> Self {
        Error::AlreadyExists {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::TokenExpired => "TOKEN_EXPIRED",
            Error::TokenInvalid => "TOKEN_INVALID",
            Error::Forbidden => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Invalid { .. } => "INVALID_INPUT",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::LoginFailed => "LOGIN_FAILED",
            Error::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Error::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Error::PhoneNotRegistered => "PHONE_NOT_REGISTERED",
            Error::PhoneAlreadyBound => "PHONE_ALREADY_BOUND",
            Error::WechatAppUnknown => "WECHAT_APP_UNKNOWN",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::ReconciliationRunning => "RECONCILIATION_RUNNING",
            Error::WechatSignInRequired => "WECHAT_SIGN_IN_REQUIRED",
            Error::DifferenceResolved => "DIFFERENCE_RESOLVED",
            Error::StepOutOfOrder { .. } => "WORKFLOW_STEP_OUT_OF_ORDER",
            Error::RecordLocked { .. } => "RECORD_LOCKED",
            Error::AuditClosed => "AUDIT_CLOSED",
            Error::BillReferenceTaken => "BILL_REFERENCE_TAKEN",
            Error::BillNotOpen { .. } => "BILL_NOT_OPEN",
            Error::BillHasOpenPayment => "BILL_HAS_OPEN_PAYMENT",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::PaymentNotConfigured(_) => "PAYMENT_NOT_CONFIGURED",
            Error::PayerNotWechat => "PAYMENT_PAYER_NOT_WECHAT",
            Error::Payment(e) => e.code(),
            Error::Push(e) => e.code(),
            Error::Media(e) => e.code(),
            Error::Store(e) => e.code(),
            Error::LimiterUnavailable => "CACHE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The message a client may read: internal failures say nothing about SQL, paths or keys.
    pub fn public_message(&self) -> String {
        match self {
            Error::Store(store::Error::Unavailable(_)) => {
                "database unavailable, try again shortly".to_owned()
            }
            Error::Store(_) | Error::Internal(_) => "internal error".to_owned(),
            Error::LimiterUnavailable => "cache unavailable, try again shortly".to_owned(),
            Error::Push(e) if e.code() == "WECHAT_CONFIG_INVALID" => {
                "this mini-program is not configured correctly at WeChat".to_owned()
            }
            Error::Push(minigate_push::Error::Store(minigate_store::Error::Unavailable(_))) => {
                "database unavailable, try again shortly".to_owned()
            }
            Error::Push(e) if e.code() == "INTERNAL" => "internal error".to_owned(),
            Error::Payment(minigate_payments::Error::Store(store::Error::Unavailable(_))) => {
                "database unavailable, try again shortly".to_owned()
            }
            Error::Payment(
                minigate_payments::Error::Store(_) | minigate_payments::Error::KeyInvalid(_),
            ) => "internal error".to_owned(),
            Error::Media(e) if !e.is_client_error() => {
                "photo storage unavailable, try again shortly".to_owned()
            }
            Error::Payment(minigate_payments::Error::Unreachable(_)) => {
                "the payment provider cannot be reached, try again shortly".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The input field an `INVALID_INPUT`, `ALREADY_EXISTS` or `BILL_REFERENCE_TAKEN` error is
    /// about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } | Error::AlreadyExists { field, .. } => Some(field),
            Error::BillReferenceTaken => Some("reference"),
            _ => None,
        }
    }

    /// Whether the failure is ours (logged with its source), not the client's.
    pub fn is_internal(&self) -> bool {
        matches!(
            self.code(),
            "INTERNAL" | "DATABASE_UNAVAILABLE" | "CACHE_UNAVAILABLE" | "PAYMENT_KEY_INVALID"
        )
    }
}

/// Every code this crate can produce, with what it means, for the client contract.
pub const CODES: &[(&str, &str)] = &[
    (
        "WORKFLOW_STEP_OUT_OF_ORDER",
        "The record's workflow does not allow this step from its current status (a step skipped, repeated or after the end); reload the record.",
    ),
    (
        "RECORD_LOCKED",
        "The record can no longer be edited (an income report an operator confirmed).",
    ),
    (
        "AUDIT_CLOSED",
        "The asset audit is closed; open a new one to record more vehicles.",
    ),
    (
        "PAYMENT_NOT_CONFIGURED",
        "The company has no merchant account with this payment provider.",
    ),
    (
        "PAYMENT_PAYER_NOT_WECHAT",
        "WECHAT_JSAPI needs the payer signed in with WeChat in the company's mini-program.",
    ),
    (
        "UNAUTHENTICATED",
        "The operation needs a signed-in user; send a bearer access token.",
    ),
    (
        "TOKEN_EXPIRED",
        "The access token has expired; call refreshSession.",
    ),
    (
        "TOKEN_INVALID",
        "The access token is malformed or not signed by this service; sign in again.",
    ),
    (
        "FORBIDDEN",
        "The signed-in user's role or branch does not allow this.",
    ),
    ("NOT_FOUND", "No such object visible to this user."),
    (
        "INVALID_INPUT",
        "An argument is malformed; extensions.field names it.",
    ),
    (
        "ALREADY_EXISTS",
        "An object with this unique value exists; extensions.field names it.",
    ),
    ("LOGIN_FAILED", "Wrong tenant, phone or password."),
    (
        "REFRESH_TOKEN_INVALID",
        "The refresh token is unknown, expired or revoked; sign in again.",
    ),
    (
        "REFRESH_TOKEN_REUSED",
        "A rotated refresh token was used again; the whole sign-in was revoked.",
    ),
    (
        "PHONE_NOT_REGISTERED",
        "The WeChat phone number matches no driver record of this company.",
    ),
    (
        "PHONE_ALREADY_BOUND",
        "The driver record is already bound to another WeChat user.",
    ),
    (
        "WECHAT_APP_UNKNOWN",
        "The appId is not a mini-program registered with any tenant.",
    ),
    (
        "IDEMPOTENCY_KEY_REUSED",
        "The idempotencyKey was already used for a different operation or input.",
    ),
    (
        "WECHAT_SIGN_IN_REQUIRED",
        "The operation needs a user signed in with WeChat in a mini-program (subscribe consents).",
    ),
    (
        "RECONCILIATION_RUNNING",
        "A reconciliation of this provider, company and day is running; try again when it ends.",
    ),
    (
        "DIFFERENCE_RESOLVED",
        "The reconciliation difference was already resolved.",
    ),
    (
        "BILL_REFERENCE_TAKEN",
        "Another bill of this company has this reference; extensions.field is reference.",
    ),
    (
        "BILL_NOT_OPEN",
        "The bill is PAID or CANCELLED and can no longer be changed or cancelled.",
    ),
    (
        "BILL_HAS_OPEN_PAYMENT",
        "The bill has a payment order waiting to be paid; close that order first.",
    ),
    (
        "RATE_LIMITED",
        "Too many requests; extensions.retryAfter gives the seconds to wait.",
    ),
    (
        "DATABASE_UNAVAILABLE",
        "The database cannot be reached; retry shortly.",
    ),
    (
        "INTERNAL",
        "An unexpected failure on the server; it has been logged.",
    ),
];

/// What the GraphQL boundary shows for a resolver error's source.
pub struct Classified {
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
    /// Ours, not the client's: log it with its source.
    pub internal: bool,
}

impl Error {
    pub fn classify(&self) -> Classified {
        Classified {
            code: self.code(),
            message: self.public_message(),
            field: self.field().map(str::to_owned),
            retry_after_secs: match self {
                Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            },
            internal: self.is_internal(),
        }
    }
}

/// Recognises the error types resolvers raise (directly or through `?`).
pub fn classify(source: &(dyn std::any::Any + Send + Sync)) -> Option<Classified> {
    if let Some(e) = source.downcast_ref::<Error>() {
        return Some(e.classify());
    }
    if let Some(e) = source.downcast_ref::<crate::registry::LoadError>() {
        return Some(Classified {
            code: e.code,
            message: e.message.clone(),
            field: None,
            retry_after_secs: None,
            internal: false, // logged where it happened
        });
    }
    if let Some(e) = source.downcast_ref::<store::Error>() {
        let e = Error::Store(store::Error::from_ref(e));
        return Some(e.classify());
    }
    if let Some(e) = source.downcast_ref::<minigate_push::Error>() {
        if let minigate_push::Error::Store(s) = e {
            return Some(Error::Store(store::Error::from_ref(s)).classify());
        }
        return Some(Classified {
            code: e.code(),
            message: e.to_string(),
            field: None,
            retry_after_secs: None,
            internal: false,
        });
    }
    None
}
