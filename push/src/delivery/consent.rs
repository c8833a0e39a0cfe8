//! The ledger of subscribe-message consents: each accepted result of
//! `wx.requestSubscribeMessage` allows exactly one message of that template to that person. A
//! send takes the oldest unused consent in the transaction that records it; none left means the
//! next channel.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::Result;

/// Records the accepted consents of one `wx.requestSubscribeMessage` call. Returns how many.
pub async fn record(
    tx: &mut Conn,
    tenant: Id,
    user: Id,
    app_id: &str,
    accepted_templates: &[&str],
) -> Result<usize> {
    for t in accepted_templates {
        store::execute!(
            tx,
            "insert into subscribe_consent (id, tenant_id, user_id, app_id, template_id) values ($1, $2, $3, $4, $5)",
            Id::new(),
            tenant,
            user,
            app_id,
            *t
        )?;
    }
    Ok(accepted_templates.len())
}

/// Takes one unused consent of (person, app, template) for `delivery`; `false` when none is
/// left. Concurrent takers never take the same one.
pub async fn take(
    tx: &mut Conn,
    user: Id,
    app_id: &str,
    template_id: &str,
    delivery: Id,
    now: DateTime<Utc>,
) -> Result<bool> {
    let taken: Option<(Id,)> = store::fetch_optional!(
        tx,
        (Id,),
        "update subscribe_consent set used_at = $4, delivery_id = $5
         where id = (select id from subscribe_consent
                     where user_id = $1 and app_id = $2 and template_id = $3 and used_at is null
                     order by granted_at, id limit 1 for update skip locked)
         returning id",
        user,
        app_id,
        template_id,
        now,
        delivery
    )?;
    Ok(taken.is_some())
}

/// Gives a consent back when the message it was taken for was not sent (a transient failure:
/// the consent is still WeChat's to honour).
pub async fn give_back(tx: &mut Conn, delivery: Id) -> Result<()> {
    store::execute!(
        tx,
        "update subscribe_consent set used_at = null, delivery_id = null where delivery_id = $1",
        delivery
    )?;
    Ok(())
}

/// Unused consents per template of a person.
pub async fn unused(c: &mut Conn, user: Id) -> Result<Vec<(String, String, i64)>> {
    Ok(store::fetch_all!(
        c,
        (String, String, i64),
        "select app_id, template_id, count(*) from subscribe_consent where user_id = $1 and used_at is null
         group by app_id, template_id order by app_id, template_id",
        user
    )?)
}
