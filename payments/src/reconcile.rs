//! Reconciliation's own tables and its comparison of a bill row with what we hold: runs (one per
//! tenant, provider and business day, with a pass per re-run), the differences people resolve,
//! and the ids a pass found in the bill. The pass itself, which asks providers and writes events,
//! is composed by the caller (`minigate-resolvers`' `reconcile`).

pub mod compare;
pub mod db;
