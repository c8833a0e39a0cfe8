//! The development payment simulator: the fake WeChat Pay and Alipay of `minigate-fakes`, mounted
//! in this service under `/simulator/…`, so the whole flow (QR, payment, signed callback) can be
//! tried with no merchant account. `minigate tenant simulate-payments` gives a tenant development
//! keys; the simulator knows every tenant provisioned that way. Production mode refuses it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use minigate_fakes::{
    alipay::{AlipayApp, FakeAlipay},
    keys::RsaPem,
    wechat_pay::{FakeWechatPay, WechatPayMerchant, WechatPaySigner},
};
use minigate_resolvers::tenant::db as tenant_db;
use minigate_store::{Db, Id};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    payments::{SIMULATOR_ALIPAY, SIMULATOR_WECHAT, public_base},
};

/// Both simulated providers.
pub struct Simulator {
    pub wechat: FakeWechatPay,
    pub alipay: FakeAlipay,
}

/// A tenant's simulated identities; the keys sit beside it as PEM files.
#[derive(Serialize, Deserialize)]
struct Identity {
    tenant: String,
    mch_id: String,
    app_id: String,
    merchant_serial: String,
    public_key_id: String,
    alipay_app_id: String,
}

const IDENTITY: &str = "identity.json";

fn root(config: &Config) -> PathBuf {
    config.data_dir.join("simulator")
}

/// The simulator, with every provisioned tenant, when the configuration asks for it.
pub fn start(config: &Config) -> anyhow::Result<Option<Simulator>> {
    if !config.payments.simulated(config.production()) {
        return Ok(None);
    }
    let base = public_base(config);
    let sim = Simulator {
        wechat: FakeWechatPay::new(&format!("{base}{SIMULATOR_WECHAT}")),
        alipay: FakeAlipay::new(&format!("{base}{SIMULATOR_ALIPAY}")),
    };
    let dirs = match std::fs::read_dir(root(config)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(sim)),
        Err(e) => return Err(e).context("reading the simulator's folder"),
    };
    for dir in dirs {
        let dir = dir?.path();
        if dir.join(IDENTITY).is_file() {
            register(&sim, &dir)
                .with_context(|| format!("simulator identity in {}", dir.display()))?;
        }
    }
    tracing::warn!(
        wechat = %format!("{base}{SIMULATOR_WECHAT}"),
        alipay = %format!("{base}{SIMULATOR_ALIPAY}"),
        "development mode: payments go to the built-in simulator"
    );
    Ok(Some(sim))
}

fn read(dir: &Path, name: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {name}"))
}

fn register(sim: &Simulator, dir: &Path) -> anyhow::Result<()> {
    let id: Identity = serde_json::from_str(&read(dir, IDENTITY)?)?;
    sim.wechat.add_merchant(WechatPayMerchant {
        mch_id: id.mch_id,
        app_ids: vec![id.app_id],
        merchant_serial: id.merchant_serial,
        merchant_public_pem: read(dir, "merchant_pub.pem")?,
        apiv3_key: read(dir, "apiv3.key")?,
        signer: WechatPaySigner::PublicKey {
            id: id.public_key_id,
            private_pem: read(dir, "wxpay_key.pem")?,
        },
    });
    sim.alipay.add_app(AlipayApp {
        app_id: id.alipay_app_id,
        app_public_pem: read(dir, "alipay_app_pub.pem")?,
        alipay_private_pem: read(dir, "alipay_key.pem")?,
    });
    Ok(())
}

/// Digits derived from the tenant id, so each tenant's simulated merchant ids are its own.
fn digits(tenant: Id, n: usize) -> String {
    tenant
        .to_string()
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| char::from(b'0' + (b % 10)))
        .take(n)
        .collect()
}

/// Gives `slug` development keys and points its WeChat Pay merchant and Alipay app at them.
/// Returns the folder holding the keys.
pub async fn provision(
    config: &Config,
    db: &Db,
    slug: &str,
    tenant: Id,
) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !config.production(),
        "the payment simulator is for development only"
    );
    let dir = root(config).join(slug);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mut c = db.conn().await?;
    let app_id = tenant_db::list_apps(&mut c, tenant)
        .await?
        .into_iter()
        .find(|a| a.kind == tenant_db::MINIPROGRAM)
        .map_or_else(|| format!("wxsim{}", digits(tenant, 13)), |a| a.app_id);
    drop(c);
    let id = Identity {
        tenant: slug.to_owned(),
        mch_id: format!("19{}", digits(tenant, 8)),
        app_id,
        merchant_serial: format!("5157{}", digits(tenant, 36)),
        public_key_id: format!("PUB_KEY_ID_01{}", digits(tenant, 14)),
        alipay_app_id: format!("2021{}", digits(tenant, 12)),
    };
    let merchant = RsaPem::generate();
    let wxpay = RsaPem::generate();
    let app = RsaPem::generate();
    let alipay = RsaPem::generate();
    let apiv3: String = digits(tenant, 32)
        .chars()
        .zip(uuid::Uuid::new_v4().simple().to_string().chars())
        .map(|(a, b)| if a < '5' { b.to_ascii_uppercase() } else { b })
        .collect();
    let mut refs = std::collections::HashMap::new();
    for (name, text) in [
        ("merchant_key.pem", merchant.private_pem.as_str()),
        ("merchant_pub.pem", merchant.public_pem.as_str()),
        ("apiv3.key", apiv3.as_str()),
        ("wxpay_key.pem", wxpay.private_pem.as_str()),
        ("wxpay_pub.pem", wxpay.public_pem.as_str()),
        ("alipay_app_key.pem", app.private_pem.as_str()),
        ("alipay_app_pub.pem", app.public_pem.as_str()),
        ("alipay_key.pem", alipay.private_pem.as_str()),
        ("alipay_pub.pem", alipay.public_pem.as_str()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        refs.insert(name, format!("file:{}", path.display()));
    }
    let r = |name: &str| refs.get(name).cloned().unwrap_or_default();
    let mut tx = db.begin().await?;
    tenant_db::set_wechat_pay(
        &mut tx,
        &tenant_db::WechatPayRow {
            tenant_id: tenant,
            mch_id: id.mch_id.clone(),
            sub_mch_id: String::new(),
            app_id: id.app_id.clone(),
            merchant_serial: id.merchant_serial.clone(),
            private_key_ref: r("merchant_key.pem"),
            apiv3_key_ref: r("apiv3.key"),
            public_key_id: Some(id.public_key_id.clone()),
            public_key_ref: Some(r("wxpay_pub.pem")),
            platform_certs_ref: None,
        },
    )
    .await?;
    tenant_db::set_alipay(
        &mut tx,
        &tenant_db::AlipayRow {
            tenant_id: tenant,
            app_id: id.alipay_app_id.clone(),
            private_key_ref: r("alipay_app_key.pem"),
            alipay_public_key_ref: r("alipay_pub.pem"),
        },
    )
    .await?;
    tx.commit().await?;
    std::fs::write(dir.join(IDENTITY), serde_json::to_string_pretty(&id)?)?;
    Ok(dir)
}
