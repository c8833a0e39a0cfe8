//! The daily job: after 10:00 Asia/Shanghai it makes the previous day's run for every tenant
//! with a configured provider, and runs whatever is due, trying again while the bill is not
//! there (every half hour) or after a failure (hourly), at most [`MAX_ATTEMPTS`] times. Each day
//! is guarded by its own job lock, so one replica runs it.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use minigate_payments::notification::Provider;
use minigate_store::{self as store, Id};

use super::reconcile;
use crate::{Deps, Result};
use minigate_payments::reconcile::db;

/// Providers publish the day's bill from about 09:00; looking from 10:00 spares most retries.
const START_AFTER: Option<NaiveTime> = NaiveTime::from_hms_opt(10, 0, 0);

/// Attempts before a run is left to people (about a day of half-hourly tries).
pub const MAX_ATTEMPTS: i32 = 48;

/// One pass of the job at `now`; returns how many runs it made progress on.
pub async fn run_due(d: &Deps, now: DateTime<Utc>) -> Result<usize> {
    let local = now.with_timezone(&minigate_store::BEIJING);
    if let Some(start) = START_AFTER
        && local.time() >= start
    {
        let yesterday = local.date_naive() - Duration::days(1);
        let mut c = d.db.conn().await?;
        for (tenant, provider) in configured(&mut c).await? {
            db::ensure_run(&mut c, tenant, provider.as_str(), yesterday, now).await?;
        }
    }
    let due = {
        let mut c = d.db.conn().await?;
        db::due_runs(&mut c, now, MAX_ATTEMPTS).await?
    };
    let mut done = 0;
    for r in due {
        let provider = match r.provider.as_str() {
            "wechat" => Provider::Wechat,
            _ => Provider::Alipay,
        };
        match reconcile(d, r.tenant_id, provider, r.bill_date, &|_| {}).await {
            Ok(run) => {
                tracing::info!(run = %run.id, status = %run.status, day = %run.bill_date, provider = %run.provider, differences = run.difference_count, "reconciliation pass");
                done += 1;
            }
            Err(crate::Error::ReconciliationRunning) => {}
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "reconciliation pass could not start")
            }
        }
    }
    Ok(done)
}

/// Every (tenant, provider) with a payment identity.
async fn configured(c: &mut store::Conn) -> Result<Vec<(Id, Provider)>> {
    let wechat: Vec<(Id,)> =
        store::fetch_all!(c, (Id,), "select tenant_id from tenant_wechat_pay")?;
    let alipay: Vec<(Id,)> = store::fetch_all!(c, (Id,), "select tenant_id from tenant_alipay")?;
    Ok(wechat
        .into_iter()
        .map(|(t,)| (t, Provider::Wechat))
        .chain(alipay.into_iter().map(|(t,)| (t, Provider::Alipay)))
        .collect())
}
