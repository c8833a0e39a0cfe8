/// Everything that can go wrong with a photo, from the upload to the signed URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upload carried no bytes.
    #[error("the upload is empty")]
    Empty,
    /// The upload is larger than the configured limit.
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The bytes are not JPEG, PNG or WebP (HEIC, GIF, a PDF renamed `.jpg`, ...).
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// The header claims more pixels (or a longer side) than we decode: a decompression bomb or a
    /// panorama far beyond any evidence photo.
    #[error("image of {width}×{height} exceeds the limit")]
    DimensionsExceeded { width: u32, height: u32 },
    /// The file says it is an image but cannot be decoded (truncated, corrupt).
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
    /// `purpose` is not one of the purposes we know.
    #[error("unknown purpose {0:?}")]
    PurposeInvalid(String),
    /// No such media, or not the caller's to use (never says which).
    #[error("media not found")]
    NotFound,
    /// The media exists but its variants are not ready, so it cannot be referenced yet.
    #[error("media not processed yet")]
    NotReady,
    /// A signed URL whose time is up.
    #[error("media url expired")]
    UrlExpired,
    /// A signed URL that was changed or never signed by us.
    #[error("media url invalid")]
    UrlInvalid,
    /// Too many photos are being processed right now; the client may retry.
    #[error("media processing busy")]
    Busy,
    /// The blob storage (folder or object store) failed or could not be reached.
    #[error("media storage unavailable: {0}")]
    Storage(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] minigate_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Stable code for clients; never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Empty => "MEDIA_EMPTY",
            Error::TooLarge { .. } => "MEDIA_TOO_LARGE",
            Error::UnsupportedFormat(_) => "MEDIA_UNSUPPORTED_FORMAT",
            Error::DimensionsExceeded { .. } => "MEDIA_DIMENSIONS_EXCEEDED",
            Error::Corrupt(_) => "MEDIA_CORRUPT",
            Error::PurposeInvalid(_) => "MEDIA_PURPOSE_INVALID",
            Error::NotFound => "MEDIA_NOT_FOUND",
            Error::NotReady => "MEDIA_NOT_READY",
            Error::UrlExpired => "MEDIA_URL_EXPIRED",
            Error::UrlInvalid => "MEDIA_URL_INVALID",
            Error::Busy => "MEDIA_BUSY",
            Error::Storage(_) => "MEDIA_STORAGE_UNAVAILABLE",
            Error::Store(e) => e.code(),
        }
    }

    /// Whether the client sent something wrong (as opposed to our side failing).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Error::Busy | Error::Storage(_) | Error::Store(_))
    }
}

/// Every code this crate can produce, for the client contract.
pub const CODES: &[(&str, &str)] = &[
    ("MEDIA_EMPTY", "The upload carried no bytes."),
    (
        "MEDIA_TOO_LARGE",
        "The upload is larger than the size limit.",
    ),
    (
        "MEDIA_UNSUPPORTED_FORMAT",
        "The file is not a JPEG, PNG or WebP image (HEIC is not supported).",
    ),
    (
        "MEDIA_DIMENSIONS_EXCEEDED",
        "The image has more pixels than the limit allows.",
    ),
    ("MEDIA_CORRUPT", "The image is truncated or corrupt."),
    (
        "MEDIA_PURPOSE_INVALID",
        "The upload's purpose is not known.",
    ),
    (
        "MEDIA_NOT_FOUND",
        "No such media, or it is not yours to use.",
    ),
    ("MEDIA_NOT_READY", "The media has not been processed yet."),
    ("MEDIA_URL_EXPIRED", "The signed media URL has expired."),
    ("MEDIA_URL_INVALID", "The media URL is not validly signed."),
    (
        "MEDIA_BUSY",
        "Too many photos are being processed; retry shortly.",
    ),
    (
        "MEDIA_STORAGE_UNAVAILABLE",
        "The photo storage could not be reached; retry later.",
    ),
];
