//! Synonym groups: the built-in list (`synonyms.txt`, data, not code) and each company's own
//! groups, turned into a thesaurus keyed by the words of each term.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use chrono::{DateTime, Utc};
use minigate_store::{Conn, Id};

use super::{db, tokens};
use crate::Result;

const BUILT_IN_TEXT: &str = include_str!("synonyms.txt");

/// The built-in groups, as written in `synonyms.txt`.
pub(crate) static BUILT_IN: LazyLock<Vec<Vec<String>>> = LazyLock::new(|| parse(BUILT_IN_TEXT));

static BUILT_IN_ONLY: LazyLock<Arc<Thesaurus>> =
    LazyLock::new(|| Arc::new(Thesaurus::new(BUILT_IN.iter().map(Vec::as_slice))));

/// Groups of the synonym file format: one group per line, terms separated by spaces or commas,
/// `#` starts a comment line; a line of fewer than two terms is no group.
pub(crate) fn parse(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split(|c: char| c.is_whitespace() || matches!(c, ',' | '，' | '、'))
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|g| g.len() >= 2)
        .collect()
}

/// Every term as the words the query segmentation gives it, mapped to the terms it may be
/// replaced with (itself included), each again as words: a term of several words matches a
/// report that has all of them.
#[derive(Debug, Default)]
pub(crate) struct Thesaurus {
    by_words: HashMap<Vec<String>, Vec<Vec<String>>>,
    longest: usize,
}

impl Thesaurus {
    pub(crate) fn new<'a>(groups: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut t = Thesaurus::default();
        for group in groups {
            let mut terms: Vec<Vec<String>> = group
                .iter()
                .map(|term| tokens::words(term))
                .filter(|w| !w.is_empty())
                .collect();
            terms.sort();
            terms.dedup();
            if terms.len() < 2 {
                continue;
            }
            for term in &terms {
                t.longest = t.longest.max(term.len());
                let alternatives = t.by_words.entry(term.clone()).or_default();
                for other in &terms {
                    if !alternatives.contains(other) {
                        alternatives.push(other.clone());
                    }
                }
            }
        }
        t
    }

    /// The longest term the query's `words` start with: how many words it covers, and what it
    /// may be replaced with.
    pub(crate) fn lookup(&self, words: &[String]) -> Option<(usize, &[Vec<String>])> {
        (1..=self.longest.min(words.len()))
            .rev()
            .find_map(|n| self.by_words.get(&words[..n]).map(|a| (n, a.as_slice())))
    }
}

/// What a company's groups looked like when its thesaurus was built: their number and the
/// latest change. Deleting a group changes the number, adding or editing one the latest change,
/// so every replica notices any edit at its next search.
type Version = (i64, Option<DateTime<Utc>>);

/// Each company's thesaurus, built once per version of its groups (segmenting every term of
/// every group is the expensive part; checking the version is one indexed query).
static BY_TENANT: LazyLock<Mutex<Memo>> = LazyLock::new(Default::default);

type Memo = HashMap<Id, (Version, Arc<Thesaurus>)>;

/// Companies remembered at most; past it the memo starts again (a company is rebuilt at its next
/// search).
const MEMO_LIMIT: usize = 10_000;

/// The thesaurus for `tenant`: the built-in groups and the company's own.
pub(crate) async fn for_tenant(c: &mut Conn, tenant: Id) -> Result<Arc<Thesaurus>> {
    let version = db::synonym_version(c, tenant).await?;
    if version.0 == 0 {
        return Ok(Arc::clone(&BUILT_IN_ONLY));
    }
    if let Some(hit) = BY_TENANT.lock().ok().and_then(|m| {
        m.get(&tenant)
            .filter(|(v, _)| *v == version)
            .map(|(_, t)| Arc::clone(t))
    }) {
        return Ok(hit);
    }
    let own = db::list_synonym_groups(c, tenant).await?;
    let thesaurus = Arc::new(Thesaurus::new(
        BUILT_IN
            .iter()
            .map(Vec::as_slice)
            .chain(own.iter().map(|g| g.terms.0.as_slice())),
    ));
    if let Ok(mut m) = BY_TENANT.lock() {
        if m.len() >= MEMO_LIMIT {
            m.clear();
        }
        m.insert(tenant, (version, Arc::clone(&thesaurus)));
    }
    Ok(thesaurus)
}

/// Forgets a company's thesaurus after its operators changed a group (this replica at once;
/// others at their next version check).
pub(crate) fn forget(tenant: Id) {
    if let Ok(mut m) = BY_TENANT.lock() {
        m.remove(&tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_list_has_enough_groups_and_every_term_has_words() {
        assert!(BUILT_IN.len() >= 30, "{} groups", BUILT_IN.len());
        for group in BUILT_IN.iter() {
            for term in group {
                assert!(!tokens::words(term).is_empty(), "{term} has no words");
                assert!(term.chars().count() <= 20, "{term}");
            }
        }
    }

    #[test]
    fn terms_are_split_at_spaces_and_commas_and_comments_are_skipped() {
        let g = parse("# comment\n追尾, 被追尾，撞车尾、后车撞\n\n单独一个\n 年检 年审 ");
        assert_eq!(
            g,
            vec![
                vec!["追尾", "被追尾", "撞车尾", "后车撞"],
                vec!["年检", "年审"]
            ]
        );
    }

    #[test]
    fn the_longest_term_wins_and_a_term_of_several_words_is_kept_as_words() {
        let groups = parse("追尾 后车撞\n撞 碰");
        let t = Thesaurus::new(groups.iter().map(Vec::as_slice));
        let words = tokens::words("后车撞");
        let (n, alternatives) = t.lookup(&words).unwrap();
        assert_eq!(n, words.len());
        assert!(alternatives.contains(&vec!["追尾".to_owned()]));
        assert!(alternatives.contains(&words));
        let (n, alternatives) = t.lookup(&["撞".to_owned(), "墙".to_owned()]).unwrap();
        assert_eq!(n, 1);
        assert!(alternatives.contains(&vec!["碰".to_owned()]));
        assert!(t.lookup(&["墙".to_owned()]).is_none());
    }
}
