//! A delivery worker: takes back rows whose worker died, claims a batch of due rows, asks the
//! policy, sends each through its channel and settles it with what the channel answered. Any
//! number of workers, on any replica, may run against one table.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use minigate_store::{Db, Id};

use super::{
    Channel, Class, DEAD, FELL_THROUGH, PENDING, SENT,
    batch::{self, Attempt, Ending},
    db::{self, Delivery},
    policy::{self, Verdict},
};
use crate::{Result, outcome::SendOutcome};

/// Sends one delivery on its channel. Implemented over the WeChat client (and later the app
/// push providers); tests script it.
#[async_trait]
pub trait Sender: Send + Sync {
    /// Called with each wave of rows shortly before they are sent, so that a sender can read in
    /// one query what it needs for all of them (recipients' addresses, say) instead of one query
    /// per message.
    async fn prepare(&self, _wave: &[Arc<Delivery>]) {}

    async fn send(&self, delivery: &Delivery) -> SendOutcome;
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Rows claimed at a time.
    pub batch: i64,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claimed row is the worker's; then any worker may take it back.
    pub lease: Duration,
    /// Attempts per channel before a dead letter.
    pub max_attempts: i32,
    /// The first retry's wait; it doubles per attempt, with ±50 % jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long to wait after a credential failure (an operator must fix the app's secret).
    pub credential_backoff: Duration,
    /// How long an idle worker sleeps before looking again.
    pub idle: StdDuration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            batch: 200,
            concurrency: 32,
            lease: Duration::seconds(60),
            max_attempts: 8,
            base_backoff: Duration::seconds(10),
            max_backoff: Duration::hours(1),
            credential_backoff: Duration::minutes(30),
            idle: StdDuration::from_millis(500),
        }
    }
}

pub struct Worker {
    db: Db,
    id: String,
    sender: Arc<dyn Sender>,
    settings: WorkerSettings,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub reclaimed: usize,
    pub claimed: usize,
    pub sent: usize,
    pub fell_through: usize,
    pub retried: usize,
    pub dead: usize,
    pub deferred: usize,
}

impl Worker {
    pub fn new(
        db: Db,
        id: impl Into<String>,
        sender: Arc<dyn Sender>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            db,
            id: id.into(),
            sender,
            settings,
        }
    }

    /// One pass at `now`: take back expired leases, claim a batch, ask the policy, send what may
    /// go now (up to `concurrency` at once) and settle what came back in chunks as it comes.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Pass> {
        let mut pass = Pass::default();
        let claimed_at = Instant::now();
        let claimed = self.claim(now, &mut pass).await?;
        pass.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(pass);
        }
        let to_send = self.apply_policy(&claimed, now, &mut pass).await?;
        // Past this, another worker may take the rows back: what is not sent by then is left to
        // it, so a worker that hung never sends a row a second time.
        let deadline = claimed_at + lease_margin(self.settings.lease);
        let concurrency = self.settings.concurrency.max(1);
        // The sending side owns all it uses (no borrow of the worker or the batch), so that
        // the pass's future is `Send` for callers that spawn it.
        let rows: Arc<[Arc<Delivery>]> = to_send.into();
        // Unbounded (a pass has at most a batch of outcomes): the sends in flight are futures
        // inside the sending stream, polled only while it is; a full channel would stop it, and
        // a send holding the database's write turn (a subscribe message's consent) would then
        // never finish while the settle waits for that turn.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, SendOutcome)>();
        let sending = send_all(
            Wave {
                db: self.db.clone(),
                worker: self.id.clone(),
                sender: Arc::clone(&self.sender),
                concurrency,
                deadline,
            },
            Arc::clone(&rows),
            tx,
        );
        let settling = async {
            let mut chunk = Vec::with_capacity(SETTLE_CHUNK);
            let mut failure = None;
            while rx.recv_many(&mut chunk, SETTLE_CHUNK).await > 0 {
                if failure.is_none() {
                    let sent: Vec<(Arc<Delivery>, SendOutcome)> = chunk
                        .drain(..)
                        .map(|(i, outcome)| (Arc::clone(&rows[i]), outcome))
                        .collect();
                    if let Err(e) = self.settle_until(&sent, now, deadline, &mut pass).await {
                        failure = Some(e);
                    }
                }
                chunk.clear();
            }
            failure
        };
        let ((), failure) = tokio::join!(sending, settling);
        match failure {
            Some(e) => Err(e),
            None => Ok(pass),
        }
    }

    /// Runs passes until `stop` resolves, sleeping while there is nothing due.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            let idle = match self.run_once(Utc::now()).await {
                Ok(p) => p.claimed == 0,
                Err(e) => {
                    tracing::warn!(worker = %self.id, code = e.code(), error = %e, "delivery pass failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(self.settings.idle) => {}
                }
            }
        }
    }

    /// Takes back expired leases and claims a batch, in one transaction.
    async fn claim(&self, now: DateTime<Utc>, pass: &mut Pass) -> Result<Vec<Arc<Delivery>>> {
        let mut tx = self.db.begin().await?;
        let back = db::reclaim(&mut tx, now, self.settings.max_attempts).await?;
        let attempts: Vec<Attempt<'_>> = back
            .iter()
            .map(|(id, attempt, channel)| Attempt {
                delivery: *id,
                attempt: *attempt,
                channel,
                outcome: "RECLAIMED",
                code: Some("LEASE_EXPIRED"),
                detail: Some("the worker holding it did not settle it in time"),
            })
            .collect();
        batch::record_attempts(&mut tx, &self.id, &attempts).await?;
        pass.reclaimed = back.len();
        let claimed = db::claim(
            &mut tx,
            &self.id,
            now,
            now + self.settings.lease,
            self.settings.batch,
        )
        .await?;
        tx.commit().await?;
        Ok(claimed.into_iter().map(Arc::new).collect())
    }

    /// Defers the reminders and marketing that quiet hours or the daily cap hold back; returns
    /// what may be sent now. Counts sent today are read for the whole batch at once, and a
    /// person's messages within the batch count against their cap too.
    async fn apply_policy(
        &self,
        claimed: &[Arc<Delivery>],
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<Vec<Arc<Delivery>>> {
        let capped =
            |d: &Delivery| Class::parse(&d.class).unwrap_or(Class::Reminder) != Class::Essential;
        if !claimed.iter().any(|d| capped(d)) {
            return Ok(claimed.to_vec());
        }
        let mut c = self.db.conn().await?;
        let mut rules = HashMap::new();
        let mut users: Vec<Id> = claimed
            .iter()
            .filter(|d| capped(d))
            .map(|d| d.user_id)
            .collect();
        users.sort_unstable();
        users.dedup();
        let mut sent_today: HashMap<Id, u32> =
            batch::capped_sent_since(&mut c, users, policy::local_midnight(now))
                .await?
                .into_iter()
                .map(|(u, n)| (u, u32::try_from(n).unwrap_or(u32::MAX)))
                .collect();
        let mut send = Vec::with_capacity(claimed.len());
        let mut deferred = Vec::new();
        for d in claimed {
            if !capped(d) {
                send.push(Arc::clone(d));
                continue;
            }
            let class = Class::parse(&d.class).unwrap_or(Class::Reminder);
            let rule = match rules.get(&d.tenant_id) {
                Some(rule) => *rule,
                None => {
                    let rule = db::policy(&mut c, d.tenant_id).await?;
                    rules.insert(d.tenant_id, rule);
                    rule
                }
            };
            let count = sent_today.entry(d.user_id).or_insert(0);
            match policy::decide(&rule, class, now, *count) {
                Verdict::DeferUntil(until) => deferred.push((d.as_ref(), until)),
                Verdict::Send => {
                    // Counted as if sent: a batch never sends one person more than the cap.
                    *count = count.saturating_add(1);
                    send.push(Arc::clone(d));
                }
            }
        }
        drop(c);
        if !deferred.is_empty() {
            let mut tx = self.db.begin().await?;
            let written: HashSet<Id> = batch::defer(&mut tx, &self.id, &deferred)
                .await?
                .into_iter()
                .collect();
            let details: Vec<String> = deferred
                .iter()
                .map(|(_, until)| format!("not before {until}"))
                .collect();
            let attempts: Vec<Attempt<'_>> = deferred
                .iter()
                .zip(&details)
                .filter(|((d, _), _)| written.contains(&d.id))
                .map(|((d, _), detail)| Attempt {
                    delivery: d.id,
                    attempt: d.attempts,
                    channel: &d.channel,
                    outcome: "DEFERRED",
                    code: Some("QUIET_HOURS_OR_CAP"),
                    detail: Some(detail),
                })
                .collect();
            batch::record_attempts(&mut tx, &self.id, &attempts).await?;
            tx.commit().await?;
            pass.deferred += written.len();
        }
        Ok(send)
    }

    /// Settles a chunk, trying again while the database is briefly unavailable (busy, or no
    /// connection free) and the rows are still this worker's. A message went out: if its row
    /// is left unsettled, another worker takes it back after the lease and sends it a second
    /// time (and a subscribe message spends a second consent on it).
    async fn settle_until(
        &self,
        sent: &[(Arc<Delivery>, SendOutcome)],
        now: DateTime<Utc>,
        deadline: Instant,
        pass: &mut Pass,
    ) -> Result<()> {
        let mut wait = SETTLE_RETRY_FIRST;
        loop {
            match self.settle(sent, now, pass).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && Instant::now() + wait < deadline => {
                    tracing::warn!(worker = %self.id, rows = sent.len(), code = e.code(), error = %e,
                        "settling sent messages failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(SETTLE_RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what came of a chunk of sends, in one transaction.
    async fn settle(
        &self,
        sent: &[(Arc<Delivery>, SendOutcome)],
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<()> {
        let endings: Vec<Ending<'_>> = sent.iter().map(|(d, o)| self.ending(d, o, now)).collect();
        let mut tx = self.db.begin().await?;
        // Rows taken back meanwhile are not written: whoever holds them now settles them.
        let written: HashSet<Id> = batch::settle(&mut tx, &self.id, now, &endings)
            .await?
            .into_iter()
            .collect();
        let endings: Vec<&Ending<'_>> = endings
            .iter()
            .filter(|e| written.contains(&e.delivery.id))
            .collect();
        let attempts: Vec<Attempt<'_>> = endings
            .iter()
            .map(|e| Attempt {
                delivery: e.delivery.id,
                attempt: e.delivery.attempts,
                channel: &e.delivery.channel,
                outcome: e.outcome,
                code: e.code,
                detail: e.detail,
            })
            .collect();
        batch::record_attempts(&mut tx, &self.id, &attempts).await?;
        let fell: Vec<&Delivery> = endings
            .iter()
            .filter(|e| e.status == FELL_THROUGH)
            .map(|e| e.delivery)
            .collect();
        batch::fall_through(&mut tx, &fell, now).await?;
        tx.commit().await?;
        for e in endings {
            match e.status {
                SENT => pass.sent += 1,
                FELL_THROUGH => pass.fell_through += 1,
                DEAD => {
                    tracing::warn!(delivery = %e.delivery.id, channel = %e.delivery.channel,
                        code = e.code.unwrap_or(""), "delivery dead-lettered");
                    pass.dead += 1;
                }
                _ => pass.retried += 1,
            }
        }
        Ok(())
    }

    /// What an outcome makes of the row: a failure worth retrying waits (by the provider's
    /// `Retry-After`, else backoff), unless this was the last attempt.
    fn ending<'a>(
        &self,
        d: &'a Delivery,
        outcome: &'a SendOutcome,
        now: DateTime<Utc>,
    ) -> Ending<'a> {
        let retry = if d.attempts >= self.settings.max_attempts {
            DEAD
        } else {
            PENDING
        };
        let ending =
            |status, next, outcome, code: Option<&'a String>, detail: Option<&'a String>| Ending {
                delivery: d,
                status,
                next_attempt_at: next,
                outcome,
                code: code.map(String::as_str),
                detail: detail.map(String::as_str),
                provider_msg_id: None,
            };
        match outcome {
            SendOutcome::Sent { provider_msg_id } => Ending {
                provider_msg_id: provider_msg_id.as_deref(),
                ..ending(SENT, now, "SENT", None, None)
            },
            SendOutcome::Permanent { code, detail } => {
                ending(FELL_THROUGH, now, "PERMANENT", Some(code), Some(detail))
            }
            SendOutcome::Transient {
                code,
                detail,
                retry_after,
            } => {
                let wait = retry_after
                    .and_then(|r| Duration::from_std(r).ok())
                    .unwrap_or_else(|| self.backoff(d.attempts))
                    .max(self.backoff_floor());
                ending(retry, now + wait, "TRANSIENT", Some(code), Some(detail))
            }
            SendOutcome::Credential { code, detail } => ending(
                retry,
                now + self.settings.credential_backoff,
                "CREDENTIAL",
                Some(code),
                Some(detail),
            ),
        }
    }

    /// `base × 2^(attempt−1)`, at most `max_backoff`, times a jitter in [0.5, 1.5).
    fn backoff(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 20);
        let base = self
            .settings
            .base_backoff
            .checked_mul(1i32 << exp)
            .unwrap_or(self.settings.max_backoff)
            .min(self.settings.max_backoff);
        let jitter_permille = 500 + i64::from(rand_below(1000));
        Duration::milliseconds(base.num_milliseconds().saturating_mul(jitter_permille) / 1000)
    }

    fn backoff_floor(&self) -> Duration {
        Duration::seconds(1)
    }
}

/// What the sending side of a pass needs, owned.
struct Wave {
    db: Db,
    worker: String,
    sender: Arc<dyn Sender>,
    concurrency: usize,
    /// Not sent after this: the lease is about to end.
    deadline: Instant,
}

/// Sends `rows`, `concurrency` at a time, handing each outcome to `settle` as it comes. Each
/// wave of rows is checked to be still this worker's right before it is sent (the check of the
/// next wave runs while the previous one is in flight).
async fn send_all(
    w: Wave,
    rows: Arc<[Arc<Delivery>]>,
    settle: tokio::sync::mpsc::UnboundedSender<(usize, SendOutcome)>,
) {
    let n = rows.len();
    let concurrency = w.concurrency;
    let waves = (0..n)
        .step_by(concurrency)
        .map(move |start| start..n.min(start.saturating_add(concurrency)));
    let checked = {
        let rows = Arc::clone(&rows);
        let (db, worker, sender) = (w.db.clone(), w.worker.clone(), Arc::clone(&w.sender));
        move |wave: std::ops::Range<usize>| {
            let ids: Vec<(usize, Id)> = wave.clone().map(|i| (i, rows[i].id)).collect();
            let ahead: Vec<Arc<Delivery>> = wave.map(|i| Arc::clone(&rows[i])).collect();
            ready(db.clone(), worker.clone(), ids, Arc::clone(&sender), ahead)
        }
    };
    let sent = {
        let (sender, deadline) = (Arc::clone(&w.sender), w.deadline);
        move |i: usize| {
            let d = Arc::clone(&rows[i]);
            let sender = Arc::clone(&sender);
            async move {
                if Instant::now() >= deadline {
                    return None;
                }
                Some((i, send(sender.as_ref(), &d).await))
            }
        }
    };
    futures_util::stream::iter(waves)
        .then(checked)
        .flat_map(futures_util::stream::iter)
        .map(sent)
        .buffer_unordered(concurrency)
        .for_each(move |outcome| {
            if let Some(outcome) = outcome {
                // The settling side only stops early on a store error, after which unsettled
                // rows are left to be taken back.
                let _ = settle.send(outcome);
            }
            std::future::ready(())
        })
        .await;
}

/// Sends one row on its channel.
async fn send(sender: &dyn Sender, d: &Delivery) -> SendOutcome {
    if Channel::parse(&d.channel) == Some(Channel::InApp) {
        // The message is in the app's notice list already: nothing to send.
        return SendOutcome::Sent {
            provider_msg_id: None,
        };
    }
    sender.send(d).await
}

/// The indices of `rows` (index, id) that `worker` still holds, read while the sender prepares
/// the wave. Takes what it needs by value, so that its future borrows nothing.
async fn ready(
    db: Db,
    worker: String,
    rows: Vec<(usize, Id)>,
    sender: Arc<dyn Sender>,
    ahead: Vec<Arc<Delivery>>,
) -> Vec<usize> {
    let (held, ()) = tokio::join!(still_held(db, worker, rows), sender.prepare(&ahead));
    held
}

/// A worker that hung while others took its rows back must not send them a second time; when
/// the store cannot say which rows are still held, nothing is sent (the rows are taken back once
/// the lease ends).
async fn still_held(db: Db, worker: String, rows: Vec<(usize, Id)>) -> Vec<usize> {
    let ids: Vec<Id> = rows.iter().map(|(_, id)| *id).collect();
    let held = match db.conn().await {
        Ok(mut c) => batch::still_held(&mut c, &worker, ids).await,
        Err(e) => Err(e.into()),
    };
    match held {
        Ok(held) => rows
            .into_iter()
            .filter(|(_, id)| held.contains(id))
            .map(|(i, _)| i)
            .collect(),
        Err(e) => {
            tracing::warn!(worker = %worker, code = e.code(), error = %e,
                "cannot check which rows are still held; leaving them to be taken back");
            Vec::new()
        }
    }
}

/// Settled in one transaction at most.
const SETTLE_CHUNK: usize = 128;

/// The first wait before settling a chunk again, doubled per try up to the second.
const SETTLE_RETRY_FIRST: StdDuration = StdDuration::from_millis(50);
const SETTLE_RETRY_MAX: StdDuration = StdDuration::from_secs(2);

/// How long after its claim a worker still sends a row: nine tenths of the lease, so that the
/// last send ends before another worker may take the row back.
fn lease_margin(lease: Duration) -> StdDuration {
    let ms = lease.num_milliseconds().max(0).saturating_mul(9) / 10;
    StdDuration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A number in `[0, n)` for jitter (no cryptography needed; the system source is at hand).
fn rand_below(n: u32) -> u32 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return n / 2;
    }
    u32::from_le_bytes(bytes) % n.max(1)
}
