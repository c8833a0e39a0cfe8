//! Prometheus metrics: requests and latency by operation, errors by code, the database pool.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The process-wide recorder (every app in the process reports to it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histogram samples are kept until folded into buckets; without a scrape they would
            // pile up, so fold them regularly.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// A label value clients influence (operation names) is cut to a safe, bounded form.
pub fn operation_label(name: Option<&str>) -> String {
    match name {
        Some(n)
            if !n.is_empty()
                && n.len() <= 64
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            n.to_owned()
        }
        Some(_) => "invalid_name".to_owned(),
        None => "anonymous".to_owned(),
    }
}

pub fn graphql_request(operation: &str, kind: &'static str, seconds: f64, error_codes: &[String]) {
    metrics::counter!("minigate_graphql_requests_total", "operation" => operation.to_owned(), "kind" => kind)
        .increment(1);
    metrics::histogram!("minigate_graphql_request_duration_seconds", "operation" => operation.to_owned())
        .record(seconds);
    for code in error_codes {
        metrics::counter!("minigate_graphql_errors_total", "code" => code.clone()).increment(1);
    }
}

pub fn http_request(route: &'static str, status: u16, seconds: f64) {
    metrics::counter!("minigate_http_requests_total", "route" => route, "status" => status.to_string()).increment(1);
    metrics::histogram!("minigate_http_request_duration_seconds", "route" => route).record(seconds);
}

pub fn pool(stats: minigate_store::PoolStats) {
    metrics::gauge!("minigate_db_pool_connections").set(f64::from(stats.size));
    metrics::gauge!("minigate_db_pool_idle_connections")
        .set(u32::try_from(stats.idle).map_or(f64::MAX, f64::from));
}
