//! # minigate-push
//!
//! Everything that reaches a client after the fact (DESIGN.md §5): the outbox events are written
//! to ([`events`]), the dispatcher that publishes them ([`dispatch`]), the realtime bus behind
//! GraphQL subscriptions ([`bus`]), the delivery engine ([`delivery`]), the WeChat client
//! ([`wechat`]), the app push providers ([`app`]: FCM, APNs, Huawei) and the provider tokens
//! they share across replicas ([`tokens`]).
//!
//! A leaf: depends on `minigate-store` only, never on `payments`, `media` or anything above.

pub mod app;
pub mod bus;
pub mod delivery;
pub mod dispatch;
mod error;
pub mod events;
pub mod outcome;
pub mod tokens;
pub mod wechat;

pub use error::{CODES, Error, Result};
