//! Events and the outbox they are written to.
//!
//! A state change calls [`enqueue`] inside its own transaction, so its event exists if and only if
//! the change committed. The [`crate::dispatch`] worker later gives each committed event its id
//! (`seq`) and publishes it on the [`crate::bus`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use tokio::sync::Notify;

use crate::Result;

/// The PostgreSQL channel that wakes every replica's dispatcher.
pub const WAKE_CHANNEL: &str = "minigate_outbox";

/// A published event. `seq` is its id: strictly increasing across all topics, in the order
/// events became visible, and the same on every replica and after any restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Event {
    pub seq: i64,
    pub tenant_id: Id,
    pub topic: String,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// An event to write.
pub struct NewEvent<'a> {
    pub tenant_id: Id,
    pub topic: String,
    pub kind: &'a str,
    pub payload: serde_json::Value,
}

/// Topic names, built in one place.
pub mod topic {
    use minigate_store::Id;

    pub fn tenant(id: Id) -> String {
        format!("tenant:{id}")
    }
    pub fn branch(id: Id) -> String {
        format!("branch:{id}")
    }
    pub fn user(id: Id) -> String {
        format!("user:{id}")
    }
}

/// Wakes this process's dispatcher; cheap to clone.
#[derive(Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Writes `event` in the caller's transaction and wakes this process's dispatcher when it
/// commits. There is no `NOTIFY` in the writer's transaction: PostgreSQL serialises the commits of
/// notifying transactions on one global lock, which would cap every money-moving transaction. The
/// local dispatcher either takes the dispatch lock itself or, when another replica holds it,
/// wakes that replica (see [`crate::dispatch`]).
pub async fn enqueue(tx: &mut Conn, waker: &Waker, event: NewEvent<'_>) -> Result<Id> {
    let id = Id::new();
    store::execute!(
        tx,
        "insert into outbox_event (id, tenant_id, topic, kind, payload) values ($1, $2, $3, $4, $5)",
        id,
        event.tenant_id,
        &event.topic,
        event.kind,
        Json(&event.payload)
    )?;
    let w = waker.clone();
    tx.on_commit(move || w.wake());
    Ok(id)
}

/// Events on `topics` after `after`, oldest first, at most `limit`. Every event with a `seq` is
/// committed, published or about to be: a subscriber registers for live events before it
/// replays, so one the bus has not yet carried arrives twice and is dropped by its `seq`.
pub async fn replay(c: &mut Conn, topics: &[String], after: i64, limit: i64) -> Result<Vec<Event>> {
    Ok(store::fetch_all!(
        c,
        Event,
        "select seq, tenant_id, topic, kind, payload, created_at from outbox_event
         where topic = any($1) and seq > $2 order by seq limit $3",
        store::List(topics.to_vec()),
        after,
        limit
    )?)
}

/// Every event after `after`, whatever its topic (a replica catching up after a bus outage).
pub async fn events_after(c: &mut Conn, after: i64, limit: i64) -> Result<Vec<Event>> {
    Ok(store::fetch_all!(
        c,
        Event,
        "select seq, tenant_id, topic, kind, payload, created_at from outbox_event
         where seq > $1 order by seq limit $2",
        after,
        limit
    )?)
}

/// The oldest event id still kept, if any.
pub async fn oldest_seq(c: &mut Conn) -> Result<Option<i64>> {
    Ok(store::fetch_scalar!(
        c,
        Option<i64>,
        "select min(seq) from outbox_event"
    )?)
}

/// The newest event id (0 when there is none).
pub async fn newest_seq(c: &mut Conn) -> Result<i64> {
    Ok(store::fetch_scalar!(c, Option<i64>, "select max(seq) from outbox_event")?.unwrap_or(0))
}
