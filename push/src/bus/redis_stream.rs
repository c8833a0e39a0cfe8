//! Events across replicas through one Redis stream.
//!
//! The dispatcher appends each event with the explicit stream id `0-<seq>`, so ids are the
//! events' own and a second append of the same event (a retried dispatch) is refused by Redis
//! and ignored here. Every replica tails the stream on a connection of its own (its reads
//! block) and hands what it reads to its local subscribers. The stream keeps the newest
//! [`KEEP`] events; after a Redis outage (Redis here keeps nothing on disk) each replica
//! catches up from the outbox, which is the durable log.

use std::{sync::Arc, time::Duration};

use redis::{
    AsyncCommands,
    aio::ConnectionManager,
    streams::{StreamReadOptions, StreamReadReply},
};

use super::Bus;
use crate::{Result, events, events::Event};

/// Events the stream keeps (approximately; Redis trims in whole nodes).
const KEEP: usize = 100_000;

pub(super) struct RedisStream {
    conn: ConnectionManager,
    key: String,
}

pub(super) fn stream_key(prefix: &str) -> String {
    format!("{prefix}bus:events")
}

impl RedisStream {
    pub(super) fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            key: stream_key(prefix),
        }
    }

    pub(super) async fn append(&self, events: &[Event]) -> Result<()> {
        let mut conn = self.conn.clone();
        for e in events {
            let body = serde_json::to_string(e).map_err(|err| crate::Error::Setup {
                reason: format!("event {} is not serializable: {err}", e.seq),
                source: None,
            })?;
            let added: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(KEEP)
                .arg(format!("0-{}", e.seq))
                .arg("e")
                .arg(body)
                .query_async(&mut conn)
                .await;
            match added {
                Ok(_) => {}
                // Already appended by an earlier attempt of this dispatch.
                Err(err) if err.to_string().contains("equal or smaller") => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// Tails the stream from after `start` for the life of the process.
pub(super) fn spawn_tailer(bus: Bus, client: redis::Client, start: i64) {
    let Some(key) = bus.inner.redis.as_ref().map(|r| r.key.clone()) else {
        return;
    };
    tokio::spawn(async move {
        let mut last = start;
        let mut healthy = true;
        loop {
            match tail(&bus, &client, &key, &mut last).await {
                Ok(()) => return,
                Err(e) => {
                    if healthy {
                        tracing::warn!(error = %e, "event stream: redis unavailable, will catch up from the outbox");
                        healthy = false;
                    }
                    // What was appended while we were away may be gone with the stream: every
                    // local subscriber reads it from the outbox instead.
                    bus.mark_all_lagged();
                    if let Ok(mut c) = bus.db().conn().await
                        && let Ok(n) = events::newest_seq(&mut c).await
                    {
                        last = last.max(n);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
}

async fn tail(bus: &Bus, client: &redis::Client, key: &str, last: &mut i64) -> Result<()> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    tracing::info!(after = *last, "event stream: tailing");
    let options = StreamReadOptions::default().block(2_000).count(500);
    loop {
        let reply: StreamReadReply = conn
            .xread_options(&[key], &[format!("0-{}", *last)], &options)
            .await?;
        for stream in reply.keys {
            for entry in stream.ids {
                let Some(redis::Value::BulkString(bytes)) = entry.map.get("e") else {
                    continue;
                };
                let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
                    tracing::error!(id = %entry.id, "event stream: unreadable entry skipped");
                    continue;
                };
                *last = (*last).max(event.seq);
                bus.fan_out(Arc::new(event));
            }
        }
    }
}
