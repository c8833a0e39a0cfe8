//! Payments at startup: the provider endpoints (real, configured, or the development
//! simulator), the merchants cache, and the active-query worker.

use std::{future::Future, sync::Arc, time::Duration};

use minigate_payments::{alipay::client::AlipayApi, wechat::client::WechatPayApi};
use minigate_resolvers::{
    Deps, Secrets,
    payment::{Merchants, PaymentSettings, Payments, refund, sync},
    reconcile,
};
use minigate_store::Db;

use crate::config::Config;

/// Where the simulator is mounted, relative to this service.
pub const SIMULATOR_WECHAT: &str = "/simulator/wechatpay";
pub const SIMULATOR_ALIPAY: &str = "/simulator/alipay";

/// This service as the providers (and the simulator) reach it.
pub fn public_base(config: &Config) -> String {
    config
        .payments
        .notify_base
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned()
}

pub fn build(config: &Config, db: &Db, secrets: &Arc<dyn Secrets>) -> anyhow::Result<Payments> {
    let p = &config.payments;
    let http = minigate_payments::http::client(Duration::from_millis(p.timeout_ms))?;
    let simulated = p.simulated(config.production());
    let base = public_base(config);
    let wechat_base = p.wechat_base.clone().unwrap_or_else(|| {
        if simulated {
            format!("{base}{SIMULATOR_WECHAT}")
        } else {
            minigate_payments::wechat::client::DEFAULT_BASE.to_owned()
        }
    });
    let alipay_gateway = p.alipay_gateway.clone().unwrap_or_else(|| {
        if simulated {
            format!("{base}{SIMULATOR_ALIPAY}/gateway.do")
        } else {
            minigate_payments::alipay::client::DEFAULT_GATEWAY.to_owned()
        }
    });
    // Absurd settings are held to ten years rather than overflow the dates they are added to.
    let secs = |s: u64| {
        let most = chrono::Duration::days(3650);
        i64::try_from(s)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .map_or(most, |d| d.min(most))
    };
    Ok(Payments {
        wechat: WechatPayApi::new(http.clone(), &wechat_base),
        alipay: AlipayApi::new(http, &alipay_gateway),
        merchants: Merchants::new(db.clone(), Arc::clone(secrets)),
        settings: PaymentSettings {
            notify_base: base,
            qr_lifetime: secs(p.qr_minutes.saturating_mul(60)),
            first_query_after: secs(p.first_query_seconds),
            query_every: secs(p.query_every_seconds.max(1)),
        },
    })
}

/// How often platform certificates are downloaded for merchants verified with them.
const CERTIFICATES_EVERY: Duration = Duration::from_secs(12 * 3600);

/// Queries due orders every `every` until `stop` resolves (one replica at a time does a pass),
/// and downloads platform certificates at start and twice a day.
pub async fn active_query(deps: Deps, every: Duration, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut certificates = tokio::time::interval(CERTIFICATES_EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = certificates.tick() => {
                let p = &deps.payments;
                if let Err(e) = p.merchants.download_certificates(&p.wechat, false).await {
                    tracing::warn!(code = e.code(), error = %e, "platform certificate refresh failed");
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        match sync::run_due(&deps, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(orders = n, "active query pass"),
            Err(e) => tracing::warn!(code = e.code(), error = %e, "active query pass failed"),
        }
        match refund::run_due(&deps, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(refunds = n, "refund pass"),
            Err(e) => tracing::warn!(code = e.code(), error = %e, "refund pass failed"),
        }
    }
}

/// Runs the daily reconciliation job every `every` until `stop` resolves: it starts yesterday's
/// runs after 10:00 Asia/Shanghai and retries those still waiting for their bill.
pub async fn reconciliation(deps: Deps, every: Duration, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match reconcile::job::run_due(&deps, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "reconciliation job"),
            Err(e) => tracing::warn!(code = e.code(), error = %e, "reconciliation job failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSecrets;
    impl Secrets for NoSecrets {
        fn resolve(
            &self,
            reference: &str,
        ) -> Result<secrecy::SecretString, minigate_resolvers::SecretError> {
            Err(minigate_resolvers::SecretError {
                reference: reference.into(),
                reason: "none in this test".into(),
            })
        }
    }

    #[tokio::test]
    async fn absurd_timings_are_held_to_ten_years_instead_of_overflowing() {
        let mut c = Config::default();
        c.payments.qr_minutes = u64::MAX;
        c.payments.first_query_seconds = u64::MAX;
        c.payments.query_every_seconds = 1 << 62;
        let db = Db::connect_lazy("sqlite::memory:", &Default::default()).unwrap();
        let secrets: Arc<dyn Secrets> = Arc::new(NoSecrets);
        let p = build(&c, &db, &secrets).unwrap();
        let ten_years = chrono::Duration::days(3650);
        assert_eq!(p.settings.qr_lifetime, ten_years);
        assert_eq!(p.settings.first_query_after, ten_years);
        assert_eq!(p.settings.query_every, ten_years);
        assert!(
            chrono::Utc::now()
                .checked_add_signed(p.settings.qr_lifetime)
                .is_some()
        );
    }
}
