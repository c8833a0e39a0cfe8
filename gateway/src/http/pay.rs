//! `POST /pay/wechat/notify`, `POST /pay/wechat/refund-notify` and `POST /pay/alipay/notify`: the
//! providers' payment and refund notifications, handed with their raw headers and body to the resolvers' callback handling,
//! which verifies, stores and answers.

use std::sync::Arc;

use poem::{Body, Request, Response, http::StatusCode, web::Data};

use crate::app::State;

/// Notifications are a few kilobytes; anything far larger is not one.
const BODY_LIMIT: usize = 64 * 1024;

fn headers(req: &Request) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn answer(r: minigate_resolvers::payment::callback::Reply) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(r.content_type)
        .body(r.body)
}

async fn read(body: Body) -> Result<Vec<u8>, Response> {
    body.into_bytes_limit(BODY_LIMIT)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| {
            Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body("notification too large")
        })
}

#[poem::handler]
pub async fn wechat_notify(req: &Request, body: Body, state: Data<&Arc<State>>) -> Response {
    let body = match read(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let h = headers(req);
    answer(minigate_resolvers::payment::callback::wechat_notify(&state.deps, &h, &body).await)
}

#[poem::handler]
pub async fn alipay_notify(req: &Request, body: Body, state: Data<&Arc<State>>) -> Response {
    let body = match read(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let h = headers(req);
    answer(minigate_resolvers::payment::callback::alipay_notify(&state.deps, &h, &body).await)
}

#[poem::handler]
pub async fn wechat_refund_notify(req: &Request, body: Body, state: Data<&Arc<State>>) -> Response {
    let body = match read(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let h = headers(req);
    answer(
        minigate_resolvers::payment::refund_callback::wechat_refund_notify(&state.deps, &h, &body)
            .await,
    )
}
