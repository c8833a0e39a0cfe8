//! The search's SQL. Writes are shared by both backends; matching is not: PostgreSQL matches a
//! `tsvector` column against `to_tsquery('simple', …)` and ranks with `ts_rank_cd`, SQLite
//! matches its FTS5 table and ranks with `bm25` (DESIGN.md §9: full-text search is one of the
//! few places the backends differ).

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id, List, Raw};
use sqlx::types::Json;

use super::{Doc, SearchKind};
use crate::Result;

pub(crate) async fn upsert_doc(
    c: &mut Conn,
    doc: &Doc<'_>,
    tokens: &str,
    restricted: bool,
) -> Result<u64> {
    Ok(store::execute!(
        c,
        "insert into search_doc (id, tenant_id, kind, branch_id, owner_id, restricted, title, body,
             tokens, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (id) do update set kind = excluded.kind, branch_id = excluded.branch_id,
             owner_id = excluded.owner_id, restricted = excluded.restricted,
             title = excluded.title, body = excluded.body, tokens = excluded.tokens,
             created_at = excluded.created_at, updated_at = excluded.updated_at
         where search_doc.tenant_id = excluded.tenant_id",
        doc.id,
        doc.tenant_id,
        doc.kind.as_str(),
        doc.branch_id,
        doc.owner_id,
        restricted,
        doc.title,
        doc.body,
        tokens,
        doc.created_at,
        Utc::now()
    )?)
}

/// Replaces the people a restricted record is addressed to; only users of its company count.
pub(crate) async fn set_readers(c: &mut Conn, tenant: Id, doc: Id, readers: &[Id]) -> Result<()> {
    store::execute!(c, "delete from search_doc_reader where doc_id = $1", doc)?;
    if !readers.is_empty() {
        store::execute!(
            c,
            "insert into search_doc_reader (doc_id, user_id)
             select distinct $1, u.id from app_user u where u.tenant_id = $2 and u.id = any($3)",
            doc,
            tenant,
            List(readers.to_vec())
        )?;
    }
    Ok(())
}

pub(crate) async fn delete_doc(c: &mut Conn, tenant: Id, id: Id) -> Result<()> {
    // Readers go with their record (`on delete cascade`).
    store::execute!(
        c,
        "delete from search_doc where tenant_id = $1 and id = $2",
        tenant,
        id
    )?;
    Ok(())
}

/// Who is searching, as the visibility filter reads it.
pub(crate) struct Scope<'a> {
    pub tenant: Id,
    pub user: Id,
    /// Staff: their branch; drivers: their driver record's branch.
    pub branch: Option<Id>,
    /// `admin`, `staff`, `driver` or `consumer`.
    pub role: &'a str,
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub(crate) struct Candidate {
    pub id: Id,
    pub created_at: DateTime<Utc>,
    pub rank: f64,
}

/// Who may see a row, written once for every role (the role is a parameter, folded into a
/// constant when the statement is planned). Operators see the whole company; everyone sees what
/// they filed and what is addressed to them by name; staff see their branch's records and the
/// company-wide ones; drivers their branch's and the company-wide notices; consumers the
/// company-wide notices.
macro_rules! visible {
    () => {
        "($6 = 'admin'
           or d.owner_id = $4
           or (d.restricted and exists (select 1 from search_doc_reader r
                                        where r.doc_id = d.id and r.user_id = $4))
           or (not d.restricted and d.branch_id is null and ($6 = 'staff' or d.kind = 'NOTICE'))
           or (d.branch_id = $5 and ($6 = 'staff' or ($6 = 'driver' and d.kind = 'NOTICE'))))"
    };
}

/// The most recent `cap` matches, newest first, each with its rank. The inner query only
/// filters, so rows are ranked only once they are among the `cap` taken.
const PG_CANDIDATES: &str = concat!(
    "select c.id, c.created_at, ts_rank_cd(c.tsv, to_tsquery('simple', $2), 1)::float8 as rank
     from (select d.id, d.created_at, d.tsv from search_doc d
           where d.tenant_id = $1 and d.tsv @@ to_tsquery('simple', $2)
             and d.kind = any($3) and ",
    visible!(),
    "
           order by d.created_at desc
           limit $7) c"
);

/// bm25 is lower for better matches; negated so that higher is better on both backends.
const SQLITE_CANDIDATES: &str = concat!(
    "select d.id, d.created_at, -bm25(search_doc_fts) as rank
     from search_doc_fts join search_doc d on d.seq = search_doc_fts.rowid
     where search_doc_fts match $2 and d.tenant_id = $1
       and d.kind in (select value from json_each($3)) and ",
    visible!(),
    "
     order by d.created_at desc
     limit $7"
);

/// Matches of `query` (`to_tsquery` text on PostgreSQL, FTS5 text on SQLite: the caller renders
/// the plan for [`Conn::backend`]).
pub(crate) async fn candidates(
    c: &mut Conn,
    scope: &Scope<'_>,
    query: &str,
    kinds: &[SearchKind],
    cap: i64,
) -> Result<Vec<Candidate>> {
    let kinds = List(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    let rows = match c.raw() {
        // Not a prepared statement kept per connection: an unnamed one is planned with the
        // query's own words, so PostgreSQL sees how common they are (a common word is best
        // found by walking the newest rows, a rare one through the GIN index). A generic plan,
        // which a kept statement switches to after five runs, cannot tell them apart.
        Raw::Pg(conn) => {
            sqlx::query_as::<_, Candidate>(PG_CANDIDATES)
                .persistent(false)
                .bind(scope.tenant)
                .bind(query)
                .bind(kinds)
                .bind(scope.user)
                .bind(scope.branch)
                .bind(scope.role)
                .bind(cap)
                .fetch_all(conn)
                .await
        }
        Raw::Lite(conn) => {
            sqlx::query_as::<_, Candidate>(SQLITE_CANDIDATES)
                .bind(scope.tenant)
                .bind(query)
                .bind(kinds)
                .bind(scope.user)
                .bind(scope.branch)
                .bind(scope.role)
                .bind(cap)
                .fetch_all(conn)
                .await
        }
    };
    Ok(rows.map_err(store::Error::from)?)
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub(crate) struct DocRow {
    pub id: Id,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn docs(c: &mut Conn, tenant: Id, ids: Vec<Id>) -> Result<Vec<DocRow>> {
    Ok(store::fetch_all!(
        c,
        DocRow,
        "select id, kind, title, body, created_at from search_doc
         where tenant_id = $1 and id = any($2)",
        tenant,
        List(ids)
    )?)
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub(crate) struct SynonymGroupRow {
    pub id: Id,
    pub terms: Json<Vec<String>>,
    pub updated_by: Option<Id>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) async fn synonym_version(
    c: &mut Conn,
    tenant: Id,
) -> Result<(i64, Option<DateTime<Utc>>)> {
    Ok(store::fetch_one!(
        c,
        (i64, Option<DateTime<Utc>>),
        "select count(*), max(updated_at) from search_synonym_group where tenant_id = $1",
        tenant
    )?)
}

pub(crate) async fn list_synonym_groups(c: &mut Conn, tenant: Id) -> Result<Vec<SynonymGroupRow>> {
    Ok(store::fetch_all!(
        c,
        SynonymGroupRow,
        "select id, terms, updated_by, updated_at from search_synonym_group
         where tenant_id = $1 order by created_at, id",
        tenant
    )?)
}

pub(crate) async fn find_synonym_group(
    c: &mut Conn,
    tenant: Id,
    id: Id,
) -> Result<Option<SynonymGroupRow>> {
    Ok(store::fetch_optional!(
        c,
        SynonymGroupRow,
        "select id, terms, updated_by, updated_at from search_synonym_group
         where tenant_id = $1 and id = $2",
        tenant,
        id
    )?)
}

pub(crate) async fn insert_synonym_group(
    c: &mut Conn,
    tenant: Id,
    g: &SynonymGroupRow,
) -> Result<()> {
    store::execute!(
        c,
        "insert into search_synonym_group (id, tenant_id, terms, updated_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $5)",
        g.id,
        tenant,
        &g.terms,
        g.updated_by,
        g.updated_at
    )?;
    Ok(())
}

/// Whether the group was there to change.
pub(crate) async fn update_synonym_group(
    c: &mut Conn,
    tenant: Id,
    g: &SynonymGroupRow,
) -> Result<bool> {
    Ok(store::execute!(
        c,
        "update search_synonym_group set terms = $3, updated_by = $4, updated_at = $5
         where tenant_id = $1 and id = $2",
        tenant,
        g.id,
        &g.terms,
        g.updated_by,
        g.updated_at
    )? > 0)
}

/// Whether the group was there to delete.
pub(crate) async fn delete_synonym_group(c: &mut Conn, tenant: Id, id: Id) -> Result<bool> {
    Ok(store::execute!(
        c,
        "delete from search_synonym_group where tenant_id = $1 and id = $2",
        tenant,
        id
    )? > 0)
}
