//! # minigate-gateway
//!
//! The `minigate` binary: configuration, HTTP routes (GraphQL over HTTP, health, metrics),
//! sign-in tokens on requests, rate limits, the CLI. The only crate that knows poem, reads the
//! environment or touches global state; it builds everything else and passes it in.

pub mod app;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod ratelimit;
pub mod secrets;

/// Every error code a client can meet, for `mobile-contracts/error-codes.json`.
pub fn error_codes() -> Vec<(&'static str, &'static str)> {
    let mut all = minigate_schema::all_codes();
    all.extend_from_slice(http::CODES);
    all.sort_by_key(|(c, _)| *c);
    all.dedup_by_key(|(c, _)| *c);
    all
}

/// The contract files as they should be on disk: (file name, contents).
pub fn contract_files() -> anyhow::Result<Vec<(&'static str, String)>> {
    let codes: serde_json::Map<String, serde_json::Value> = error_codes()
        .into_iter()
        .map(|(c, d)| (c.to_owned(), serde_json::Value::from(d)))
        .collect();
    Ok(vec![
        ("schema.graphql", minigate_schema::sdl()),
        (
            "error-codes.json",
            format!("{}\n", serde_json::to_string_pretty(&codes)?),
        ),
    ])
}
