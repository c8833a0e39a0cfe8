use async_graphql::{Context, ID, Object};
use chrono::Utc;
use minigate_store::{Db, Id};
use sqlx::types::Json;

use super::{SearchSynonymGroup, db, synonyms, tokens};
use crate::{
    Error, Result, Viewer, audit,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct SearchMutation;

const MIN_TERMS: usize = 2;
const MAX_TERMS: usize = 20;
const MAX_TERM_CHARS: usize = 20;

/// Terms trimmed, each 1 to 20 characters with a searchable word, distinct once normalised
/// (full-width and case folded), 2 to 20 of them.
pub(crate) fn check_terms(terms: &[String]) -> Result<Vec<String>> {
    let bad = |m: String| Error::invalid("terms", m);
    if !(MIN_TERMS..=MAX_TERMS).contains(&terms.len()) {
        return Err(bad(format!("{MIN_TERMS} to {MAX_TERMS} terms")));
    }
    let mut out: Vec<String> = Vec::with_capacity(terms.len());
    let mut seen = std::collections::HashSet::new();
    for t in terms {
        let t = t.trim();
        let n = t.chars().count();
        if n == 0 || n > MAX_TERM_CHARS {
            return Err(bad(format!("each term 1 to {MAX_TERM_CHARS} characters")));
        }
        if tokens::words(t).is_empty() {
            return Err(bad(format!("'{t}' has no word to search for")));
        }
        if !seen.insert(tokens::normalize(t)) {
            return Err(bad(format!("'{t}' is given twice")));
        }
        out.push(t.to_owned());
    }
    Ok(out)
}

fn parse_id(id: &ID) -> Result<Id> {
    id.parse().map_err(|_| Error::invalid("id", "not an id"))
}

#[Object]
impl SearchMutation {
    /// Adds a synonym group of the company (without `id`) or replaces the terms of one
    /// (operators): 2 to 20 distinct terms of 1 to 20 characters. Searches use it at once.
    async fn save_search_synonym_group(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        terms: Vec<String>,
    ) -> Result<SearchSynonymGroup> {
        let v = viewer(ctx)?;
        let id = id.as_ref().map(parse_id).transpose()?;
        save_group(&deps(ctx)?.db, v, id, &terms).await
    }

    /// Deletes a synonym group of the company (operators). Built-in groups cannot be deleted.
    async fn delete_search_synonym_group(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let v = viewer(ctx)?;
        delete_group(&deps(ctx)?.db, v, parse_id(&id)?).await?;
        Ok(true)
    }
}

/// `saveSearchSynonymGroup`.
pub async fn save_group(
    db: &Db,
    v: &Viewer,
    id: Option<Id>,
    terms: &[String],
) -> Result<SearchSynonymGroup> {
    v.require_admin()?;
    let terms = check_terms(terms)?;
    let row = db::SynonymGroupRow {
        id: match id {
            Some(id) => id,
            None => Id::new(),
        },
        terms: Json(terms),
        updated_by: Some(v.user_id),
        updated_at: Utc::now(),
    };
    let mut tx = db.begin().await?;
    if id.is_some() {
        if !db::update_synonym_group(&mut tx, v.tenant_id, &row).await? {
            return Err(Error::NotFound("synonym group"));
        }
    } else {
        db::insert_synonym_group(&mut tx, v.tenant_id, &row).await?;
    }
    audit::record(
        &mut tx,
        Some(v.tenant_id),
        Some(v.user_id),
        if id.is_some() {
            "search.synonyms.update"
        } else {
            "search.synonyms.create"
        },
        "search_synonym_group",
        &row.id.to_string(),
        serde_json::json!({ "terms": row.terms.0 }),
    )
    .await?;
    let tenant = v.tenant_id;
    tx.on_commit(move || synonyms::forget(tenant));
    tx.commit().await?;
    Ok(SearchSynonymGroup {
        id: Some(ID(row.id.to_string())),
        built_in: false,
        terms: row.terms.0,
        updated_at: Some(row.updated_at),
    })
}

/// `deleteSearchSynonymGroup`.
pub async fn delete_group(db: &Db, v: &Viewer, id: Id) -> Result<()> {
    v.require_admin()?;
    let mut tx = db.begin().await?;
    let Some(old) = db::find_synonym_group(&mut tx, v.tenant_id, id).await? else {
        return Err(Error::NotFound("synonym group"));
    };
    db::delete_synonym_group(&mut tx, v.tenant_id, id).await?;
    audit::record(
        &mut tx,
        Some(v.tenant_id),
        Some(v.user_id),
        "search.synonyms.delete",
        "search_synonym_group",
        &id.to_string(),
        serde_json::json!({ "terms": old.terms.0 }),
    )
    .await?;
    let tenant = v.tenant_id;
    tx.on_commit(move || synonyms::forget(tenant));
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn terms_are_trimmed_and_must_be_distinct_and_searchable() {
        assert_eq!(
            check_terms(&s(&[" 趴窝 ", "抛锚"])).unwrap(),
            s(&["趴窝", "抛锚"])
        );
        for bad in [
            s(&["趴窝"]),
            s(&["趴窝", " "]),
            s(&["趴窝", "趴窝 "]),
            s(&["ABS", "ａｂｓ"]),
            s(&["趴窝", "的"]),
            s(&["趴窝", &"长".repeat(21)]),
            vec!["词".to_owned(); 21],
        ] {
            let e = check_terms(&bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_INPUT", "{bad:?}");
        }
    }
}
