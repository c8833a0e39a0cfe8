//! The baseline: plain poem handlers that check the same bearer token, run the same SQL as
//! minigate's resolvers (the very same query functions, on the very same pool) and write the
//! same JSON, with none of GraphQL in between.

use std::{collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use minigate_resolvers::{
    Error, Role, Viewer,
    auth::{db as auth_db, token::Tokens},
    pii,
    registry::db::{self as registry_db, BranchRow, VehicleFilter},
};
use minigate_store::{Db, Id};
use poem::{
    EndpointExt, Request, Response, Route, get,
    http::{StatusCode, header},
    web::Data,
};
use serde::Serialize;

/// What the handlers share.
pub struct Bare {
    pub db: Db,
    pub tokens: Arc<Tokens>,
}

/// The page size the benchmark asks minigate for.
pub const PAGE: usize = 50;

pub fn routes(bare: Arc<Bare>) -> impl poem::Endpoint {
    Route::new()
        .at("/me", get(me))
        .at("/vehicles", get(vehicles))
        .data(bare)
}

const JSON: &str = "application/json; charset=utf-8";

fn failure(status: StatusCode, e: &Error) -> Response {
    Response::builder()
        .status(status)
        .content_type(JSON)
        .body(format!(r#"{{"error":"{}"}}"#, e.code()))
}

fn respond(result: Result<Vec<u8>, Error>) -> Response {
    match result {
        Ok(body) => Response::builder().content_type(JSON).body(body),
        Err(e @ (Error::TokenInvalid | Error::TokenExpired | Error::Unauthenticated)) => {
            failure(StatusCode::UNAUTHORIZED, &e)
        }
        Err(e @ Error::Forbidden) => failure(StatusCode::FORBIDDEN, &e),
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

fn authenticate(req: &Request, bare: &Bare) -> Result<Viewer, Error> {
    let token = req
        .header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthenticated)?;
    bare.tokens.verify(token.trim())
}

#[derive(Serialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Serialize)]
struct MeData<'a> {
    me: UserOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserOut<'a> {
    id: Id,
    role: &'static str,
    display_name: &'a str,
    phone: Option<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Driver => "DRIVER",
        Role::Staff => "STAFF",
        Role::Consumer => "CONSUMER",
        Role::Admin => "ADMIN",
    }
}

#[poem::handler]
async fn me(req: &Request, bare: Data<&Arc<Bare>>) -> Response {
    respond(me_body(req, &bare).await)
}

async fn me_body(req: &Request, bare: &Bare) -> Result<Vec<u8>, Error> {
    let v = authenticate(req, bare)?;
    let mut c = bare.db.conn().await?;
    let user = auth_db::get_user(&mut c, v.tenant_id, v.user_id).await?;
    drop(c);
    let full = v.user_id == user.id || v.role == Role::Admin;
    let body = Envelope {
        data: MeData {
            me: UserOut {
                id: user.id,
                role: role_name(user.role()),
                display_name: &user.display_name,
                phone: user.phone.as_deref().map(|p| {
                    if full {
                        p.to_owned()
                    } else {
                        pii::mask_phone(p)
                    }
                }),
            },
        },
    };
    serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))
}

#[derive(Serialize)]
struct VehiclesData<'a> {
    vehicles: PageOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageOut<'a> {
    items: Vec<VehicleOut<'a>>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct VehicleOut<'a> {
    id: Id,
    plate: &'a str,
    vin: &'a str,
    model: Option<&'a str>,
    status: &'a str,
    branch: BranchOut<'a>,
}

#[derive(Serialize)]
struct BranchOut<'a> {
    id: Id,
    code: &'a str,
    name: &'a str,
}

#[poem::handler]
async fn vehicles(req: &Request, bare: Data<&Arc<Bare>>) -> Response {
    respond(vehicles_body(req, &bare).await)
}

async fn vehicles_body(req: &Request, bare: &Bare) -> Result<Vec<u8>, Error> {
    let v = authenticate(req, bare)?;
    let branch = v.branch_filter(None)?;
    let limit = i64::try_from(PAGE + 1).map_err(|e| Error::Internal(e.to_string()))?;
    let mut c = bare.db.conn().await?;
    let mut rows = registry_db::list_vehicles(
        &mut c,
        v.tenant_id,
        &VehicleFilter {
            branch_id: branch,
            status: None,
            plate_prefix: None,
            after_plate: None,
            limit,
        },
    )
    .await?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let next_cursor = more
        .then(|| rows.last().map(|r| URL_SAFE_NO_PAD.encode(&r.plate)))
        .flatten();
    let mut ids: Vec<Id> = rows.iter().map(|r| r.branch_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let branches = registry_db::branches_by_ids(&mut c, v.tenant_id, ids).await?;
    drop(c);
    let by_id: HashMap<Id, &BranchRow> = branches.iter().map(|b| (b.id, b)).collect();
    let items = rows
        .iter()
        .map(|r| {
            let b = by_id.get(&r.branch_id).ok_or(Error::NotFound("branch"))?;
            Ok(VehicleOut {
                id: r.id,
                plate: &r.plate,
                vin: &r.vin,
                model: r.model.as_deref(),
                status: &r.status,
                branch: BranchOut {
                    id: b.id,
                    code: &b.code,
                    name: &b.name,
                },
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let body = Envelope {
        data: VehiclesData {
            vehicles: PageOut { items, next_cursor },
        },
    };
    serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))
}
