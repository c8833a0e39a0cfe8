//! The realtime bus behind GraphQL subscriptions.
//!
//! Events reach every replica's subscribers either in-process (one node) or through a Redis
//! stream that every replica tails ([`redis_stream`]). Each subscription has a bounded queue;
//! one that falls behind is marked lagged and catches up from the outbox, so a slow client costs
//! a query, never a lost event or unbounded memory.
//!
//! A subscriber that reconnects passes the id of the last event it saw; it first receives what it
//! missed (from the outbox, which survives a Redis restart), then live events, each exactly once
//! and in order. Older than the resume window it gets `RESUME_WINDOW_EXPIRED` and refetches.

mod redis_stream;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use minigate_store::Db;
use tokio::sync::mpsc;

use crate::{
    Error, Result,
    events::{self, Event},
};

/// Events a subscription may have queued before it counts as lagging.
const QUEUE: usize = 256;
/// Events read from the outbox per query while catching up.
const PAGE: i64 = 500;

/// Cheap to clone; every clone is the same bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    redis: Option<redis_stream::RedisStream>,
}

#[derive(Default)]
struct Registry {
    topics: HashMap<String, Vec<Arc<Slot>>>,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Arc<Event>>,
    lagged: AtomicBool,
}

impl Bus {
    /// One node: events go from the dispatcher straight to this process's subscribers.
    pub fn local(db: Db) -> Self {
        Self::build(db, None)
    }

    /// Several replicas: the dispatcher appends to a Redis stream that every replica tails.
    /// `client` opens the tailer's own connection (its reads block); `conn` carries appends.
    pub async fn redis(
        db: Db,
        client: redis::Client,
        conn: redis::aio::ConnectionManager,
        prefix: &str,
    ) -> Result<Self> {
        let mut c = db.conn().await?;
        let start = events::newest_seq(&mut c).await?;
        drop(c);
        let stream = redis_stream::RedisStream::new(conn, prefix);
        let bus = Self::build(db, Some(stream));
        redis_stream::spawn_tailer(bus.clone(), client, start);
        Ok(bus)
    }

    fn build(db: Db, redis: Option<redis_stream::RedisStream>) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                registry: Mutex::new(Registry::default()),
                next_id: AtomicU64::new(1),
                redis,
            }),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Carries `events` (in `seq` order) to every replica's subscribers. Called by the dispatcher.
    pub async fn publish(&self, events: &[Event]) -> Result<()> {
        match &self.inner.redis {
            Some(r) => r.append(events).await,
            None => {
                for e in events {
                    self.fan_out(Arc::new(e.clone()));
                }
                Ok(())
            }
        }
    }

    /// Hands an event to the local subscribers of its topic.
    pub(crate) fn fan_out(&self, event: Arc<Event>) {
        let Ok(registry) = self.inner.registry.lock() else {
            return;
        };
        let Some(slots) = registry.topics.get(&event.topic) else {
            return;
        };
        for slot in slots {
            if slot.lagged.load(Ordering::Acquire) {
                continue;
            }
            if slot.tx.try_send(event.clone()).is_err() {
                slot.lagged.store(true, Ordering::Release);
            }
        }
    }

    /// Marks every local subscriber lagged: after a bus outage each catches up from the outbox.
    pub(crate) fn mark_all_lagged(&self) {
        if let Ok(registry) = self.inner.registry.lock() {
            for slot in registry.topics.values().flatten() {
                slot.lagged.store(true, Ordering::Release);
            }
        }
    }

    /// Live subscriptions in this process (for metrics).
    pub fn subscriptions(&self) -> usize {
        self.inner.registry.lock().map_or(0, |r| {
            let mut ids: Vec<u64> = r.topics.values().flatten().map(|s| s.id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
    }

    /// Subscribes to `topics`. With `after`, events after that id are delivered first.
    pub async fn subscribe(&self, topics: Vec<String>, after: Option<i64>) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let slot = Arc::new(Slot {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            lagged: AtomicBool::new(false),
        });
        // Register before looking at the outbox, so nothing falls between the two.
        if let Ok(mut registry) = self.inner.registry.lock() {
            for t in &topics {
                registry
                    .topics
                    .entry(t.clone())
                    .or_default()
                    .push(slot.clone());
            }
        }
        let mut sub = Subscription {
            bus: self.clone(),
            topics,
            slot,
            rx,
            last: 0,
            pending: VecDeque::new(),
            catching_up: false,
        };
        let mut c = self.inner.db.conn().await?;
        match after {
            Some(after) => {
                let newest = events::newest_seq(&mut c).await?;
                let oldest = events::oldest_seq(&mut c).await?;
                let expired = after > newest || after < 0 || oldest.is_some_and(|o| after + 1 < o);
                if expired {
                    return Err(Error::ResumeWindowExpired { after });
                }
                sub.last = after;
                sub.catching_up = true;
            }
            None => sub.last = events::newest_seq(&mut c).await?,
        }
        Ok(sub)
    }

    fn unregister(&self, id: u64, topics: &[String]) {
        if let Ok(mut registry) = self.inner.registry.lock() {
            for t in topics {
                if let Some(slots) = registry.topics.get_mut(t) {
                    slots.retain(|s| s.id != id);
                    if slots.is_empty() {
                        registry.topics.remove(t);
                    }
                }
            }
        }
    }
}

/// One subscriber's events, in `seq` order, each once.
pub struct Subscription {
    bus: Bus,
    topics: Vec<String>,
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Arc<Event>>,
    /// The last event handed out (or the starting point).
    last: i64,
    pending: VecDeque<Event>,
    catching_up: bool,
}

impl Subscription {
    /// The next event; `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        let item = self.next_inner().await;
        if let Some(Ok(e)) = &item {
            metrics::counter!("minigate_subscription_events_delivered_total").increment(1);
            let lag = (chrono::Utc::now() - e.created_at)
                .num_microseconds()
                .unwrap_or(0);
            metrics::histogram!("minigate_subscription_delivery_lag_seconds")
                .record(f64::from(i32::try_from(lag).unwrap_or(i32::MAX)) / 1e6);
        }
        item
    }

    async fn next_inner(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if e.seq > self.last {
                    self.last = e.seq;
                    return Some(Ok(Arc::new(e)));
                }
                continue;
            }
            if self.catching_up || self.slot.lagged.swap(false, Ordering::AcqRel) {
                // Boxed: an idle subscription's future is as large as its largest state, and the
                // database read is by far the largest; most subscriptions never take it.
                if let Err(e) = Box::pin(self.catch_up()).await {
                    return Some(Err(e));
                }
                continue;
            }
            let e = self.rx.recv().await?;
            if self.slot.lagged.load(Ordering::Acquire) {
                // Something was dropped before `e`: read it all from the outbox instead.
                continue;
            }
            if e.seq > self.last {
                self.last = e.seq;
                return Some(Ok(e));
            }
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        let mut c = self.bus.db().conn().await?;
        let page = events::replay(&mut c, &self.topics, self.last, PAGE).await?;
        self.catching_up = i64::try_from(page.len()).unwrap_or(0) == PAGE;
        self.pending.extend(page);
        Ok(())
    }

    /// The id of the last event handed out.
    pub fn last_seq(&self) -> i64 {
        self.last
    }

    /// As a stream, for GraphQL subscriptions.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Arc<Event>>> + Send {
        futures_util::stream::unfold(
            self,
            |mut s| async move { s.next().await.map(|item| (item, s)) },
        )
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.unregister(self.slot.id, &self.topics);
    }
}
