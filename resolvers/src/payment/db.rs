//! The bill as a payment sees it, and the payer's WeChat identity.

use minigate_store::{self as store, Conn, Id};

use crate::{
    Error, Result, Viewer,
    billing::{self, db::BillRow},
};

pub async fn find_bill(c: &mut Conn, id: Id) -> Result<Option<BillRow>> {
    Ok(store::fetch_optional!(
        c,
        BillRow,
        "select * from bill where id = $1",
        id
    )?)
}

/// The bill, if `v` may read it (the same rule as `bill(id)`); otherwise `NOT_FOUND`, so ids of
/// other people's bills say nothing.
pub async fn visible_bill(c: &mut Conn, v: &Viewer, id: Id) -> Result<BillRow> {
    find_bill(c, id)
        .await?
        .filter(|b| billing::may_read(v, b))
        .ok_or(Error::NotFound("bill"))
}

/// The viewer's WeChat mini-program identity: `(app id, openid)`.
pub async fn wechat_identity(c: &mut Conn, user: Id) -> Result<Option<(String, String)>> {
    let row: Option<(Option<String>, Option<String>)> = store::fetch_optional!(
        c,
        (Option<String>, Option<String>),
        "select wx_app_id, wx_openid from app_user where id = $1",
        user
    )?;
    Ok(row.and_then(|(a, o)| Some((a?, o?))))
}
