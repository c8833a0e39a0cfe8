//! Where access tokens wait between uses: in this process, or in Redis so that every replica
//! shares one token per app (WeChat's stable token is per app, not per process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};

use crate::Result;

/// Cache of WeChat access tokens keyed by app id. Cheap to clone: clones share the same cache.
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

    /// The cached token for `app_id`, if it has not yet reached its end of use.
    pub(crate) async fn get(&self, app_id: &str) -> Result<Option<SecretString>> {
        match self {
            TokenStore::Local(local) => Ok(local.get_at(app_id, Instant::now())),
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                let token: Option<String> = conn.get(redis_key(&r.key_prefix, app_id)).await?;
                Ok(token.map(SecretString::from))
            }
        }
    }

    /// Keeps `token` for `ttl`; a zero `ttl` keeps nothing.
    pub(crate) async fn put(
        &self,
        app_id: &str,
        token: &SecretString,
        ttl: Duration,
    ) -> Result<()> {
        if ttl.is_zero() {
            return Ok(());
        }
        match self {
            TokenStore::Local(local) => {
                local.put_at(app_id, token, ttl, Instant::now());
                Ok(())
            }
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                // SET EX counts whole seconds; rounding up keeps a sub-second TTL from becoming 0.
                let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
                let () = conn
                    .set_ex(
                        redis_key(&r.key_prefix, app_id),
                        token.expose_secret(),
                        secs,
                    )
                    .await?;
                Ok(())
            }
        }
    }
}

/// The right to refresh one app's token, held by one replica at a time (Redis), or by this
/// process (in-process store: the client's own mutex already serializes). Released by
/// [`RefreshLock::release`], or by its expiry if the holder dies.
pub(crate) struct RefreshLock {
    held: Option<(RedisTokens, String, String)>,
}

/// Deletes the lock only if it is still ours (it may have expired and been taken by another).
const RELEASE_SCRIPT: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl TokenStore {
    /// Takes the refresh lock of `app_id` for at most `ttl`; `None` while another replica holds
    /// it.
    pub(crate) async fn try_refresh_lock(
        &self,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Option<RefreshLock>> {
        match self {
            TokenStore::Local(_) => Ok(Some(RefreshLock { held: None })),
            TokenStore::Redis(r) => {
                let mut conn = r.conn.clone();
                let key = lock_key(&r.key_prefix, app_id);
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
            tracing::warn!(error = %e, "releasing the access-token refresh lock failed");
        }
    }
}

impl LocalTokens {
    fn get_at(&self, app_id: &str, now: Instant) -> Option<SecretString> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(app_id) {
            Some(e) if now < e.valid_until => Some(e.token.clone()),
            Some(_) => {
                entries.remove(app_id);
                None
            }
            None => None,
        }
    }

    fn put_at(&self, app_id: &str, token: &SecretString, ttl: Duration, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(
            app_id.to_owned(),
            LocalEntry {
                token: token.clone(),
                valid_until: now + ttl,
            },
        );
    }
}

/// The one place this crate's Redis keys for access tokens are spelled.
fn redis_key(prefix: &str, app_id: &str) -> String {
    format!("{prefix}wechat:access_token:{app_id}")
}

fn lock_key(prefix: &str, app_id: &str) -> String {
    format!("{prefix}wechat:access_token_refresh:{app_id}")
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
            redis_key("minigate:test:", "wx123"),
            "minigate:test:wechat:access_token:wx123"
        );
    }
}
