//! WeChat Pay API v3.

pub mod bills;
pub mod client;
pub mod notify;
pub mod refunds;
pub mod resource;
pub mod sign;
pub mod verify;
