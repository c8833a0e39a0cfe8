//! Follow-ups as clients read them, and the queries that list them.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use super::{
    audit_object::branch,
    follow_up::{FollowUpOutcome, today},
    follow_up_db::{self, FollowUpRow},
};
use crate::{
    Error, Result, Role, pii,
    registry::{
        Branch,
        input::{parse_id, parse_opt_id},
        query::{decode_cursor, encode_cursor, page_size},
    },
    viewer::{deps, viewer},
};

/// A prospect's follow-up.
pub struct FollowUp(pub FollowUpRow);

#[Object]
impl FollowUp {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Branch> {
        branch(ctx, self.0.branch_id).await
    }
    async fn prospect_name(&self) -> &str {
        &self.0.prospect_name
    }
    /// In full for its author and operators; masked (`139****1234`) for other staff: a
    /// prospect is the author's lead.
    async fn prospect_phone(&self, ctx: &Context<'_>) -> Result<String> {
        let v = viewer(ctx)?;
        let full = v.role == Role::Admin || v.user_id == self.0.author_id;
        Ok(if full {
            self.0.prospect_phone.clone()
        } else {
            pii::mask_phone(&self.0.prospect_phone)
        })
    }
    async fn notes(&self) -> &str {
        &self.0.notes
    }
    async fn outcome(&self) -> Option<FollowUpOutcome> {
        FollowUpOutcome::parse(&self.0.outcome)
    }
    /// When to call again (Asia/Shanghai); null once closed.
    async fn next_date(&self) -> Option<NaiveDate> {
        self.0.next_date
    }
    /// Whether it is due today or overdue (Asia/Shanghai).
    async fn due(&self) -> bool {
        self.0.next_date.is_some_and(|d| d <= today(Utc::now()))
    }
    async fn author_id(&self) -> ID {
        ID(self.0.author_id.to_string())
    }
    async fn author_name(&self) -> &str {
        &self.0.author_name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(SimpleObject)]
pub struct FollowUpPage {
    pub items: Vec<FollowUp>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Default)]
pub struct FollowUpQuery;

#[Object]
impl FollowUpQuery {
    /// Follow-ups, newest first: staff see their branch's, operators the company's (of one
    /// branch when given).
    async fn follow_ups(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<FollowUpPage> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let after = decode_cursor(after.as_deref())?
            .map(|s| {
                s.parse()
                    .map_err(|_| Error::invalid("after", "not a cursor from this list"))
            })
            .transpose()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let mut rows = follow_up_db::list(&mut c, v.tenant_id, branch, after, limit + 1).await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = more
            .then(|| rows.last().map(|r| encode_cursor(&r.id.to_string())))
            .flatten();
        Ok(FollowUpPage {
            items: rows.into_iter().map(FollowUp).collect(),
            next_cursor,
        })
    }

    /// Follow-ups to make today (Asia/Shanghai) or overdue, the oldest date first: staff their
    /// branch's, operators the company's (of one branch when given). Closed ones never appear.
    async fn follow_ups_due_today(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<FollowUp>> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(
            follow_up_db::due(&mut c, v.tenant_id, branch, today(Utc::now()), limit)
                .await?
                .into_iter()
                .map(FollowUp)
                .collect(),
        )
    }

    /// One follow-up; another branch's (for staff) or company's is `NOT_FOUND`.
    async fn follow_up(&self, ctx: &Context<'_>, id: ID) -> Result<FollowUp> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        let row = follow_up_db::get(&mut c, v.tenant_id, id).await?;
        if scope.is_some_and(|own| own != row.branch_id) {
            return Err(Error::NotFound("follow-up"));
        }
        Ok(FollowUp(row))
    }
}
