//! The part of a body shown with a hit: a window of about 80 characters around the first match,
//! as plain text and as HTML with the matched words in `<em>` (for the mini-program's
//! `rich-text`).

use std::collections::HashSet;

use super::{plan::Plan, tokens};

/// Characters shown.
pub(crate) const WINDOW: usize = 80;
/// Characters shown before the first match, when the body is longer than the window.
const LEAD: usize = 20;
const ELLIPSIS: char = '…';

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snippet {
    pub text: String,
    pub html: String,
}

/// The window of `body` around its first match of `plan`, or its beginning if there is none
/// (the match was in the title). Marked are the words of each alternative the record has every
/// word of: a synonym 有声音 (有 + 声音) marks nothing in a report with 有 but no 声音.
pub(crate) fn snippet(title: &str, body: &str, plan: &Plan) -> Snippet {
    let tokens = tokens::search_tokens(body);
    let title_tokens = tokens::search_tokens(title);
    let has: HashSet<&str> = tokens
        .iter()
        .chain(&title_tokens)
        .map(|t| t.word.as_str())
        .collect();
    let words: HashSet<&str> = plan
        .alternatives()
        .filter(|alt| alt.iter().all(|w| has.contains(w.as_str())))
        .flatten()
        .map(String::as_str)
        .collect();
    window(body, &tokens, &words)
}

fn window(body: &str, tokens: &[tokens::Token], words: &HashSet<&str>) -> Snippet {
    let chars: Vec<char> = body.chars().collect();
    let mut spans: Vec<(usize, usize)> = tokens
        .iter()
        .filter(|t| words.contains(t.word.as_str()))
        .map(|t| (t.start, t.end))
        .collect();
    spans.sort_unstable();
    let spans = merge(spans);
    let first = spans.first().map_or(0, |s| s.0);
    let mut start = first.saturating_sub(LEAD);
    let end = (start + WINDOW).min(chars.len());
    start = start.min(end.saturating_sub(WINDOW));
    // Never cut a match in half at the window's start.
    if let Some(&(s, _)) = spans.iter().find(|(s, e)| *s < start && *e > start) {
        start = s;
    }

    let mut text = String::new();
    let mut html = String::new();
    if start > 0 {
        text.push(ELLIPSIS);
        html.push(ELLIPSIS);
    }
    let mut open = false;
    let mut last_space = false;
    for (k, &c) in chars.iter().enumerate().take(end).skip(start) {
        let in_match = spans.iter().any(|(s, e)| *s <= k && k < *e);
        if open && !in_match {
            html.push_str("</em>");
            open = false;
        }
        // Line breaks and runs of spaces read as one space in a one-line snippet.
        if c.is_whitespace() {
            if !last_space {
                text.push(' ');
                html.push(' ');
            }
            last_space = true;
            continue;
        }
        last_space = false;
        if in_match && !open {
            html.push_str("<em>");
            open = true;
        }
        text.push(c);
        escape(c, &mut html);
    }
    if open {
        html.push_str("</em>");
    }
    if end < chars.len() {
        text.push(ELLIPSIS);
        html.push(ELLIPSIS);
    }
    Snippet {
        text: text.trim().to_owned(),
        html: html.trim().to_owned(),
    }
}

fn merge(spans: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn escape(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(body: &str, words: &[&str]) -> Snippet {
        let words: HashSet<&str> = words.iter().copied().collect();
        window(body, &tokens::search_tokens(body), &words)
    }

    #[test]
    fn only_alternatives_the_record_has_whole_are_marked() {
        let groups = crate::search::synonyms::parse("异响 有声音");
        let thesaurus = crate::search::synonyms::Thesaurus::new(groups.iter().map(Vec::as_slice));
        let plan = Plan::new("异响", &thesaurus);
        let s = super::snippet("保养", "刹车有声音", &plan);
        assert_eq!(s.html, "刹车有<em>声音</em>");
        let s = super::snippet("保养", "声音", &Plan::new("追尾 声音", &thesaurus));
        assert_eq!(s.html, "<em>声音</em>");
        let s = super::snippet("保养", "车窗有异响", &plan);
        assert_eq!(s.html, "车窗有<em>异响</em>");
    }

    #[test]
    fn matches_are_wrapped_and_the_rest_is_escaped() {
        let s = snippet("早上<b>在深南大道</b>被追尾，对方全责", &["追尾", "全责"]);
        assert_eq!(s.text, "早上<b>在深南大道</b>被追尾，对方全责");
        assert_eq!(
            s.html,
            "早上&lt;b&gt;在深南大道&lt;/b&gt;被<em>追尾</em>，对方<em>全责</em>"
        );
    }

    #[test]
    fn a_long_body_is_cut_to_a_window_around_the_first_match() {
        let body = format!("{}右后轮爆胎{}", "路".repeat(100), "跑".repeat(100));
        let s = snippet(&body, &["爆胎"]);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'));
        assert_eq!(s.text.chars().count(), WINDOW + 2);
        assert!(s.html.contains("<em>爆胎</em>"));
        assert_eq!(s.text.chars().skip(1).position(|c| c == '爆'), Some(LEAD));
    }

    #[test]
    fn without_a_match_in_the_body_the_beginning_is_shown() {
        let s = snippet(&"车".repeat(200), &["追尾"]);
        assert!(!s.text.starts_with('…') && s.text.ends_with('…'));
        assert!(!s.html.contains("<em>"));
    }

    #[test]
    fn overlapping_words_make_one_mark_and_lines_become_spaces() {
        let s = snippet(
            "发动机故障灯亮了\n\n请尽快处理",
            &["发动机", "发动", "故障灯"],
        );
        assert_eq!(s.html, "<em>发动机故障灯</em>亮了 请尽快处理");
        assert_eq!(s.text, "发动机故障灯亮了 请尽快处理");
    }
}
