//! GraphQL over WebSocket at `/graphql/ws` (and `/graphql` by upgrade): `graphql-transport-ws`
//! and the legacy `graphql-ws` subprotocol. A client that names neither gets HTTP 400, so
//! mini-programs must call `wx.connectSocket({ url, protocols: ['graphql-transport-ws'] })`.
//!
//! async-graphql speaks the protocols; this loop adds what it lacks: the access token checked in
//! `connection_init` (and the socket closed when it expires), WebSocket pings with the socket
//! closed when pongs stop coming (mobile networks drop sockets silently), the per-user rate
//! limit on every subscribe message, and socket metrics. Depth, complexity and alias limits are
//! the schema's, the same as over HTTP.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{Data, http::WsMessage};
use async_graphql_poem::GraphQLProtocol;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use minigate_resolvers::{RateLimited, Viewer};
use poem::{
    IntoResponse, Request,
    web::{
        Data as PoemData, RemoteAddr,
        websocket::{Message, WebSocket, WebSocketConfig, WebSocketStream},
    },
};
use tokio::sync::mpsc;

use crate::app::State;

/// Close codes of `graphql-transport-ws`.
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_TOO_MANY: u16 = 4429;
const CLOSE_GOING_AWAY: u16 = 1001;

#[poem::handler]
pub async fn upgrade(
    req: &Request,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
    state: PoemData<&Arc<State>>,
    remote: &RemoteAddr,
) -> poem::Response {
    let state = state.0.clone();
    // A connection attempt counts against the client address's budget, as a request does.
    if let Some(ip) = super::graphql::client_ip(req, &state, remote) {
        let per_minute = state.config.limits.per_ip_per_minute;
        if let Err(refused) = super::graphql::limit(
            &*state.deps.limiter,
            format!("ip:{ip}"),
            per_minute,
            super::graphql::Media::Json,
        )
        .await
        {
            return refused;
        }
    }
    websocket
        .config(socket_config())
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(state, socket, protocol))
        .into_response()
}

/// GraphQL messages are small: tungstenite's default 128 KiB read and write buffers per socket
/// would make 10,000 idle sockets cost gigabytes. A slow reader may not make us buffer without
/// bound, and no client message may be larger than a request body.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(256 * 1024))
        .max_frame_size(Some(256 * 1024))
}

/// Reads the access token from `connection_init`: `{"authorization": "Bearer …"}` or `{"token": "…"}`.
fn token_of(payload: &serde_json::Value) -> Option<&str> {
    let raw = payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))
        .or_else(|| payload.get("token"))?
        .as_str()?;
    Some(raw.strip_prefix("Bearer ").unwrap_or(raw).trim())
}

fn is_subscribe(text: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("type")
                .and_then(|t| t.as_str())
                .map(|t| t == "subscribe" || t == "start")
        })
        .unwrap_or(false)
}

/// async-graphql closes with generic codes where `graphql-transport-ws` names specific ones:
/// a refused `connection_init` is 4403 Forbidden, a subscribe before it 4401 Unauthorized, an
/// unreadable message 4400 Bad Request.
fn spec_close_code(code: u16, initialised: bool) -> u16 {
    match (code, initialised) {
        (1002, false) => CLOSE_FORBIDDEN,
        (1011, false) => 4401,
        (1002, true) => 4400,
        (other, _) => other,
    }
}

async fn serve(state: Arc<State>, socket: WebSocketStream, protocol: GraphQLProtocol) {
    metrics::gauge!("minigate_websocket_open").increment(1.0);
    let started = Instant::now();
    let alive_ms = Arc::new(AtomicI64::new(0));
    let viewer: Arc<OnceLock<(Viewer, DateTime<Utc>)>> = Arc::new(OnceLock::new());
    let (control, mut control_rx) = mpsc::channel::<(u16, &'static str)>(2);
    let (mut sink, stream) = socket.split();

    let incoming = {
        let (alive_ms, viewer, state, control) = (
            alive_ms.clone(),
            viewer.clone(),
            state.clone(),
            control.clone(),
        );
        stream
            .take_while(|m| futures_util::future::ready(m.is_ok()))
            .filter_map(move |m| {
                let (alive_ms, viewer, state, control) = (
                    alive_ms.clone(),
                    viewer.clone(),
                    state.clone(),
                    control.clone(),
                );
                async move {
                    let msg = m.ok()?;
                    alive_ms.store(
                        i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                        Ordering::Relaxed,
                    );
                    let bytes = match msg {
                        Message::Text(t) => t.into_bytes(),
                        Message::Binary(b) => b,
                        _ => return None,
                    };
                    if is_subscribe(&bytes)
                        && let Some((v, _)) = viewer.get()
                    {
                        let key = format!("ws-subscribe:{}", v.user_id);
                        let per_minute = state.config.limits.subscribes_per_minute;
                        let verdict = state
                            .deps
                            .limiter
                            .hit(&key, per_minute, Duration::from_secs(60))
                            .await;
                        if let Err(refused) = verdict {
                            let reason = match refused {
                                RateLimited::Exceeded { .. } => "rate limited",
                                RateLimited::Unavailable => "cache unavailable",
                            };
                            let _ = control.try_send((CLOSE_TOO_MANY, reason));
                            return None;
                        }
                    }
                    Some(bytes)
                }
            })
    };

    let init = {
        let (state, viewer) = (state.clone(), viewer.clone());
        move |payload: serde_json::Value| async move {
            let token = token_of(&payload).ok_or_else(|| {
                async_graphql::Error::new("connection_init needs an access token")
            })?;
            let (v, expires) = state
                .deps
                .tokens
                .verify_until(token)
                .map_err(|e| async_graphql::Error::new(e.public_message()))?;
            let mut data = Data::default();
            data.insert(minigate_resolvers::request_data(&state.deps, Some(&v)));
            data.insert(v.clone());
            let _ = viewer.set((v, expires));
            Ok(data)
        }
    };

    let schema = state.socket_schema.clone();
    let mut graphql = Box::pin(
        async_graphql::http::WebSocket::new(schema, incoming, protocol.0).on_connection_init(init),
    );
    let dead_after = Duration::from_secs(state.config.limits.ws_dead_after_seconds);
    let mut ping = tokio::time::interval(Duration::from_secs(
        state.config.limits.ws_ping_seconds.max(1),
    ));
    ping.tick().await;
    let mut expiry_check = tokio::time::interval(Duration::from_secs(5));
    let mut closing = state.closing.subscribe();
    loop {
        tokio::select! {
            _ = closing.changed() => {
                let _ = sink.send(Message::Close(Some((CLOSE_GOING_AWAY.into(), "server shutting down".to_owned())))).await;
                break;
            }
            out = graphql.next() => match out {
                Some(WsMessage::Text(t)) => {
                    if sink.send(Message::Text(t)).await.is_err() { break; }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let code = spec_close_code(code, viewer.get().is_some());
                    let _ = sink.send(Message::Close(Some((code.into(), reason)))).await;
                    break;
                }
                None => break,
            },
            Some((code, reason)) = control_rx.recv() => {
                let _ = sink.send(Message::Close(Some((code.into(), reason.to_owned())))).await;
                break;
            }
            _ = ping.tick() => {
                let quiet = started.elapsed().as_millis().saturating_sub(u128::try_from(alive_ms.load(Ordering::Relaxed)).unwrap_or(0));
                if quiet > dead_after.as_millis() {
                    metrics::counter!("minigate_websocket_reaped_total").increment(1);
                    let _ = sink.send(Message::Close(Some((CLOSE_GOING_AWAY.into(), "no answer to pings".to_owned())))).await;
                    break;
                }
                if sink.send(Message::Ping(Vec::new())).await.is_err() { break; }
            }
            _ = expiry_check.tick() => {
                if viewer.get().is_some_and(|(_, exp)| *exp <= Utc::now()) {
                    let _ = sink.send(Message::Close(Some((CLOSE_FORBIDDEN.into(), "access token expired".to_owned())))).await;
                    break;
                }
            }
        }
    }
    metrics::gauge!("minigate_websocket_open").decrement(1.0);
}
