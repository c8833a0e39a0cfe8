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
pub mod media;
pub mod metrics;
pub mod payments;
pub mod ratelimit;
pub mod secrets;
pub mod simulator;

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

#[cfg(test)]
mod contract_tests {
    /// The exported contract must match the code: clients build against these files.
    #[test]
    fn mobile_contracts_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mobile-contracts");
        for (name, expected) in super::contract_files().unwrap() {
            let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                on_disk == expected,
                "mobile-contracts/{name} is out of date: run `cargo run -p minigate-gateway -- schema` and commit the result"
            );
        }
    }

    #[test]
    fn every_error_code_is_listed_once_and_screaming_snake() {
        let codes = super::error_codes();
        for (c, d) in &codes {
            assert!(
                c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
                "{c}"
            );
            assert!(!d.is_empty());
        }
        let mut names: Vec<_> = codes.iter().map(|(c, _)| *c).collect();
        names.dedup();
        assert_eq!(names.len(), codes.len());
    }
}
