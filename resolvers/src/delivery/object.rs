use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use minigate_push::delivery::{
    self, consent,
    db::{self as delivery_db, Filter},
};
use minigate_store::{self as store, Id};

use crate::{
    Error, Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

/// One result of `wx.requestSubscribeMessage`: the template and what the person chose.
#[derive(InputObject)]
pub struct SubscribeResult {
    pub template_id: String,
    /// `accept` in the mini-program's result; anything else (`reject`, `ban`, `filter`) is false.
    pub accepted: bool,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Sent,
    /// Refused for good on this channel; the next channel has its own delivery.
    FellThrough,
    /// Gave up after the last attempt; `retryDelivery` sends it again.
    Dead,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => delivery::PENDING,
            DeliveryStatus::Sending => delivery::SENDING,
            DeliveryStatus::Sent => delivery::SENT,
            DeliveryStatus::FellThrough => delivery::FELL_THROUGH,
            DeliveryStatus::Dead => delivery::DEAD,
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliveryChannel {
    Subscribe,
    Template,
    App,
    InApp,
}

impl DeliveryChannel {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryChannel::Subscribe => delivery::Channel::Subscribe.as_str(),
            DeliveryChannel::Template => delivery::Channel::Template.as_str(),
            DeliveryChannel::App => delivery::Channel::App.as_str(),
            DeliveryChannel::InApp => delivery::Channel::InApp.as_str(),
        }
    }
}

/// A message to one person on one channel.
pub struct Delivery(delivery_db::Delivery);

#[Object]
impl Delivery {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    /// `NOTICE`, `ACCIDENT`, `PAYMENT`, `RENT_DUE`, `VIOLATION`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The notice, order or bill that caused it.
    async fn source_id(&self) -> ID {
        ID(self.0.source_id.to_string())
    }
    /// `SUBSCRIBE`, `TEMPLATE`, `APP` or `IN_APP`.
    async fn channel(&self) -> &str {
        &self.0.channel
    }
    /// `PENDING`, `SENDING`, `SENT`, `FELL_THROUGH` or `DEAD`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
    /// The provider's answer to the last attempt (`WECHAT_43004`, `HTTP_503`, …).
    async fn last_code(&self) -> Option<&str> {
        self.0.last_code.as_deref()
    }
    async fn last_detail(&self) -> Option<&str> {
        self.0.last_detail.as_deref()
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    /// The company's deliveries, newest first, for operators.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<DeliveryStatus>,
        channel: Option<DeliveryChannel>,
        user_id: Option<ID>,
        source_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Delivery>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let user = user_id
            .as_ref()
            .map(|u| parse_id("userId", u))
            .transpose()?;
        let source = source_id
            .as_ref()
            .map(|s| parse_id("sourceId", s))
            .transpose()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = delivery_db::list(
            &mut c,
            v.tenant_id,
            &Filter {
                status: status.map(DeliveryStatus::as_str),
                channel: channel.map(DeliveryChannel::as_str),
                user_id: user,
                source_id: source,
            },
            i64::from(first.clamp(1, 200)),
        )
        .await?;
        Ok(rows.into_iter().map(Delivery).collect())
    }
}

#[derive(Default)]
pub struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Stores what `wx.requestSubscribeMessage` returned in the mini-program the user signed in
    /// with: each accepted template allows one subscribe message. Returns how many were stored.
    async fn record_subscribe_consent(
        &self,
        ctx: &Context<'_>,
        results: Vec<SubscribeResult>,
    ) -> Result<i32> {
        let v = viewer(ctx)?;
        if results.is_empty() || results.len() > 20 {
            return Err(Error::invalid("results", "1 to 20 results"));
        }
        if results
            .iter()
            .any(|r| r.template_id.is_empty() || r.template_id.len() > 64)
        {
            return Err(Error::invalid("templateId", "1 to 64 characters"));
        }
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        let app: Option<(Option<String>,)> = store::fetch_optional!(
            &mut tx,
            (Option<String>,),
            "select wx_app_id from app_user where id = $1",
            v.user_id
        )?;
        let Some(app_id) = app.and_then(|(a,)| a) else {
            return Err(Error::WechatSignInRequired);
        };
        let accepted: Vec<&str> = results
            .iter()
            .filter(|r| r.accepted)
            .map(|r| r.template_id.as_str())
            .collect();
        let n = consent::record(&mut tx, v.tenant_id, v.user_id, &app_id, &accepted).await?;
        tx.commit().await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Sends a dead letter again (operators): due now, its attempts counted afresh.
    async fn retry_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id: Id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        if !delivery_db::retry_dead(&mut c, v.tenant_id, id, Utc::now()).await? {
            return Err(Error::NotFound("dead delivery"));
        }
        Ok(Delivery(delivery_db::get(&mut c, id).await?))
    }
}
