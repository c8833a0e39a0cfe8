//! Search over what people write: accident descriptions, maintenance notes, follow-up notes and
//! notices (DESIGN.md §7).
//!
//! # Writing
//!
//! Each feature calls [`index`] in the transaction that writes its record (and [`remove`] when
//! it goes away). The text is segmented here, with jieba in search mode (`tokens`): one
//! dictionary per process with the fleet's own words added, full-width and upper-case letters
//! folded, punctuation and stop words dropped, plates kept whole (粤B·12345 is found as
//! 粤B12345, B12345 and 12345). The words go into `search_doc.tokens`, joined by spaces, so the
//! databases only split at spaces: PostgreSQL keeps a `tsvector` of them (`simple`
//! configuration, GIN index), SQLite an FTS5 index kept in step by triggers.
//!
//! # Searching
//!
//! The query is segmented the same way (precise mode: its words, not their parts). Each word is
//! a clause, OR'ed with its synonyms (`synonyms`: the built-in list in `synonyms.txt` and the
//! company's own groups); a synonym of several words is the AND of them, and a term of several
//! words in the query is one clause. Records with every clause come first (ranked by
//! `ts_rank_cd`, or FTS5's `bm25`); when they do not fill the candidates, records with any
//! alternative of any clause follow, ranked below them, so one colloquial word the records
//! never use does not leave the page empty. Visibility is part of the SQL, before the limit.
//!
//! # Bounded work
//!
//! Ranking every match of a common word (车辆 is in a third of all reports) means reading and
//! ranking hundreds of thousands of rows. The search instead ranks only the [`CANDIDATES`] most
//! recent matches of each kind (all clauses, then any): PostgreSQL walks
//! `(tenant_id, created_at desc)` newest first, testing each row against the query, and stops
//! there; for a rare word it reads the few matches through the GIN index and sorts them. Each
//! statement is planned with its own words (not as a kept prepared statement), so the planner
//! chooses between the two from the word statistics. The price: when more records match than
//! that, an older one that would rank higher is not found by this query (a more specific query
//! finds it), and pages end there. Measured on 1,000,000 reports: see `bench/RESULTS.md`.

mod db;
mod mutation;
mod object;
mod plan;
mod query;
mod snippet;
mod synonyms;
mod tokens;

use std::collections::{HashMap, HashSet};

use async_graphql::ID;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use minigate_store::{Conn, Db, Id};

pub use mutation::{SearchMutation, delete_group, save_group};
pub use object::{SearchHit, SearchResults, SearchSynonymGroup};
pub use query::{SearchQuery, list_groups};

use crate::{Error, Result, Role, Viewer};

/// What a searchable record is.
#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SearchKind {
    Accident,
    Maintenance,
    FollowUp,
    Notice,
}

impl SearchKind {
    pub const ALL: [SearchKind; 4] = [
        SearchKind::Accident,
        SearchKind::Maintenance,
        SearchKind::FollowUp,
        SearchKind::Notice,
    ];

    /// As stored in `search_doc.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Accident => "ACCIDENT",
            SearchKind::Maintenance => "MAINTENANCE",
            SearchKind::FollowUp => "FOLLOW_UP",
            SearchKind::Notice => "NOTICE",
        }
    }

    pub fn parse(s: &str) -> Option<SearchKind> {
        SearchKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A record as the index sees it.
pub struct Doc<'a> {
    /// The record's own id (accident, maintenance report, follow-up, notice).
    pub id: Id,
    pub tenant_id: Id,
    pub kind: SearchKind,
    /// `None`: visible to the whole tenant (a tenant-wide notice).
    pub branch_id: Option<Id>,
    /// The user who filed it (a driver for accidents and maintenance, the staff member for
    /// follow-ups); they always find it.
    pub owner_id: Option<Id>,
    /// A short label shown in results (粤B12345 事故).
    pub title: &'a str,
    /// The text to index, as written.
    pub body: &'a str,
    pub created_at: DateTime<Utc>,
}

/// Indexes `doc`, replacing what was indexed under its id before (an edited record). Call it in
/// the transaction that writes the record.
pub async fn index(tx: &mut Conn, doc: &Doc<'_>) -> Result<()> {
    write(tx, doc, None).await
}

/// Indexes a record addressed to named people (a notice to users): besides operators and its
/// owner, only `readers` (users of its company) find it, whatever its branch.
pub async fn index_for_readers(tx: &mut Conn, doc: &Doc<'_>, readers: &[Id]) -> Result<()> {
    write(tx, doc, Some(readers)).await
}

async fn write(tx: &mut Conn, doc: &Doc<'_>, readers: Option<&[Id]>) -> Result<()> {
    let tokens = index_tokens(doc.title, doc.body);
    if db::upsert_doc(tx, doc, &tokens, readers.is_some()).await? == 0 {
        return Err(Error::Internal(format!(
            "search: {} is indexed for another tenant",
            doc.id
        )));
    }
    db::set_readers(tx, doc.tenant_id, doc.id, readers.unwrap_or_default()).await
}

/// Removes a record from the index.
pub async fn remove(tx: &mut Conn, tenant_id: Id, id: Id) -> Result<()> {
    db::delete_doc(tx, tenant_id, id).await
}

/// The space-joined words a record with this title and body is indexed under (what `index`
/// stores in `search_doc.tokens`), for bulk loads that write the table directly.
pub fn index_tokens(title: &str, body: &str) -> String {
    tokens::index_text(title, body)
}

/// Matches of each kind (all clauses, any clause) ranked per search; see the module docs.
pub const CANDIDATES: i64 = 200;
/// Characters a query may have.
pub const MAX_QUERY_CHARS: usize = 100;
const DEFAULT_FIRST: i32 = 10;
const MAX_FIRST: i32 = 50;

/// A search as `search(query, kinds, first, after)` asks it.
#[derive(Debug, Clone, Copy)]
pub struct SearchArgs<'a> {
    pub query: &'a str,
    /// None or empty: every kind.
    pub kinds: Option<&'a [SearchKind]>,
    pub first: Option<i32>,
    pub after: Option<&'a str>,
}

/// Runs a search as `viewer`.
pub async fn find(db: &Db, viewer: &Viewer, args: &SearchArgs<'_>) -> Result<SearchResults> {
    find_with(db, viewer, args, Limits::default()).await
}

/// How much of the index one search reads (see the module docs); smaller in tests, to reach
/// every step with a few records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Matches of each kind (all clauses, any clause) ranked.
    pub candidates: i64,
    /// How far each step goes (PostgreSQL).
    pub steps: db::Steps,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            candidates: CANDIDATES,
            steps: db::Steps::default(),
        }
    }
}

pub(crate) async fn find_with(
    db: &Db,
    viewer: &Viewer,
    args: &SearchArgs<'_>,
    limits: Limits,
) -> Result<SearchResults> {
    let query = args.query.trim();
    if query.is_empty() {
        return Err(Error::invalid("query", "type something to search for"));
    }
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(
            "query",
            format!("at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let first = args.first.unwrap_or(DEFAULT_FIRST);
    if !(1..=MAX_FIRST).contains(&first) {
        return Err(Error::invalid("first", format!("1 to {MAX_FIRST}")));
    }
    let first = usize::try_from(first).map_err(|_| Error::invalid("first", "1 to 50"))?;
    let mut kinds: Vec<SearchKind> = args.kinds.unwrap_or_default().to_vec();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        kinds = SearchKind::ALL.to_vec();
    }
    let fingerprint = fingerprint(query, &kinds);
    let offset = match args.after {
        Some(a) => cursor_offset(a, fingerprint)?,
        None => 0,
    };

    // On PostgreSQL a read-only transaction, for the candidates' `set local`; SQLite's would
    // take the write turn.
    let mut c = match db {
        Db::Postgres(_) => db.begin().await?,
        Db::Sqlite(..) => db.conn().await?,
    };
    let thesaurus = synonyms::for_tenant(&mut c, viewer.tenant_id).await?;
    let plan = plan::Plan::new(query, &thesaurus);
    if plan.is_empty() {
        return Ok(SearchResults {
            hits: Vec::new(),
            end_cursor: None,
            has_next_page: false,
        });
    }
    let branch = match viewer.role {
        Role::Staff => viewer.branch_id,
        // A driver's branch follows their driver record, as their notice list does.
        Role::Driver => crate::notice::db::current_branch(&mut c, viewer.user_id).await?,
        Role::Admin | Role::Consumer => None,
    };
    let scope = db::Scope {
        tenant: viewer.tenant_id,
        user: viewer.user_id,
        branch,
        role: viewer.role.as_str(),
    };
    let q = plan.render(c.backend());
    let mut ranked: Vec<(u8, db::Candidate)> = db::candidates(
        &mut c,
        &scope,
        &q.all,
        &q.exact,
        &kinds,
        limits.candidates,
        &limits.steps,
    )
    .await?
    .into_iter()
    .map(|cand| (1, cand))
    .collect();
    if plan.has_fallback() && ranked.len() < usize::try_from(limits.candidates).unwrap_or(0) {
        let seen: HashSet<Id> = ranked.iter().map(|(_, cand)| cand.id).collect();
        ranked.extend(
            db::candidates(
                &mut c,
                &scope,
                &q.any,
                &q.exact,
                &kinds,
                limits.candidates,
                &limits.steps,
            )
            .await?
            .into_iter()
            .filter(|cand| !seen.contains(&cand.id))
            .map(|cand| (0, cand)),
        );
    }
    // Every clause before some; within them, the query's own words before synonyms only; then
    // the rank, then the newest.
    ranked.sort_by(|(ta, a), (tb, b)| {
        tb.cmp(ta)
            .then(b.exact.cmp(&a.exact))
            .then(b.rank.total_cmp(&a.rank))
            .then(b.created_at.cmp(&a.created_at))
            .then(b.id.cmp(&a.id))
    });
    let total = ranked.len();
    let page: Vec<(u8, db::Candidate)> = ranked.into_iter().skip(offset).take(first).collect();
    let mut rows: HashMap<Id, db::DocRow> = db::docs(
        &mut c,
        viewer.tenant_id,
        page.iter().map(|(_, p)| p.id).collect(),
    )
    .await?
    .into_iter()
    .map(|r| (r.id, r))
    .collect();
    let mut hits = Vec::with_capacity(page.len());
    for (tier, cand) in page {
        // Removed between the two statements: skipped.
        let Some(row) = rows.remove(&cand.id) else {
            continue;
        };
        let kind = SearchKind::parse(&row.kind)
            .ok_or_else(|| Error::Internal(format!("search_doc kind {}", row.kind)))?;
        let s = snippet::snippet(&row.title, &row.body, &plan);
        let r = cand.rank.max(0.0);
        hits.push(SearchHit {
            kind,
            id: ID(row.id.to_string()),
            title: row.title,
            snippet: s.text,
            highlighted_snippet: s.html,
            created_at: row.created_at,
            rank: f64::from(tier) + r / (1.0 + r),
        });
    }
    let end = offset + hits.len();
    Ok(SearchResults {
        end_cursor: (!hits.is_empty()).then(|| cursor(end, fingerprint)),
        has_next_page: end < total,
        hits,
    })
}

/// Ties a cursor to its search: a cursor of another query or other kinds is refused rather
/// than answered with an arbitrary page. FNV-1a, stable across processes and releases.
fn fingerprint(query: &str, kinds: &[SearchKind]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let normalized = tokens::normalize(query);
    let text = normalized
        .bytes()
        .chain([0])
        .chain(kinds.iter().flat_map(|k| k.as_str().bytes().chain([b','])));
    for b in text {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn cursor(offset: usize, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s1:{offset}:{fingerprint:016x}"))
}

fn cursor_offset(cursor: &str, fingerprint: u64) -> Result<usize> {
    let bad = || Error::invalid("after", "not a cursor of this search");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.split(':');
    let (Some("s1"), Some(offset), Some(fp), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let offset: usize = offset.parse().map_err(|_| bad())?;
    if u64::from_str_radix(fp, 16).map_err(|_| bad())? != fingerprint
        || offset > 2 * usize::try_from(CANDIDATES).map_err(|_| bad())?
    {
        return Err(bad());
    }
    Ok(offset)
}

#[cfg(test)]
mod recall_tests;
#[cfg(test)]
mod tests;
