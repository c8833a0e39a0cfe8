//! # minigate-payments
//!
//! WeChat Pay API v3 and Alipay (DESIGN.md §4), written here rather than taken from the crates
//! the product card named (see DEPENDENCIES.md):
//!
//! * [`wechat`]: request signatures and `paySign` ([`wechat::sign`]), response and callback
//!   verification with the WeChat Pay public key and platform certificates side by side
//!   ([`wechat::verify`]), resource decryption ([`wechat::resource`]), the order calls
//!   ([`wechat::client`]) and payment notifications ([`wechat::notify`]);
//! * [`alipay`]: RSA2 signatures, the QR order calls and the asynchronous notify;
//! * [`orders`]: the order state machine and its tables: orders, raw notifications, the ledger,
//!   the flags that need a person;
//! * [`refund`] and [`refunds`]: refunds at both providers, their state machine and table;
//! * [`bill`]: the providers' daily trade bills, parsed as streams and checked whole;
//! * [`reconcile`]: reconciliation runs, their differences, and how a bill row compares;
//! * [`money`]: exact yuan ↔ fen.
//!
//! A leaf: depends on `minigate-store` only, never on `push`, `media` or anything above. It does
//! not read configuration: the caller builds [`WechatMerchant`] / [`AlipayMerchant`] from the
//! keys it resolved and passes the provider base URLs.

pub mod alipay;
pub mod bill;
mod der;
mod error;
pub mod hex;
pub mod http;
mod merchant;
pub mod money;
pub mod notification;
pub mod orders;
pub mod pem;
pub mod reconcile;
pub mod refund;
pub mod refunds;
pub mod trade;
pub mod wechat;

pub use error::{BillFault, CODES, Error, Result};
pub use merchant::{AlipayMerchant, WechatKeys, WechatMerchant};
