//! The HTTP client both providers are called with. WeChat Pay refuses requests without a
//! `User-Agent`, which Rust clients do not send by default.

use std::time::Duration;

use crate::{Error, Result};

pub const USER_AGENT: &str = concat!("minigate/", env!("CARGO_PKG_VERSION"), " (payments)");

/// A client with our `User-Agent` and the given overall timeout per request.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .build()
        .map_err(|e| Error::Unreachable(format!("http client: {e}")))
}

/// A transport failure, described without the URL's query (never a secret in it, but short).
pub(crate) fn unreachable(e: &reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Error::Unreachable(what.into())
}
