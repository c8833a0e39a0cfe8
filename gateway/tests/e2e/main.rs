//! End-to-end tests: the real `minigate` app on 127.0.0.1:0, talked to over HTTP, with WeChat
//! played by a local fake server. Every test runs on the embedded defaults (SQLite, in-process
//! limits) and, when `DATABASE_URL` is set, on PostgreSQL with Redis (`REDIS_URL`) too.

// A failed unwrap is a failed test; the workspace ban on it is for production code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

mod app_push;
mod auth;
mod billing;
mod binary;
mod deliveries;
mod http;
mod import;
mod limits;
mod media;
mod oa_followers;
mod outage;
mod pay_callbacks;
mod paying;
mod payments;
mod push_sources;
mod realtime;
mod reconciliation;
mod refunds;
mod registry;
mod reports;
mod simulator;
mod staff;
mod tenancy;
