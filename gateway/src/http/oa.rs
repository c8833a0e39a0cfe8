//! `GET|POST /wechat/oa/callback/:app_id`: an official account's server URL, handed with its query
//! and raw body to the resolvers' callback handling (`delivery::oa_callback`), which checks,
//! stores and answers.

use std::sync::Arc;

use minigate_push::wechat::oa_crypto::CallbackQuery;
use minigate_resolvers::delivery::oa_callback::{self, Reply};
use poem::{
    Body, Request, Response,
    http::StatusCode,
    web::{Data, Path},
};

use crate::app::State;

/// WeChat's messages are a few kilobytes; anything far larger is not one.
const BODY_LIMIT: usize = 64 * 1024;

fn answer(r: Reply) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(r.content_type)
        .body(r.body)
}

/// The query's signature parameters; one that does not parse is taken as empty, and then fails
/// the signature check like any wrong one.
fn query(req: &Request) -> CallbackQuery {
    req.params().unwrap_or_default()
}

#[poem::handler]
pub async fn verify(
    req: &Request,
    Path(app_id): Path<String>,
    state: Data<&Arc<State>>,
) -> Response {
    answer(oa_callback::verify_url(&state.deps, &app_id, &query(req)).await)
}

#[poem::handler]
pub async fn receive(
    req: &Request,
    Path(app_id): Path<String>,
    body: Body,
    state: Data<&Arc<State>>,
) -> Response {
    let Ok(body) = body.into_bytes_limit(BODY_LIMIT).await else {
        return Response::builder()
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .body("message too large");
    };
    answer(oa_callback::receive(&state.deps, &app_id, &query(req), &body, chrono::Utc::now()).await)
}
