//! Alipay open platform: RSA2 signatures, the face-to-face (QR) order calls, and the
//! asynchronous notify.

pub mod client;
pub mod notify;
mod sign;

pub use sign::{AlipayKey, AppKey, signing_content};
