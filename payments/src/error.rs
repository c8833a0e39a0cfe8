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
    /// A provider's bill that cannot be believed as a whole: its hash, its totals, one of its
    /// rows, its archive. Nothing of such a bill is matched or stored.
    #[error("bill refused ({}){}: {detail}", code.as_str(), line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Bill {
        code: BillFault,
        /// The line of the file (1-based) where it was found, when it is one line's fault.
        line: Option<u64>,
        detail: String,
    },
    /// The provider has not made that day's bill yet (or has none): try again later.
    #[error("the provider's bill is not ready: {0}")]
    BillNotReady(String),
    /// A refund larger than what remains of the payment (paid, less what other refunds took or
    /// hold).
    #[error("refund exceeds what remains of the payment ({remaining_fen} fen)")]
    RefundExceedsPaid { remaining_fen: i64 },
    /// The payment cannot be refunded (not paid, or no amount to refund).
    #[error("payment cannot be refunded: {0}")]
    NotRefundable(String),
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

/// What is wrong with a bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillFault {
    /// The downloaded file's digest is not the one the provider gave.
    HashMismatch,
    /// The summary the bill states does not match the sum of its rows.
    TotalsMismatch,
    /// A row of a kind or state we do not know.
    RowUnknown,
    /// An amount that is not an exact decimal of yuan.
    AmountMalformed,
    /// A row with more or fewer fields than the header, or a header without a column we need.
    ColumnsUnexpected,
    /// The archive (Alipay's zip) is truncated or lacks the detail file.
    ArchiveCorrupt,
    /// Anything else out of shape: encoding, missing summary, text after the summary.
    Malformed,
}

impl BillFault {
    pub fn as_str(self) -> &'static str {
        match self {
            BillFault::HashMismatch => "BILL_HASH_MISMATCH",
            BillFault::TotalsMismatch => "BILL_TOTALS_MISMATCH",
            BillFault::RowUnknown => "BILL_ROW_UNKNOWN",
            BillFault::AmountMalformed => "BILL_AMOUNT_MALFORMED",
            BillFault::ColumnsUnexpected => "BILL_COLUMNS_UNEXPECTED",
            BillFault::ArchiveCorrupt => "BILL_ARCHIVE_CORRUPT",
            BillFault::Malformed => "BILL_MALFORMED",
        }
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
            Error::Bill { code, .. } => code.as_str(),
            Error::RefundExceedsPaid { .. } => "REFUND_EXCEEDS_PAID",
            Error::NotRefundable(_) => "PAYMENT_NOT_REFUNDABLE",
            Error::BillNotReady(_) => "BILL_NOT_READY",
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
    (
        "REFUND_EXCEEDS_PAID",
        "The refund is larger than what remains of the payment after earlier refunds.",
    ),
    (
        "PAYMENT_NOT_REFUNDABLE",
        "The payment was never paid, so there is nothing to refund.",
    ),
    (
        "BILL_HASH_MISMATCH",
        "A downloaded provider bill does not have the digest the provider gave for it.",
    ),
    (
        "BILL_TOTALS_MISMATCH",
        "A provider bill's stated totals do not match the sum of its rows.",
    ),
    (
        "BILL_ROW_UNKNOWN",
        "A provider bill holds a row of a kind or state that is not understood.",
    ),
    (
        "BILL_AMOUNT_MALFORMED",
        "A provider bill holds an amount that is not an exact decimal of yuan.",
    ),
    (
        "BILL_COLUMNS_UNEXPECTED",
        "A provider bill row has unexpected columns, or the header lacks one that is needed.",
    ),
    (
        "BILL_ARCHIVE_CORRUPT",
        "A provider bill archive is truncated or lacks its detail file.",
    ),
    (
        "BILL_MALFORMED",
        "A provider bill is not in its documented form.",
    ),
    (
        "BILL_NOT_READY",
        "The provider has not published that day's bill yet; the run tries again later.",
    ),
];
