//! # minigate-payments
//!
//! WeChat Pay API v3 and Alipay: provider clients and signatures, callback verification, the order
//! state machine, active query, refunds, bill parsing and reconciliation, and their tables
//! (DESIGN.md §4). So far: the cryptography both providers require, written here rather than
//! taken from the crates the product card named (see DEPENDENCIES.md):
//!
//! * [`wechat::sign`]: request signatures (`Authorization: WECHATPAY2-SHA256-RSA2048 …`) and
//!   the `wx.requestPayment` `paySign`;
//! * [`wechat::verify`]: response and callback signatures, with the WeChat Pay public key
//!   (`PUB_KEY_ID_…`) and platform certificates accepted side by side, chosen by
//!   `Wechatpay-Serial`, and the 5-minute timestamp window;
//! * [`wechat::resource`]: `AEAD_AES_256_GCM` decryption of callback resources;
//! * [`alipay`]: RSA2 over the sorted parameters, for requests and notifications.
//!
//! A leaf: depends on `minigate-store` only, never on `push`, `media` or anything above.

pub mod alipay;
mod der;
mod error;
pub mod money;
pub mod pem;
pub mod wechat;

pub use error::{CODES, Error, Result};
