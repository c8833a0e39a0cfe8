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
    pub payments: PaymentsSection,
    pub media: MediaSection,
    pub app_push: AppPushSection,
}

/// Where the app push providers are (DESIGN.md §5). Each company's credentials with them are in
/// the database; tests point these at local fakes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AppPushSection {
    pub fcm_api_base: String,
    pub apns_production: String,
    pub apns_sandbox: String,
    pub huawei_oauth_url: String,
    pub huawei_api_base: String,
    pub timeout_ms: u64,
}

impl Default for AppPushSection {
    fn default() -> Self {
        Self {
            fcm_api_base: "https://fcm.googleapis.com".into(),
            apns_production: "https://api.push.apple.com".into(),
            apns_sandbox: "https://api.sandbox.push.apple.com".into(),
            huawei_oauth_url: "https://oauth-login.cloud.huawei.com/oauth2/v3/token".into(),
            huawei_api_base: "https://push-api.cloud.huawei.com".into(),
            timeout_ms: 10_000,
        }
    }
}

impl AppPushSection {
    pub fn client_config(&self) -> minigate_push::app::AppPushConfig {
        minigate_push::app::AppPushConfig {
            fcm_api_base: self.fcm_api_base.clone(),
            apns_production: self.apns_production.clone(),
            apns_sandbox: self.apns_sandbox.clone(),
            huawei_oauth_url: self.huawei_oauth_url.clone(),
            huawei_api_base: self.huawei_api_base.clone(),
            timeout: std::time::Duration::from_millis(self.timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WechatSection {
    pub api_base: String,
    pub timeout_ms: u64,
}

/// WeChat Pay and Alipay: where they are, where they call us back, how long a QR lives. The
/// merchants themselves (ids and key references) are per tenant, in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PaymentsSection {
    /// The WeChat Pay API v3 base. Unset: the built-in simulator in development, the real host
    /// in production.
    pub wechat_base: Option<String>,
    /// The Alipay gateway (`…/gateway.do`). Unset: the simulator in development, the real
    /// gateway in production.
    pub alipay_gateway: Option<String>,
    /// This service's public base URL as the providers reach it (https in production):
    /// notifications go to `{notify_base}/pay/wechat/notify` and `/pay/alipay/notify`. Unset in
    /// development: `http://{listen}`.
    pub notify_base: Option<String>,
    /// Whether the built-in simulator plays both providers (development only). Default: on in
    /// development when a provider base is unset.
    pub simulator: Option<bool>,
    /// How long a payment QR stays payable (the orders' `time_expire`).
    pub qr_minutes: u64,
    /// How long after creation an unpaid order is first queried at its provider.
    pub first_query_seconds: u64,
    /// The shortest gap between two queries of one order (it doubles, up to 5 minutes).
    pub query_every_seconds: u64,
    /// How often the active query looks for due orders.
    pub poll_seconds: u64,
    /// Timeout of each request to a provider.
    pub timeout_ms: u64,
}

impl Default for PaymentsSection {
    fn default() -> Self {
        Self {
            wechat_base: None,
            alipay_gateway: None,
            notify_base: None,
            simulator: None,
            qr_minutes: 30,
            first_query_seconds: 120,
            query_every_seconds: 30,
            poll_seconds: 5,
            timeout_ms: 10_000,
        }
    }
}

impl PaymentsSection {
    /// Whether the simulator runs (refused in production by [`Config::check`]).
    pub fn simulated(&self, production: bool) -> bool {
        self.simulator
            .unwrap_or(!production && (self.wechat_base.is_none() || self.alipay_gateway.is_none()))
    }
}

/// Photo uploads (DESIGN.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MediaSection {
    /// `local` (a folder, the default) or `s3` (an S3-compatible object store, for several
    /// replicas).
    pub storage: String,
    /// The folder of `local` storage. Unset: `data_dir/media`.
    pub folder: Option<PathBuf>,
    /// Uploads larger than this are refused while they stream in.
    pub max_bytes: u64,
    /// Photos whose header claims more pixels are refused before decoding.
    pub max_megapixels: u64,
    /// Photos decoded at once. Unset: one per core.
    pub workers: Option<usize>,
    /// How long an upload waits for a free worker before `MEDIA_BUSY`.
    pub queue_wait_ms: u64,
    /// How long a signed photo URL works.
    pub url_ttl_seconds: u64,
    /// The public origin phones load photos from (`https://api.example.com`). Unset in
    /// development: `http://{listen}`.
    pub public_base: Option<String>,
    /// Key of the URL signatures, the same on every replica. Unset: derived from `jwt_secret`.
    pub url_secret: Option<SecretString>,
    pub s3: S3Section,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            storage: "local".into(),
            folder: None,
            max_bytes: 20 * 1024 * 1024,
            max_megapixels: 100,
            workers: None,
            queue_wait_ms: 10_000,
            url_ttl_seconds: 3_600,
            public_base: None,
            url_secret: None,
            s3: S3Section::default(),
        }
    }
}

/// An S3-compatible bucket (path-style requests, Signature Version 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct S3Section {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Option<SecretString>,
    pub timeout_ms: u64,
}

impl Default for S3Section {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: None,
            timeout_ms: 10_000,
        }
    }
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
            payments: PaymentsSection::default(),
            media: MediaSection::default(),
            app_push: AppPushSection::default(),
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
            let a = &self.app_push;
            for (name, url) in [
                ("app_push.fcm_api_base", &a.fcm_api_base),
                ("app_push.apns_production", &a.apns_production),
                ("app_push.apns_sandbox", &a.apns_sandbox),
                ("app_push.huawei_oauth_url", &a.huawei_oauth_url),
                ("app_push.huawei_api_base", &a.huawei_api_base),
            ] {
                if !url.starts_with("https://") {
                    bail!("production mode needs an https:// {name}");
                }
            }
            if self.payments.simulator == Some(true) {
                bail!("the payment simulator is for development only; production mode refuses it");
            }
            let p = &self.payments;
            for (name, url) in [
                ("payments.wechat_base", &p.wechat_base),
                ("payments.alipay_gateway", &p.alipay_gateway),
            ] {
                if url.as_deref().is_some_and(|u| !u.starts_with("https://")) {
                    bail!("production mode needs an https:// {name}");
                }
            }
            if !p
                .notify_base
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
            {
                bail!(
                    "production mode needs payments.notify_base, the https:// address WeChat Pay and Alipay call back"
                );
            }
            if !self
                .media
                .public_base
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
            {
                bail!(
                    "production mode needs media.public_base, the https:// origin phones load photos from"
                );
            }
        }
        match self.media.storage.as_str() {
            "local" => {}
            "s3" => {
                let s3 = &self.media.s3;
                if s3.endpoint.is_empty()
                    || s3.bucket.is_empty()
                    || s3.access_key_id.is_empty()
                    || s3.secret_access_key.is_none()
                {
                    bail!(
                        "media.storage = \"s3\" needs media.s3.endpoint, bucket, access_key_id and secret_access_key"
                    );
                }
            }
            other => bail!("media.storage must be \"local\" or \"s3\", not {other:?}"),
        }
        if self.media.max_bytes == 0 || self.media.max_megapixels == 0 {
            bail!("media.max_bytes and media.max_megapixels must be positive");
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
            "listen = \"0.0.0.0:9000\"\nmode = \"production\"\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n[limits]\naliases = 5\n[payments]\nnotify_base = \"https://pay.example.com\"\n[media]\npublic_base = \"https://api.example.com\"\n",
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
    fn media_storage_must_be_complete_and_production_needs_an_https_photo_origin() {
        let mut s3 = Config::default();
        s3.media.storage = "s3".into();
        assert!(s3.check().is_err(), "s3 without endpoint and keys");
        s3.media.s3 = S3Section {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "photos".into(),
            access_key_id: "key".into(),
            secret_access_key: Some(SecretString::from("secret".to_owned())),
            ..S3Section::default()
        };
        s3.check().unwrap();
        let mut odd = Config::default();
        odd.media.storage = "ftp".into();
        assert!(odd.check().is_err());
        let mut zero = Config::default();
        zero.media.max_bytes = 0;
        assert!(zero.check().is_err());
        let mut prod = Config {
            mode: Mode::Production,
            jwt_secret: Some(SecretString::from(
                "0123456789abcdef0123456789abcdef".to_owned(),
            )),
            ..Config::default()
        };
        prod.payments.notify_base = Some("https://pay.example.com".into());
        assert!(prod.check().is_err(), "no media.public_base");
        prod.media.public_base = Some("http://api.example.com".into());
        assert!(prod.check().is_err(), "plain http photo origin");
        prod.media.public_base = Some("https://api.example.com".into());
        prod.check().unwrap();
        assert!(
            !format!("{s3:?}").contains("secret\""),
            "secrets must not reach Debug"
        );
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

    #[test]
    fn production_refuses_the_simulator_and_needs_an_https_callback_address() {
        let good = || {
            let mut c = Config {
                mode: Mode::Production,
                jwt_secret: Some(SecretString::from(
                    "0123456789abcdef0123456789abcdef".to_owned(),
                )),
                ..Config::default()
            };
            c.payments.notify_base = Some("https://pay.example.com".into());
            c.media.public_base = Some("https://api.example.com".into());
            c
        };
        good().check().unwrap();
        assert!(!good().payments.simulated(true));
        let mut sim = good();
        sim.payments.simulator = Some(true);
        assert!(sim.check().is_err());
        let mut plain = good();
        plain.payments.notify_base = Some("http://pay.example.com".into());
        assert!(plain.check().is_err());
        let mut none = good();
        none.payments.notify_base = None;
        assert!(none.check().is_err());
        let mut fake = good();
        fake.payments.wechat_base = Some("http://127.0.0.1:9".into());
        assert!(fake.check().is_err());
        // Development simulates whatever has no base URL.
        assert!(Config::default().payments.simulated(false));
    }
}
