//! # minigate-schema
//!
//! The composition root and the client contract: the merged query and mutation roots, the
//! limits every transport applies (depth, complexity, aliases), the stable error codes on every
//! error, and the SDL exported to `mobile-contracts/`.
//!
//! Thin on purpose: types and resolvers live in `minigate-resolvers`. Knows nothing of HTTP.

mod codes;
mod limits;

use async_graphql::{MergedObject, MergedSubscription, SDLExportOptions, Schema};
use minigate_resolvers::{
    Deps,
    auth::{AuthMutation, AuthQuery},
    notice::{NoticeMutation, NoticeQuery, NoticeSubscription},
    registry::{RegistryMutation, RegistryQuery},
    tenant::{TenantMutation, TenantQuery},
};

pub use codes::{ErrorCodes, REQUEST_ERROR_CODES, all_codes};
pub use limits::{AliasLimit, Limits, uses_introspection};

#[derive(MergedObject, Default)]
pub struct Query(AuthQuery, TenantQuery, RegistryQuery, NoticeQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    TenantMutation,
    RegistryMutation,
    NoticeMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(NoticeSubscription);

pub type MinigateSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema with its limits and extensions; `deps` becomes schema data.
pub fn build(deps: Deps, limits: &Limits) -> MinigateSchema {
    configure(
        Schema::build(
            Query::default(),
            Mutation::default(),
            Subscription::default(),
        ),
        limits,
    )
    .data(deps)
    .finish()
}

fn configure(
    builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
    limits: &Limits,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let mut b = builder
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity)
        .limit_recursive_depth(limits.recursive_depth)
        .limit_directives(limits.directives)
        .extension(AliasLimit::new(limits.aliases))
        .extension(ErrorCodes);
    if !limits.introspection {
        b = b.disable_introspection();
    }
    b
}

/// The schema in SDL, fields, arguments and enum values sorted, so the exported contract only
/// changes when the API does.
pub fn sdl() -> String {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .finish()
    .sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
