//! Fixed-window request budgets. With Redis every replica counts in the same place; without it
//! each process counts for itself (one node).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use minigate_resolvers::{RateLimited, RateLimiter};
use redis::aio::ConnectionManager;

/// Counts in this process.
#[derive(Default)]
pub struct LocalLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

#[async_trait::async_trait]
impl RateLimiter for LocalLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RateLimited> {
        let now = Instant::now();
        let mut map = self.windows.lock().map_err(|_| RateLimited::Unavailable)?;
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let retry_after = window.saturating_sub(now.duration_since(entry.0));
            return Err(RateLimited::Exceeded { retry_after });
        }
        Ok(())
    }
}

/// Counts in Redis, shared by every replica. One round trip per hit: the script increments,
/// starts the window's expiry on the first hit, and returns the count with the time left.
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}rl:"),
            script: redis::Script::new(
                r"local n = redis.call('INCR', KEYS[1])
                  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
                  local ttl = redis.call('PTTL', KEYS[1])
                  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
                  return {n, ttl}",
            ),
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RateLimited> {
        let mut conn = self.conn.clone();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let (n, ttl_ms): (u64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(window_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "rate limiter: redis unavailable");
                RateLimited::Unavailable
            })?;
        if n > u64::from(limit) {
            let ms = u64::try_from(ttl_ms.max(0)).unwrap_or(0);
            return Err(RateLimited::Exceeded {
                retry_after: Duration::from_millis(ms),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_window_refuses_past_the_limit_and_reopens() {
        let l = LocalLimiter::default();
        let w = Duration::from_millis(200);
        for _ in 0..3 {
            l.hit("k", 3, w).await.unwrap();
        }
        let Err(RateLimited::Exceeded { retry_after }) = l.hit("k", 3, w).await else {
            panic!("fourth hit must be refused");
        };
        assert!(retry_after <= w);
        l.hit("other", 3, w).await.unwrap();
        tokio::time::sleep(w).await;
        l.hit("k", 3, w).await.unwrap();
    }
}
