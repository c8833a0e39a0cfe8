//! Configuration: a TOML file, then environment overrides (`MINIGATE_…`, nested keys joined with
//! `__`, e.g. `MINIGATE_LIMITS__BODY_BYTES`), then `DATABASE_URL` and `REDIS_URL`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::client_ip::TrustedProxies;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub listen: SocketAddr,
    pub mode: Mode,
    /// `sqlite:…` (the embedded default) or `postgres://…`.
    pub database_url: String,
    pub database_max_connections: u32,
    /// Unset: one node with in-process rate limits and caches.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so deployments can share a server.
    pub redis_prefix: String,
    /// Where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// HS256 key of access tokens, 32 bytes or more, the same on every replica. Required in
    /// production; in development one is generated into `data_dir` on first start.
    pub jwt_secret: Option<SecretString>,
    pub access_token_minutes: u64,
    pub refresh_token_days: u64,
    /// `json` (default) or `pretty`.
    pub log_format: String,
    /// Addresses (or CIDR ranges) of proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub shutdown_grace_seconds: u64,
    pub wechat: WechatSection,
    pub limits: LimitsSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WechatSection {
    pub api_base: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LimitsSection {
    pub depth: usize,
    pub complexity: usize,
    pub aliases: usize,
    pub body_bytes: usize,
    pub per_ip_per_minute: u32,
    pub per_user_per_minute: u32,
    /// Subscribe messages a user may send per minute over WebSocket.
    pub subscribes_per_minute: u32,
    /// How often the server pings a socket.
    pub ws_ping_seconds: u64,
    /// A socket silent this long (no pong, no message) is closed.
    pub ws_dead_after_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mode: Mode::Development,
            database_url: "sqlite:data/minigate.db".into(),
            database_max_connections: 16,
            redis_url: None,
            redis_prefix: "minigate:".into(),
            data_dir: PathBuf::from("data"),
            jwt_secret: None,
            access_token_minutes: 120,
            refresh_token_days: 30,
            log_format: "json".into(),
            trusted_proxies: Vec::new(),
            shutdown_grace_seconds: 20,
            wechat: WechatSection::default(),
            limits: LimitsSection::default(),
        }
    }
}

impl Default for WechatSection {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
            timeout_ms: 5_000,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        let s = minigate_schema::Limits::default();
        Self {
            depth: s.depth,
            complexity: s.complexity,
            aliases: s.aliases,
            body_bytes: 1024 * 1024,
            per_ip_per_minute: 1_200,
            per_user_per_minute: 600,
            subscribes_per_minute: 120,
            ws_ping_seconds: 15,
            ws_dead_after_seconds: 45,
        }
    }
}

impl Config {
    /// Reads `file` (if given) and the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        b = b.add_source(
            config::Environment::with_prefix("MINIGATE")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("trusted_proxies")
                .try_parsing(true),
        );
        for (var, key) in [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")] {
            if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                b = b.set_override(key, v)?;
            }
        }
        let cfg: Config = b
            .build()?
            .try_deserialize()
            .context("invalid configuration")?;
        Ok(cfg)
    }

    pub fn production(&self) -> bool {
        self.mode == Mode::Production
    }

    /// Refuses a production start that would be unsafe.
    pub fn check(&self) -> anyhow::Result<()> {
        TrustedProxies::parse(&self.trusted_proxies)?;
        if self.production() {
            let Some(secret) = &self.jwt_secret else {
                bail!("production mode needs jwt_secret (MINIGATE_JWT_SECRET), 32 bytes or more");
            };
            if secret.expose_secret().len() < 32 {
                bail!("jwt_secret must have 32 bytes or more");
            }
            if !self.wechat.api_base.starts_with("https://") {
                bail!("production mode needs an https:// WeChat API base");
            }
        }
        Ok(())
    }

    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_minutes * 60)
    }

    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_days * 86_400)
    }

    pub fn schema_limits(&self) -> minigate_schema::Limits {
        minigate_schema::Limits {
            depth: self.limits.depth,
            complexity: self.limits.complexity,
            aliases: self.limits.aliases,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_overrides_defaults_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("minigate-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("minigate.toml");
        std::fs::write(
            &f,
            "listen = \"0.0.0.0:9000\"\nmode = \"production\"\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n[limits]\naliases = 5\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(c.production());
        assert_eq!(c.limits.aliases, 5);
        assert_eq!(c.limits.depth, LimitsSection::default().depth);
        c.check().unwrap();
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "secrets must not reach Debug"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn production_without_a_jwt_secret_is_refused() {
        let c = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        assert!(c.check().is_err());
        let short = Config {
            mode: Mode::Production,
            jwt_secret: Some(SecretString::from("short".to_owned())),
            ..Config::default()
        };
        assert!(short.check().is_err());
        assert!(Config::default().check().is_ok());
    }
}
