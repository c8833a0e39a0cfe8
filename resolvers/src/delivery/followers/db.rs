//! SQL of an official account's followers and of its follower sync.
//!
//! A follower's state follows the newest thing known of them: `subscribed_at` is the latest
//! follow and `unsubscribed_at` the latest unfollow seen (from callbacks, whose `CreateTime` says
//! when, or from a sync), and `subscribed` is whichever is newer. So a callback WeChat retried,
//! or one overtaken by a newer one, changes nothing; a follow and an unfollow in the same second
//! count as an unfollow (a message not sent beats one sent to someone who left).

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

/// Someone followed at `at`: they follow unless an unfollow newer than `at` is known. `unionid`
/// fills in one not known yet; `listed_at` records the sync that listed them.
pub async fn follow(
    c: &mut Conn,
    f: &Followed<'_>,
    listed_at: Option<DateTime<Utc>>,
) -> store::Result<()> {
    store::execute!(
        c,
        "insert into wechat_follower
             (app_id, openid, tenant_id, unionid, subscribed, subscribed_at, listed_at, updated_at)
         values ($1, $2, $3, $4, true, $5, $6, now())
         on conflict (app_id, openid) do update set
             unionid = coalesce(excluded.unionid, wechat_follower.unionid),
             subscribed = case
                 when wechat_follower.unsubscribed_at is null
                      or wechat_follower.unsubscribed_at < excluded.subscribed_at then true
                 else wechat_follower.subscribed end,
             subscribed_at = case
                 when wechat_follower.subscribed_at is null
                      or wechat_follower.subscribed_at < excluded.subscribed_at
                     then excluded.subscribed_at
                 else wechat_follower.subscribed_at end,
             listed_at = coalesce(excluded.listed_at, wechat_follower.listed_at),
             updated_at = now()",
        f.app_id,
        f.openid,
        f.tenant_id,
        f.unionid,
        f.at,
        listed_at
    )?;
    Ok(())
}

/// A follow: who, of which account, when.
#[derive(Debug, Clone, Copy)]
pub struct Followed<'a> {
    pub tenant_id: Id,
    pub app_id: &'a str,
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// Someone unfollowed at `at`: they no longer follow unless a follow newer than `at` is known.
/// Someone not known yet is recorded as a former follower, so an older follow arriving late
/// cannot make them one.
pub async fn unfollow(
    c: &mut Conn,
    tenant_id: Id,
    app_id: &str,
    openid: &str,
    at: DateTime<Utc>,
) -> store::Result<()> {
    store::execute!(
        c,
        "insert into wechat_follower
             (app_id, openid, tenant_id, subscribed, unsubscribed_at, updated_at)
         values ($1, $2, $3, false, $4, now())
         on conflict (app_id, openid) do update set
             subscribed = case
                 when wechat_follower.subscribed_at is null
                      or wechat_follower.subscribed_at <= excluded.unsubscribed_at then false
                 else wechat_follower.subscribed end,
             unsubscribed_at = case
                 when wechat_follower.unsubscribed_at is null
                      or wechat_follower.unsubscribed_at < excluded.unsubscribed_at
                     then excluded.unsubscribed_at
                 else wechat_follower.unsubscribed_at end,
             updated_at = now()",
        app_id,
        openid,
        tenant_id,
        at
    )?;
    Ok(())
}

/// After a complete sync that started at `started_at`: whoever still counts as a follower but
/// was not listed by it, and did not follow since it started, left unnoticed (a lost callback).
/// Returns how many.
pub async fn unfollow_unlisted(
    c: &mut Conn,
    app_id: &str,
    started_at: DateTime<Utc>,
) -> store::Result<u64> {
    store::execute!(
        c,
        "update wechat_follower set subscribed = false, unsubscribed_at = $2, updated_at = now()
         where app_id = $1 and subscribed
           and (listed_at is null or listed_at < $2)
           and (subscribed_at is null or subscribed_at < $2)",
        app_id,
        started_at
    )
}

/// One official account's follower sync.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Eq)]
pub struct SyncRow {
    pub app_id: String,
    pub tenant_id: Id,
    /// `RUNNING`, `DONE` or `FAILED`.
    pub status: String,
    /// The cursor of the next `user/get` page; empty before the first.
    pub next_openid: String,
    pub total: i32,
    pub listed: i32,
    pub stored: i32,
    pub holder: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

pub const RUNNING: &str = "RUNNING";
pub const DONE: &str = "DONE";
pub const FAILED: &str = "FAILED";

pub async fn find_sync(c: &mut Conn, app_id: &str) -> store::Result<Option<SyncRow>> {
    store::fetch_optional!(
        c,
        SyncRow,
        "select * from wechat_follower_sync where app_id = $1",
        app_id
    )
}

/// A new sync from the first page, held by `holder` until `lease_until`, unless one is running
/// (then nothing changes). Returns whether it started.
pub async fn restart_sync(
    c: &mut Conn,
    tenant_id: Id,
    app_id: &str,
    holder: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> store::Result<bool> {
    let n = store::execute!(
        c,
        "insert into wechat_follower_sync
             (app_id, tenant_id, status, next_openid, total, listed, stored, holder, lease_until,
              last_error, started_at, finished_at, updated_at)
         values ($1, $2, 'RUNNING', '', 0, 0, 0, $3, $4, null, $5, null, $5)
         on conflict (app_id) do update set
             tenant_id = excluded.tenant_id, status = 'RUNNING', next_openid = '', total = 0,
             listed = 0, stored = 0, holder = excluded.holder, lease_until = excluded.lease_until,
             last_error = null, started_at = excluded.started_at, finished_at = null,
             updated_at = excluded.updated_at
         where wechat_follower_sync.status <> 'RUNNING'",
        app_id,
        tenant_id,
        holder,
        lease_until,
        now
    )?;
    Ok(n == 1)
}

/// Takes (or keeps) the sync for `holder` until `lease_until`: when it runs and nobody else holds
/// a live lease on it.
pub async fn claim_sync(
    c: &mut Conn,
    app_id: &str,
    holder: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> store::Result<Option<SyncRow>> {
    let n = store::execute!(
        c,
        "update wechat_follower_sync set holder = $2, lease_until = $4, updated_at = $3
         where app_id = $1 and status = 'RUNNING'
           and (holder = $2 or lease_until is null or lease_until <= $3)",
        app_id,
        holder,
        now,
        lease_until
    )?;
    if n == 0 {
        return Ok(None);
    }
    find_sync(c, app_id).await
}

/// Running syncs nobody holds a live lease on.
pub async fn list_resumable(c: &mut Conn, now: DateTime<Utc>) -> store::Result<Vec<String>> {
    let rows: Vec<(String,)> = store::fetch_all!(
        c,
        (String,),
        "select app_id from wechat_follower_sync
         where status = 'RUNNING' and (lease_until is null or lease_until <= $1)
         order by updated_at",
        now
    )?;
    Ok(rows.into_iter().map(|(a,)| a).collect())
}

/// A page is stored: the cursor moves on and the counts grow, if `holder` still holds the sync.
pub async fn advance_sync(
    c: &mut Conn,
    app_id: &str,
    holder: &str,
    page: &PageDone<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> store::Result<bool> {
    let n = store::execute!(
        c,
        "update wechat_follower_sync set next_openid = $3, total = $4, listed = listed + $5,
             stored = stored + $6, last_error = null, lease_until = $8, updated_at = $7
         where app_id = $1 and holder = $2 and status = 'RUNNING'",
        app_id,
        holder,
        page.next_openid,
        page.total,
        page.listed,
        page.stored,
        now,
        lease_until
    )?;
    Ok(n == 1)
}

/// What one page added.
#[derive(Debug, Clone, Copy)]
pub struct PageDone<'a> {
    pub next_openid: &'a str,
    pub total: i32,
    pub listed: i32,
    pub stored: i32,
}

/// The last page was stored: the sync is done, if `holder` still holds it.
pub async fn finish_sync(
    c: &mut Conn,
    app_id: &str,
    holder: &str,
    total: i32,
    now: DateTime<Utc>,
) -> store::Result<bool> {
    let n = store::execute!(
        c,
        "update wechat_follower_sync set status = 'DONE', total = $3, holder = null,
             lease_until = null, last_error = null, finished_at = $4, updated_at = $4
         where app_id = $1 and holder = $2 and status = 'RUNNING'",
        app_id,
        holder,
        total,
        now
    )?;
    Ok(n == 1)
}

/// A page could not be read: the cursor stays, nobody takes the sync before `retry_at`, or it
/// ends `FAILED` when `give_up`.
pub async fn fail_sync(
    c: &mut Conn,
    app_id: &str,
    holder: &str,
    error: &str,
    give_up: bool,
    now: DateTime<Utc>,
    retry_at: DateTime<Utc>,
) -> store::Result<bool> {
    let n = if give_up {
        store::execute!(
            c,
            "update wechat_follower_sync set status = 'FAILED', last_error = $3, holder = null,
                 lease_until = null, finished_at = $4, updated_at = $4
             where app_id = $1 and holder = $2 and status = 'RUNNING'",
            app_id,
            holder,
            error,
            now
        )?
    } else {
        store::execute!(
            c,
            "update wechat_follower_sync set last_error = $3, holder = null, lease_until = $5,
                 updated_at = $4
             where app_id = $1 and holder = $2 and status = 'RUNNING'",
            app_id,
            holder,
            error,
            now,
            retry_at
        )?
    };
    Ok(n == 1)
}
