//! Field staff end to end: asset audits with live progress and discrepancies, plate
//! registration and inspection, and follow-ups of prospects; who may see and do what;
//! idempotent retries; bad input that stores and changes nothing.

mod audits;
mod follow_ups;
mod plates;

use minigate_fakes::photos;
use minigate_resolvers::Role;
use minigate_store::Id;
use serde_json::Value;

use crate::support::{Resp, TestApp};

/// A company with two branches (SZ, GZ), two staff in SZ, one in GZ, an operator, a driver,
/// and another company's operator.
pub struct Crew {
    pub tenant: Id,
    pub admin: String,
    pub sz: Id,
    pub gz: Id,
    pub sz_staff: String,
    pub sz_colleague: String,
    pub gz_staff: String,
    pub driver: String,
    pub other_tenant: Id,
    pub stranger: String,
}

pub async fn crew(app: &TestApp) -> Crew {
    let (tenant, admin) = app.admin("acme").await;
    let sz = app.branch(tenant, "SZ").await;
    let gz = app.branch(tenant, "GZ").await;
    let sz_staff = app.member(tenant, Role::Staff, Some(sz)).await;
    let sz_colleague = app.member(tenant, Role::Staff, Some(sz)).await;
    let gz_staff = app.member(tenant, Role::Staff, Some(gz)).await;
    let driver = app.member(tenant, Role::Driver, Some(sz)).await;
    let (other_tenant, stranger) = app.admin("globex").await;
    Crew {
        tenant,
        admin,
        sz,
        gz,
        sz_staff,
        sz_colleague,
        gz_staff,
        driver,
        other_tenant,
        stranger,
    }
}

/// A processed photo uploaded by `token` for `purpose`; its id.
pub async fn photo(app: &TestApp, token: &str, purpose: &str) -> String {
    let bytes = photos::jpeg(320, 240, &photos::gradient(320, 240));
    app.upload_media(Some(token), bytes, "photo.jpg", Some(purpose))
        .await
        .id()
        .to_owned()
}

/// The error's `extensions.field`.
pub fn field(r: &Resp) -> Option<&str> {
    r.json["errors"][0]["extensions"]["field"].as_str()
}

/// `count(*)` of a query with one id parameter.
pub async fn count_of(app: &TestApp, sql: &'static str, id: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    let id: Id = id.parse().unwrap();
    minigate_store::fetch_scalar!(&mut c, i64, sql, id).unwrap()
}

/// The ids of a list of objects.
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}
