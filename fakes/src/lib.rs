//! # minigate-fakes
//!
//! Test and development tooling: local stand-ins of the providers minigate talks to, for
//! tests, and the payment simulator the gateway mounts in development mode only; never used in
//! production mode.
//!
//! Each fake speaks its provider's documented wire format and checks requests the way the real
//! one does (methods, parameters, credentials, signatures, one-time codes, token validity), so
//! tests catch a client that the real provider would refuse. Tests script them (issue codes,
//! pay orders, inject failures, tamper with signatures) and count the calls that reached them.
//!
//! * [`wechat`]: WeChat's server API (login, tokens, phone numbers, messages, followers).
//! * [`wechat_pay`]: WeChat Pay API v3 (JSAPI / Native orders, query, close, notifications,
//!   refunds and their notifications, the daily trade bill with its SHA-1).
//! * [`alipay`]: the Alipay open-platform gateway (precreate, query, close, async notify, refunds
//!   and refund reports on the notify, the daily trade bill as a zip of GBK CSVs).
//! * [`fcm`]: Firebase Cloud Messaging HTTP v1 (`messages:send`) with Google's OAuth 2.0 token
//!   endpoint for service accounts (RS256 JWT assertions).
//! * [`apns`]: the APNs provider API over HTTP/2 with token-based authentication (ES256 provider
//!   tokens, their age and renewal cadence), one instance per environment.
//! * [`huawei`]: Huawei Push Kit (HMS Core) `messages:send` with its client-credentials OAuth
//!   endpoint, partial success included.
//! * [`keys`]: development RSA keys and PEM text for the fakes and their clients.
//! * [`photos`]: phone photos made in code (JPEG, PNG, WebP, hand-written EXIF, decompression
//!   bombs) and helpers to look at the variants made of them.
//!
//! The gateway depends on it to mount the simulator, which it refuses in production mode; every
//! other crate uses it under `[dev-dependencies]` only. Depends on nothing of ours.

pub mod alipay;
pub mod apns;
pub mod fcm;
pub mod huawei;
pub mod keys;
pub mod photos;
mod support;
pub mod wechat;
pub mod wechat_pay;
