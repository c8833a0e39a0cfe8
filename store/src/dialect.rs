//! The few places where PostgreSQL and SQLite spell SQL differently, translated once.
//!
//! Business SQL is written in PostgreSQL's spelling. Before it runs on SQLite, [`to_sqlite`]
//! rewrites, outside string literals and comments:
//!
//! | PostgreSQL | SQLite | why |
//! |---|---|---|
//! | `col = any($1)` | `col in (select value from json_each($1))` | SQLite has no arrays; [`crate::List`] binds a JSON array there |
//! | `for update`, `for update skip locked` | *(removed)* | SQLite has no row locks; write transactions start with `BEGIN IMMEDIATE` and so already hold the database's single write lock |
//! | `now()` | `strftime('%Y-%m-%dT%H:%M:%f+00:00','now')` | the text form sqlx writes for a UTC timestamp, so comparisons with bound timestamps hold |
//! | `ilike` | `like` | SQLite's `like` already ignores ASCII case |
//!
//! Each distinct statement is translated once and cached for the life of the process.

use std::{
    collections::HashMap,
    sync::{OnceLock, RwLock},
};

/// The SQLite spelling of a PostgreSQL-spelled statement, cached per statement.
pub fn to_sqlite(sql: &'static str) -> &'static str {
    static CACHE: OnceLock<RwLock<HashMap<(usize, usize), &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (sql.as_ptr().addr(), sql.len());
    if let Some(hit) = cache.read().ok().and_then(|m| m.get(&key).copied()) {
        return hit;
    }
    let translated: &'static str = match translate(sql) {
        Some(owned) => Box::leak(owned.into_boxed_str()),
        None => sql,
    };
    if let Ok(mut m) = cache.write() {
        m.insert(key, translated);
    }
    translated
}

/// Translate a statement built at run time (not cached).
pub fn to_sqlite_owned(sql: &str) -> String {
    translate(sql).unwrap_or_else(|| sql.to_owned())
}

const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00','now')";

/// `None` when nothing needed changing.
fn translate(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 32);
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Quoted literals and identifiers are copied untouched.
        if c == b'\'' || c == b'"' {
            let end = b[i + 1..]
                .iter()
                .position(|&x| x == c)
                .map_or(b.len(), |p| i + p + 2);
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let end = sql[i..].find('\n').map_or(b.len(), |p| i + p);
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        if c == b'='
            && let Some((len, inner)) = any_call(&sql[i + 1..])
        {
            if !out.ends_with(|c: char| c.is_ascii_whitespace()) {
                out.push(' ');
            }
            out.push_str("in (select value from json_each(");
            out.push_str(inner.trim());
            out.push_str("))");
            i += 1 + len;
            changed = true;
            continue;
        }
        let word_start = i == 0 || !is_word(b[i - 1]);
        if word_start && is_word(c) {
            let rest = &sql[i..];
            if let Some(len) = words(rest, &["for", "update", "skip", "locked"])
                .or_else(|| words(rest, &["for", "update"]))
            {
                i += len;
                changed = true;
                continue;
            }
            if let Some(len) =
                words(rest, &["now"]).and_then(|n| empty_parens(&rest[n..]).map(|p| n + p))
            {
                out.push_str(SQLITE_NOW);
                i += len;
                changed = true;
                continue;
            }
            if let Some(len) = words(rest, &["ilike"]) {
                out.push_str("like");
                i += len;
                changed = true;
                continue;
            }
            // Copy the whole word so a keyword is never matched in the middle of an identifier.
            let len = rest.bytes().take_while(|&x| is_word(x)).count();
            out.push_str(&rest[..len]);
            i += len;
            continue;
        }
        let ch_len = sql[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&sql[i..i + ch_len]);
        i += ch_len;
    }
    changed.then_some(out)
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Matches `w1 w2 ...` case-insensitively, separated by whitespace, ending at a word boundary.
fn words(s: &str, ws: &[&str]) -> Option<usize> {
    let mut pos = 0;
    for (n, w) in ws.iter().enumerate() {
        if n > 0 {
            let spaces = s[pos..].bytes().take_while(u8::is_ascii_whitespace).count();
            if spaces == 0 {
                return None;
            }
            pos += spaces;
        }
        let candidate = s.get(pos..pos + w.len())?;
        if !candidate.eq_ignore_ascii_case(w) {
            return None;
        }
        pos += w.len();
    }
    match s.as_bytes().get(pos) {
        Some(&c) if is_word(c) => None,
        _ => Some(pos),
    }
}

fn empty_parens(s: &str) -> Option<usize> {
    let t = s.trim_start();
    let lead = s.len() - t.len();
    let t2 = t.strip_prefix('(')?;
    let t3 = t2.trim_start();
    t3.strip_prefix(')')?;
    Some(lead + 1 + (t2.len() - t3.len()) + 1)
}

/// After an `=`: ` any ( $3 )`. Returns the length consumed and the text inside the parentheses.
fn any_call(s: &str) -> Option<(usize, &str)> {
    let lead = s.bytes().take_while(u8::is_ascii_whitespace).count();
    let n = words(&s[lead..], &["any"])?;
    let after = &s[lead + n..];
    let t = after.trim_start();
    let open = lead + n + (after.len() - t.len());
    let body = t.strip_prefix('(')?;
    let close = body.find(')')?;
    Some((open + 1 + close + 1, &body[..close]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameter_becomes_json_each() {
        assert_eq!(
            to_sqlite_owned("select * from branch where id = any($1) and tenant_id = $2"),
            "select * from branch where id in (select value from json_each($1)) and tenant_id = $2"
        );
        assert_eq!(
            to_sqlite_owned("where id=ANY( $3 )"),
            "where id in (select value from json_each($3))"
        );
    }

    #[test]
    fn row_locks_are_dropped() {
        assert_eq!(
            to_sqlite_owned(
                "select id from job where due_at <= $1 limit 10 for update skip locked"
            ),
            "select id from job where due_at <= $1 limit 10 "
        );
        assert_eq!(
            to_sqlite_owned("select * from refresh_token where id = $1 FOR  UPDATE"),
            "select * from refresh_token where id = $1 "
        );
    }

    #[test]
    fn now_and_ilike_are_translated() {
        assert_eq!(
            to_sqlite_owned("update t set updated_at = now() where name ilike $1"),
            format!("update t set updated_at = {SQLITE_NOW} where name like $1")
        );
    }

    #[test]
    fn literals_identifiers_and_longer_words_are_left_alone() {
        for sql in [
            "select 'for update' from t",
            "select \"now()\" from t",
            "select for_update_at, nowhere, company from t",
            "select snow() from t -- now() in a comment",
            "select * from t where a = anything",
        ] {
            assert_eq!(translate(sql), None, "{sql}");
        }
    }

    #[test]
    fn non_ascii_text_survives_translation() {
        assert_eq!(
            to_sqlite_owned("select '粤B12345', x from t where y = now()"),
            format!("select '粤B12345', x from t where y = {SQLITE_NOW}")
        );
    }

    #[test]
    fn cached_translation_is_stable() {
        const SQL: &str = "select 1 from t where id = any($1) for update";
        let a = to_sqlite(SQL);
        let b = to_sqlite(SQL);
        assert!(std::ptr::eq(a, b));
        assert_eq!(
            a,
            "select 1 from t where id in (select value from json_each($1)) "
        );
    }
}
