//! Messages outside the app, as people see them: a signed-in mini-program user records what
//! `wx.requestSubscribeMessage` returned (each accepted template allows one subscribe message);
//! operators look at deliveries by status, channel, person and cause, and send a dead letter
//! again. The engine itself is `minigate_push::delivery`.

mod app_sender;
pub mod config;
pub mod followers;
mod memo;
pub mod oa_callback;
mod object;
pub mod route;
mod sender;
pub mod sources;

pub use app_sender::message as app_message;
pub use config::{PushConfigMutation, PushConfigQuery};
pub use followers::{FollowerSyncMutation, FollowerSyncQuery};
pub use object::{DeliveryMutation, DeliveryQuery};
pub use sender::ChannelSender;
