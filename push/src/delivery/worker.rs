//! A delivery worker: takes back rows whose worker died, claims a batch of due rows, asks the
//! policy, sends each through its channel and settles it with what the channel answered. Any
//! number of workers, on any replica, may run against one table.

use std::{sync::Arc, time::Duration as StdDuration};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use minigate_store::Db;

use super::{
    Channel, Class, DEAD, FELL_THROUGH, PENDING, SENT,
    db::{self, Attempt, Delivery, Settlement},
    policy::{self, Verdict},
};
use crate::{Result, outcome::SendOutcome};

/// Sends one delivery on its channel. Implemented over the WeChat client (and later the app
/// push providers); tests script it.
#[async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, delivery: &Delivery) -> SendOutcome;
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Rows claimed at a time.
    pub batch: i64,
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
            batch: 100,
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

    /// One pass at `now`: take back expired leases, claim a batch, handle it.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Pass> {
        let mut pass = Pass::default();
        let claimed = {
            let mut tx = self.db.begin().await?;
            let back = db::reclaim(&mut tx, now, self.settings.max_attempts).await?;
            for (id, attempt, channel) in &back {
                db::record_attempt(
                    &mut tx,
                    &Attempt {
                        delivery: *id,
                        attempt: *attempt,
                        channel,
                        outcome: "RECLAIMED",
                        code: Some("LEASE_EXPIRED"),
                        detail: Some("the worker holding it did not settle it in time"),
                        worker: &self.id,
                    },
                )
                .await?;
            }
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
            claimed
        };
        pass.claimed = claimed.len();
        for d in &claimed {
            // A worker that hung may find its later rows taken back and sent by another.
            let held = {
                let mut c = self.db.conn().await?;
                db::still_held(&mut c, d, &self.id).await?
            };
            if held {
                self.handle(d, now, &mut pass).await?;
            }
        }
        Ok(pass)
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

    async fn handle(&self, d: &Delivery, now: DateTime<Utc>, pass: &mut Pass) -> Result<()> {
        let class = Class::parse(&d.class).unwrap_or(Class::Reminder);
        if class != Class::Essential {
            let mut c = self.db.conn().await?;
            let rules = db::policy(&mut c, d.tenant_id).await?;
            let sent_today =
                db::capped_sent_since(&mut c, d.tenant_id, d.user_id, policy::local_midnight(now))
                    .await?;
            if let Verdict::DeferUntil(until) = policy::decide(
                &rules,
                class,
                now,
                u32::try_from(sent_today).unwrap_or(u32::MAX),
            ) {
                let mut tx = self.db.begin().await?;
                if db::defer(&mut tx, d, &self.id, until).await? {
                    db::record_attempt(
                        &mut tx,
                        &Attempt {
                            delivery: d.id,
                            attempt: d.attempts,
                            channel: &d.channel,
                            outcome: "DEFERRED",
                            code: Some("QUIET_HOURS_OR_CAP"),
                            detail: Some(&format!("not before {until}")),
                            worker: &self.id,
                        },
                    )
                    .await?;
                    pass.deferred += 1;
                }
                tx.commit().await?;
                return Ok(());
            }
        }
        let outcome = if Channel::parse(&d.channel) == Some(Channel::InApp) {
            // The message is in the app's notice list already: nothing to send.
            SendOutcome::Sent {
                provider_msg_id: None,
            }
        } else {
            self.sender.send(d).await
        };
        self.settle(d, now, outcome, pass).await
    }

    async fn settle(
        &self,
        d: &Delivery,
        now: DateTime<Utc>,
        outcome: SendOutcome,
        pass: &mut Pass,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        // A failure worth retrying waits, unless this was the last attempt.
        let retry = if d.attempts >= self.settings.max_attempts {
            DEAD
        } else {
            PENDING
        };
        let (status, next, kind, code, detail, msg_id) = match &outcome {
            SendOutcome::Sent { provider_msg_id } => {
                (SENT, now, "SENT", None, None, provider_msg_id.as_deref())
            }
            SendOutcome::Permanent { code, detail } => (
                FELL_THROUGH,
                now,
                "PERMANENT",
                Some(code.as_str()),
                Some(detail.as_str()),
                None,
            ),
            SendOutcome::Transient {
                code,
                detail,
                retry_after,
            } => {
                let wait = retry_after
                    .and_then(|r| Duration::from_std(r).ok())
                    .unwrap_or_else(|| self.backoff(d.attempts))
                    .max(self.backoff_floor());
                (
                    retry,
                    now + wait,
                    "TRANSIENT",
                    Some(code.as_str()),
                    Some(detail.as_str()),
                    None,
                )
            }
            SendOutcome::Credential { code, detail } => (
                retry,
                now + self.settings.credential_backoff,
                "CREDENTIAL",
                Some(code.as_str()),
                Some(detail.as_str()),
                None,
            ),
        };
        let settlement = Settlement {
            at: now,
            status,
            next_attempt_at: next,
            code,
            detail,
            provider_msg_id: msg_id,
        };
        if !db::settle(&mut tx, d, &self.id, &settlement).await? {
            // Taken back meanwhile: whoever holds it now settles it.
            tx.rollback().await?;
            return Ok(());
        }
        db::record_attempt(
            &mut tx,
            &Attempt {
                delivery: d.id,
                attempt: d.attempts,
                channel: &d.channel,
                outcome: kind,
                code,
                detail,
                worker: &self.id,
            },
        )
        .await?;
        match status {
            SENT => pass.sent += 1,
            FELL_THROUGH => {
                db::fall_through(&mut tx, d, now).await?;
                pass.fell_through += 1;
            }
            DEAD => {
                tracing::warn!(delivery = %d.id, channel = %d.channel, code = code.unwrap_or(""), "delivery dead-lettered");
                pass.dead += 1;
            }
            _ => pass.retried += 1,
        }
        tx.commit().await?;
        Ok(())
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

/// A number in `[0, n)` for jitter (no cryptography needed; the system source is at hand).
fn rand_below(n: u32) -> u32 {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return n / 2;
    }
    u32::from_le_bytes(bytes) % n.max(1)
}
