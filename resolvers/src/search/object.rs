use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

use super::SearchKind;

/// One record found by `search`.
#[derive(SimpleObject, Debug, Clone)]
pub struct SearchHit {
    pub kind: SearchKind,
    /// The record's own id (accident, maintenance report, follow-up, notice).
    pub id: ID,
    pub title: String,
    /// About 80 characters of the text around its first match, `…` where it was cut.
    pub snippet: String,
    /// The same text HTML-escaped, with the matched words in `<em>…</em>` (for `rich-text`).
    pub highlighted_snippet: String,
    pub created_at: DateTime<Utc>,
    /// Higher is better, and hits come in that order: 1 and over when the record has every
    /// word of the query (or a synonym of it), under 1 when it has only some.
    pub rank: f64,
}

/// A page of hits.
#[derive(SimpleObject, Debug, Clone)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Pass as `after` for the next page; none when this page is empty.
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

/// A group of words the search treats as one: searching any finds records that use any other.
#[derive(SimpleObject, Debug, Clone)]
pub struct SearchSynonymGroup {
    /// None for a built-in group, which cannot be edited (add a group of the company's own).
    pub id: Option<ID>,
    pub built_in: bool,
    pub terms: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}
