//! Each tenant's provider identities with their keys read and parsed: cached, reloaded every
//! minute (a rotated key file takes effect without a restart) and on a miss, at most every few
//! seconds, so a flood of notifications naming unknown keys cannot turn into a flood of reloads.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use minigate_payments::{AlipayMerchant, WechatKeys, WechatMerchant};
use minigate_store::{Db, Id};
use secrecy::ExposeSecret;

use crate::{
    Error, Result, Secrets,
    tenant::db::{AlipayRow, WechatPayRow},
};

const FRESH_FOR: Duration = Duration::from_secs(60);
const MISS_RELOAD_EVERY: Duration = Duration::from_secs(5);
/// Platform certificates are downloaded again at most this often when an unknown serial shows up.
const DOWNLOAD_AT_MOST_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Snapshot {
    loaded_at: Option<Instant>,
    wechat: HashMap<Id, Arc<WechatMerchant>>,
    /// Key id or certificate serial → the merchants that accept it.
    by_serial: HashMap<String, Vec<Arc<WechatMerchant>>>,
    alipay: HashMap<Id, Arc<AlipayMerchant>>,
    alipay_by_app: HashMap<String, Arc<AlipayMerchant>>,
    /// Configured identities whose keys could not be read, described without secrets.
    problems: Vec<String>,
}

/// The lock's value; a panic elsewhere while it was held leaves whole values behind, so a
/// poisoned lock is used as it is.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Merchants {
    db: Db,
    secrets: Arc<dyn Secrets>,
    current: RwLock<Arc<Snapshot>>,
    reloading: tokio::sync::Mutex<()>,
    /// Platform certificates downloaded from WeChat Pay, per tenant (PEM text), added to the
    /// configured ones.
    downloaded: RwLock<HashMap<Id, String>>,
    last_download: tokio::sync::Mutex<Option<Instant>>,
}

impl Merchants {
    pub fn new(db: Db, secrets: Arc<dyn Secrets>) -> Self {
        Self {
            db,
            secrets,
            current: RwLock::new(Arc::new(Snapshot::default())),
            reloading: tokio::sync::Mutex::new(()),
            downloaded: RwLock::new(HashMap::new()),
            last_download: tokio::sync::Mutex::new(None),
        }
    }

    fn now(&self) -> Arc<Snapshot> {
        Arc::clone(&read(&self.current))
    }

    /// The snapshot, reloaded when stale, or on a `miss` when the last load is a few seconds old.
    async fn snapshot(&self, miss: bool) -> Result<Arc<Snapshot>> {
        let due = |s: &Snapshot| match s.loaded_at {
            None => true,
            Some(t) => t.elapsed() > FRESH_FOR || (miss && t.elapsed() > MISS_RELOAD_EVERY),
        };
        let s = self.now();
        if !due(&s) {
            return Ok(s);
        }
        let _one = self.reloading.lock().await;
        let s = self.now();
        if !due(&s) {
            return Ok(s);
        }
        let fresh = Arc::new(self.load().await?);
        *write(&self.current) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Forgets what was loaded (after a tenant's configuration changed).
    pub fn invalidate(&self) {
        *write(&self.current) = Arc::new(Snapshot::default());
    }

    pub async fn wechat(&self, tenant: Id) -> Result<Arc<WechatMerchant>> {
        for miss in [false, true] {
            if let Some(m) = self.snapshot(miss).await?.wechat.get(&tenant) {
                return Ok(Arc::clone(m));
            }
        }
        Err(Error::PaymentNotConfigured("wechat"))
    }

    pub async fn alipay(&self, tenant: Id) -> Result<Arc<AlipayMerchant>> {
        for miss in [false, true] {
            if let Some(m) = self.snapshot(miss).await?.alipay.get(&tenant) {
                return Ok(Arc::clone(m));
            }
        }
        Err(Error::PaymentNotConfigured("alipay"))
    }

    /// The merchants that accept signatures by `serial` (a WeChat Pay public key id or a
    /// platform certificate serial).
    pub async fn wechat_by_serial(&self, serial: &str) -> Result<Vec<Arc<WechatMerchant>>> {
        for miss in [false, true] {
            if let Some(m) = self.snapshot(miss).await?.by_serial.get(serial) {
                return Ok(m.clone());
            }
        }
        Ok(Vec::new())
    }

    pub async fn alipay_by_app(&self, app_id: &str) -> Result<Option<Arc<AlipayMerchant>>> {
        for miss in [false, true] {
            if let Some(m) = self.snapshot(miss).await?.alipay_by_app.get(app_id) {
                return Ok(Some(Arc::clone(m)));
            }
        }
        Ok(None)
    }

    /// Loads everything now and lists the identities whose keys cannot be used (for a
    /// production start, which refuses them).
    pub async fn problems(&self) -> Result<Vec<String>> {
        self.invalidate();
        Ok(self.snapshot(false).await?.problems.clone())
    }

    /// Downloads the platform certificates of every merchant verified with certificates and
    /// reloads; returns how many certificates were fetched. With `on_miss` (an unknown serial in
    /// a notification) at most once a minute; the periodic refresh always runs.
    pub async fn download_certificates(
        &self,
        api: &minigate_payments::wechat::client::WechatPayApi,
        on_miss: bool,
    ) -> Result<usize> {
        if on_miss {
            let mut last = self.last_download.lock().await;
            if last.is_some_and(|t| t.elapsed() < DOWNLOAD_AT_MOST_EVERY) {
                return Ok(0);
            }
            *last = Some(Instant::now());
        }
        let mut c = self.db.conn().await?;
        let tenants: Vec<(Id,)> = minigate_store::fetch_all!(
            &mut c,
            (Id,),
            "select tenant_id from tenant_wechat_pay where platform_certs_ref is not null"
        )?;
        drop(c);
        let mut fetched = 0;
        for (tenant,) in tenants {
            let m = match self.wechat(tenant).await {
                Ok(m) => m,
                Err(_) => continue,
            };
            match api.certificates(&m).await {
                Ok(pems) => {
                    fetched += pems.len();
                    let all = pems.join("\n");
                    write(&self.downloaded).insert(tenant, all);
                }
                Err(e) => {
                    tracing::warn!(%tenant, code = e.code(), error = %e, "platform certificates not downloaded");
                }
            }
        }
        self.invalidate();
        Ok(fetched)
    }

    async fn load(&self) -> Result<Snapshot> {
        let mut c = self.db.conn().await?;
        let wechat_rows: Vec<WechatPayRow> =
            minigate_store::fetch_all!(&mut c, WechatPayRow, "select * from tenant_wechat_pay")?;
        let alipay_rows: Vec<AlipayRow> =
            minigate_store::fetch_all!(&mut c, AlipayRow, "select * from tenant_alipay")?;
        drop(c);
        let mut s = Snapshot {
            loaded_at: Some(Instant::now()),
            ..Snapshot::default()
        };
        for r in &wechat_rows {
            match self.wechat_merchant(r) {
                Ok(m) => {
                    let m = Arc::new(m);
                    let serials = r.public_key_id.iter().cloned().chain(m.verifier.serials());
                    for serial in serials {
                        let list = s.by_serial.entry(serial).or_default();
                        if !list.iter().any(|x| x.tenant_id == m.tenant_id) {
                            list.push(Arc::clone(&m));
                        }
                    }
                    s.wechat.insert(r.tenant_id, m);
                }
                Err(e) => {
                    tracing::error!(tenant = %r.tenant_id, mch_id = %r.mch_id, error = %e, "WeChat Pay merchant unusable");
                    s.problems.push(format!(
                        "tenant {} WeChat Pay merchant {}: {e}",
                        r.tenant_id, r.mch_id
                    ));
                }
            }
        }
        for r in &alipay_rows {
            match self.alipay_merchant(r) {
                Ok(m) => {
                    let m = Arc::new(m);
                    s.alipay_by_app.insert(r.app_id.clone(), Arc::clone(&m));
                    s.alipay.insert(r.tenant_id, m);
                }
                Err(e) => {
                    tracing::error!(tenant = %r.tenant_id, app_id = %r.app_id, error = %e, "Alipay app unusable");
                    s.problems.push(format!(
                        "tenant {} Alipay app {}: {e}",
                        r.tenant_id, r.app_id
                    ));
                }
            }
        }
        Ok(s)
    }

    fn secret(&self, reference: &str) -> std::result::Result<String, String> {
        self.secrets
            .resolve(reference)
            .map(|s| s.expose_secret().to_owned())
            .map_err(|e| e.to_string())
    }

    fn wechat_merchant(&self, r: &WechatPayRow) -> std::result::Result<WechatMerchant, String> {
        let private_key = self.secret(&r.private_key_ref)?;
        let apiv3 = self.secret(&r.apiv3_key_ref)?;
        let public_key = match (&r.public_key_id, &r.public_key_ref) {
            (Some(id), Some(reference)) => Some((id.clone(), self.secret(reference)?)),
            _ => None,
        };
        let mut certs = r
            .platform_certs_ref
            .as_deref()
            .map(|reference| self.secret(reference))
            .transpose()?;
        if let Some(configured) = certs.as_mut() {
            let downloaded = read(&self.downloaded).get(&r.tenant_id).cloned();
            if let Some(more) = downloaded {
                configured.push('\n');
                configured.push_str(&more);
            }
        }
        WechatMerchant::new(
            r.tenant_id,
            &r.mch_id,
            &r.app_id,
            &WechatKeys {
                merchant_serial: &r.merchant_serial,
                private_key_pem: &private_key,
                apiv3_key: &apiv3,
                public_key: public_key.as_ref().map(|(i, p)| (i.as_str(), p.as_str())),
                platform_certificates: certs.as_deref(),
            },
        )
        .map_err(|e| e.to_string())
    }

    fn alipay_merchant(&self, r: &AlipayRow) -> std::result::Result<AlipayMerchant, String> {
        let private_key = self.secret(&r.private_key_ref)?;
        let alipay_key = self.secret(&r.alipay_public_key_ref)?;
        AlipayMerchant::new(r.tenant_id, &r.app_id, &private_key, &alipay_key)
            .map_err(|e| e.to_string())
    }
}
