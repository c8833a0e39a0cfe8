use std::{sync::Arc, time::Duration};

use minigate_push::{app::AppPush, bus::Bus, events::Waker, wechat::WechatClient};
use minigate_store::Db;
use secrecy::SecretString;

use crate::auth::token::Tokens;

/// Everything resolvers need, built by the gateway and placed in the schema's data.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub tokens: Arc<Tokens>,
    pub wechat: WechatClient,
    /// FCM, APNs and Huawei.
    pub app_push: AppPush,
    pub secrets: Arc<dyn Secrets>,
    pub limiter: Arc<dyn RateLimiter>,
    /// The realtime bus behind subscriptions.
    pub bus: Bus,
    /// Wakes this process's outbox dispatcher when a transaction that wrote events commits.
    pub waker: Waker,
    /// Provider endpoints, merchants and order timings.
    pub payments: Arc<crate::payment::Payments>,
    /// Photo uploads and signed URLs; `None` where the service runs without photo storage.
    pub media: Option<minigate_media::service::Service>,
}

/// Resolves a secret reference stored in the database (`env:NAME`, `file:/path`) to its value.
/// Implemented by the gateway, the only crate that reads the environment.
pub trait Secrets: Send + Sync {
    fn resolve(&self, reference: &str) -> Result<SecretString, SecretError>;
}

#[derive(Debug, thiserror::Error)]
#[error("secret {reference} cannot be read: {reason}")]
pub struct SecretError {
    pub reference: String,
    pub reason: String,
}

/// A request budget shared across replicas (Redis) or kept in-process.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit on `key`; refuses once `limit` hits fell in the current `window`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RateLimited>;
}

/// Why a hit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimited {
    /// Over the budget; try again after this long.
    Exceeded { retry_after: Duration },
    /// The shared counter (Redis) cannot be reached: fail fast rather than run unmetered.
    Unavailable,
}
