//! Photo storage and the upload service, built from `[media]`.

use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::hmac;
use minigate_media::{
    image::Limits,
    service::{Service, Settings},
    storage::{S3Config, Storage},
    url::UrlSigner,
};
use minigate_store::Db;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;

/// The storage `[media]` names. Nothing is sent to an object store yet: see [`check`].
pub fn storage(config: &Config) -> anyhow::Result<Storage> {
    let m = &config.media;
    let storage = match m.storage.as_str() {
        "s3" => {
            let s3 = &m.s3;
            let secret = s3
                .secret_access_key
                .clone()
                .context("media.s3.secret_access_key is missing")?;
            Storage::s3(S3Config {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: secret,
                timeout: Duration::from_millis(s3.timeout_ms.max(1)),
            })?
        }
        _ => Storage::local(
            m.folder
                .clone()
                .unwrap_or_else(|| config.data_dir.join("media")),
        )?,
    };
    Ok(storage)
}

/// The upload service: storage, limits, the decoding pool and the URL signer.
pub fn build(config: &Config, db: &Db, jwt_secret: &SecretString) -> anyhow::Result<Service> {
    let m = &config.media;
    let storage = storage(config)?;
    let base = m
        .public_base
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let signer = UrlSigner::new(
        &url_key(m.url_secret.as_ref(), jwt_secret),
        &base,
        Duration::from_secs(m.url_ttl_seconds.clamp(60, 7 * 86_400)),
    );
    let workers = m.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZero::get)
            .unwrap_or(2)
    });
    let limits = Limits {
        max_pixels: m.max_megapixels.saturating_mul(1_000_000),
        ..Limits::default()
    };
    let settings = Settings {
        max_bytes: m.max_bytes,
        limits,
        workers,
        queue_wait: Duration::from_millis(m.queue_wait_ms),
        temp_dir: config.data_dir.join("uploads"),
    };
    Ok(Service::new(db.clone(), storage, signer, settings)?)
}

/// The URL key: the configured one, or one derived from the JWT secret (never the JWT key
/// itself, so a leaked photo URL says nothing about tokens).
fn url_key(configured: Option<&SecretString>, jwt_secret: &SecretString) -> Vec<u8> {
    match configured {
        Some(s) => s.expose_secret().as_bytes().to_vec(),
        None => {
            let k = hmac::Key::new(hmac::HMAC_SHA256, jwt_secret.expose_secret().as_bytes());
            hmac::sign(&k, b"minigate media url signatures v1")
                .as_ref()
                .to_vec()
        }
    }
}
