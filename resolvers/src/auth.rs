//! Sign-in (WeChat, password), phone binding, rotating refresh sessions, `me`.

pub mod db;
mod mutation;
mod object;
pub mod password;
mod query;
pub mod session;
pub mod token;

pub use mutation::{AuthMutation, create_password_user};
pub use object::{AuthPayload, User};
pub use query::AuthQuery;
