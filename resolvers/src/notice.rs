//! Notices: operators publish to the company, a branch or named users; people list theirs
//! (unread first), mark them read, and receive new ones live through `noticePublished`.

pub mod db;
mod mutation;
mod object;
mod query;
mod subscription;

pub use mutation::NoticeMutation;
pub use object::{Notice, NoticeAudience, NoticeDelivery};
pub use query::NoticeQuery;
pub use subscription::NoticeSubscription;

/// Event kinds on the bus.
pub const PUBLISHED: &str = "notice.published";
/// The user's branch or role changed: live subscriptions re-read what they may see.
pub const USER_CHANGED: &str = "user.changed";
