//! The official account's callback URL (`/wechat/oa/callback/{appId}`): WeChat's URL verification,
//! and the messages and events it pushes, of which three matter here:
//!
//! * `subscribe` / `unsubscribe`: the follower, as of the event's `CreateTime` (an event older
//!   than what is known changes nothing, so WeChat's retries and reorderings are harmless). A new
//!   follower's unionid is asked of WeChat at once; if WeChat cannot say in time, the follower is
//!   stored without it and the next follower sync fills it in.
//! * `TEMPLATESENDJOBFINISH`: whether a template message reached its follower, recorded on the
//!   delivery WeChat's `MsgID` names.
//!
//! The app id in the path selects the account, whose token and EncodingAESKey (secret references
//! in `tenant_app`) check the signature, the timestamp (five minutes either way) and, in safe
//! mode, decrypt the message, which must be sealed for that same app id. Anything that fails
//! those checks is refused with a 4xx and a stable code, and nothing is stored; a storage failure
//! answers 5xx so that WeChat sends the event again. Everything else is answered `success`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use minigate_push::wechat::oa_crypto::{CallbackQuery, OaCrypto, OaMessage};
use minigate_store::{self as store, Id};
use secrecy::ExposeSecret;

use super::followers::{
    db::{self as follower_db, Followed},
    sync::credentials,
};
use crate::{Deps, tenant::db as tenant_db};

/// How long a follow waits for WeChat to tell the follower's unionid; WeChat gives the whole
/// callback 5 seconds.
const UNIONID_WAIT: Duration = Duration::from_secs(2);

/// What a report's `Status` is stored as, at most this long.
const RECEIPT_MAX_CHARS: usize = 64;

/// An EncodingAESKey for accounts in plain mode, which have none: `OaCrypto` wants one, but
/// nothing is decrypted with it, since a safe-mode post to such an account is refused first.
const PLAIN_MODE_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// What to answer WeChat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn text(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn success() -> Reply {
        Reply::text("success")
    }

    fn refused(status: u16, code: &str, message: &str) -> Reply {
        metrics::counter!("minigate_oa_callbacks_total", "outcome" => code.to_owned()).increment(1);
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::json!({ "code": code, "message": message }).to_string(),
        }
    }

    fn internal() -> Reply {
        Reply::refused(500, "INTERNAL", "not processed; send it again")
    }
}

/// Why the callback could not be checked or read.
fn refusal(e: &minigate_push::Error) -> Reply {
    match e {
        minigate_push::Error::OaSignatureInvalid { reason } => {
            tracing::warn!(code = e.code(), reason, "official account callback refused");
            Reply::refused(401, e.code(), reason)
        }
        minigate_push::Error::OaMessageMalformed { reason } => {
            tracing::warn!(code = e.code(), reason, "official account callback refused");
            Reply::refused(400, e.code(), reason)
        }
        other => {
            tracing::error!(code = other.code(), error = %other, "official account callback not checked");
            Reply::internal()
        }
    }
}

/// An official account and the means to check its callbacks.
struct Account {
    tenant_id: Id,
    crypto: OaCrypto,
    safe_mode: bool,
}

/// The account `app_id` with its callback credentials; `Err` is the answer when there is none.
async fn account(d: &Deps, app_id: &str) -> Result<Account, Reply> {
    let unknown = || Reply::refused(404, "WECHAT_APP_UNKNOWN", "no such official account");
    let app = async {
        let mut c = d.db.conn().await?;
        tenant_db::find_app(&mut c, app_id, tenant_db::OFFICIAL_ACCOUNT).await
    }
    .await
    .map_err(|e| {
        tracing::error!(code = e.code(), error = %e, "official account not loaded for a callback");
        Reply::internal()
    })?
    .ok_or_else(unknown)?;
    let Some(token_ref) = &app.oa_token_ref else {
        tracing::warn!(
            app_id,
            "callback to an official account without a callback token"
        );
        return Err(unknown());
    };
    let unreadable = |e: crate::SecretError| {
        tracing::error!(app_id, error = %e, "official account callback secret unreadable");
        Reply::internal()
    };
    let token = d.secrets.resolve(token_ref).map_err(unreadable)?;
    let crypto = match &app.oa_aes_key_ref {
        Some(key_ref) => {
            let key = d.secrets.resolve(key_ref).map_err(unreadable)?;
            OaCrypto::new(token, key.expose_secret().trim(), app_id)
        }
        None => OaCrypto::new(token, PLAIN_MODE_KEY, app_id).map(|c| c.with_plain_mode(true)),
    }
    .map_err(|e| {
        tracing::error!(app_id, error = %e, "official account callback settings unusable");
        Reply::internal()
    })?;
    Ok(Account {
        tenant_id: app.tenant_id,
        crypto,
        safe_mode: app.oa_aes_key_ref.is_some(),
    })
}

/// `GET`: WeChat checks the URL is ours; the answer is its `echostr`, if the signature is right.
pub async fn verify_url(d: &Deps, app_id: &str, q: &CallbackQuery) -> Reply {
    let account = match account(d, app_id).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    if let Err(e) = account
        .crypto
        .verify_url(&q.signature, &q.timestamp, &q.nonce)
    {
        return refusal(&e);
    }
    match &q.echostr {
        Some(echo) => Reply::text(echo.clone()),
        None => Reply::refused(400, "WECHAT_OA_MESSAGE_MALFORMED", "no echostr"),
    }
}

/// `POST`: a message or event for the account `app_id`, received at `now`.
pub async fn receive(
    d: &Deps,
    app_id: &str,
    q: &CallbackQuery,
    body: &[u8],
    now: DateTime<Utc>,
) -> Reply {
    let account = match account(d, app_id).await {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    if !account.safe_mode && q.encrypt_type.as_deref() == Some("aes") {
        return Reply::refused(
            400,
            "WECHAT_OA_MESSAGE_MALFORMED",
            "safe mode message to an account without an EncodingAESKey",
        );
    }
    let Ok(body) = std::str::from_utf8(body) else {
        return Reply::refused(400, "WECHAT_OA_MESSAGE_MALFORMED", "body is not UTF-8");
    };
    let msg = match account.crypto.open(q, body, Some(now.timestamp())) {
        Ok(msg) => msg,
        Err(e) => return refusal(&e),
    };
    let Some(at) = DateTime::from_timestamp(msg.create_time, 0) else {
        return Reply::refused(
            400,
            "WECHAT_OA_MESSAGE_MALFORMED",
            "CreateTime out of range",
        );
    };
    let event = msg
        .event
        .as_deref()
        .filter(|_| msg.msg_type == "event")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let stored = match event.as_str() {
        "subscribe" => subscribe(d, account.tenant_id, app_id, &msg, at).await,
        "unsubscribe" => async {
            let mut c = d.db.conn().await?;
            follower_db::unfollow(&mut c, account.tenant_id, app_id, &msg.from_openid, at).await
        }
        .await
        .map(|()| "UNFOLLOWED"),
        "templatesendjobfinish" => receipt(d, account.tenant_id, app_id, &msg, at).await,
        _ => Ok("IGNORED"),
    };
    match stored {
        Ok(outcome) => {
            metrics::counter!("minigate_oa_callbacks_total", "outcome" => outcome).increment(1);
            Reply::success()
        }
        Err(e) => {
            tracing::error!(app_id, event, code = e.code(), error = %e,
                "official account event not stored; WeChat will send it again");
            Reply::internal()
        }
    }
}

async fn subscribe(
    d: &Deps,
    tenant_id: Id,
    app_id: &str,
    msg: &OaMessage,
    at: DateTime<Utc>,
) -> store::Result<&'static str> {
    let unionid =
        match tokio::time::timeout(UNIONID_WAIT, unionid(d, app_id, &msg.from_openid)).await {
            Ok(Ok(unionid)) => unionid,
            Ok(Err(e)) => {
                tracing::warn!(app_id, code = e.code(), error = %e,
                "new follower's unionid not known; the next follower sync fills it in");
                None
            }
            Err(_) => {
                tracing::warn!(
                    app_id,
                    "wechat did not tell the new follower's unionid in time"
                );
                None
            }
        };
    let mut c = d.db.conn().await?;
    follower_db::follow(
        &mut c,
        &Followed {
            tenant_id,
            app_id,
            openid: &msg.from_openid,
            unionid: unionid.as_deref(),
            at,
        },
        None,
    )
    .await?;
    Ok("FOLLOWED")
}

async fn unionid(d: &Deps, app_id: &str, openid: &str) -> crate::Result<Option<String>> {
    let creds = credentials(d, app_id).await?;
    let infos = d
        .wechat
        .user_info_batchget(&creds, &[openid.to_owned()])
        .await?;
    Ok(infos
        .into_iter()
        .find(|i| i.openid == openid)
        .and_then(|i| i.unionid))
}

/// What a `TEMPLATESENDJOBFINISH` status is stored as.
fn receipt_of(status: &str) -> String {
    let compact: String = status
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match compact.as_str() {
        "success" => "DELIVERED".to_owned(),
        "failed:userblock" => "USER_BLOCKED".to_owned(),
        "failed:systemfailed" => "SYSTEM_FAILED".to_owned(),
        _ => status.trim().chars().take(RECEIPT_MAX_CHARS).collect(),
    }
}

async fn receipt(
    d: &Deps,
    tenant_id: Id,
    app_id: &str,
    msg: &OaMessage,
    at: DateTime<Utc>,
) -> store::Result<&'static str> {
    let Some(msg_id) = msg.msg_id.as_deref() else {
        tracing::info!(app_id, "template send report without MsgID");
        return Ok("RECEIPT_UNKNOWN");
    };
    let receipt = receipt_of(msg.status.as_deref().unwrap_or_default());
    let mut c = d.db.conn().await?;
    let n = store::execute!(
        &mut c,
        "update push_delivery set receipt = $1, receipt_at = $2, updated_at = now()
         where provider_msg_id = $3 and tenant_id = $4 and channel = 'TEMPLATE'",
        &receipt,
        at,
        msg_id,
        tenant_id
    )?;
    if n == 0 {
        tracing::info!(
            app_id,
            msg_id,
            receipt,
            "template send report for no known delivery"
        );
        return Ok("RECEIPT_UNKNOWN");
    }
    Ok("RECEIPT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_statuses_become_receipts() {
        assert_eq!(receipt_of("success"), "DELIVERED");
        assert_eq!(receipt_of("failed:user block"), "USER_BLOCKED");
        assert_eq!(receipt_of("failed: system failed"), "SYSTEM_FAILED");
        assert_eq!(receipt_of("failed: quota"), "failed: quota");
        assert_eq!(
            receipt_of(&"x".repeat(200)).chars().count(),
            RECEIPT_MAX_CHARS
        );
    }

    #[test]
    fn the_plain_mode_key_is_a_usable_key() {
        let token = secrecy::SecretString::from("token");
        assert!(OaCrypto::new(token, PLAIN_MODE_KEY, "wx_oa").is_ok());
    }
}
