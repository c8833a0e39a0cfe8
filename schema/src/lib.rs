//! # minigate-schema
//!
//! The composition root and the client contract: the merged query and mutation roots, the
//! limits every transport applies (depth, complexity, aliases), the stable error codes on every
//! error, and the SDL exported to `mobile-contracts/`.
//!
//! Thin on purpose: types and resolvers live in `minigate-resolvers`. Knows nothing of HTTP.

mod codes;
mod limits;

use async_graphql::{EmptySubscription, MergedObject, SDLExportOptions, Schema};
use minigate_resolvers::{
    Deps,
    auth::{AuthMutation, AuthQuery},
    registry::{RegistryMutation, RegistryQuery},
    tenant::{TenantMutation, TenantQuery},
};

pub use codes::{ErrorCodes, REQUEST_ERROR_CODES, all_codes};
pub use limits::{AliasLimit, Limits, uses_introspection};

#[derive(MergedObject, Default)]
pub struct Query(AuthQuery, TenantQuery, RegistryQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(AuthMutation, TenantMutation, RegistryMutation);

pub type MinigateSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with its limits and extensions; `deps` becomes schema data.
pub fn build(deps: Deps, limits: &Limits) -> MinigateSchema {
    configure(
        Schema::build(Query::default(), Mutation::default(), EmptySubscription),
        limits,
    )
    .data(deps)
    .finish()
}

fn configure(
    builder: async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription>,
    limits: &Limits,
) -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
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
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl_with_options(
            SDLExportOptions::new()
                .sorted_fields()
                .sorted_arguments()
                .sorted_enum_items(),
        )
}
