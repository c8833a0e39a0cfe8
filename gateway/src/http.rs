//! HTTP routes. Only this crate knows poem.

pub mod graphql;
pub mod health;
pub mod media;
pub mod oa;
pub mod observe;
pub mod pay;
mod reply;
pub mod ws;

pub use reply::error_body;

/// Codes the HTTP layer itself can answer with, for the client contract.
pub const CODES: &[(&str, &str)] = &[
    (
        "BAD_REQUEST",
        "The HTTP request is not a GraphQL request (bad JSON, no query, wrong variables type).",
    ),
    (
        "INTROSPECTION_DISABLED",
        "Introspection is off in production, except for operators.",
    ),
    (
        "METHOD_NOT_ALLOWED",
        "Mutations are only accepted over POST.",
    ),
    (
        "NOT_ACCEPTABLE",
        "The Accept header names neither application/graphql-response+json nor application/json.",
    ),
    (
        "PAYLOAD_TOO_LARGE",
        "The request body is larger than the configured limit.",
    ),
    (
        "UNSUPPORTED_MEDIA_TYPE",
        "POST bodies must be application/json.",
    ),
];
