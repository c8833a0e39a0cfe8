use async_graphql::{Context, ID, Subscription};
use futures_util::Stream;
use minigate_push::events::topic;

use super::{NoticeDelivery, PUBLISHED, USER_CHANGED, db};
use crate::{
    Error, Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct NoticeSubscription;

#[Subscription]
impl NoticeSubscription {
    /// Notices for the viewer as they are published. After a reconnect pass the last `eventId`
    /// seen as `after` to receive what was missed first (`RESUME_WINDOW_EXPIRED`: refetch the
    /// list and subscribe without `after`).
    async fn notice_published(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = async_graphql::Result<NoticeDelivery>> + use<>> {
        let v = viewer(ctx)?.clone();
        let d = deps(ctx)?.clone();
        let after = crate::validate::event_id(after.as_ref())?;
        let mut c = d.db.conn().await?;
        let branch = db::current_branch(&mut c, v.user_id).await?;
        drop(c);
        let mut topics = vec![topic::tenant(v.tenant_id), topic::user(v.user_id)];
        if let Some(b) = branch {
            topics.push(topic::branch(b));
        }
        let sub = d.bus.subscribe(topics, after).await?;
        let user = v.user_id;
        Ok(futures_util::stream::unfold(
            (sub, d, branch),
            move |(mut sub, d, mut branch)| async move {
                loop {
                    let event = match sub.next().await? {
                        Ok(e) => e,
                        Err(e) => return Some((Err(Error::from(e).into()), (sub, d, branch))),
                    };
                    if event.kind == USER_CHANGED {
                        // Re-read what this user may see (a driver moved to another branch).
                        // Boxed so the rarely taken database read does not size every idle
                        // subscription's future.
                        let fresh = Box::pin(async {
                            let mut c = d.db.conn().await.ok()?;
                            db::current_branch(&mut c, user).await.ok()
                        })
                        .await;
                        if let Some(b) = fresh {
                            branch = b;
                        }
                        continue;
                    }
                    if event.kind != PUBLISHED {
                        continue;
                    }
                    let Ok(notice) =
                        <db::NoticeRow as serde::Deserialize>::deserialize(&event.payload.0)
                    else {
                        tracing::error!(seq = event.seq, "unreadable notice event skipped");
                        continue;
                    };
                    // Authorised again for each event, not only when subscribing.
                    if notice.audience == "branch" && notice.branch_id != branch {
                        continue;
                    }
                    let delivery = NoticeDelivery {
                        event_id: event.seq,
                        notice,
                    };
                    return Some((Ok(delivery), (sub, d, branch)));
                }
            },
        ))
    }
}
