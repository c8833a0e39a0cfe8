//! Phone apps' push addresses: the app registers its device token with the provider and
//! environment it came from (`registerDevice`, at every start) and drops it at sign-out
//! (`unregisterDevice`); operators give their company's credentials with each provider
//! (`setAppPushProvider`). The delivery engine's `APP` channel sends to every device a person
//! registered (`delivery::AppSender`), and removes a token the provider disowns for that provider
//! and environment only.

pub mod db;
mod mutation;
mod object;
pub mod providers;

pub use mutation::{DeviceMutation, DeviceQuery};
pub use object::{Device, PushEnvironment, PushPlatform};
pub use providers::{AppPushProviderMutation, AppPushProviderQuery};
