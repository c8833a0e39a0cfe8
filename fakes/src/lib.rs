//! # minigate-fakes
//!
//! Test infrastructure: local fake servers for the outside providers minigate talks to. Each
//! speaks its provider's documented wire format and checks requests the way the real one does
//! (methods, parameters, credentials, one-time codes, token validity), so tests catch a client
//! that the real provider would refuse. Tests script them (issue codes, inject failures, expire
//! tokens) and count the calls that reached them.
//!
//! Never a dependency of production code: crates use it under `[dev-dependencies]` only. Depends
//! on nothing of ours.

pub mod wechat;
