use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::Result;

#[derive(sqlx::FromRow, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NoticeRow {
    pub id: Id,
    pub tenant_id: Id,
    pub audience: String,
    pub branch_id: Option<Id>,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct ListedNotice {
    #[sqlx(flatten)]
    pub notice: NoticeRow,
    pub read_at: Option<DateTime<Utc>>,
}

pub async fn insert_notice(c: &mut Conn, n: &NoticeRow, created_by: Id) -> Result<()> {
    store::execute!(
        c,
        "insert into notice (id, tenant_id, audience, branch_id, title, body, link, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        n.id,
        n.tenant_id,
        &n.audience,
        n.branch_id,
        &n.title,
        &n.body,
        &n.link,
        created_by,
        n.created_at
    )?;
    Ok(())
}

pub async fn insert_recipient(c: &mut Conn, notice: Id, user: Id) -> Result<()> {
    store::execute!(
        c,
        "insert into notice_recipient (notice_id, user_id) values ($1, $2) on conflict do nothing",
        notice,
        user
    )?;
    Ok(())
}

/// Users of `tenant` among `ids`.
pub async fn tenant_users(c: &mut Conn, tenant: Id, ids: Vec<Id>) -> Result<Vec<Id>> {
    let rows: Vec<(Id,)> = store::fetch_all!(
        c,
        (Id,),
        "select id from app_user where tenant_id = $1 and id = any($2)",
        tenant,
        store::List(ids)
    )?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The notices `user` may see, unread first, newest first.
pub async fn list_for_user(
    c: &mut Conn,
    tenant: Id,
    user: Id,
    branch: Option<Id>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ListedNotice>> {
    Ok(store::fetch_all!(
        c,
        ListedNotice,
        "select n.id, n.tenant_id, n.audience, n.branch_id, n.title, n.body, n.link, n.created_at, r.read_at
         from notice n left join notice_read r on r.notice_id = n.id and r.user_id = $2
         where n.tenant_id = $1 and (n.audience = 'tenant'
            or (n.audience = 'branch' and n.branch_id = $3)
            or (n.audience = 'users' and exists (select 1 from notice_recipient x where x.notice_id = n.id and x.user_id = $2)))
         order by (r.read_at is null) desc, n.created_at desc, n.id desc
         limit $4 offset $5",
        tenant,
        user,
        branch,
        limit,
        offset
    )?)
}

pub async fn unread_count(c: &mut Conn, tenant: Id, user: Id, branch: Option<Id>) -> Result<i64> {
    Ok(store::fetch_scalar!(
        c,
        i64,
        "select count(*) from notice n
         where n.tenant_id = $1 and (n.audience = 'tenant'
            or (n.audience = 'branch' and n.branch_id = $3)
            or (n.audience = 'users' and exists (select 1 from notice_recipient x where x.notice_id = n.id and x.user_id = $2)))
           and not exists (select 1 from notice_read r where r.notice_id = n.id and r.user_id = $2)",
        tenant,
        user,
        branch
    )?)
}

/// Whether `user` may see notice `id`.
pub async fn visible(
    c: &mut Conn,
    tenant: Id,
    user: Id,
    branch: Option<Id>,
    id: Id,
) -> Result<bool> {
    Ok(store::fetch_scalar!(
        c,
        i64,
        "select count(*) from notice n
         where n.id = $4 and n.tenant_id = $1 and (n.audience = 'tenant'
            or (n.audience = 'branch' and n.branch_id = $3)
            or (n.audience = 'users' and exists (select 1 from notice_recipient x where x.notice_id = n.id and x.user_id = $2)))",
        tenant,
        user,
        branch,
        id
    )? > 0)
}

pub async fn mark_read(c: &mut Conn, notice: Id, user: Id) -> Result<()> {
    store::execute!(
        c,
        "insert into notice_read (notice_id, user_id, read_at) values ($1, $2, $3) on conflict do nothing",
        notice,
        user,
        Utc::now()
    )?;
    Ok(())
}

/// The branch a user belongs to now: a driver's follows their driver record, others' their own.
pub async fn current_branch(c: &mut Conn, user: Id) -> Result<Option<Id>> {
    Ok(store::fetch_scalar_optional!(
        c,
        Option<Id>,
        "select coalesce(d.branch_id, u.branch_id) from app_user u left join driver d on d.id = u.driver_id where u.id = $1",
        user
    )?
    .flatten())
}
