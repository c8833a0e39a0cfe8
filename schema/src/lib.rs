//! # minigate-schema
//!
//! The composition root and the client contract: the merged query and mutation roots, the
//! limits every transport applies (depth, complexity, aliases), the stable error codes on every
//! error, and the SDL exported to `mobile-contracts/`.
//!
//! Thin on purpose: types and resolvers live in `minigate-resolvers`. Knows nothing of HTTP.

#![recursion_limit = "256"]

mod codes;
mod limits;

use async_graphql::{MergedObject, MergedSubscription, SDLExportOptions, Schema};
use minigate_resolvers::{
    Deps,
    auth::{AuthMutation, AuthQuery},
    billing::{BillingMutation, BillingQuery},
    delivery::{
        DeliveryMutation, DeliveryQuery, FollowerSyncMutation, FollowerSyncQuery,
        PushConfigMutation, PushConfigQuery,
    },
    device::{AppPushProviderMutation, AppPushProviderQuery, DeviceMutation, DeviceQuery},
    driver::{AccidentSubscription, ReportMutation, ReportQuery},
    media::MediaQuery,
    notice::{NoticeMutation, NoticeQuery, NoticeSubscription},
    payment::{PaymentMutation, PaymentQuery, PaymentSubscription},
    reconcile::{ReconciliationMutation, ReconciliationQuery},
    registry::{RegistryMutation, RegistryQuery},
    search::{SearchMutation, SearchQuery},
    staff::{StaffMutation, StaffQuery, StaffSubscription},
    tenant::{TenantMutation, TenantQuery},
    violation::{ViolationMutation, ViolationQuery},
};

pub use codes::{ErrorCodes, REQUEST_ERROR_CODES, all_codes, assign_codes};
pub use limits::{AliasLimit, Limits, check_document, uses_introspection};

#[derive(MergedObject, Default)]
pub struct Query(
    AuthQuery,
    TenantQuery,
    RegistryQuery,
    NoticeQuery,
    BillingQuery,
    PaymentQuery,
    ReconciliationQuery,
    MediaQuery,
    DeliveryQuery,
    FollowerSyncQuery,
    PushConfigQuery,
    ViolationQuery,
    DeviceQuery,
    AppPushProviderQuery,
    ReportQuery,
    StaffQuery,
    SearchQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    TenantMutation,
    RegistryMutation,
    NoticeMutation,
    BillingMutation,
    PaymentMutation,
    ReconciliationMutation,
    DeliveryMutation,
    FollowerSyncMutation,
    PushConfigMutation,
    ViolationMutation,
    DeviceMutation,
    AppPushProviderMutation,
    ReportMutation,
    StaffMutation,
    SearchMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    NoticeSubscription,
    PaymentSubscription,
    AccidentSubscription,
    StaffSubscription,
);

pub type MinigateSchema = Schema<Query, Mutation, Subscription>;

/// The schema for requests over HTTP, where the transport checks each document with
/// [`check_document`] and gives errors their codes with [`assign_codes`]. It has no extensions on
/// purpose: with any extension registered, async-graphql routes every field of every object
/// through the extension chain (a boxed future per field and extension), which made a 50-row
/// list several times slower.
pub fn build(deps: Deps, limits: &Limits) -> MinigateSchema {
    configure(limits).data(deps).finish()
}

/// The schema for WebSocket connections, whose messages the transport does not see parsed: the
/// alias limit and the error codes run as extensions. Subscription events resolve few fields,
/// so the per-field cost of extensions does not matter there.
pub fn build_for_sockets(deps: Deps, limits: &Limits) -> MinigateSchema {
    configure(limits)
        .extension(AliasLimit::new(limits.aliases))
        .extension(ErrorCodes)
        .data(deps)
        .finish()
}

fn configure(limits: &Limits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let mut b = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(limits.depth)
    .limit_complexity(limits.complexity)
    .limit_recursive_depth(limits.recursive_depth)
    .limit_directives(limits.directives);
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
