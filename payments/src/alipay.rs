//! Alipay open platform: RSA2 signatures, the face-to-face (QR) order calls, and the
//! asynchronous notify.

pub mod bills;
pub mod client;
pub mod notify;
pub mod refunds;
mod sign;

pub use sign::{AlipayKey, AppKey, signing_content};
