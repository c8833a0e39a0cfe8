use async_graphql::{Context, Object};
use chrono::{DateTime, Utc};

use super::db::{self, SyncRow};
use super::sync::{self, SyncSettings};
use crate::{
    Deps, Error, Result,
    tenant::db as tenant_db,
    viewer::{deps, viewer},
};

/// An official account's follower sync: WeChat's list of its followers read page by page, each
/// follower stored with their unionid (which maps a person to the openid template messages go
/// to).
pub struct FollowerSync(SyncRow);

#[Object]
impl FollowerSync {
    async fn app_id(&self) -> &str {
        &self.0.app_id
    }
    /// `RUNNING`, `DONE` or `FAILED`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Followers WeChat says the account has.
    async fn total(&self) -> i32 {
        self.0.total
    }
    /// Openids read from the list so far.
    async fn listed(&self) -> i32 {
        self.0.listed
    }
    /// Followers stored so far.
    async fn stored(&self) -> i32 {
        self.0.stored
    }
    /// Why the last page failed (`failure N of M: CODE: …`); cleared by the next page read.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// The operator's official account `app_id`.
async fn own_account(d: &Deps, ctx: &Context<'_>, app_id: &str) -> Result<crate::Viewer> {
    let v = viewer(ctx)?;
    v.require_admin()?;
    let mut c = d.db.conn().await?;
    match tenant_db::find_app(&mut c, app_id, tenant_db::OFFICIAL_ACCOUNT).await? {
        Some(app) if app.tenant_id == v.tenant_id => Ok(v.clone()),
        _ => Err(Error::NotFound("official account")),
    }
}

#[derive(Default)]
pub struct FollowerSyncQuery;

#[Object]
impl FollowerSyncQuery {
    /// The latest follower sync of one of the company's official accounts (operators).
    async fn follower_sync(
        &self,
        ctx: &Context<'_>,
        app_id: String,
    ) -> Result<Option<FollowerSync>> {
        let d = deps(ctx)?;
        own_account(d, ctx, &app_id).await?;
        let mut c = d.db.conn().await?;
        Ok(db::find_sync(&mut c, &app_id).await?.map(FollowerSync))
    }
}

#[derive(Default)]
pub struct FollowerSyncMutation;

#[Object]
impl FollowerSyncMutation {
    /// Reads the official account's followers from WeChat again (operators). It runs in the
    /// background; `followerSync` shows how far it got. A sync already running is returned as it
    /// is.
    async fn start_follower_sync(&self, ctx: &Context<'_>, app_id: String) -> Result<FollowerSync> {
        let d = deps(ctx)?;
        let v = own_account(d, ctx, &app_id).await?;
        let settings = SyncSettings::default();
        let holder = format!("start-{}", uuid::Uuid::new_v4().simple());
        let (row, started) =
            sync::start(d, v.tenant_id, &app_id, &holder, &settings, Utc::now()).await?;
        if started {
            let d = d.clone();
            tokio::spawn(async move {
                match sync::run(&d, &app_id, &holder, &settings, &|_| {}).await {
                    Ok(step) => tracing::info!(app_id, ?step, "follower sync ran"),
                    Err(e) => {
                        tracing::warn!(app_id, code = e.code(), error = %e,
                            "follower sync stopped; it resumes once its lease ends")
                    }
                }
            });
        }
        Ok(FollowerSync(row))
    }
}
