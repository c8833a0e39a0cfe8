//! Fetching a bill file: both providers' downloads stream the answer, a chunk at a time, into
//! the caller's file while hashing it, with a limit of their own (a day's bill can be tens of
//! megabytes, more than the API calls' overall timeout allows).

use std::io::Write;

use aws_lc_rs::digest;

use super::BILL_DOWNLOAD_TIMEOUT;
use crate::{Error, Result, hex::hex, http::unreachable};

/// Sends `request`, writes the answer's body into `out` and returns its digest under
/// `algorithm`, in lower-case hex. An answer other than 2xx is a refusal (`DOWNLOAD_FAILED`).
pub(crate) async fn download(
    request: reqwest::RequestBuilder,
    out: &mut impl Write,
    algorithm: &'static digest::Algorithm,
) -> Result<String> {
    let mut res = request
        .timeout(BILL_DOWNLOAD_TIMEOUT)
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    if !res.status().is_success() {
        return Err(Error::Refused {
            status: res.status().as_u16(),
            code: "DOWNLOAD_FAILED".into(),
            message: "the bill download was refused".into(),
        });
    }
    let written = |e: std::io::Error| Error::Malformed(format!("bill file: {e}"));
    let mut hash = digest::Context::new(algorithm);
    while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(&e))? {
        hash.update(&chunk);
        out.write_all(&chunk).map_err(written)?;
    }
    out.flush().map_err(written)?;
    Ok(hex(hash.finish().as_ref()))
}
