//! A query turned into what the databases match: one clause per query word (or per synonym term
//! the query contains), each clause the OR of its alternatives, each alternative the AND of its
//! words.

use std::collections::HashSet;

use super::{synonyms::Thesaurus, tokens};

/// Clauses a query may have; words past them are ignored (a query is at most 100 characters).
const MAX_CLAUSES: usize = 12;
/// Alternatives a clause may have.
const MAX_ALTERNATIVES: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    /// Each an AND of words; the first is what the query said.
    pub alternatives: Vec<Vec<String>>,
}

impl Plan {
    pub(crate) fn new(query: &str, thesaurus: &Thesaurus) -> Plan {
        let words = tokens::words(query);
        let mut clauses: Vec<Clause> = Vec::new();
        let mut i = 0;
        while i < words.len() && clauses.len() < MAX_CLAUSES {
            let (n, synonyms) = thesaurus.lookup(&words[i..]).unwrap_or((1, &[]));
            let mut alternatives: Vec<Vec<String>> = Vec::new();
            for alt in std::iter::once(&words[i..i + n]).chain(synonyms.iter().map(Vec::as_slice))
            {
                add(&mut alternatives, alt.to_vec());
                // A word jieba made up in the query may have been cut otherwise in a report
                // (the report's tokens have its characters; see `tokens::search_tokens`).
                if alt.iter().any(|w| tokens::is_made_up(w)) {
                    let chars = alt
                        .iter()
                        .flat_map(|w| {
                            if tokens::is_made_up(w) {
                                w.chars().map(String::from).collect()
                            } else {
                                vec![w.clone()]
                            }
                        })
                        .collect();
                    add(&mut alternatives, chars);
                }
            }
            alternatives.truncate(MAX_ALTERNATIVES);
            let clause = Clause { alternatives };
            if !clauses.contains(&clause) {
                clauses.push(clause);
            }
            i += n;
        }
        Plan { clauses }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether matching any clause finds more than matching all of them.
    pub(crate) fn has_fallback(&self) -> bool {
        self.clauses.len() > 1
    }

    /// Every word a match may have used, for highlighting.
    pub(crate) fn words(&self) -> HashSet<String> {
        self.clauses
            .iter()
            .flat_map(|c| c.alternatives.iter().flatten().cloned())
            .collect()
    }

    /// PostgreSQL `to_tsquery` text: every clause.
    pub(crate) fn tsquery_all(&self) -> String {
        self.render(&PG, true)
    }

    /// PostgreSQL `to_tsquery` text: any alternative of any clause.
    pub(crate) fn tsquery_any(&self) -> String {
        self.render(&PG, false)
    }

    /// SQLite FTS5 `match` text: every clause.
    pub(crate) fn fts_all(&self) -> String {
        self.render(&FTS, true)
    }

    /// SQLite FTS5 `match` text: any alternative of any clause.
    pub(crate) fn fts_any(&self) -> String {
        self.render(&FTS, false)
    }

    fn render(&self, s: &Syntax, all: bool) -> String {
        let alt = |words: &Vec<String>| {
            let w: Vec<String> = words.iter().map(|w| (s.quote)(w)).collect();
            if w.len() == 1 {
                w.join("")
            } else {
                format!("({})", w.join(s.and))
            }
        };
        if all {
            self.clauses
                .iter()
                .map(|c| {
                    let a: Vec<String> = c.alternatives.iter().map(alt).collect();
                    format!("({})", a.join(s.or))
                })
                .collect::<Vec<_>>()
                .join(s.and)
        } else {
            let mut seen = HashSet::new();
            self.clauses
                .iter()
                .flat_map(|c| c.alternatives.iter())
                .filter(|a| seen.insert(*a))
                .map(alt)
                .collect::<Vec<_>>()
                .join(s.or)
        }
    }
}

fn add(alternatives: &mut Vec<Vec<String>>, alt: Vec<String>) {
    if !alt.is_empty() && !alternatives.contains(&alt) {
        alternatives.push(alt);
    }
}

struct Syntax {
    quote: fn(&str) -> String,
    and: &'static str,
    or: &'static str,
}

/// Operands quoted so `to_tsquery` takes each as one lexeme whatever it contains.
const PG: Syntax = Syntax {
    quote: |w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")),
    and: " & ",
    or: " | ",
};

/// FTS5 strings, so no word is read as an operator (AND, OR, NOT, NEAR) or a column filter.
const FTS: Syntax = Syntax {
    quote: |w| format!("\"{}\"", w.replace('"', "\"\"")),
    and: " AND ",
    or: " OR ",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::synonyms;

    fn thesaurus(text: &str) -> Thesaurus {
        let groups = synonyms::parse(text);
        Thesaurus::new(groups.iter().map(Vec::as_slice))
    }

    #[test]
    fn each_word_is_a_clause_and_synonyms_are_its_alternatives() {
        let p = Plan::new("追尾 深圳", &thesaurus("追尾 撞车尾"));
        assert_eq!(
            p.tsquery_all(),
            "('追尾' | ('撞' & '车尾')) & ('深圳')"
        );
        assert_eq!(p.tsquery_any(), "'追尾' | ('撞' & '车尾') | '深圳'");
        assert_eq!(
            p.fts_all(),
            "(\"追尾\" OR (\"撞\" AND \"车尾\")) AND (\"深圳\")"
        );
        assert!(p.has_fallback());
        assert!(p.words().contains("车尾"));
    }

    #[test]
    fn a_term_of_several_words_in_the_query_is_one_clause() {
        let p = Plan::new("撞车尾", &thesaurus("追尾 撞车尾"));
        assert_eq!(p.clauses.len(), 1);
        assert!(p.clauses[0].alternatives.contains(&vec!["追尾".to_owned()]));
        assert!(!p.has_fallback());
    }

    #[test]
    fn stop_words_and_punctuation_make_no_clause_and_repeats_collapse() {
        assert!(Plan::new("的了，。", &Thesaurus::default()).is_empty());
        assert_eq!(
            Plan::new("追尾 追尾", &Thesaurus::default()).clauses.len(),
            1
        );
    }

    #[test]
    fn quotes_cannot_escape_their_operand() {
        assert_eq!((PG.quote)("a'b\\"), "'a''b\\\\'");
        assert_eq!((FTS.quote)("a\"b"), "\"a\"\"b\"");
    }
}
