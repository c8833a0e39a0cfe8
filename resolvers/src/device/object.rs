use async_graphql::{Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_push::app::{Environment, Provider};

use super::db::DeviceRow;

/// Who carries the app's notifications: Firebase (Android with Google services), Apple, or
/// Huawei (Android phones in mainland China).
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PushPlatform {
    Fcm,
    Apns,
    Huawei,
}

impl PushPlatform {
    pub fn provider(self) -> Provider {
        match self {
            PushPlatform::Fcm => Provider::Fcm,
            PushPlatform::Apns => Provider::Apns,
            PushPlatform::Huawei => Provider::Huawei,
        }
    }

    pub fn of(provider: Provider) -> PushPlatform {
        match provider {
            Provider::Fcm => PushPlatform::Fcm,
            Provider::Apns => PushPlatform::Apns,
            Provider::Huawei => PushPlatform::Huawei,
        }
    }
}

/// APNs' two worlds: development builds get sandbox tokens, App Store and TestFlight builds
/// production ones. FCM and Huawei tokens are production.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PushEnvironment {
    Sandbox,
    Production,
}

impl PushEnvironment {
    pub fn environment(self) -> Environment {
        match self {
            PushEnvironment::Sandbox => Environment::Sandbox,
            PushEnvironment::Production => Environment::Production,
        }
    }
}

/// One registered device of the signed-in person. The token itself is not shown back.
#[derive(SimpleObject, Debug, Clone)]
pub struct Device {
    pub id: ID,
    pub platform: PushPlatform,
    pub environment: PushEnvironment,
    /// The token's last six characters, to tell devices apart.
    pub token_tail: String,
    pub registered_at: DateTime<Utc>,
    /// When the app last registered it.
    pub seen_at: DateTime<Utc>,
}

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Device {
        let tail_start = r.token.char_indices().rev().nth(5).map_or(0, |(i, _)| i);
        Device {
            id: ID(r.id.to_string()),
            platform: PushPlatform::of(r.provider().unwrap_or(Provider::Fcm)),
            environment: if r.environment().unwrap_or(Environment::Production)
                == Environment::Sandbox
            {
                PushEnvironment::Sandbox
            } else {
                PushEnvironment::Production
            },
            token_tail: r.token[tail_start..].to_owned(),
            registered_at: r.created_at,
            seen_at: r.seen_at,
        }
    }
}
