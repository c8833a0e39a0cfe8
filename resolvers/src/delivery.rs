//! Messages outside the app, as people see them: a signed-in mini-program user records what
//! `wx.requestSubscribeMessage` returned (each accepted template allows one subscribe message);
//! operators look at deliveries by status, channel, person and cause, and send a dead letter
//! again. The engine itself is `minigate_push::delivery`.

mod object;
mod sender;

pub use object::{DeliveryMutation, DeliveryQuery};
pub use sender::WechatSender;
