//! Where provider tokens wait between uses: in this process, or in Redis so that every replica
//! shares one (WeChat's stable token is per app, APNs wants one provider token per team, not
//! one per process), and the one way they are refreshed: once for all tasks of a process and all
//! replicas sharing the store ([`refresh_once`]).
//!
//! Keys name their provider: `wechat:access_token:{app id}`, `apns:provider_token:{team}:{key}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};

use crate::{Error, Result};

/// Cache of provider tokens by key. Cheap to clone: clones share the same cache.
#[derive(Clone)]
pub enum TokenStore {
    /// In this process only (one node, tests).
    Local(LocalTokens),
    /// In Redis, shared by all replicas.
    Redis(RedisTokens),
}

#[derive(Clone, Default)]
pub struct LocalTokens {
    entries: Arc<Mutex<HashMap<String, LocalEntry>>>,
}

struct LocalEntry {
    token: SecretString,
    valid_until: Instant,
}

#[derive(Clone)]
pub struct RedisTokens {
    conn: redis::aio::ConnectionManager,
    key_prefix: String,
}

impl TokenStore {
    pub fn local() -> Self {
        TokenStore::Local(LocalTokens::default())
    }

    /// `key_prefix` is prepended verbatim to every key (e.g. `"minigate:prod:"`).
    pub fn redis(conn: redis::aio::ConnectionManager, key_prefix: String) -> Self {
        TokenStore::Redis(RedisTokens { conn, key_prefix })
    }

    /// The cached token under `key`, if it has not yet reached its end of use.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<SecretString>> {
        match self {
            TokenStore::Local(local) => Ok(local.get_at(key, Instant::now())),
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                let token: Option<String> = conn.get(redis_key(&r.key_prefix, key)).await?;
                Ok(token.map(SecretString::from))
            }
        }
    }

    /// Keeps `token` for `ttl`; a zero `ttl` keeps nothing.
    pub(crate) async fn put(&self, key: &str, token: &SecretString, ttl: Duration) -> Result<()> {
        if ttl.is_zero() {
            return Ok(());
        }
        match self {
            TokenStore::Local(local) => {
                local.put_at(key, token, ttl, Instant::now());
                Ok(())
            }
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                // SET EX counts whole seconds; rounding up keeps a sub-second TTL from becoming 0.
                let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
                let () = conn
                    .set_ex(redis_key(&r.key_prefix, key), token.expose_secret(), secs)
                    .await?;
                Ok(())
            }
        }
    }
}

/// The right to refresh one token, held by one replica at a time (Redis), or by this
/// process (in-process store: the client's own mutex already serializes). Released by
/// [`RefreshLock::release`], or by its expiry if the holder dies.
pub(crate) struct RefreshLock {
    held: Option<(RedisTokens, String, String)>,
}

/// Deletes the lock only if it is still ours (it may have expired and been taken by another).
const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl TokenStore {
    /// Takes the refresh lock of `key` for at most `ttl`; `None` while another replica holds
    /// it.
    pub(crate) async fn try_refresh_lock(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<RefreshLock>> {
        match self {
            TokenStore::Local(_) => Ok(Some(RefreshLock { held: None })),
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                let key = lock_key(&r.key_prefix, key);
                let nonce = crate::wechat::nonce();
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&nonce)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut conn)
                    .await?;
                Ok(set.map(|_| RefreshLock {
                    held: Some((r.clone(), key, nonce)),
                }))
            }
        }
    }
}

impl RefreshLock {
    pub(crate) async fn release(self) {
        let Some((r, key, nonce)) = self.held else {
            return;
        };
        let mut conn = r.conn.clone();
        let released: redis::RedisResult<i64> = redis::Script::new(RELEASE_SCRIPT)
            .key(&key)
            .arg(&nonce)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            // It expires on its own; the next refresher waits for that at worst.
            tracing::warn!(error = %e, "releasing a token refresh lock failed");
        }
    }
}

impl LocalTokens {
    fn get_at(&self, key: &str, now: Instant) -> Option<SecretString> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some(e) if now < e.valid_until => Some(e.token.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put_at(&self, key: &str, token: &SecretString, ttl: Duration, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(
            key.to_owned(),
            LocalEntry {
                token: token.clone(),
                valid_until: now + ttl,
            },
        );
    }
}

/// The one place this crate's Redis keys for tokens are spelled.
fn redis_key(prefix: &str, key: &str) -> String {
    format!("{prefix}{key}")
}

fn lock_key(prefix: &str, key: &str) -> String {
    format!("{prefix}{key}:refresh")
}

/// How long one replica may hold the right to refresh a token (longer than a request).
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(15);
/// How long the others wait for its token before giving up, and how often they look.
const REFRESH_WAIT: Duration = Duration::from_secs(20);
const REFRESH_POLL: Duration = Duration::from_millis(50);

/// The token under `key`: the cached one unless it is `rejected` (the provider just refused it),
/// else a new one had once for every task and replica ([`Refresh`]), taking a token another one
/// cached meanwhile as already renewed.
pub(crate) async fn cached_or_fetched<F, Fut>(
    store: &TokenStore,
    local: &tokio::sync::Mutex<()>,
    key: &str,
    rejected: Option<&SecretString>,
    service: &'static str,
    fetch: F,
) -> Result<SecretString>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(SecretString, Duration)>>,
{
    if rejected.is_none()
        && let Some(token) = store.get(key).await?
    {
        return Ok(token);
    }
    Refresh {
        store,
        local,
        key,
        usable: |t: &SecretString| rejected.is_none_or(|r| r.expose_secret() != t.expose_secret()),
        service,
    }
    .run(fetch)
    .await
}

/// How one token is refreshed: where it is kept, which cached token is still good, and how a
/// new one is had (with how long to keep it).
pub(crate) struct Refresh<'a, U> {
    pub store: &'a TokenStore,
    /// Serializes refreshes in this process, so concurrent callers that miss the cache (or see
    /// the same token rejected) ask the provider once.
    pub local: &'a tokio::sync::Mutex<()>,
    pub key: &'a str,
    /// Whether a cached token may be used (not the one just rejected, not too old).
    pub usable: U,
    /// Names the provider in the error when another replica's refresh never finished.
    pub service: &'static str,
}

impl<U: Fn(&SecretString) -> bool> Refresh<'_, U> {
    /// A usable token, fetched once for all tasks of this process (the mutex) and all replicas
    /// sharing the Redis store (the refresh lock): the others wait for the token it caches.
    pub(crate) async fn run<F, Fut>(self, fetch: F) -> Result<SecretString>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration)>>,
    {
        let _guard = self.local.lock().await;
        let give_up = tokio::time::Instant::now() + REFRESH_WAIT;
        loop {
            if let Some(token) = self.store.get(self.key).await?
                && (self.usable)(&token)
            {
                return Ok(token);
            }
            if let Some(lock) = self
                .store
                .try_refresh_lock(self.key, REFRESH_LOCK_TTL)
                .await?
            {
                let result = self.fetch_holding_lock(fetch).await;
                lock.release().await;
                return result;
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(Error::Upstream {
                    service: self.service,
                    detail: "another replica's token refresh did not finish in time".to_owned(),
                    source: None,
                });
            }
            tokio::time::sleep(REFRESH_POLL).await;
        }
    }

    async fn fetch_holding_lock<F, Fut>(&self, fetch: F) -> Result<SecretString>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(SecretString, Duration)>>,
    {
        // Another replica may have cached a token between our look and the lock.
        if let Some(token) = self.store.get(self.key).await?
            && (self.usable)(&token)
        {
            return Ok(token);
        }
        let (token, ttl) = fetch().await?;
        self.store.put(self.key, &token, ttl).await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn local_token_is_served_until_its_ttl_runs_out() {
        let store = LocalTokens::default();
        let t0 = Instant::now();
        store.put_at("wxA", &secret("tok-1"), Duration::from_secs(6900), t0);

        let hit = store.get_at("wxA", t0 + Duration::from_secs(6899));
        assert_eq!(hit.as_ref().map(|s| s.expose_secret()), Some("tok-1"));
        assert!(
            store
                .get_at("wxA", t0 + Duration::from_secs(6900))
                .is_none()
        );
        // An expired entry is gone, not resurrected by an earlier clock reading.
        assert!(store.get_at("wxA", t0).is_none());
    }

    #[test]
    fn local_tokens_are_kept_per_app_and_replaced_by_a_newer_one() {
        let store = LocalTokens::default();
        let t0 = Instant::now();
        store.put_at("wxA", &secret("a-1"), Duration::from_secs(60), t0);
        store.put_at("wxB", &secret("b-1"), Duration::from_secs(60), t0);
        store.put_at("wxA", &secret("a-2"), Duration::from_secs(60), t0);

        let a = store.get_at("wxA", t0);
        let b = store.get_at("wxB", t0);
        assert_eq!(a.as_ref().map(|s| s.expose_secret()), Some("a-2"));
        assert_eq!(b.as_ref().map(|s| s.expose_secret()), Some("b-1"));
        assert!(store.get_at("wxC", t0).is_none());
    }

    #[tokio::test]
    async fn a_zero_ttl_keeps_nothing() {
        let store = TokenStore::local();
        store
            .put("wxA", &secret("tok"), Duration::ZERO)
            .await
            .unwrap();
        assert!(store.get("wxA").await.unwrap().is_none());
    }

    #[test]
    fn redis_key_puts_the_prefix_first() {
        assert_eq!(
            redis_key("minigate:test:", "wechat:access_token:wx123"),
            "minigate:test:wechat:access_token:wx123"
        );
        assert_eq!(
            lock_key("minigate:test:", "apns:provider_token:T:K"),
            "minigate:test:apns:provider_token:T:K:refresh"
        );
    }
}
