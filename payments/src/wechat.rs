//! WeChat Pay API v3.

pub mod resource;
pub mod sign;
pub mod verify;
