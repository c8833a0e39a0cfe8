//! The search's SQL. Writes are shared by both backends; matching is not: PostgreSQL matches a
//! `tsvector` column against `to_tsquery('simple', …)` and ranks with `ts_rank_cd`, SQLite
//! matches its FTS5 table and ranks with `bm25` (DESIGN.md §9: full-text search is one of the
//! few places the backends differ).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Backend, Conn, Id, List, Raw};
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

impl Scope<'_> {
    /// What the viewer may see as `tsv` lexemes (see the migration), none for operators. The
    /// records addressed to them by name are not among these: [`PG_ADDRESSED`] finds those.
    fn lexemes(&self) -> Option<String> {
        let own = format!("'#o{}'", self.user);
        let branch = self.branch.map(|b| format!("'#b{b}'"));
        match self.role {
            "admin" => None,
            "staff" => Some(match branch {
                Some(b) => format!("{b} | '#all' | {own}"),
                None => format!("'#all' | {own}"),
            }),
            "driver" => Some(match branch {
                Some(b) => format!("{own} | '#kNOTICE' & ('#all' | {b})"),
                None => format!("{own} | '#kNOTICE' & '#all'"),
            }),
            _ => Some(format!("{own} | '#kNOTICE' & '#all'")),
        }
    }
}

#[derive(sqlx::FromRow, Debug, Clone)]
pub(crate) struct Candidate {
    pub id: Id,
    pub created_at: DateTime<Utc>,
    pub rank: f64,
    /// Has the query's own words (no synonym needed).
    pub exact: bool,
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

/// PostgreSQL, first step: the matches among the tenant's [`RECENT`] newest rows, newest first.
/// The inner limit bounds the rows read, whatever the words; the outer one stops the walk at
/// `cap` matches. Rows are ranked only once they are among those taken.
const PG_RECENT: &str = concat!(
    "select d.id, d.created_at, ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from (select * from search_doc where tenant_id = $1 order by created_at desc limit $9) d
     where d.tsv @@ to_tsquery('simple', $2) and d.kind = any($3) and ",
    visible!(),
    "
     order by d.created_at desc
     limit $7"
);

/// [`PG_RECENT`] for staff of a branch: the newest rows of what they may see, their branch's,
/// the company's without a branch, and the rest of what they filed, each through its own index
/// and merged newest first, so the rows read are rows they may see. (Records addressed to them
/// by name come from [`PG_ADDRESSED`].)
const PG_RECENT_STAFF: &str = "select d.id, d.created_at,
            ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from ((select * from search_doc where tenant_id = $1 and branch_id = $5
            order by created_at desc limit $9)
           union all
           (select * from search_doc where tenant_id = $1 and branch_id is null and not restricted
            order by created_at desc limit $9)
           union all
           (select * from search_doc where owner_id = $4 and tenant_id = $1
              and not coalesce(branch_id = $5, false) and (branch_id is not null or restricted)
            order by created_at desc limit $9)) d
     where d.tsv @@ to_tsquery('simple', $2) and d.kind = any($3) and $6 = 'staff'
     order by d.created_at desc
     limit $7";

/// PostgreSQL, second step: up to `$9` matches anywhere, in no order, through the GIN index
/// only (the caller forbids other plans): with fewer than that, these are all of them. Without
/// an order, PostgreSQL stops reading rows at the limit.
const PG_PROBE: &str = concat!(
    "select d.id, d.created_at, ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from search_doc d
     where d.tenant_id = $1 and d.tsv @@ to_tsquery('simple', $2)
       and d.kind = any($3) and ",
    visible!(),
    "
     limit $9"
);

/// [`PG_PROBE`], also asking the index for what the viewer may see and the kinds asked for:
/// `$9` holds them as lexemes of `tsv` (see the migration), so only those rows are read.
const PG_PROBE_FILTERED: &str = concat!(
    "select d.id, d.created_at, ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from search_doc d
     where d.tenant_id = $1 and d.tsv @@ (to_tsquery('simple', $2) && $9::text::tsquery)
       and d.kind = any($3) and ",
    visible!(),
    "
     limit $10"
);

/// PostgreSQL, last step: the newest matches of one month (`$9`: its lexeme, with what the
/// viewer may see and the kinds). The month's lexeme is a required entry of the GIN search, so
/// the index reads about that month's rows and PostgreSQL only that month's matches.
const PG_MONTH: &str = concat!(
    "select d.id, d.created_at, ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from search_doc d
     where d.tenant_id = $1 and d.tsv @@ (to_tsquery('simple', $2) && $9::text::tsquery)
       and d.kind = any($3) and ",
    visible!(),
    "
     order by d.created_at desc
     limit $7"
);

/// PostgreSQL: the restricted records addressed to the viewer by name (no lexeme says who may
/// read them; a person has few).
const PG_ADDRESSED: &str = "select d.id, d.created_at,
            ts_rank_cd(d.tsv, to_tsquery('simple', $2), 1)::float8 as rank,
            d.tsv @@ to_tsquery('simple', $8) as exact
     from search_doc d
     where d.tenant_id = $1 and d.restricted
       and d.id in (select r.doc_id from search_doc_reader r where r.user_id = $4)
       and d.tsv @@ to_tsquery('simple', $2) and d.kind = any($3)
     order by d.created_at desc
     limit $7";

/// SQLite (the embedded default, small): every match, ranked with bm25, the newest `cap`.
/// bm25 is lower for better matches; negated so that higher is better on both backends.
const SQLITE_CANDIDATES: &str = concat!(
    "select d.id, d.created_at, -bm25(search_doc_fts) as rank,
            d.seq in (select rowid from search_doc_fts where search_doc_fts match $8) as exact
     from search_doc_fts join search_doc d on d.seq = search_doc_fts.rowid
     where search_doc_fts match $2 and d.tenant_id = $1
       and d.kind in (select value from json_each($3)) and ",
    visible!(),
    "
     order by d.created_at desc
     limit $7"
);

/// Rows the first step reads at most: about 8 ms on the benchmark's machine.
pub(crate) const RECENT: i64 = 8_000;
/// Matches the second step reads at most before months are searched one by one.
pub(crate) const PROBE: i64 = 1_000;
/// Months searched one by one at most, newest first.
pub(crate) const MONTHS: i32 = 12;

/// Up to `cap` of the most recent matches of `query`, each marked whether it also matches
/// `exact` (`to_tsquery` text on PostgreSQL, FTS5 text on SQLite: the caller renders the plan
/// for [`Conn::backend`]).
///
/// On PostgreSQL the work is bounded whatever the words, in three steps (see the module docs
/// for the measurements):
/// 1. the tenant's newest `limits.recent` rows are read and tested, newest first, until `cap`
///    match: this is where a common word ends;
/// 2. otherwise the GIN index is asked for every match, in no order, reading at most
///    `limits.probe`: a rare word (or a rare combination of common ones) ends here, with all
///    its matches;
/// 3. otherwise (a word common enough overall, rare lately) months are searched one at a time,
///    newest first, at most [`MONTHS`] of them, each reading only its own matches.
///
/// Steps 2 and 3 must not walk the table or an index in order (that reads rows without
/// matches), so `c` should be a transaction: there they run with sequential and plain index
/// scans off (`set local`), which leaves PostgreSQL the bitmap scans of the GIN index.
pub(crate) async fn candidates(
    c: &mut Conn,
    scope: &Scope<'_>,
    query: &str,
    exact: &str,
    kinds: &[SearchKind],
    cap: i64,
    limits: &Steps,
) -> Result<Vec<Candidate>> {
    let kinds = List(kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    if c.backend() == Backend::Sqlite {
        return sqlite(c, scope, query, exact, kinds, cap).await;
    }
    let staff = scope.role == "staff" && scope.branch.is_some();
    let recent = if staff { PG_RECENT_STAFF } else { PG_RECENT };
    let mut out = pg(
        c,
        recent,
        scope,
        query,
        exact,
        &kinds,
        cap,
        Extra::Limit(limits.recent),
    )
    .await?;
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    if out.len() >= cap {
        return Ok(out);
    }
    let full = i64::try_from(cap).unwrap_or(i64::MAX);
    let mut seen: HashSet<Id> = out.iter().map(|c| c.id).collect();
    let visible = scope.lexemes();
    if visible.is_some() {
        let found = pg(
            c,
            PG_ADDRESSED,
            scope,
            query,
            exact,
            &kinds,
            full,
            Extra::Limit(0),
        )
        .await?;
        add(&mut out, &mut seen, found);
    }
    let kinds_lexemes = (kinds.0.len() < SearchKind::ALL.len()).then(|| {
        kinds
            .0
            .iter()
            .map(|k| format!("'#k{k}'"))
            .collect::<Vec<_>>()
            .join(" | ")
    });
    let filter = |month: Option<String>| {
        [month, visible.clone(), kinds_lexemes.clone()]
            .into_iter()
            .flatten()
            .map(|f| format!("({f})"))
            .collect::<Vec<_>>()
            .join(" & ")
    };
    // Read while index scans are on (with them off, `max` and `min` would read the table).
    let span = store::fetch_optional!(
        c,
        (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        "select max(created_at), min(created_at) from search_doc where tenant_id = $1",
        scope.tenant
    )?
    .and_then(|(n, o)| n.zip(o));
    // How common the words are, from the first step: its matches over the time its rows
    // span, spread over the tenant's whole span. When that many are expected, the probe would
    // only read its limit and give up: months straight away.
    let many = match (span, out.len()) {
        (Some((newest, oldest)), found) if found > 0 => {
            // Where the first step stopped reading (for staff, in their branch's rows).
            let boundary = if staff {
                store::fetch_scalar_optional!(
                    c,
                    DateTime<Utc>,
                    "select created_at from search_doc where tenant_id = $1 and branch_id = $2
                     order by created_at desc offset $3 limit 1",
                    scope.tenant,
                    scope.branch,
                    limits.recent - 1
                )?
            } else {
                store::fetch_scalar_optional!(
                    c,
                    DateTime<Utc>,
                    "select created_at from search_doc where tenant_id = $1
                     order by created_at desc offset $2 limit 1",
                    scope.tenant,
                    limits.recent - 1
                )?
            };
            boundary.is_some_and(|b| {
                let read = (newest - b).num_seconds().max(1);
                let all = (newest - oldest).num_seconds().max(1);
                i64::try_from(found).unwrap_or(i64::MAX).saturating_mul(all) / read > limits.probe
            })
        }
        _ => false,
    };
    let bitmaps_only = c.in_transaction();
    if bitmaps_only {
        plans(c, "off").await?;
    }
    let result = async {
        let probe = filter(None);
        let mut found = if many {
            Vec::new()
        } else if probe.is_empty() {
            pg(
                c,
                PG_PROBE,
                scope,
                query,
                exact,
                &kinds,
                full,
                Extra::Limit(limits.probe),
            )
            .await?
        } else {
            let extra = Extra::Filter(&probe, Some(limits.probe));
            pg(
                c,
                PG_PROBE_FILTERED,
                scope,
                query,
                exact,
                &kinds,
                full,
                extra,
            )
            .await?
        };
        if !many && usize::try_from(limits.probe).is_ok_and(|p| found.len() < p) {
            found.retain(|cand| !seen.contains(&cand.id));
            found.sort_by_key(|b| std::cmp::Reverse(b.created_at));
            found.truncate(cap.saturating_sub(out.len()));
            add(&mut out, &mut seen, found);
            return Ok(());
        }
        let Some((newest, oldest)) = span else {
            return Ok(());
        };
        let (mut month, oldest) = (month_of(newest), month_of(oldest));
        let mut searched = 0;
        while month >= oldest && searched < limits.months && out.len() < cap {
            let lexeme = format!("'#m{}'", month / 12 * 100 + month % 12 + 1);
            // The full cap: the month's newest may be among the rows already found.
            let extra = Extra::Filter(&filter(Some(lexeme)).clone(), None);
            let mut found = pg(c, PG_MONTH, scope, query, exact, &kinds, full, extra).await?;
            found.retain(|cand| !seen.contains(&cand.id));
            found.truncate(cap - out.len());
            add(&mut out, &mut seen, found);
            month -= 1;
            searched += 1;
        }
        Ok::<(), crate::Error>(())
    }
    .await;
    if bitmaps_only {
        plans(c, "on").await?;
    }
    result?;
    Ok(out)
}

/// How far each step of [`candidates`] goes on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub recent: i64,
    pub probe: i64,
    pub months: i32,
}

impl Default for Steps {
    fn default() -> Self {
        Steps {
            recent: RECENT,
            probe: PROBE,
            months: MONTHS,
        }
    }
}

/// Sequential and plain index scans on or off for the rest of the transaction.
async fn plans(c: &mut Conn, on: &str) -> Result<()> {
    let Raw::Pg(conn) = c.raw() else {
        return Ok(());
    };
    sqlx::query(
        "select set_config('enable_seqscan', $1, true), set_config('enable_indexscan', $1, true)",
    )
    .persistent(false)
    .bind(on)
    .execute(conn)
    .await
    .map_err(store::Error::from)?;
    Ok(())
}

async fn sqlite(
    c: &mut Conn,
    scope: &Scope<'_>,
    query: &str,
    exact: &str,
    kinds: List<&'static str>,
    cap: i64,
) -> Result<Vec<Candidate>> {
    let Raw::Lite(conn) = c.raw() else {
        return Err(crate::Error::Internal("search: not SQLite".into()));
    };
    Ok(sqlx::query_as::<_, Candidate>(SQLITE_CANDIDATES)
        .bind(scope.tenant)
        .bind(query)
        .bind(kinds)
        .bind(scope.user)
        .bind(scope.branch)
        .bind(scope.role)
        .bind(cap)
        .bind(exact)
        .fetch_all(conn)
        .await
        .map_err(store::Error::from)?)
}

fn add(out: &mut Vec<Candidate>, seen: &mut HashSet<Id>, found: Vec<Candidate>) {
    for cand in found {
        if seen.insert(cand.id) {
            out.push(cand);
        }
    }
}

/// The parameters after the shared ones.
#[derive(Clone, Copy)]
enum Extra<'a> {
    /// `$9`: how many rows the statement reads at most (unused by the addressed records').
    Limit(i64),
    /// `$9`: lexemes of `tsv` to ask the index for, with what the viewer may see; `$10`: a
    /// limit, for the statements that have one.
    Filter(&'a str, Option<i64>),
}

#[expect(clippy::too_many_arguments, reason = "one statement's parameters")]
async fn pg(
    c: &mut Conn,
    sql: &'static str,
    scope: &Scope<'_>,
    query: &str,
    exact: &str,
    kinds: &List<&'static str>,
    cap: i64,
    extra: Extra<'_>,
) -> Result<Vec<Candidate>> {
    let Raw::Pg(conn) = c.raw() else {
        return Err(crate::Error::Internal("search: not PostgreSQL".into()));
    };
    // Not a prepared statement kept per connection: an unnamed one is planned with the query's
    // own words, so PostgreSQL sees how common they are. A generic plan, which a kept statement
    // switches to after five runs, cannot tell a common word from a rare one.
    let q = sqlx::query_as::<_, Candidate>(sql)
        .persistent(false)
        .bind(scope.tenant)
        .bind(query)
        .bind(kinds.clone())
        .bind(scope.user)
        .bind(scope.branch)
        .bind(scope.role)
        .bind(cap)
        .bind(exact);
    let q = match extra {
        Extra::Limit(n) => q.bind(n),
        Extra::Filter(filter, None) => q.bind(filter),
        Extra::Filter(filter, Some(n)) => q.bind(filter).bind(n),
    };
    Ok(q.fetch_all(conn).await.map_err(store::Error::from)?)
}

/// Months since year 0, UTC, as the migration's `'#m…'` lexemes count them.
fn month_of(t: DateTime<Utc>) -> i32 {
    use chrono::Datelike;
    t.year() * 12 + i32::try_from(t.month0()).unwrap_or(0)
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
