//! Running a follower sync: page by page, each page stored in one transaction with the cursor
//! that follows it, under a lease.
//!
//! Whoever runs a sync holds it (`holder`) until its lease ends, and renews the lease with every
//! page; a sync whose holder died is taken over by anyone once the lease has run out, and goes on
//! from the page it was on. A page WeChat would not give (or describe) is tried again after
//! [`SyncSettings::retry_after`], with nobody holding it meanwhile; after
//! [`SyncSettings::max_failures`] failures in a row, or one that retrying cannot mend (the
//! account's credentials, an API not granted), the sync ends `FAILED`.
//!
//! The count of failures in a row is kept at the head of `last_error` ("failure 2 of 5: …"),
//! which operators read anyway; a page that works clears it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use minigate_push::wechat::{AppCredentials, followers::FollowerInfo};
use minigate_store::Id;

use super::db::{self, Followed, PageDone, SyncRow};
use crate::{Deps, Error, Result, tenant::db as tenant_db};

/// How a process runs syncs.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// How long a sync stays its runner's after each page.
    pub lease: Duration,
    /// How long after a failed page it is tried again.
    pub retry_after: Duration,
    /// Failures in a row before the sync is given up.
    pub max_failures: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            lease: Duration::from_secs(120),
            retry_after: Duration::from_secs(30),
            max_failures: 5,
        }
    }
}

/// What one [`step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A page was stored; more may follow.
    Page,
    /// The last page was stored and the followers not listed were let go.
    Done,
    /// The page could not be read; the sync waits for its next try.
    Retry,
    /// The page could not be read, for the last time.
    Failed,
    /// The sync is not running, or another runner holds it.
    NotHeld,
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

/// Starts a sync of the official account `app_id` from its first page, held by `holder`; a sync
/// already running is left as it is. Returns the sync's row.
pub async fn start(
    d: &Deps,
    tenant_id: Id,
    app_id: &str,
    holder: &str,
    settings: &SyncSettings,
    now: DateTime<Utc>,
) -> Result<(SyncRow, bool)> {
    let mut c = d.db.conn().await?;
    let started = db::restart_sync(
        &mut c,
        tenant_id,
        app_id,
        holder,
        now,
        after(now, settings.lease),
    )
    .await?;
    let row = db::find_sync(&mut c, app_id)
        .await?
        .ok_or(Error::NotFound("follower sync"))?;
    Ok((row, started))
}

/// Runs the sync of `app_id` for `holder` until it is done, failed, waiting for a retry, or
/// held by another runner. `progress` sees the row after every page.
pub async fn run(
    d: &Deps,
    app_id: &str,
    holder: &str,
    settings: &SyncSettings,
    progress: &(dyn Fn(&SyncRow) + Sync),
) -> Result<Step> {
    loop {
        let step = self::step(d, app_id, holder, settings, Utc::now()).await?;
        if let Some(row) = db::find_sync(&mut d.db.conn().await?, app_id).await? {
            progress(&row);
        }
        if step != Step::Page {
            return Ok(step);
        }
    }
}

/// Resumes every running sync nobody holds (started elsewhere, cut off by a crash, or due for a
/// retry). Returns how many it ran.
pub async fn resume_due(d: &Deps, holder: &str, settings: &SyncSettings) -> Result<usize> {
    let due = db::list_resumable(&mut d.db.conn().await?, Utc::now()).await?;
    let mut ran = 0;
    for app_id in due {
        match run(d, &app_id, holder, settings, &|_| {}).await {
            Ok(Step::NotHeld) => {}
            Ok(step) => {
                tracing::info!(app_id, ?step, "follower sync resumed");
                ran += 1;
            }
            Err(e) => tracing::warn!(app_id, code = e.code(), error = %e, "follower sync failed"),
        }
    }
    Ok(ran)
}

/// Resumes syncs every `every` (see [`resume_due`]) until `stop` resolves; a sync stopped
/// mid-way by `stop` is taken up again once its lease ends, here or elsewhere.
pub async fn keep_resuming(d: Deps, every: Duration, stop: impl Future<Output = ()>) {
    let holder = format!(
        "minigate-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let settings = SyncSettings::default();
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            r = resume_due(&d, &holder, &settings) => if let Err(e) = r {
                tracing::warn!(code = e.code(), error = %e, "follower syncs not resumed");
            },
        }
    }
}

/// One page of the sync of `app_id`, if `holder` holds it or may take it at `now`.
pub async fn step(
    d: &Deps,
    app_id: &str,
    holder: &str,
    settings: &SyncSettings,
    now: DateTime<Utc>,
) -> Result<Step> {
    let lease_until = after(now, settings.lease);
    let Some(sync) =
        db::claim_sync(&mut d.db.conn().await?, app_id, holder, now, lease_until).await?
    else {
        return Ok(Step::NotHeld);
    };
    let fetched = match fetch_page(d, &sync).await {
        Ok(fetched) => fetched,
        // The database failing is nobody's page: the lease runs out and the sync is taken up
        // again.
        Err(e @ Error::Store(_)) => return Err(e),
        Err(e) => return record_failure(d, &sync, holder, settings, now, &e).await,
    };
    let total = i32::try_from(fetched.total).unwrap_or(i32::MAX);
    let mut tx = d.db.begin().await?;
    let mut stored = 0;
    for info in fetched.infos.iter().filter(|i| i.subscribed) {
        db::follow(
            &mut tx,
            &Followed {
                tenant_id: sync.tenant_id,
                app_id,
                openid: &info.openid,
                unionid: info.unionid.as_deref(),
                at: info.subscribe_time.unwrap_or(sync.started_at),
            },
            Some(sync.started_at),
        )
        .await?;
        stored += 1;
    }
    let page = PageDone {
        next_openid: &fetched.next_openid,
        total,
        listed: i32::try_from(fetched.listed).unwrap_or(i32::MAX),
        stored,
    };
    if !db::advance_sync(&mut tx, app_id, holder, &page, now, lease_until).await? {
        tx.rollback().await?;
        return Ok(Step::NotHeld);
    }
    if !fetched.last {
        tx.commit().await?;
        return Ok(Step::Page);
    }
    let left = db::unfollow_unlisted(&mut tx, app_id, sync.started_at).await?;
    db::finish_sync(&mut tx, app_id, holder, total, now).await?;
    tx.commit().await?;
    tracing::info!(
        app_id,
        total,
        unfollowed_unnoticed = left,
        "follower sync done"
    );
    Ok(Step::Done)
}

/// A page of openids and what WeChat tells of them.
struct Fetched {
    total: u64,
    listed: usize,
    infos: Vec<FollowerInfo>,
    next_openid: String,
    last: bool,
}

async fn fetch_page(d: &Deps, sync: &SyncRow) -> Result<Fetched> {
    let creds = credentials(d, &sync.app_id).await?;
    let page = d.wechat.user_get(&creds, &sync.next_openid).await?;
    let infos = d.wechat.user_info_batchget(&creds, &page.openids).await?;
    Ok(Fetched {
        total: page.total,
        listed: page.openids.len(),
        infos,
        last: page.is_last(),
        // The cursor stays on the last page read, should WeChat give none.
        next_openid: if page.next_openid.is_empty() {
            sync.next_openid.clone()
        } else {
            page.next_openid
        },
    })
}

/// The official account's credentials for WeChat's API.
pub(crate) async fn credentials(d: &Deps, app_id: &str) -> Result<AppCredentials> {
    let mut c = d.db.conn().await?;
    let app = tenant_db::find_app(&mut c, app_id, tenant_db::OFFICIAL_ACCOUNT)
        .await?
        .ok_or(Error::NotFound("official account"))?;
    let secret = d
        .secrets
        .resolve(&app.secret_ref)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(AppCredentials {
        app_id: app.app_id,
        secret,
    })
}

/// How many failures in a row `last_error` counts.
fn failures_so_far(last_error: Option<&str>) -> u32 {
    last_error
        .and_then(|e| e.strip_prefix("failure "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn record_failure(
    d: &Deps,
    sync: &SyncRow,
    holder: &str,
    settings: &SyncSettings,
    now: DateTime<Utc>,
    e: &Error,
) -> Result<Step> {
    let (retryable, detail) = match e {
        // WeChat's answer, without the URL and its access token.
        Error::Push(p) => (p.is_transient(), p.to_string()),
        other => (false, other.public_message()),
    };
    let failures = failures_so_far(sync.last_error.as_deref()).saturating_add(1);
    let give_up = !retryable || failures >= settings.max_failures;
    let message = format!(
        "failure {failures} of {}: {}: {}",
        settings.max_failures,
        e.code(),
        detail
    );
    tracing::warn!(app_id = %sync.app_id, code = e.code(), error = %e, failures, give_up,
        "follower sync page failed");
    let mut c = d.db.conn().await?;
    db::fail_sync(
        &mut c,
        &sync.app_id,
        holder,
        &message,
        give_up,
        now,
        after(now, settings.retry_after),
    )
    .await?;
    Ok(if give_up { Step::Failed } else { Step::Retry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_count_is_read_from_the_head_of_the_last_error() {
        assert_eq!(failures_so_far(None), 0);
        assert_eq!(failures_so_far(Some("something else")), 0);
        assert_eq!(
            failures_so_far(Some("failure 3 of 5: UPSTREAM_UNAVAILABLE: x")),
            3
        );
    }
}
