//! An official account's followers, which template messages go to: who follows (by the
//! account's openid) and their unionid, which ties them to the person who signed in to the
//! mini-program.
//!
//! Two sources keep them: the account's callback (`oa_callback`: follow and unfollow events as
//! they happen) and the follower sync here, which reads WeChat's whole list (`user/get` pages of
//! up to 10,000, each described 100 at a time by `user/info/batchget`) to fill in followers from
//! before the callback was set up, their unionids, and whatever callbacks were lost. A complete
//! sync lets go of followers it did not list.

pub mod db;
mod object;
pub mod sync;

pub use object::{FollowerSync, FollowerSyncMutation, FollowerSyncQuery};
pub use sync::{Step, SyncSettings, keep_resuming, resume_due, run, start, step};
