//! WeChat Pay API v3.

pub mod client;
pub mod notify;
pub mod resource;
pub mod sign;
pub mod verify;
