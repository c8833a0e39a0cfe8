//! # minigate-push
//!
//! Everything that reaches a client after the fact (DESIGN.md §5): the realtime bus behind GraphQL
//! subscriptions, the delivery outbox, the outside channels (WeChat, FCM, APNs, Huawei) and the
//! credential broker that keeps their access tokens. So far it holds the WeChat client
//! ([`wechat`]) and its access-token cache.
//!
//! A leaf: depends on `minigate-store` only, never on `payments`, `media` or anything above.

mod error;
pub mod wechat;

pub use error::{CODES, Error, Result};
