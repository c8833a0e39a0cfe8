use async_graphql::{Context, ID, Object};

use super::{Media, may_see};
use crate::{
    Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct MediaQuery;

#[Object]
impl MediaQuery {
    /// A photo the viewer may see (their own; staff: their branch's shared photos; operators:
    /// the company's), with fresh signed URLs. Null for anything else.
    async fn media(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Media>> {
        let v = viewer(ctx)?;
        let id = parse_id("id", &id)?;
        let d = deps(ctx)?;
        let Some(service) = d.media.clone() else {
            return Ok(None);
        };
        let mut c = d.db.conn().await?;
        let row = minigate_media::db::find_media(&mut c, v.tenant_id, id).await?;
        Ok(row
            .filter(|m| may_see(v, m))
            .map(|m| Media::new(m, v, service)))
    }
}
