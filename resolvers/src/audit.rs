//! The audit log of sensitive changes, written in the transaction of the change itself.

use minigate_store::{self as store, Conn, Id};
use sqlx::types::Json;

use crate::Result;

pub async fn record(
    c: &mut Conn,
    tenant_id: Option<Id>,
    actor_id: Option<Id>,
    action: &str,
    entity: &str,
    entity_id: &str,
    detail: serde_json::Value,
) -> Result<()> {
    store::execute!(
        c,
        "insert into audit_log (id, tenant_id, actor_id, action, entity, entity_id, detail)
         values ($1, $2, $3, $4, $5, $6, $7)",
        Id::new(),
        tenant_id,
        actor_id,
        action,
        entity,
        entity_id,
        Json(detail)
    )?;
    Ok(())
}
