//! Tenants and their provider identities: mini-programs and official accounts, the WeChat Pay
//! merchant, the Alipay app. Only references to secrets are kept (`env:NAME`, `file:/path`).

pub mod db;
mod mutation;
mod object;
mod query;

pub use mutation::TenantMutation;
pub use object::{AlipayApp, Tenant, TenantApp, WechatPayMerchant};
pub use query::TenantQuery;
