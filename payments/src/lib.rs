//! # minigate-payments
//!
//! WeChat Pay API v3 and Alipay: provider clients and signatures, callback verification, the order
//! state machine, active query, refunds, bill parsing and reconciliation, and their tables
//! (DESIGN.md §4). The scan-to-pay and reconciliation issues fill it in; the foundation only gives
//! tenants the merchant identities that will sign their orders (see `tenant_wechat_pay` and
//! `tenant_alipay` in the migrations).
//!
//! A leaf: depends on `minigate-store` only, never on `push`, `media` or anything above.
