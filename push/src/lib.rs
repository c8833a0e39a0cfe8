//! # minigate-push
//!
//! Everything that reaches a client after the fact (DESIGN.md §5): the outbox events are written
//! to ([`events`]), the dispatcher that publishes them ([`dispatch`]), the realtime bus behind
//! GraphQL subscriptions ([`bus`]), and the WeChat client ([`wechat`]) with its access-token
//! cache. Outside channels (template and subscribe messages, FCM, APNs) follow in their issues.
//!
//! A leaf: depends on `minigate-store` only, never on `payments`, `media` or anything above.

pub mod bus;
pub mod delivery;
pub mod dispatch;
mod error;
pub mod events;
pub mod outcome;
pub mod wechat;

pub use error::{CODES, Error, Result};
