//! # minigate-resolvers
//!
//! GraphQL types together with their resolvers, grouped by feature (async-graphql requires a
//! type's resolvers to live in the crate that defines it): sign-in and sessions (`auth`), the
//! tenant's own configuration (`tenant`), the registry of branches, vehicles and drivers
//! (`registry`), with authorization, data loaders and their SQL.
//!
//! Depends on `payments`, `push`, `media` and `store`; never on `schema` or `gateway`, and never
//! on poem. Reads no environment: everything arrives in [`Deps`].

pub mod audit;
pub mod auth;
pub mod billing;
pub mod delivery;
mod deps;
pub mod device;
pub mod driver;
pub mod error;
mod idempotency;
pub mod media;
pub mod notice;
pub mod payment;
pub mod photos;
pub mod pii;
pub mod reconcile;
pub mod registry;
pub mod search;
pub mod staff;
pub mod tenant;
pub mod validate;
mod viewer;
pub mod violation;
pub mod workflow;

pub use deps::{Deps, RateLimited, RateLimiter, SecretError, Secrets};
pub use error::{Error, Result};
pub use viewer::{Role, Viewer};

/// Per-request data the gateway attaches to every GraphQL request (HTTP or WebSocket).
pub fn request_data(deps: &Deps, viewer: Option<&Viewer>) -> registry::Loaders {
    registry::Loaders::new(deps.db.clone(), viewer.map(|v| v.tenant_id))
}

/// Codes of payment providers and orders that payment operations surface to clients.
pub fn payment_codes() -> &'static [(&'static str, &'static str)] {
    minigate_payments::CODES
}

/// Codes of photo uploads, signed URLs and media references.
pub fn media_codes() -> &'static [(&'static str, &'static str)] {
    minigate_media::CODES
}

/// Codes of the WeChat client that sign-in surfaces to clients.
pub fn push_codes() -> &'static [(&'static str, &'static str)] {
    minigate_push::CODES
}
