//! A query turned into what the databases match: one clause per query word (or per synonym term
//! the query contains), each clause the OR of its alternatives, each alternative the AND of its
//! words.

use minigate_store::Backend;

use super::{synonyms::Thesaurus, tokens};

/// Clauses a query may have; words past them are ignored (a query is at most 100 characters).
const MAX_CLAUSES: usize = 12;
/// Alternatives a clause may have.
const MAX_ALTERNATIVES: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub clauses: Vec<Clause>,
    /// What a record with only some of the words may match (the fallback): every alternative of
    /// every clause; the words of two or more characters inside a term of several words (a
    /// single character such as 不 or 上 alone would match nearly everything); and each query
    /// word's own synonyms when a longer term took it (电瓶 of 电瓶没电 brings 蓄电池).
    pub any: Vec<Vec<String>>,
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
            add(&mut alternatives, words[i..i + n].to_vec());
            for alt in synonyms {
                add(&mut alternatives, alt.clone());
            }
            // A word jieba made up may have been cut otherwise in a report (whose tokens have
            // its characters, see `tokens::search_tokens`): each such alternative also stands
            // as the AND of its characters, leaving out the very common ones (一 alone matches
            // nearly everything and costs the index a long list to read).
            for k in 0..alternatives.len() {
                if alternatives[k].iter().any(|w| tokens::is_made_up(w)) {
                    let chars = alternatives[k]
                        .iter()
                        .flat_map(|w| {
                            if tokens::is_made_up(w) {
                                w.chars()
                                    .filter(|c| tokens::is_telling_char(*c))
                                    .map(String::from)
                                    .collect()
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
        let mut any: Vec<Vec<String>> = Vec::new();
        for c in &clauses {
            for alt in &c.alternatives {
                add(&mut any, alt.clone());
            }
        }
        for c in &clauses {
            for alt in c.alternatives.iter().filter(|a| a.len() > 1) {
                for w in alt.iter().filter(|w| w.chars().count() > 1) {
                    add(&mut any, vec![w.clone()]);
                }
            }
            if let [first, ..] = c.alternatives.as_slice()
                && first.len() > 1
            {
                for w in first {
                    if let Some((1, synonyms)) = thesaurus.lookup(std::slice::from_ref(w)) {
                        for s in synonyms {
                            add(&mut any, s.clone());
                        }
                    }
                }
            }
        }
        any.truncate(MAX_ALTERNATIVES * 2);
        Plan { clauses, any }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether the fallback finds more than the clauses.
    pub(crate) fn has_fallback(&self) -> bool {
        match self.clauses.as_slice() {
            [only] => self.any.len() > only.alternatives.len(),
            _ => true,
        }
    }

    /// Every alternative a record may have matched, for highlighting.
    pub(crate) fn alternatives(&self) -> impl Iterator<Item = &Vec<String>> {
        self.clauses
            .iter()
            .flat_map(|c| c.alternatives.iter())
            .chain(&self.any)
    }

    /// The query in one backend's syntax.
    pub(crate) fn render(&self, backend: Backend) -> Rendered {
        let s = match backend {
            Backend::Postgres => &PG,
            Backend::Sqlite => &FTS,
        };
        let alt = |words: &Vec<String>| {
            let w: Vec<String> = words.iter().map(|w| (s.quote)(w)).collect();
            if w.len() == 1 {
                w.join("")
            } else {
                format!("({})", w.join(s.and))
            }
        };
        let all = self
            .clauses
            .iter()
            .map(|c| {
                let a: Vec<String> = c.alternatives.iter().map(alt).collect();
                format!("({})", a.join(s.or))
            })
            .collect::<Vec<_>>()
            .join(s.and);
        // The query's own words, each as it was typed: the first alternative of every clause.
        let exact = self
            .clauses
            .iter()
            .filter_map(|c| c.alternatives.first())
            .map(alt)
            .collect::<Vec<_>>()
            .join(s.and);
        let any = self.any.iter().map(alt).collect::<Vec<_>>().join(s.or);
        Rendered { all, exact, any }
    }
}

/// A plan as one backend's query text (`to_tsquery` on PostgreSQL, FTS5 `match` on SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// Every clause.
    pub all: String,
    /// Every word as the query wrote it, no synonym: such records come first.
    pub exact: String,
    /// The fallback: any alternative.
    pub any: String,
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
        let pg = p.render(Backend::Postgres);
        assert_eq!(pg.all, "('追尾' | ('撞' & '车尾')) & ('深圳')");
        assert_eq!(pg.exact, "'追尾' & '深圳'");
        assert_eq!(pg.any, "'追尾' | ('撞' & '车尾') | '深圳' | '车尾'");
        let fts = p.render(Backend::Sqlite);
        assert_eq!(
            fts.all,
            "(\"追尾\" OR (\"撞\" AND \"车尾\")) AND (\"深圳\")"
        );
        assert_eq!(fts.exact, "\"追尾\" AND \"深圳\"");
        assert!(p.has_fallback());
    }

    #[test]
    fn a_term_of_several_words_in_the_query_is_one_clause() {
        let p = Plan::new("撞车尾", &thesaurus("追尾 撞车尾"));
        assert_eq!(p.clauses.len(), 1);
        assert!(p.clauses[0].alternatives.contains(&vec!["追尾".to_owned()]));
        // A report with only 车尾 is a fallback match; 撞 alone is not (one common character).
        assert!(p.has_fallback());
        assert!(p.any.contains(&vec!["车尾".to_owned()]));
        assert!(!p.any.contains(&vec!["撞".to_owned()]));
        assert!(!Plan::new("追尾", &thesaurus("追尾 撞车")).has_fallback());
    }

    #[test]
    fn the_fallback_has_the_synonyms_of_each_word_a_longer_term_took() {
        let p = Plan::new("电瓶没电", &thesaurus("电瓶没电 亏电\n电瓶 蓄电池"));
        assert_eq!(p.clauses.len(), 1);
        assert!(
            !p.clauses[0]
                .alternatives
                .contains(&vec!["蓄电池".to_owned()])
        );
        assert!(p.any.contains(&vec!["蓄电池".to_owned()]));
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
