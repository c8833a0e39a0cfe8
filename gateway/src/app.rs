//! Builds the service from its configuration and serves it.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lc_rs::rand::SecureRandom;
use base64::{Engine, engine::general_purpose::STANDARD};
use minigate_push::{
    bus::Bus,
    dispatch::Dispatcher,
    events::Waker,
    wechat::{TokenStore, WechatClient, WechatConfig},
};
use minigate_resolvers::{
    Deps, RateLimiter,
    auth::token::{TokenConfig, Tokens},
};
use minigate_schema::MinigateSchema;
use minigate_store::{Db, DbOptions};
use poem::{
    EndpointExt, Route,
    endpoint::make_sync,
    get,
    listener::{Acceptor, Listener, TcpListener},
    web::Html,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::SecretString;

use crate::{
    client_ip::TrustedProxies,
    config::Config,
    http::{graphql, health, media, oa, observe::observe, pay, ws},
    ratelimit::{LocalLimiter, RedisLimiter},
    secrets::EnvAndFiles,
};

/// Everything a request handler can reach.
pub struct State {
    pub config: Config,
    pub db: Db,
    pub redis: Option<ConnectionManager>,
    pub deps: Deps,
    /// Requests over HTTP (introspection refused per request to mobile clients in production).
    pub schema: MinigateSchema,
    /// WebSocket connections (introspection off in production).
    pub socket_schema: MinigateSchema,
    pub proxies: TrustedProxies,
    /// Set when shutdown begins: open sockets are closed with "going away" so their clients
    /// reconnect to another replica instead of holding the drain open.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The development payment simulator, when payments are simulated.
    pub simulator: Option<crate::simulator::Simulator>,
    /// Photo uploads and the signed URLs that serve them.
    pub media: Option<minigate_media::service::Service>,
}

/// Connects, migrates and assembles the service.
pub async fn build(config: Config) -> anyhow::Result<Arc<State>> {
    config.check()?;
    crate::metrics::handle();
    if let Some(path) = config.database_url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if let Some(parent) = std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let db = Db::connect_lazy(
        &config.database_url,
        &DbOptions {
            max_connections: config.database_max_connections,
            acquire_timeout: Duration::from_secs(3),
        },
    )?;
    db.migrate().await.context("applying migrations")?;

    let (redis, redis_client) = match &config.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).context("redis url")?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)));
            let conn = ConnectionManager::new_with_config(client.clone(), cfg)
                .await
                .context("connecting to redis")?;
            (Some(conn), Some(client))
        }
        None => (None, None),
    };
    let bus = match (&redis, redis_client) {
        (Some(conn), Some(client)) => {
            Bus::redis(db.clone(), client, conn.clone(), &config.redis_prefix).await?
        }
        _ => Bus::local(db.clone()),
    };
    let token_store = match &redis {
        Some(c) => TokenStore::redis(c.clone(), config.redis_prefix.clone()),
        None => TokenStore::local(),
    };
    let limiter: Arc<dyn RateLimiter> = match &redis {
        Some(c) => Arc::new(RedisLimiter::new(c.clone(), &config.redis_prefix)),
        None => Arc::new(LocalLimiter::default()),
    };
    let app_push = minigate_push::app::AppPush::new(
        &config.app_push.client_config(),
        token_store.clone(),
        minigate_push::app::system_clock(),
    )?;
    let wechat = WechatClient::new(
        WechatConfig {
            api_base: config.wechat.api_base.clone(),
            timeout: Duration::from_millis(config.wechat.timeout_ms),
        },
        token_store,
    )?;
    let jwt_secret = jwt_secret(&config)?;
    let media = crate::media::build(&config, &db, &jwt_secret)?;
    if let Err(e) = media.storage().check().await {
        // Photos are one feature among many: the service starts, uploads answer
        // MEDIA_STORAGE_UNAVAILABLE until the store answers (a wrong key shows here first).
        tracing::error!(error = %e, "photo storage cannot be used at start");
    }
    if let Err(e) = media.publish_stored_bytes().await {
        tracing::warn!(error = %e, "photo storage size not read at start");
    }
    let tokens = Tokens::new(TokenConfig {
        secret: jwt_secret,
        access_ttl: config.access_ttl(),
        refresh_ttl: config.refresh_ttl(),
        reuse_grace: Duration::from_secs(60),
    })?;
    let secrets: Arc<dyn minigate_resolvers::Secrets> = Arc::new(EnvAndFiles);
    let payments = crate::payments::build(&config, &db, &secrets)?;
    let deps = Deps {
        db: db.clone(),
        tokens: Arc::new(tokens),
        wechat,
        app_push,
        secrets,
        limiter,
        bus,
        waker: Waker::default(),
        payments: Arc::new(payments),
        media: Some(media.clone()),
    };
    if config.production() {
        let problems = deps.payments.merchants.problems().await?;
        if !problems.is_empty() {
            anyhow::bail!(
                "production mode refuses to start with unusable payment keys:\n  {}",
                problems.join("\n  ")
            );
        }
    }
    let mut limits = config.schema_limits();
    limits.introspection = true;
    let schema = minigate_schema::build(deps.clone(), &limits);
    // Sockets carry mobile clients: no introspection for them in production.
    limits.introspection = !config.production();
    let socket_schema = minigate_schema::build_for_sockets(deps.clone(), &limits);
    let proxies = TrustedProxies::parse(&config.trusted_proxies)?;
    let simulator = crate::simulator::start(&config)?;
    Ok(Arc::new(State {
        config,
        db,
        redis,
        deps,
        schema,
        socket_schema,
        proxies,
        closing: tokio::sync::watch::Sender::new(false),
        simulator,
        media: Some(media),
    }))
}

/// The configured secret, or in development one kept in `data_dir/jwt.secret` so sessions
/// survive a restart.
fn jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.clone());
    }
    let path = config.data_dir.join("jwt.secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(existing.trim().to_owned()));
    }
    let mut bytes = [0u8; 48];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let secret = STANDARD.encode(bytes);
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::warn!(path = %path.display(), "development mode: generated a JWT secret");
    Ok(SecretString::from(secret))
}

/// All routes with their middleware.
pub fn routes(state: Arc<State>) -> impl poem::Endpoint {
    let get_or_upgrade = poem::endpoint::make(|req: poem::Request| async move {
        use poem::{Endpoint, IntoResponse};
        let upgrade = req
            .header(poem::http::header::UPGRADE)
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        let answer = if upgrade {
            ws::upgrade.call(req).await.map(IntoResponse::into_response)
        } else {
            graphql::get
                .call(req)
                .await
                .map(IntoResponse::into_response)
        };
        answer.unwrap_or_else(|e| e.into_response())
    });
    let mut route = Route::new()
        .at("/graphql", get(get_or_upgrade).post(graphql::post))
        .at("/graphql/ws", get(ws::upgrade))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::prometheus))
        .at("/pay/wechat/notify", poem::post(pay::wechat_notify))
        .at(
            "/pay/wechat/refund-notify",
            poem::post(pay::wechat_refund_notify),
        )
        .at("/pay/alipay/notify", poem::post(pay::alipay_notify))
        .at(
            "/wechat/oa/callback/:app_id",
            get(oa::verify).post(oa::receive),
        )
        .at("/media", poem::post(media::upload))
        .at("/media/:id/:variant", get(media::serve));
    if !state.config.production() {
        let page = async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .finish();
        route = route.at("/graphiql", get(make_sync(move |_| Html(page.clone()))));
    }
    if let Some(sim) = &state.simulator {
        route = route
            .nest(crate::payments::SIMULATOR_WECHAT, sim.wechat.endpoint())
            .nest(crate::payments::SIMULATOR_ALIPAY, sim.alipay.endpoint());
    }
    route.data(state).around(observe)
}

/// A bound listener, so callers (and tests) know the address before serving.
pub async fn bind(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(impl Acceptor, std::net::SocketAddr)> {
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener has no address"))?;
    Ok((acceptor, local))
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish
/// (up to the configured grace period).
/// How often the reconciliation job looks for runs to start or retry.
const RECONCILIATION_EVERY_SECS: u64 = 300;
/// How often follower syncs nobody runs are looked for.
const FOLLOWER_SYNC_EVERY_SECS: u64 = 10;
/// How often rent bills due tomorrow are looked for (each reminder is sent once).
const RENT_DUE_EVERY_SECS: u64 = 600;

pub async fn serve(
    state: Arc<State>,
    acceptor: impl Acceptor + 'static,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    let db = state.db.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dispatcher = Dispatcher::new(
        state.db.clone(),
        state.deps.bus.clone(),
        state.deps.waker.clone(),
    );
    let mut stopped_too = stopped.clone();
    let mut stopped_three = stopped.clone();
    let stopped_four = stopped.clone();
    let mut stopped_five = stopped.clone();
    let mut stopped_rent = stopped.clone();
    let worker = tokio::spawn(dispatcher.run(async move {
        let mut stopped = stopped;
        let _ = stopped.changed().await;
    }));
    let active_query = tokio::spawn(crate::payments::active_query(
        state.deps.clone(),
        Duration::from_secs(state.config.payments.poll_seconds.max(1)),
        async move {
            let _ = stopped_too.changed().await;
        },
    ));
    let reconciliation = tokio::spawn(crate::payments::reconciliation(
        state.deps.clone(),
        Duration::from_secs(RECONCILIATION_EVERY_SECS),
        async move {
            let _ = stopped_three.changed().await;
        },
    ));
    // Messages outside the app: workers in every process (each claims its own batches, so one
    // claims while another sends); any number of replicas share the queue.
    let (settings, workers) = worker_settings(state.db.backend());
    let sender: Arc<dyn minigate_push::delivery::Sender> = Arc::new(
        minigate_resolvers::delivery::ChannelSender::new(state.deps.clone()),
    );
    let deliveries = futures_util::future::join_all((0..workers).map(|_| {
        let mut stopped = stopped_four.clone();
        tokio::spawn(
            minigate_push::delivery::Worker::new(
                state.db.clone(),
                format!(
                    "minigate-{}-{}",
                    std::process::id(),
                    minigate_store::Id::new()
                ),
                Arc::clone(&sender),
                settings.clone(),
            )
            .run(async move {
                let _ = stopped.changed().await;
            }),
        )
    }));
    // Official-account follower syncs started here or elsewhere, or cut off, go on.
    let follower_syncs = tokio::spawn(minigate_resolvers::delivery::followers::keep_resuming(
        state.deps.clone(),
        Duration::from_secs(FOLLOWER_SYNC_EVERY_SECS),
        async move {
            let _ = stopped_five.changed().await;
        },
    ));
    // From 09:00 Beijing time, reminders of tomorrow's rent (one replica at a time).
    let rent_due = tokio::spawn(minigate_resolvers::delivery::sources::rent_due_loop(
        state.db.clone(),
        Duration::from_secs(RENT_DUE_EVERY_SECS),
        async move {
            let _ = stopped_rent.changed().await;
        },
    ));
    let closing = state.clone();
    let signal = async move {
        shutdown.await;
        let _ = closing.closing.send(true);
    };
    let served = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes(state), signal, Some(grace))
        .await;
    let _ = stop.send(true);
    let _ = worker.await;
    let _ = active_query.await;
    let _ = reconciliation.await;
    let _ = deliveries.await;
    let _ = follower_syncs.await;
    let _ = rent_due.await;
    db.close().await;
    served?;
    Ok(())
}

/// The delivery workers' settings and how many run. On PostgreSQL two, each claiming 500 rows
/// with 64 sends in flight: one claims and settles while the other's sends are in flight (one
/// worker waits on its own claims; a third adds nothing on 2 cores; 200 rows and 32 in flight
/// sent a fifth fewer a second: `bench/RESULTS.md` §6). On SQLite (8 connections, one writer) one, with 4
/// sends in flight: 32, each reading its recipient on a connection of its own, left requests
/// waiting for a connection while a big notice went out.
fn worker_settings(
    backend: minigate_store::Backend,
) -> (minigate_push::delivery::WorkerSettings, usize) {
    let settings = minigate_push::delivery::WorkerSettings::default();
    match backend {
        minigate_store::Backend::Sqlite => (
            minigate_push::delivery::WorkerSettings {
                concurrency: 4,
                ..settings
            },
            1,
        ),
        minigate_store::Backend::Postgres => (
            minigate_push::delivery::WorkerSettings {
                batch: 500,
                concurrency: 64,
                ..settings
            },
            2,
        ),
    }
}
