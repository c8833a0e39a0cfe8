//! GraphQL over HTTP, following the GraphQL-over-HTTP specification:
//! * `POST` with `application/json`; `GET` with `query`, `variables`, `operationName` parameters,
//!   and never a mutation (405);
//! * answers `application/graphql-response+json` when the client accepts it, with 400 for a
//!   document refused before execution, or `application/json`, always 200 for a well-formed one;
//! * bearer tokens, per-IP and per-user rate limits, the body size limit, trusted-proxy client IPs.

use std::{net::IpAddr, sync::Arc, time::Instant};

use async_graphql::{
    Variables,
    parser::types::{DocumentOperations, OperationType},
};
use minigate_resolvers::{RateLimited, RateLimiter, Role, Viewer};
use poem::{
    Body, Request, Response,
    http::{StatusCode, header},
    web::{Data, RemoteAddr},
};
use serde::Deserialize;

use super::error_body;
use crate::{app::State, metrics};

pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";
pub const JSON: &str = "application/json; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => GRAPHQL_RESPONSE,
            Media::Json => JSON,
        }
    }
}

/// Picks the response media type from `Accept`; `None` when nothing acceptable is named.
fn negotiate(accept: Option<&str>) -> Option<Media> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Media::Json);
    };
    let mut json = false;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let ty = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = params.any(|p| {
            let p = p.trim();
            p.starts_with("q=") && p[2..].trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        });
        if q_zero {
            continue;
        }
        match ty.as_str() {
            "application/graphql-response+json" => return Some(Media::GraphqlResponse),
            "application/json" | "application/*" | "*/*" => json = true,
            _ => {}
        }
    }
    json.then_some(Media::Json)
}

fn not_acceptable() -> Response {
    error_body(
        StatusCode::NOT_ACCEPTABLE,
        JSON,
        "NOT_ACCEPTABLE",
        "accept application/graphql-response+json or application/json",
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
}

struct Parsed {
    query: String,
    operation_name: Option<String>,
    variables: Option<serde_json::Value>,
}

fn bad(media: Media, message: &str) -> Response {
    error_body(
        StatusCode::BAD_REQUEST,
        media.content_type(),
        "BAD_REQUEST",
        message,
    )
}

#[poem::handler]
pub async fn post(
    req: &Request,
    body: Body,
    state: Data<&Arc<State>>,
    remote: &RemoteAddr,
) -> Response {
    let Some(media) = negotiate(req.header(header::ACCEPT)) else {
        return not_acceptable();
    };
    let content_type = req
        .header(header::CONTENT_TYPE)
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence != "application/json" && essence != "application/graphql+json" {
        return error_body(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media.content_type(),
            "UNSUPPORTED_MEDIA_TYPE",
            "send the request as application/json",
        );
    }
    let limit = state.config.limits.body_bytes;
    let too_large = || {
        error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            media.content_type(),
            "PAYLOAD_TOO_LARGE",
            &format!("the body may have at most {limit} bytes"),
        )
    };
    if req
        .header(header::CONTENT_LENGTH)
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return too_large();
    }
    let bytes = match body.into_bytes_limit(limit).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return too_large(),
        Err(_) => return bad(media, "the body could not be read"),
    };
    let body: PostBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(_) => return bad(media, "the body is not a JSON object with a 'query'"),
    };
    let Some(query) = body.query else {
        return bad(media, "'query' is required");
    };
    let parsed = Parsed {
        query,
        operation_name: body.operation_name,
        variables: body.variables,
    };
    run(req, &state, remote, media, parsed, false).await
}

#[poem::handler]
pub async fn get(req: &Request, state: Data<&Arc<State>>, remote: &RemoteAddr) -> Response {
    let Some(media) = negotiate(req.header(header::ACCEPT)) else {
        return not_acceptable();
    };
    let params: GetParams = match req.params() {
        Ok(p) => p,
        Err(_) => return bad(media, "unreadable query string"),
    };
    let Some(query) = params.query else {
        return bad(media, "'query' is required");
    };
    let variables = match params
        .variables
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return bad(media, "'variables' is not JSON"),
    };
    let parsed = Parsed {
        query,
        operation_name: params.operation_name,
        variables,
    };
    run(req, &state, remote, media, parsed, true).await
}

pub(crate) fn client_ip(req: &Request, state: &State, remote: &RemoteAddr) -> Option<IpAddr> {
    let peer = remote.as_socket_addr()?.ip();
    Some(state.proxies.client_ip(peer, req.header("x-forwarded-for")))
}

pub(crate) async fn limit(
    limiter: &dyn RateLimiter,
    key: String,
    per_minute: u32,
    media: Media,
) -> Result<(), Response> {
    match limiter
        .hit(&key, per_minute, std::time::Duration::from_secs(60))
        .await
    {
        Ok(()) => Ok(()),
        Err(RateLimited::Exceeded { retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            let mut r = error_body(
                StatusCode::TOO_MANY_REQUESTS,
                media.content_type(),
                "RATE_LIMITED",
                &format!("too many requests, retry in {secs} s"),
            );
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(r)
        }
        Err(RateLimited::Unavailable) => Err(error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            media.content_type(),
            "CACHE_UNAVAILABLE",
            "cache unavailable, try again shortly",
        )),
    }
}

/// Reads the bearer token. `Ok(None)` for an anonymous request.
pub(crate) fn authenticate(
    req: &Request,
    state: &State,
) -> Result<Option<Viewer>, minigate_resolvers::Error> {
    let Some(value) = req.header(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(minigate_resolvers::Error::TokenInvalid)?;
    state.deps.tokens.verify(token.trim()).map(Some)
}

async fn run(
    req: &Request,
    state: &State,
    remote: &RemoteAddr,
    media: Media,
    parsed: Parsed,
    is_get: bool,
) -> Response {
    let started = Instant::now();
    if let Some(ip) = client_ip(req, state, remote)
        && let Err(r) = limit(
            &*state.deps.limiter,
            format!("ip:{ip}"),
            state.config.limits.per_ip_per_minute,
            media,
        )
        .await
    {
        return r;
    }
    let viewer = match authenticate(req, state) {
        Ok(v) => v,
        Err(e) => {
            let mut r = error_body(
                StatusCode::UNAUTHORIZED,
                media.content_type(),
                e.code(),
                &e.public_message(),
            );
            if let Ok(v) = "Bearer error=\"invalid_token\"".parse() {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return r;
        }
    };
    if let Some(v) = &viewer
        && let Err(r) = limit(
            &*state.deps.limiter,
            format!("user:{}", v.user_id),
            state.config.limits.per_user_per_minute,
            media,
        )
        .await
    {
        return r;
    }
    let variables = match parsed.variables {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => Variables::from_json(v),
        Some(_) => return bad(media, "'variables' must be a JSON object"),
    };
    let mut request = async_graphql::Request::new(parsed.query).variables(variables);
    if let Some(op) = &parsed.operation_name {
        request = request.operation_name(op.clone());
    }
    let mobile_client =
        state.config.production() && viewer.as_ref().is_none_or(|v| v.role != Role::Admin);
    let limits = state.config.schema_limits();
    let (kind, doc_name, introspects) = match request.parsed_query() {
        Ok(doc) => {
            if let Err(e) = minigate_schema::check_document(doc, &limits) {
                return refused(media, e);
            }
            let (kind, name) = operation_kind(&doc.operations, parsed.operation_name.as_deref());
            (
                kind,
                name,
                mobile_client && minigate_schema::uses_introspection(doc),
            )
        }
        Err(e) => {
            let mut e = e;
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", "GRAPHQL_PARSE_FAILED");
            return refused(media, e);
        }
    };
    if introspects {
        let status = if media == Media::GraphqlResponse {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        return error_body(
            status,
            media.content_type(),
            "INTROSPECTION_DISABLED",
            "introspection is off in production",
        );
    }
    if is_get && kind == "mutation" {
        let mut r = error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            media.content_type(),
            "METHOD_NOT_ALLOWED",
            "mutations must be sent with POST",
        );
        if let Ok(v) = "POST".parse() {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    if mobile_client {
        request = request.disable_introspection();
    }
    let loaders = minigate_resolvers::request_data(&state.deps, viewer.as_ref());
    request = request.data(loaders);
    if let Some(v) = viewer {
        request = request.data(v);
    }
    let mut response = state.schema.execute(request).await;
    minigate_schema::assign_codes(&mut response);

    let codes: Vec<String> = response
        .errors
        .iter()
        .filter_map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|c| c.to_string().trim_matches('"').to_owned())
        })
        .collect();
    let no_data = matches!(response.data, async_graphql::Value::Null);
    let status = match media {
        Media::Json => StatusCode::OK,
        Media::GraphqlResponse if no_data && !codes.is_empty() => {
            if codes
                .iter()
                .all(|c| minigate_schema::REQUEST_ERROR_CODES.contains(&c.as_str()))
            {
                StatusCode::BAD_REQUEST
            } else if codes
                .iter()
                .all(|c| c == "DATABASE_UNAVAILABLE" || c == "CACHE_UNAVAILABLE")
            {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
        Media::GraphqlResponse => StatusCode::OK,
    };
    metrics::graphql_request(
        &metrics::operation_label(parsed.operation_name.as_deref().or(doc_name.as_deref())),
        kind,
        started.elapsed().as_secs_f64(),
        &codes,
    );
    let body = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            return error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                media.content_type(),
                "INTERNAL",
                "internal error",
            );
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .content_type(media.content_type());
    if is_get {
        builder = builder.header(header::VARY, "Accept, Authorization");
    }
    builder.body(body)
}

/// A document refused before execution: 400 under the spec's media type, 200 under JSON.
fn refused(media: Media, error: async_graphql::ServerError) -> Response {
    let status = if media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body =
        serde_json::to_vec(&async_graphql::Response::from_errors(vec![error])).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type(media.content_type())
        .body(body)
}

/// The selected operation's type and, when the document names it, its name.
fn operation_kind(ops: &DocumentOperations, name: Option<&str>) -> (&'static str, Option<String>) {
    let (ty, found) = match (ops, name) {
        (DocumentOperations::Single(op), _) => (Some(op.node.ty), None),
        (DocumentOperations::Multiple(map), Some(n)) => {
            (map.get(n).map(|op| op.node.ty), Some(n.to_owned()))
        }
        (DocumentOperations::Multiple(map), None) if map.len() == 1 => {
            map.iter().next().map_or((None, None), |(n, op)| {
                (Some(op.node.ty), Some(n.to_string()))
            })
        }
        (DocumentOperations::Multiple(_), None) => (None, None),
    };
    let kind = match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "invalid",
    };
    (kind, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_spec_media_type_first() {
        assert_eq!(negotiate(None), Some(Media::Json));
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(negotiate(Some("application/json")), Some(Media::Json));
        assert_eq!(negotiate(Some("*/*")), Some(Media::Json));
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json;q=0, application/json"
            )),
            Some(Media::Json)
        );
    }
}
