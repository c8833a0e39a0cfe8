//! `/healthz` (the process is alive), `/readyz` (the database, and Redis when configured, answer;
//! never a payment or push provider), `/metrics`.

use std::{sync::Arc, time::Duration};

use poem::{Response, http::StatusCode, web::Data};

use crate::{app::State, metrics};

#[poem::handler]
pub fn healthz() -> &'static str {
    "ok"
}

#[poem::handler]
pub async fn readyz(state: Data<&Arc<State>>) -> Response {
    let wait = Duration::from_secs(2);
    let database = matches!(
        tokio::time::timeout(wait, state.db.ping()).await,
        Ok(Ok(()))
    );
    let redis = match &state.redis {
        None => None,
        Some(conn) => {
            let mut conn = conn.clone();
            let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
            Some(matches!(tokio::time::timeout(wait, ping).await, Ok(Ok(_))))
        }
    };
    let ready = database && redis.unwrap_or(true);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut body = serde_json::json!({ "database": word(database) });
    if let Some(r) = redis {
        body["redis"] = word(r).into();
    }
    Response::builder()
        .status(if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        })
        .content_type("application/json")
        .body(body.to_string())
}

#[poem::handler]
pub fn prometheus(state: Data<&Arc<State>>) -> Response {
    metrics::pool(state.db.pool_stats());
    ::metrics::gauge!("minigate_subscriptions_live")
        .set(u32::try_from(state.deps.bus.subscriptions()).map_or(f64::MAX, f64::from));
    match metrics::handle() {
        Some(h) => Response::builder()
            .content_type("text/plain; version=0.0.4")
            .body(h.render()),
        None => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body("metrics recorder unavailable"),
    }
}
