//! The outbox dispatcher: gives committed events their ids and publishes them on the bus.
//!
//! Woken at once by the commit that wrote an event (an in-process signal), with a slow timer only
//! as a safety net. One replica at a time dispatches (a job lock), so ids follow the order in which
//! events became visible and no event is published twice under two ids. A replica woken while
//! another holds the lock wakes that one with a PostgreSQL `NOTIFY` sent after its own commit, so
//! the writers' transactions never notify (PostgreSQL serialises notifying commits on one lock).

use std::time::Duration;

use chrono::Utc;
use minigate_store::{self as store, Db};

use crate::{
    Result,
    bus::Bus,
    events::{self, Event, Waker},
};

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// The job lock of the dispatcher ("mgoutbox").
pub const LOCK: i64 = 0x6d67_6f75_7462_6f78;
const BATCH: i64 = 500;
/// The shortest time between two wake-ups this replica sends to a busy lock holder.
const BUSY_GAP: Duration = Duration::from_millis(5);

/// Outbox rows are kept this long (the resume window is at least 10 minutes and 1,000 events).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
const KEEP_AT_LEAST: i64 = 1_000;

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// This many events were published.
    Dispatched(usize),
    /// Nothing waiting.
    Idle,
    /// Another replica holds the dispatcher's lock.
    Busy,
}

#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    bus: Bus,
    waker: Waker,
    /// This dispatcher's name in wake-up payloads, so it ignores its own.
    me: String,
}

impl Dispatcher {
    pub fn new(db: Db, bus: Bus, waker: Waker) -> Self {
        let me = store::Id::new().to_string();
        Self { db, bus, waker, me }
    }

    async fn busy(&self, tx: store::Conn) -> Result<Outcome> {
        tx.rollback().await?;
        Ok(Outcome::Busy)
    }

    /// Wakes the other replicas' dispatchers (PostgreSQL `NOTIFY`, committed on its own, outside
    /// any writer's transaction). Called when a commit here found the lock held elsewhere: the
    /// holder may have looked before that commit, and runs another round when woken.
    pub async fn wake_others(&self) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.notify(events::WAKE_CHANNEL, &self.me).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One round: number the committed events that have no id yet, then publish the numbered
    /// ones not yet published. Numbering commits before publishing, so a failed publish is
    /// retried with the same ids.
    pub async fn try_execute_task(&self) -> Result<Outcome> {
        let mut tx = self.db.begin().await?;
        if !tx.try_job_lock(LOCK).await? {
            return self.busy(tx).await;
        }
        // One statement numbers the whole batch, in commit-visibility order after the newest id.
        let newest = events::newest_seq(&mut tx).await?;
        store::execute!(
            &mut tx,
            "update outbox_event set seq = n.seq
             from (select id, $1 + row_number() over (order by created_at, id) as seq
                   from outbox_event where seq is null order by created_at, id limit $2) as n
             where outbox_event.id = n.id",
            newest,
            BATCH
        )?;
        tx.commit().await?;

        let mut tx = self.db.begin().await?;
        if !tx.try_job_lock(LOCK).await? {
            return self.busy(tx).await;
        }
        // Events are published in seq order, so one number says how far publishing got.
        let unsent: Vec<Event> = store::fetch_all!(
            &mut tx,
            Event,
            "select seq, tenant_id, topic, kind, payload, created_at from outbox_event
             where seq > (select published_seq from outbox_cursor where id = 1)
             order by seq limit $1",
            BATCH
        )?;
        let Some(last) = unsent.last().map(|e| e.seq) else {
            tx.commit().await?;
            return Ok(Outcome::Idle);
        };
        self.bus.publish(&unsent).await?;
        store::execute!(
            &mut tx,
            "update outbox_cursor set published_seq = $1 where id = 1",
            last
        )?;
        tx.commit().await?;
        metrics::counter!("minigate_events_published_total")
            .increment(u64::try_from(unsent.len()).unwrap_or(0));
        Ok(Outcome::Dispatched(unsent.len()))
    }

    /// Removes events past the retention, always keeping the newest [`KEEP_AT_LEAST`].
    pub async fn purge(&self) -> Result<u64> {
        let mut c = self.db.conn().await?;
        let newest = events::newest_seq(&mut c).await?;
        let cutoff =
            Utc::now() - chrono::Duration::from_std(RETENTION).unwrap_or(chrono::Duration::days(1));
        Ok(store::execute!(
            &mut c,
            "delete from outbox_event
             where seq <= (select published_seq from outbox_cursor where id = 1)
               and created_at < $1 and seq <= $2",
            cutoff,
            newest - KEEP_AT_LEAST
        )?)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let listener = match self.db.listen(events::WAKE_CHANNEL).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher: cannot listen for wake-ups; relying on the timer");
                None
            }
        };
        // Stopped with the dispatcher, so its connection does not outlive the service. A wake-up
        // from elsewhere is kept apart from this replica's own commits: only the latter are passed
        // on when the lock is held elsewhere, so replicas never bounce wake-ups between them.
        let remote = Waker::default();
        let listening = listener.map(|mut l| {
            let waker = remote.clone();
            let me = self.me.clone();
            tokio::spawn(async move {
                loop {
                    match l.recv().await {
                        Ok(from) if from == me => continue,
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                    waker.wake();
                }
            })
        });
        let _stop_listening = AbortOnDrop(listening);
        tokio::pin!(shutdown);
        let mut last_purge = std::time::Instant::now();
        let mut local = true;
        loop {
            loop {
                match self.try_execute_task().await {
                    Ok(Outcome::Dispatched(_)) => continue,
                    Ok(Outcome::Idle) => break,
                    Ok(Outcome::Busy) => {
                        if local {
                            if let Err(e) = self.wake_others().await {
                                tracing::warn!(error = %e, "dispatcher: cannot wake the lock holder");
                            }
                            // At most one wake-up per gap, however fast this replica commits.
                            tokio::time::sleep(BUSY_GAP).await;
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dispatcher: round failed, retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
            if last_purge.elapsed() > Duration::from_secs(600) {
                last_purge = std::time::Instant::now();
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "dispatcher: purge failed");
                }
            }
            local = tokio::select! {
                () = self.waker.woken() => true,
                () = remote.woken() => false,
                () = tokio::time::sleep(Duration::from_secs(5)) => false,
                () = &mut shutdown => return,
            };
        }
    }
}
