//! The WeChat side of the delivery engine: who a delivery goes to on its channel, with which
//! template, filled from which payload fields, and with whose credentials.
//!
//! * `SUBSCRIBE`: to the person's mini-program openid, with the tenant's subscribe template for
//!   the message's kind; one unused consent is taken in the same transaction as the send is
//!   decided, and given back if the send failed in a way worth retrying.
//! * `TEMPLATE`: to the person's *official-account* openid, found through their unionid among the
//!   account's followers; `client_msg_id` is the delivery's id, so a send retried after a lost
//!   answer is not shown twice.
//! * Anything missing (no template for the kind, no WeChat sign-in, not a follower, no consent)
//!   is permanent for the channel: the engine falls through to the next one.

use async_trait::async_trait;
use chrono::Utc;
use minigate_push::{
    delivery::{Channel, Delivery, Sender, consent},
    outcome::SendOutcome,
    wechat::{
        AppCredentials,
        messages::{SubscribeMessage, TemplateMessage},
    },
};
use minigate_store::{self as store, Conn};
use sqlx::types::Json;

use crate::{Deps, tenant::db as tenant_db};

/// Sends deliveries through WeChat with the tenant's apps.
pub struct WechatSender {
    deps: Deps,
}

impl WechatSender {
    pub fn new(deps: Deps) -> Self {
        WechatSender { deps }
    }
}

fn permanent(code: &str, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Permanent {
        code: code.to_owned(),
        detail: detail.into(),
    }
}

fn transient(code: &str, detail: impl Into<String>) -> SendOutcome {
    SendOutcome::Transient {
        code: code.to_owned(),
        detail: detail.into(),
        retry_after: None,
    }
}

#[derive(sqlx::FromRow)]
struct Template {
    app_id: String,
    template_id: String,
    fields: Json<serde_json::Map<String, serde_json::Value>>,
    page: Option<String>,
}

async fn template(c: &mut Conn, d: &Delivery, channel: Channel) -> store::Result<Option<Template>> {
    store::fetch_optional!(
        c,
        Template,
        "select app_id, template_id, fields, page from push_template
         where tenant_id = $1 and kind = $2 and channel = $3",
        d.tenant_id,
        &d.kind,
        channel.as_str()
    )
}

/// The template's keywords filled from the payload (`{"thing1": "title"}` takes `payload.title`).
fn fill(t: &Template, payload: &serde_json::Value) -> Vec<(String, String)> {
    t.fields
        .0
        .iter()
        .map(|(keyword, field)| {
            let value = field
                .as_str()
                .and_then(|f| payload.get(f))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (keyword.clone(), value)
        })
        .collect()
}

impl WechatSender {
    async fn credentials(&self, app_id: &str, kind: &str) -> Result<AppCredentials, SendOutcome> {
        let mut c = self
            .deps
            .db
            .conn()
            .await
            .map_err(|e| transient("STORE", e.to_string()))?;
        let app = tenant_db::find_app(&mut c, app_id, kind)
            .await
            .map_err(|e| transient("STORE", e.to_string()))?
            .ok_or_else(|| permanent("APP_UNKNOWN", format!("no {kind} {app_id}")))?;
        let secret =
            self.deps
                .secrets
                .resolve(&app.secret_ref)
                .map_err(|e| SendOutcome::Credential {
                    code: "SECRET_UNREADABLE".into(),
                    detail: e.to_string(),
                })?;
        Ok(AppCredentials {
            app_id: app.app_id,
            secret,
        })
    }

    async fn subscribe(&self, d: &Delivery) -> Result<SendOutcome, SendOutcome> {
        let store_err = |e: store::Error| transient("STORE", e.to_string());
        let mut tx = self.deps.db.begin().await.map_err(store_err)?;
        let t = template(&mut tx, d, Channel::Subscribe)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                permanent(
                    "NO_TEMPLATE",
                    format!("no subscribe template for {}", d.kind),
                )
            })?;
        let who: Option<(Option<String>, Option<String>)> = store::fetch_optional!(
            &mut tx,
            (Option<String>, Option<String>),
            "select wx_app_id, wx_openid from app_user where id = $1",
            d.user_id
        )
        .map_err(store_err)?;
        let Some((Some(app_id), Some(openid))) = who else {
            return Err(permanent("NOT_WECHAT_USER", "never signed in with WeChat"));
        };
        if app_id != t.app_id {
            return Err(permanent(
                "OTHER_MINI_PROGRAM",
                format!("signed in with {app_id}, the template is {}'s", t.app_id),
            ));
        }
        let took = consent::take(
            &mut tx,
            d.user_id,
            &app_id,
            &t.template_id,
            d.id,
            Utc::now(),
        )
        .await
        .map_err(|e| transient("STORE", e.to_string()))?;
        if !took {
            return Err(permanent("NO_CONSENT", "no unused subscribe consent"));
        }
        tx.commit().await.map_err(store_err)?;
        let creds = self.credentials(&app_id, tenant_db::MINIPROGRAM).await?;
        let data = fill(&t, &d.payload.0);
        let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let outcome = self
            .deps
            .wechat
            .send_subscribe(
                &creds,
                &SubscribeMessage {
                    touser: &openid,
                    template_id: &t.template_id,
                    page: t.page.as_deref(),
                    miniprogram_state: None,
                    lang: None,
                    data: &pairs,
                },
            )
            .await;
        if matches!(
            outcome,
            SendOutcome::Transient { .. } | SendOutcome::Credential { .. }
        ) {
            // Not used: WeChat still owes the person this message.
            let mut c = self.deps.db.conn().await.map_err(store_err)?;
            consent::give_back(&mut c, d.id)
                .await
                .map_err(|e| transient("STORE", e.to_string()))?;
        }
        Ok(outcome)
    }

    async fn template_message(&self, d: &Delivery) -> Result<SendOutcome, SendOutcome> {
        let store_err = |e: store::Error| transient("STORE", e.to_string());
        let mut c = self.deps.db.conn().await.map_err(store_err)?;
        let t = template(&mut c, d, Channel::Template)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                permanent("NO_TEMPLATE", format!("no template message for {}", d.kind))
            })?;
        let follower: Option<(String,)> = store::fetch_optional!(
            &mut c,
            (String,),
            "select f.openid from wechat_follower f join app_user u on u.wx_unionid = f.unionid
             where u.id = $1 and f.tenant_id = $2 and f.app_id = $3 and f.subscribed",
            d.user_id,
            d.tenant_id,
            &t.app_id
        )
        .map_err(store_err)?;
        let Some((openid,)) = follower else {
            return Err(permanent(
                "NOT_A_FOLLOWER",
                "does not follow the official account",
            ));
        };
        drop(c);
        let creds = self
            .credentials(&t.app_id, tenant_db::OFFICIAL_ACCOUNT)
            .await?;
        let data = fill(&t, &d.payload.0);
        let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let msg_id = d.id.to_string();
        Ok(self
            .deps
            .wechat
            .send_template(
                &creds,
                &TemplateMessage {
                    touser: &openid,
                    template_id: &t.template_id,
                    url: None,
                    miniprogram: None,
                    client_msg_id: Some(&msg_id),
                    data: &pairs,
                },
            )
            .await)
    }
}

#[async_trait]
impl Sender for WechatSender {
    async fn send(&self, d: &Delivery) -> SendOutcome {
        let result = match Channel::parse(&d.channel) {
            Some(Channel::Subscribe) => self.subscribe(d).await,
            Some(Channel::Template) => self.template_message(d).await,
            Some(Channel::App) => Err(permanent(
                "CHANNEL_NOT_AVAILABLE",
                "app push is not configured",
            )),
            Some(Channel::InApp) => Ok(SendOutcome::Sent {
                provider_msg_id: None,
            }),
            None => Err(permanent("CHANNEL_UNKNOWN", d.channel.clone())),
        };
        result.unwrap_or_else(|o| o)
    }
}
