//! The delivery engine (DESIGN.md §5): one row per recipient and channel, written with the
//! change that caused it ([`enqueue`]); workers on any replica claim due rows in batches, so
//! that no message is sent by two of them, and take back what a dead worker held once its lease
//! ran out ([`Worker`]); every attempt is recorded. What a channel answers decides what follows
//! ([`crate::outcome::SendOutcome`]): sent; refused for good, then the next channel of the
//! message's order gets its own row; a transient failure, retried with exponential backoff and
//! jitter (or the provider's `Retry-After`); after the last attempt, a dead letter an operator
//! can send again ([`db::retry_dead`]). Quiet hours and a daily cap per person defer reminders
//! and marketing, never payment or accident messages ([`policy`]).

mod batch;
pub mod consent;
pub mod db;
pub mod fanout;
pub mod policy;
mod worker;

use serde::{Deserialize, Serialize};

pub use db::{Delivery, NewDelivery, enqueue};
pub use worker::{Pass, Sender, Worker, WorkerSettings};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// A mini-program subscribe message (needs an unused consent).
    Subscribe,
    /// An official-account template message (needs the person to follow the account).
    Template,
    /// FCM, APNs or Huawei, to each device the person registered.
    App,
    /// Nothing to send: the message is in the app's notice list.
    InApp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Subscribe => "SUBSCRIBE",
            Channel::Template => "TEMPLATE",
            Channel::App => "APP",
            Channel::InApp => "IN_APP",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "SUBSCRIBE" => Some(Channel::Subscribe),
            "TEMPLATE" => Some(Channel::Template),
            "APP" => Some(Channel::App),
            "IN_APP" => Some(Channel::InApp),
            _ => None,
        }
    }
}

/// How much a message may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Class {
    /// Payments and accidents: never deferred, never dropped by caps.
    Essential,
    /// Rent due, violations, notices: deferred by quiet hours and the daily cap.
    Reminder,
    Marketing,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Essential => "ESSENTIAL",
            Class::Reminder => "REMINDER",
            Class::Marketing => "MARKETING",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        match s {
            "ESSENTIAL" => Some(Class::Essential),
            "REMINDER" => Some(Class::Reminder),
            "MARKETING" => Some(Class::Marketing),
            _ => None,
        }
    }
}

/// Delivery statuses.
pub const PENDING: &str = "PENDING";
pub const SENDING: &str = "SENDING";
pub const SENT: &str = "SENT";
pub const FELL_THROUGH: &str = "FELL_THROUGH";
pub const DEAD: &str = "DEAD";
