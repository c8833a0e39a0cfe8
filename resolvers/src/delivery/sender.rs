//! What sends a delivery on its channel: who it goes to, with which template, filled from which
//! payload fields, and with whose credentials. App push is [`super::app_sender`]'s; the WeChat
//! channels are here.
//!
//! * `SUBSCRIBE`: to the person's mini-program openid, with the tenant's subscribe template for
//!   the message's kind; one unused consent is taken in the same transaction as the send is
//!   decided, and given back if the send failed in a way worth retrying.
//! * `TEMPLATE`: to the person's *official-account* openid, found through their unionid among the
//!   account's followers; `client_msg_id` is the delivery's id, so a send retried after a lost
//!   answer is not shown twice.
//! * Anything missing (no template for the kind, no WeChat sign-in, not a follower, no consent)
//!   is permanent for the channel: the engine falls through to the next one.

use std::{collections::HashMap, sync::Arc, time::Duration};

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
use minigate_store::{self as store, Conn, Id};
use sqlx::types::Json;

use super::{app_sender::AppSender, memo::Memo};
use crate::{Deps, tenant::db as tenant_db};

/// How long a template or an app's credentials are used before they are read again: an
/// operator's change reaches messages within this while.
const MEMO_TTL: Duration = Duration::from_secs(30);

/// Sends deliveries through WeChat and the app push providers with the tenant's apps.
pub struct ChannelSender {
    deps: Deps,
    app: AppSender,
    templates: Memo<(Id, String, Channel), Option<Arc<Template>>>,
    credentials: Memo<(String, &'static str), AppCredentials>,
    /// (person, official account) → their openid there, `None` when they do not follow it: read
    /// for a whole wave of template messages by [`Sender::prepare`].
    followers: Memo<(Id, String), Option<String>>,
}

/// How long a wave's follower lookup stands in for a query of one's own.
const FOLLOWER_TTL: Duration = Duration::from_secs(10);

impl ChannelSender {
    pub fn new(deps: Deps) -> Self {
        ChannelSender {
            app: AppSender::new(deps.clone()),
            deps,
            templates: Memo::new(MEMO_TTL),
            credentials: Memo::new(MEMO_TTL),
            followers: Memo::new(FOLLOWER_TTL),
        }
    }

    /// The tenant's template for the delivery's kind on `channel`; a connection is taken only
    /// when the memo does not have it (not once per send).
    async fn template(
        &self,
        d: &Delivery,
        channel: Channel,
    ) -> store::Result<Option<Arc<Template>>> {
        let key = (d.tenant_id, d.kind.clone(), channel);
        if let Some(t) = self.templates.get(&key) {
            return Ok(t);
        }
        let mut c = self.deps.db.conn().await?;
        let t = template(&mut c, d, channel).await?.map(Arc::new);
        self.templates.put(key, t.clone());
        Ok(t)
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

impl ChannelSender {
    async fn credentials(
        &self,
        app_id: &str,
        kind: &'static str,
    ) -> Result<AppCredentials, SendOutcome> {
        let key = (app_id.to_owned(), kind);
        if let Some(creds) = self.credentials.get(&key) {
            return Ok(creds);
        }
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
        let creds = AppCredentials {
            app_id: app.app_id,
            secret,
        };
        self.credentials.put(key, creds.clone());
        Ok(creds)
    }

    async fn subscribe(&self, d: &Delivery) -> Result<SendOutcome, SendOutcome> {
        let store_err = |e: store::Error| transient("STORE", e.to_string());
        let t = self
            .template(d, Channel::Subscribe)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                permanent(
                    "NO_TEMPLATE",
                    format!("no subscribe template for {}", d.kind),
                )
            })?;
        // Read on a plain connection: most people a notice falls through for (never signed in
        // with WeChat) need no write, and on SQLite a write transaction per attempt queues a
        // whole batch's sends behind the database's one writer.
        let mut c = self.deps.db.conn().await.map_err(store_err)?;
        let who: Option<(Option<String>, Option<String>)> = store::fetch_optional!(
            &mut c,
            (Option<String>, Option<String>),
            "select wx_app_id, wx_openid from app_user where id = $1",
            d.user_id
        )
        .map_err(store_err)?;
        drop(c);
        let Some((Some(app_id), Some(openid))) = who else {
            return Err(permanent("NOT_WECHAT_USER", "never signed in with WeChat"));
        };
        if app_id != t.app_id {
            return Err(permanent(
                "OTHER_MINI_PROGRAM",
                format!("signed in with {app_id}, the template is {}'s", t.app_id),
            ));
        }
        let mut tx = self.deps.db.begin().await.map_err(store_err)?;
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
            tx.rollback().await.map_err(store_err)?;
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
        let t = self
            .template(d, Channel::Template)
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                permanent("NO_TEMPLATE", format!("no template message for {}", d.kind))
            })?;
        let follower = match self.followers.get(&(d.user_id, t.app_id.clone())) {
            Some(known) => known,
            None => {
                let mut c = self.deps.db.conn().await.map_err(store_err)?;
                followers(&mut c, d.tenant_id, &t.app_id, vec![d.user_id])
                    .await
                    .map_err(store_err)?
                    .pop()
                    .map(|(_, openid)| openid)
            }
        };
        let Some(openid) = follower else {
            return Err(permanent(
                "NOT_A_FOLLOWER",
                "does not follow the official account",
            ));
        };
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

/// The openids under official account `app_id` of those of `users` who follow it.
async fn followers(
    c: &mut Conn,
    tenant: Id,
    app_id: &str,
    users: Vec<Id>,
) -> store::Result<Vec<(Id, String)>> {
    store::fetch_all!(
        c,
        (Id, String),
        "select u.id, f.openid from app_user u join wechat_follower f on f.unionid = u.wx_unionid
         where u.id = any($1) and f.tenant_id = $2 and f.app_id = $3 and f.subscribed",
        store::List(users),
        tenant,
        app_id
    )
}

impl ChannelSender {
    /// Reads the followers of a wave's template messages, one query per tenant and account.
    async fn prepare_followers(&self, wave: &[Arc<Delivery>]) -> store::Result<()> {
        let mut groups: HashMap<(Id, String), Vec<Id>> = HashMap::new();
        for d in wave {
            if Channel::parse(&d.channel) != Some(Channel::Template) {
                continue;
            }
            if let Some(t) = self.template(d, Channel::Template).await? {
                groups
                    .entry((d.tenant_id, t.app_id.clone()))
                    .or_default()
                    .push(d.user_id);
            }
        }
        if groups.is_empty() {
            return Ok(());
        }
        let mut c = self.deps.db.conn().await?;
        for ((tenant, app_id), users) in groups {
            let found: HashMap<Id, String> = followers(&mut c, tenant, &app_id, users.clone())
                .await?
                .into_iter()
                .collect();
            for user in users {
                let openid = found.get(&user).cloned();
                self.followers.put((user, app_id.clone()), openid);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sender for ChannelSender {
    async fn prepare(&self, wave: &[Arc<Delivery>]) {
        if let Err(e) = self.prepare_followers(wave).await {
            // Each send then reads its own.
            tracing::warn!(error = %e, "reading a wave's followers failed");
        }
        if let Err(e) = self.app.prepare(wave).await {
            tracing::warn!(error = %e, "reading a wave's devices failed");
        }
    }

    async fn send(&self, d: &Delivery) -> SendOutcome {
        let result = match Channel::parse(&d.channel) {
            Some(Channel::Subscribe) => self.subscribe(d).await,
            Some(Channel::Template) => self.template_message(d).await,
            Some(Channel::App) => Ok(self.app.send(d).await),
            Some(Channel::InApp) => Ok(SendOutcome::Sent {
                provider_msg_id: None,
            }),
            None => Err(permanent("CHANNEL_UNKNOWN", d.channel.clone())),
        };
        result.unwrap_or_else(|o| o)
    }
}
