use async_graphql::{Context, ID, InputObject, Object};
use chrono::Utc;
use minigate_push::events::{self, NewEvent, topic};
use minigate_store::Id;

use super::{Notice, NoticeAudience, PUBLISHED, db};
use crate::{
    Error, Result, audit, delivery, idempotency,
    registry::db as registry_db,
    search, validate,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct NoticeMutation;

#[derive(InputObject)]
pub struct NoticeInput {
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub audience: NoticeAudience,
    /// With audience BRANCH.
    pub branch_id: Option<ID>,
    /// With audience USERS (at most 1,000).
    #[graphql(default)]
    pub user_ids: Vec<ID>,
}

fn check_link(link: Option<&str>) -> Result<Option<String>> {
    let Some(l) = link.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let ok = l.len() <= 500
        && (l.starts_with('/') || l.starts_with("https://"))
        && !l.chars().any(char::is_whitespace);
    if ok {
        Ok(Some(l.to_owned()))
    } else {
        Err(Error::invalid(
            "link",
            "a mini-program page (/pages/…) or an https:// address",
        ))
    }
}

#[Object]
impl NoticeMutation {
    /// Publishes a notice (operators). It reaches live subscribers at once and is listed for
    /// everyone in its audience.
    async fn publish_notice(
        &self,
        ctx: &Context<'_>,
        input: NoticeInput,
        idempotency_key: Option<String>,
    ) -> Result<Notice> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let d = deps(ctx)?;
        let title = validate::name("title", &input.title, 100)?;
        let body = validate::name("body", &input.body, 2000)?;
        let link = check_link(input.link.as_deref())?;
        let branch = input
            .branch_id
            .as_ref()
            .map(|b| {
                b.parse::<Id>()
                    .map_err(|_| Error::invalid("branchId", "not an id"))
            })
            .transpose()?;
        let users = input
            .user_ids
            .iter()
            .map(|u| {
                u.parse::<Id>()
                    .map_err(|_| Error::invalid("userIds", "not an id"))
            })
            .collect::<Result<Vec<Id>>>()?;
        match input.audience {
            NoticeAudience::Branch if branch.is_none() => {
                return Err(Error::invalid("branchId", "required for a branch notice"));
            }
            NoticeAudience::Users if users.is_empty() || users.len() > 1000 => {
                return Err(Error::invalid("userIds", "1 to 1,000 users"));
            }
            _ => {}
        }
        // A target that does not fit the audience is a mistake, not something to drop quietly.
        if branch.is_some() && input.audience != NoticeAudience::Branch {
            return Err(Error::invalid("branchId", "only for a BRANCH notice"));
        }
        if !users.is_empty() && input.audience != NoticeAudience::Users {
            return Err(Error::invalid("userIds", "only for a USERS notice"));
        }
        let id = idempotency::once(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "publishNotice",
            async |tx| {
                let row = db::NoticeRow {
                    id: Id::new(),
                    tenant_id: v.tenant_id,
                    audience: input.audience.as_str().to_owned(),
                    branch_id: if input.audience == NoticeAudience::Branch {
                        branch
                    } else {
                        None
                    },
                    title,
                    body,
                    link,
                    created_at: Utc::now(),
                };
                let topics = match input.audience {
                    NoticeAudience::Tenant => vec![topic::tenant(v.tenant_id)],
                    NoticeAudience::Branch => {
                        let b = branch.ok_or_else(|| Error::invalid("branchId", "required"))?;
                        registry_db::get_branch(tx, v.tenant_id, b)
                            .await
                            .map_err(|_| Error::invalid("branchId", "no such branch"))?;
                        vec![topic::branch(b)]
                    }
                    NoticeAudience::Users => {
                        let found = db::tenant_users(tx, v.tenant_id, users.clone()).await?;
                        if found.len() != {
                            let mut u = users.clone();
                            u.sort();
                            u.dedup();
                            u.len()
                        } {
                            return Err(Error::invalid(
                                "userIds",
                                "some users are not in this company",
                            ));
                        }
                        found.iter().map(|u| topic::user(*u)).collect()
                    }
                };
                db::insert_notice(tx, &row, v.user_id).await?;
                if input.audience == NoticeAudience::Users {
                    for u in &users {
                        db::insert_recipient(tx, row.id, *u).await?;
                    }
                }
                let doc = search::Doc {
                    id: row.id,
                    tenant_id: row.tenant_id,
                    kind: search::SearchKind::Notice,
                    branch_id: row.branch_id,
                    owner_id: Some(v.user_id),
                    title: &row.title,
                    body: &row.body,
                    created_at: row.created_at,
                };
                // A notice to named users is found only by them (and operators).
                if input.audience == NoticeAudience::Users {
                    search::index_for_readers(tx, &doc, &users).await?;
                } else {
                    search::index(tx, &doc).await?;
                }
                // Outside the app too: one delivery per person, with the notice.
                delivery::sources::notice_published(tx, &row).await?;
                let payload =
                    serde_json::to_value(&row).map_err(|e| Error::Internal(e.to_string()))?;
                for t in topics {
                    events::enqueue(
                        tx,
                        &d.waker,
                        NewEvent {
                            tenant_id: v.tenant_id,
                            topic: t,
                            kind: PUBLISHED,
                            payload: payload.clone(),
                        },
                    )
                    .await?;
                }
                audit::record(
                    tx,
                    Some(v.tenant_id),
                    Some(v.user_id),
                    "notice.publish",
                    "notice",
                    &row.id.to_string(),
                    serde_json::json!({ "audience": row.audience }),
                )
                .await?;
                Ok(row.id)
            },
        )
        .await?;
        let mut c = d.db.conn().await?;
        let row: db::NoticeRow = minigate_store::fetch_one!(
            &mut c,
            db::NoticeRow,
            "select * from notice where tenant_id = $1 and id = $2",
            v.tenant_id,
            id
        )?;
        Ok(Notice { row, read_at: None })
    }

    /// Marks a notice read for the viewer; reading it twice is fine.
    async fn mark_notice_read(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let v = viewer(ctx)?;
        let id: Id = id.parse().map_err(|_| Error::invalid("id", "not an id"))?;
        let mut c = deps(ctx)?.db.conn().await?;
        let branch = db::current_branch(&mut c, v.user_id).await?;
        if !db::visible(&mut c, v.tenant_id, v.user_id, branch, id).await? {
            return Err(Error::NotFound("notice"));
        }
        db::mark_read(&mut c, id, v.user_id).await?;
        Ok(true)
    }
}
