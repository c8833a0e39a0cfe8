use async_graphql::{Context, Object};
use chrono::Utc;

use super::{
    Device, PushEnvironment, PushPlatform,
    db::{self},
};
use crate::{
    Error, Result,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct DeviceMutation;

#[derive(Default)]
pub struct DeviceQuery;

/// The longest token any provider issues, with room to spare (FCM about 160 characters, Huawei
/// about 130, APNs 64 hex digits).
const MAX_TOKEN_CHARS: usize = 4096;

/// A token as the provider issued it: printable ASCII without spaces; for APNs, hex digits (an
/// even number, 64 today; Apple says the length may grow).
fn check_token(platform: PushPlatform, token: &str) -> Result<String> {
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(Error::invalid("token", "1 to 4096 characters"));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid("token", "printable ASCII without spaces"));
    }
    if platform == PushPlatform::Apns
        && (!token.len().is_multiple_of(2)
            || token.len() < 64
            || !token.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(Error::invalid(
            "token",
            "an APNs device token is hex digits, 64 or more",
        ));
    }
    if platform == PushPlatform::Apns {
        // Apple's tokens are case-insensitive hex; one spelling keeps one row per device.
        return Ok(token.to_ascii_lowercase());
    }
    Ok(token.to_owned())
}

fn check_environment(platform: PushPlatform, environment: PushEnvironment) -> Result<()> {
    if platform != PushPlatform::Apns && environment == PushEnvironment::Sandbox {
        return Err(Error::invalid(
            "environment",
            "only APNs has a sandbox; FCM and Huawei tokens are PRODUCTION",
        ));
    }
    Ok(())
}

#[Object]
impl DeviceMutation {
    /// Registers this app install's push token for the signed-in person (apps call it at every
    /// start: a token known already is marked seen, one registered by someone else moves to
    /// this person). The newest ten devices per person are kept.
    async fn register_device(
        &self,
        ctx: &Context<'_>,
        platform: PushPlatform,
        token: String,
        #[graphql(desc = "PRODUCTION when left out")] environment: Option<PushEnvironment>,
    ) -> Result<Device> {
        let environment = environment.unwrap_or(PushEnvironment::Production);
        let v = viewer(ctx)?;
        let token = check_token(platform, &token)?;
        check_environment(platform, environment)?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let row = db::register(
            &mut tx,
            v.tenant_id,
            v.user_id,
            platform.provider(),
            environment.environment(),
            &token,
            Utc::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Drops this app install's token (at sign-out). False when it was not registered to the
    /// signed-in person (already dropped: a retry after a lost answer is not an error).
    async fn unregister_device(
        &self,
        ctx: &Context<'_>,
        platform: PushPlatform,
        token: String,
        #[graphql(desc = "PRODUCTION when left out")] environment: Option<PushEnvironment>,
    ) -> Result<bool> {
        let environment = environment.unwrap_or(PushEnvironment::Production);
        let v = viewer(ctx)?;
        let token = check_token(platform, &token)?;
        let mut c = deps(ctx)?.db.conn().await?;
        db::unregister(
            &mut c,
            v.user_id,
            platform.provider(),
            environment.environment(),
            &token,
        )
        .await
    }
}

#[Object]
impl DeviceQuery {
    /// The signed-in person's registered devices, newest first.
    async fn my_devices(&self, ctx: &Context<'_>) -> Result<Vec<Device>> {
        let v = viewer(ctx)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(db::of_user(&mut c, v.user_id)
            .await?
            .into_iter()
            .map(Device::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_tokens_are_hex_and_kept_in_one_case() {
        let t = "AB".repeat(32);
        assert_eq!(
            check_token(PushPlatform::Apns, &t).unwrap(),
            "ab".repeat(32)
        );
        for bad in ["", "xyz", &"a".repeat(63), &"g".repeat(64)] {
            let e = check_token(PushPlatform::Apns, bad).unwrap_err();
            assert_eq!(e.field(), Some("token"), "{bad}");
        }
    }

    #[test]
    fn other_tokens_are_printable_ascii_of_bounded_length() {
        let fcm = "dGVzdA:APA91bH-x_y";
        assert_eq!(
            check_token(PushPlatform::Fcm, &format!(" {fcm} ")).unwrap(),
            fcm
        );
        for bad in ["a b", "令牌", &"x".repeat(4097)] {
            assert!(check_token(PushPlatform::Huawei, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_apns_has_a_sandbox() {
        assert!(check_environment(PushPlatform::Apns, PushEnvironment::Sandbox).is_ok());
        assert!(check_environment(PushPlatform::Fcm, PushEnvironment::Sandbox).is_err());
        assert!(check_environment(PushPlatform::Huawei, PushEnvironment::Production).is_ok());
    }
}
