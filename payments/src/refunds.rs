//! Refunds of paid orders: one row per refund, several partial refunds adding up to at most what
//! was paid, each with its own state machine (`PROCESSING → SUCCESS | ABNORMAL | CLOSED`;
//! `ABNORMAL` may still end `SUCCESS` or `CLOSED`). The order's status follows from its refunds:
//! `REFUNDING` while one is under way, then `PARTIALLY_REFUNDED` or `REFUNDED`, or back to what it
//! was when none succeeded. Every change happens with the order locked, and a successful refund
//! writes its (negative) ledger entry in the same transaction.

mod apply;
pub mod db;

pub use apply::{RefundApplied, apply_report, order_status, reserve, settle_order};
pub use db::RefundRow;
