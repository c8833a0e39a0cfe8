use async_graphql::{Context, ID, Object};

use super::{
    SearchArgs, SearchKind, SearchResults, SearchSynonymGroup, db, find, synonyms::BUILT_IN,
};
use minigate_store::Db;

use crate::{
    Result, Viewer,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Finds accident descriptions, maintenance notes, follow-up notes and notices the viewer
    /// may see. Chinese text is cut into words; a record with every word of the query (or a
    /// synonym of it) comes first, then records with only some of them. `first`: 1 to 50
    /// (default 10); `after`: the `endCursor` of the page before.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        kinds: Option<Vec<SearchKind>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SearchResults> {
        let v = viewer(ctx)?;
        let d = deps(ctx)?;
        find(
            &d.db,
            v,
            &SearchArgs {
                query: &query,
                kinds: kinds.as_deref(),
                first,
                after: after.as_deref(),
            },
        )
        .await
    }

    /// The synonym groups the search uses (operators): the built-in ones first, then the
    /// company's own, oldest first.
    async fn search_synonym_groups(&self, ctx: &Context<'_>) -> Result<Vec<SearchSynonymGroup>> {
        list_groups(&deps(ctx)?.db, viewer(ctx)?).await
    }
}

/// `searchSynonymGroups`.
pub async fn list_groups(db: &Db, v: &Viewer) -> Result<Vec<SearchSynonymGroup>> {
    v.require_admin()?;
    let mut c = db.conn().await?;
    let own = db::list_synonym_groups(&mut c, v.tenant_id).await?;
    Ok(BUILT_IN
        .iter()
        .map(|terms| SearchSynonymGroup {
            id: None,
            built_in: true,
            terms: terms.clone(),
            updated_at: None,
        })
        .chain(own.into_iter().map(|g| SearchSynonymGroup {
            id: Some(ID(g.id.to_string())),
            built_in: false,
            terms: g.terms.0,
            updated_at: Some(g.updated_at),
        }))
        .collect())
}
