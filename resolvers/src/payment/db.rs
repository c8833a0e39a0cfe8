//! The bill as a payment sees it, and the payer's WeChat identity, through the billing and
//! sign-in queries.

use minigate_store::{Conn, Id};

use crate::{
    Error, Result, Viewer, auth,
    billing::{self, db::BillRow},
};

/// The bill, if `v` may read it (the same rule as `bill(id)`); otherwise `NOT_FOUND`, so ids of
/// other people's bills say nothing.
pub async fn visible_bill(c: &mut Conn, v: &Viewer, id: Id) -> Result<BillRow> {
    Some(billing::db::get_bill(c, v.tenant_id, id).await?)
        .filter(|b| billing::may_read(v, b))
        .ok_or(Error::NotFound("bill"))
}

/// The viewer's WeChat mini-program identity: `(app id, openid)`.
pub async fn wechat_identity(c: &mut Conn, v: &Viewer) -> Result<Option<(String, String)>> {
    let u = auth::db::get_user(c, v.tenant_id, v.user_id).await?;
    Ok(u.wx_app_id.zip(u.wx_openid))
}
