//! Every request gets an id (the client's `X-Request-Id` when it is sane, else a new one),
//! echoed in the response, carried by every log line of the request, and counted in metrics.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use crate::metrics;

fn request_id(req: &Request) -> String {
    req.header("x-request-id")
        .filter(|v| {
            (8..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphiql" => "/graphiql",
        "/graphql/ws" => "/graphql/ws",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

pub async fn observe<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let id = request_id(&req);
    let route = route_label(req.uri().path());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), route);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    let status = resp.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics::http_request(route, status, seconds);
    if route != "/healthz" && route != "/metrics" {
        span.in_scope(|| tracing::info!(status, ms = seconds * 1000.0, "served"));
    }
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}
