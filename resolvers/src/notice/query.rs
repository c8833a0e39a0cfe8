use async_graphql::{Context, Object, SimpleObject};

use super::{Notice, db};
use crate::{
    Error, Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct NoticeQuery;

#[derive(SimpleObject)]
pub struct NoticePage {
    pub items: Vec<Notice>,
    pub unread: i64,
}

#[Object]
impl NoticeQuery {
    /// The viewer's notices, unread first, then newest first.
    async fn notices(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        #[graphql(default = 0)] offset: i32,
    ) -> Result<NoticePage> {
        let v = viewer(ctx)?;
        if !(1..=100).contains(&first) || offset < 0 {
            return Err(Error::invalid(
                "first",
                "first between 1 and 100, offset 0 or more",
            ));
        }
        let mut c = deps(ctx)?.db.conn().await?;
        let branch = db::current_branch(&mut c, v.user_id).await?;
        let rows = db::list_for_user(
            &mut c,
            v.tenant_id,
            v.user_id,
            branch,
            i64::from(first),
            i64::from(offset),
        )
        .await?;
        let unread = db::unread_count(&mut c, v.tenant_id, v.user_id, branch).await?;
        Ok(NoticePage {
            items: rows
                .into_iter()
                .map(|r| Notice {
                    row: r.notice,
                    read_at: r.read_at,
                })
                .collect(),
            unread,
        })
    }
}
