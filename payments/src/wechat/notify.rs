//! WeChat Pay payment notifications: a signed JSON envelope whose `resource` holds the
//! transaction, encrypted with the merchant's APIv3 key.

use serde::Deserialize;

use super::{client::transaction, resource, verify::Signed};
use crate::{
    Error, Result, WechatMerchant,
    notification::{Notification, Provider, header},
};

/// The `Wechatpay-Serial` of a notification: which key signed it, and so which merchants may
/// have been its recipient.
pub fn serial(headers: &[(String, String)]) -> &str {
    header(headers, "wechatpay-serial").trim()
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    event_type: String,
    resource: Resource,
}

#[derive(Deserialize)]
struct Resource {
    algorithm: String,
    ciphertext: String,
    #[serde(default)]
    associated_data: String,
    nonce: String,
}

/// A verified, decrypted notification: its id, its event and the resource's plain text.
pub(crate) struct Opened {
    pub id: String,
    pub event_type: String,
    pub plain: Vec<u8>,
}

/// Verifies a notification to merchant `m` (signature and the 5-minute window around `now`,
/// Unix seconds; `None` re-verifies a stored one without the window), checks its event is one
/// of `event_prefix` (`TRANSACTION.`, `REFUND.`) and decrypts its resource.
pub(crate) fn open_envelope(
    m: &WechatMerchant,
    headers: &[(String, String)],
    body: &[u8],
    now: Option<i64>,
    event_prefix: &str,
) -> Result<Opened> {
    let signed = Signed {
        timestamp: header(headers, "wechatpay-timestamp"),
        nonce: header(headers, "wechatpay-nonce"),
        signature: header(headers, "wechatpay-signature"),
        serial: serial(headers),
        body,
    };
    match now {
        Some(now) => m.verifier.verify(&signed, now)?,
        None => m.verifier.verify_stored(&signed)?,
    }
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("notification JSON: {e}")))?;
    if env.resource.algorithm != "AEAD_AES_256_GCM" {
        return Err(Error::Malformed(format!(
            "resource algorithm {}",
            env.resource.algorithm
        )));
    }
    if !env.event_type.starts_with(event_prefix) {
        return Err(Error::Malformed(format!(
            "event {} is not a {event_prefix} notification",
            env.event_type
        )));
    }
    let plain = resource::decrypt(
        m.apiv3_key(),
        &env.resource.nonce,
        &env.resource.associated_data,
        &env.resource.ciphertext,
    )?;
    Ok(Opened {
        id: env.id,
        event_type: env.event_type,
        plain,
    })
}

/// Verifies a payment notification to merchant `m` (see [`open_envelope`]) and reads its
/// transaction.
pub fn open(
    m: &WechatMerchant,
    headers: &[(String, String)],
    body: &[u8],
    now: Option<i64>,
) -> Result<Notification> {
    let opened = open_envelope(m, headers, body, now, "TRANSACTION.")?;
    let tx = transaction(&opened.plain)?;
    let merchant_id = tx.mchid.clone();
    let app_id = tx.appid.clone();
    Ok(Notification {
        provider: Provider::Wechat,
        dedup_key: opened.id,
        event_type: opened.event_type,
        merchant_id,
        app_id,
        trade: tx.into_trade()?,
        refund_report: false,
    })
}
