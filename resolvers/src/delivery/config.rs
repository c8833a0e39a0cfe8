//! What operators configure about messages outside the app: each kind's templates (which
//! mini-program or official-account template carries it, which payload field fills which
//! keyword), quiet hours and the daily cap, and each kind's channel order. Operators of the
//! company only; a bad input changes nothing and names its field; every change is audited.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_push::delivery::{Channel, Class, policy::Policy};
use minigate_store::{self as store, Conn, Id};
use sqlx::types::Json;

use super::{
    object::DeliveryChannel,
    route::{self, Kind},
};
use crate::{
    Error, Result, audit,
    tenant::db as tenant_db,
    validate,
    viewer::{deps, viewer},
};

/// The WeChat channels a template is configured for.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "PushTemplateChannel")]
pub enum TemplateChannel {
    /// A mini-program subscribe message template.
    Subscribe,
    /// An official-account template message template.
    Template,
}

impl TemplateChannel {
    fn channel(self) -> Channel {
        match self {
            TemplateChannel::Subscribe => Channel::Subscribe,
            TemplateChannel::Template => Channel::Template,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match Channel::parse(s)? {
            Channel::Subscribe => Some(TemplateChannel::Subscribe),
            Channel::Template => Some(TemplateChannel::Template),
            Channel::App | Channel::InApp => None,
        }
    }

    /// The kind of app (`tenant_app.kind`) whose templates the channel sends.
    fn app_kind(self) -> &'static str {
        match self {
            TemplateChannel::Subscribe => tenant_db::MINIPROGRAM,
            TemplateChannel::Template => tenant_db::OFFICIAL_ACCOUNT,
        }
    }
}

/// How much a kind of message may wait.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "PushClass")]
pub enum MessageClass {
    /// Never deferred by quiet hours or the daily cap.
    Essential,
    /// Deferred by quiet hours and the daily cap.
    Reminder,
    Marketing,
}

impl From<Class> for MessageClass {
    fn from(c: Class) -> Self {
        match c {
            Class::Essential => MessageClass::Essential,
            Class::Reminder => MessageClass::Reminder,
            Class::Marketing => MessageClass::Marketing,
        }
    }
}

fn to_channel(c: DeliveryChannel) -> Channel {
    match c {
        DeliveryChannel::Subscribe => Channel::Subscribe,
        DeliveryChannel::Template => Channel::Template,
        DeliveryChannel::App => Channel::App,
        DeliveryChannel::InApp => Channel::InApp,
    }
}

fn from_channel(c: Channel) -> DeliveryChannel {
    match c {
        Channel::Subscribe => DeliveryChannel::Subscribe,
        Channel::Template => DeliveryChannel::Template,
        Channel::App => DeliveryChannel::App,
        Channel::InApp => DeliveryChannel::InApp,
    }
}

/// One template keyword and the payload field that fills it.
#[derive(InputObject, SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(input_name = "PushTemplateFieldInput")]
pub struct PushTemplateField {
    /// The template's keyword (`thing1`, `time2`, `first`, `keyword1` …).
    pub keyword: String,
    /// A payload field of the message's kind (see `pushRoutes { payloadFields }`).
    pub field: String,
}

#[derive(sqlx::FromRow, Debug, Clone)]
struct TemplateRow {
    kind: String,
    channel: String,
    app_id: String,
    template_id: String,
    fields: Json<serde_json::Map<String, serde_json::Value>>,
    page: Option<String>,
    updated_at: DateTime<Utc>,
}

/// The template one kind of message uses on one WeChat channel.
#[derive(InputObject)]
pub struct PushTemplateInput {
    pub kind: Kind,
    pub channel: TemplateChannel,
    /// The company's mini-program for SUBSCRIBE, its official account for TEMPLATE.
    pub app_id: String,
    /// WeChat's template id: 1 to 64 letters, digits, `-` or `_`.
    pub template_id: String,
    /// Each template keyword and the payload field of the kind that fills it (1 to 20).
    pub fields: Vec<PushTemplateField>,
    /// The mini-program page a subscribe message opens (`pages/…`).
    pub page: Option<String>,
}

/// What one kind of message sends on one WeChat channel.
pub struct PushTemplate(TemplateRow);

#[Object]
impl PushTemplate {
    async fn kind(&self) -> Result<Kind> {
        Kind::parse(&self.0.kind)
            .ok_or_else(|| Error::Internal(format!("push template kind '{}'", self.0.kind)))
    }
    async fn channel(&self) -> Result<TemplateChannel> {
        TemplateChannel::parse(&self.0.channel)
            .ok_or_else(|| Error::Internal(format!("push template channel '{}'", self.0.channel)))
    }
    /// The mini-program (SUBSCRIBE) or official account (TEMPLATE) that sends it.
    async fn app_id(&self) -> &str {
        &self.0.app_id
    }
    async fn template_id(&self) -> &str {
        &self.0.template_id
    }
    /// Keywords in alphabetical order.
    async fn fields(&self) -> Vec<PushTemplateField> {
        self.0
            .fields
            .0
            .iter()
            .map(|(k, v)| PushTemplateField {
                keyword: k.clone(),
                field: v.as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }
    /// The mini-program page a subscribe message opens.
    async fn page(&self) -> Option<&str> {
        self.0.page.as_deref()
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Quiet hours (Asia/Shanghai) and the daily cap, which hold back reminders and marketing
/// messages, never payments or accidents.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct PushPolicy {
    /// Minutes after midnight; from start up to end, which may be earlier (across midnight).
    /// Equal means no quiet hours.
    pub quiet_start_minute: i32,
    pub quiet_end_minute: i32,
    /// Reminders and marketing messages one person gets a day.
    pub daily_cap: i32,
    /// Whether the company set these (otherwise they are the defaults).
    pub custom: bool,
}

/// A kind of message and the channels it tries, first first.
#[derive(SimpleObject, Debug, Clone)]
pub struct PushRoute {
    pub kind: Kind,
    pub class: MessageClass,
    pub channels: Vec<DeliveryChannel>,
    /// Whether the company set this order (otherwise it is the built-in one).
    pub custom: bool,
    /// The payload fields messages of this kind carry, for template keywords.
    pub payload_fields: Vec<String>,
}

fn route_of(kind: Kind, custom: Option<Vec<Channel>>) -> PushRoute {
    let is_custom = custom.is_some();
    let channels = custom.unwrap_or_else(|| kind.default_channels().to_vec());
    PushRoute {
        kind,
        class: kind.class().into(),
        channels: channels.into_iter().map(from_channel).collect(),
        custom: is_custom,
        payload_fields: kind
            .payload_fields()
            .iter()
            .map(|f| (*f).to_owned())
            .collect(),
    }
}

// ---- checks ----

fn check_template_id(input: &str) -> Result<String> {
    let t = input.trim();
    let ok = (1..=64).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(
            "templateId",
            "1 to 64 letters, digits, '-' or '_'",
        ))
    }
}

/// Keywords as WeChat names them; fields the kind carries; each keyword once.
fn check_fields(
    kind: Kind,
    fields: &[PushTemplateField],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    if fields.is_empty() || fields.len() > 20 {
        return Err(Error::invalid("fields", "1 to 20 keywords"));
    }
    let mut map = serde_json::Map::new();
    for f in fields {
        let k = f.keyword.trim();
        let keyword_ok = (1..=32).contains(&k.len())
            && k.starts_with(|c: char| c.is_ascii_alphabetic())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !keyword_ok {
            return Err(Error::invalid(
                "fields",
                format!("keyword '{k}': 1 to 32 letters, digits or '_', a letter first"),
            ));
        }
        let field = f.field.trim();
        if !kind.payload_fields().contains(&field) {
            return Err(Error::invalid(
                "fields",
                format!(
                    "'{field}' is not a field of {} messages ({})",
                    kind.as_str(),
                    kind.payload_fields().join(", ")
                ),
            ));
        }
        if map
            .insert(k.to_owned(), serde_json::Value::String(field.to_owned()))
            .is_some()
        {
            return Err(Error::invalid(
                "fields",
                format!("keyword '{k}' given twice"),
            ));
        }
    }
    Ok(map)
}

fn check_page(input: Option<&str>) -> Result<Option<String>> {
    let Some(p) = input.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if p.chars().count() <= 200 && !p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(Some(p.to_owned()))
    } else {
        Err(Error::invalid(
            "page",
            "a mini-program page (pages/…), at most 200 characters, no spaces",
        ))
    }
}

fn check_policy(start: i32, end: i32, cap: i32) -> Result<()> {
    if !(0..=1439).contains(&start) {
        return Err(Error::invalid("quietStartMinute", "0 to 1439"));
    }
    if !(0..=1439).contains(&end) {
        return Err(Error::invalid("quietEndMinute", "0 to 1439"));
    }
    if !(0..=1000).contains(&cap) {
        return Err(Error::invalid("dailyCap", "0 to 1000"));
    }
    Ok(())
}

fn check_route(channels: &[DeliveryChannel]) -> Result<Vec<Channel>> {
    let channels: Vec<Channel> = channels.iter().copied().map(to_channel).collect();
    route::check(&channels).map_err(|e| Error::invalid("channels", e.message()))?;
    Ok(channels)
}

// ---- SQL ----

async fn list_templates(c: &mut Conn, tenant: Id) -> Result<Vec<TemplateRow>> {
    Ok(store::fetch_all!(
        c,
        TemplateRow,
        "select kind, channel, app_id, template_id, fields, page, updated_at from push_template
         where tenant_id = $1 order by kind, channel",
        tenant
    )?)
}

async fn get_template(c: &mut Conn, tenant: Id, kind: Kind, ch: Channel) -> Result<TemplateRow> {
    store::fetch_optional!(
        c,
        TemplateRow,
        "select kind, channel, app_id, template_id, fields, page, updated_at from push_template
         where tenant_id = $1 and kind = $2 and channel = $3",
        tenant,
        kind.as_str(),
        ch.as_str()
    )?
    .ok_or(Error::NotFound("push template"))
}

async fn find_policy(c: &mut Conn, tenant: Id) -> Result<PushPolicy> {
    let row: Option<(i32, i32, i32)> = store::fetch_optional!(
        c,
        (i32, i32, i32),
        "select quiet_start_minute, quiet_end_minute, daily_cap from push_policy where tenant_id = $1",
        tenant
    )?;
    Ok(match row {
        Some((s, e, cap)) => PushPolicy {
            quiet_start_minute: s,
            quiet_end_minute: e,
            daily_cap: cap,
            custom: true,
        },
        None => {
            let d = Policy::default();
            let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
            PushPolicy {
                quiet_start_minute: int(d.quiet_start),
                quiet_end_minute: int(d.quiet_end),
                daily_cap: int(d.daily_cap),
                custom: false,
            }
        }
    })
}

async fn routes(c: &mut Conn, tenant: Id) -> Result<Vec<PushRoute>> {
    let mut out = Vec::with_capacity(Kind::ALL.len());
    for kind in Kind::ALL {
        out.push(route_of(kind, route::find(c, tenant, kind).await?));
    }
    Ok(out)
}

#[derive(Default)]
pub struct PushConfigQuery;

#[Object]
impl PushConfigQuery {
    /// The company's message templates (operators).
    async fn push_templates(&self, ctx: &Context<'_>) -> Result<Vec<PushTemplate>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(list_templates(&mut c, v.tenant_id)
            .await?
            .into_iter()
            .map(PushTemplate)
            .collect())
    }

    /// Quiet hours and the daily cap in force (operators).
    async fn push_policy(&self, ctx: &Context<'_>) -> Result<PushPolicy> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        find_policy(&mut c, v.tenant_id).await
    }

    /// Every kind of message with the channel order new messages take (operators).
    async fn push_routes(&self, ctx: &Context<'_>) -> Result<Vec<PushRoute>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        routes(&mut c, v.tenant_id).await
    }
}

#[derive(Default)]
pub struct PushConfigMutation;

#[Object]
impl PushConfigMutation {
    /// Sets the template one kind of message uses on one WeChat channel (operators).
    async fn set_push_template(
        &self,
        ctx: &Context<'_>,
        input: PushTemplateInput,
    ) -> Result<PushTemplate> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let (kind, channel) = (input.kind, input.channel);
        let app_id = validate::app_id("appId", &input.app_id)?;
        let template_id = check_template_id(&input.template_id)?;
        let map = check_fields(kind, &input.fields)?;
        let page = check_page(input.page.as_deref())?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let app: Option<String> = store::fetch_scalar_optional!(
            &mut tx,
            String,
            "select kind from tenant_app where tenant_id = $1 and app_id = $2",
            v.tenant_id,
            &app_id
        )?;
        match app {
            None => return Err(Error::invalid("appId", "not an app of this company")),
            Some(k) if k != channel.app_kind() => {
                return Err(Error::invalid(
                    "appId",
                    match channel {
                        TemplateChannel::Subscribe => {
                            "subscribe messages are sent by the company's mini-program"
                        }
                        TemplateChannel::Template => {
                            "template messages are sent by the company's official account"
                        }
                    },
                ));
            }
            Some(_) => {}
        }
        store::execute!(
            &mut tx,
            "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields, page)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (tenant_id, kind, channel) do update set app_id = excluded.app_id,
                 template_id = excluded.template_id, fields = excluded.fields, page = excluded.page,
                 updated_at = now()",
            v.tenant_id,
            kind.as_str(),
            channel.channel().as_str(),
            &app_id,
            &template_id,
            Json(&map),
            &page
        )?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "push.template.set",
            "push_template",
            &format!("{}/{}", kind.as_str(), channel.channel().as_str()),
            serde_json::json!({ "app_id": app_id, "template_id": template_id, "fields": map, "page": page }),
        )
        .await?;
        let row = get_template(&mut tx, v.tenant_id, kind, channel.channel()).await?;
        tx.commit().await?;
        Ok(PushTemplate(row))
    }

    /// Removes the template of one kind on one channel (operators): its messages fall through
    /// to the next channel. Whether there was one.
    async fn delete_push_template(
        &self,
        ctx: &Context<'_>,
        kind: Kind,
        channel: TemplateChannel,
    ) -> Result<bool> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let n = store::execute!(
            &mut tx,
            "delete from push_template where tenant_id = $1 and kind = $2 and channel = $3",
            v.tenant_id,
            kind.as_str(),
            channel.channel().as_str()
        )?;
        if n > 0 {
            audit::record(
                &mut tx,
                Some(v.tenant_id),
                Some(v.user_id),
                "push.template.delete",
                "push_template",
                &format!("{}/{}", kind.as_str(), channel.channel().as_str()),
                serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Sets quiet hours (minutes after midnight, Asia/Shanghai; start after end spans midnight,
    /// equal means none) and the daily cap of reminders and marketing messages (operators).
    async fn set_push_policy(
        &self,
        ctx: &Context<'_>,
        quiet_start_minute: i32,
        quiet_end_minute: i32,
        daily_cap: i32,
    ) -> Result<PushPolicy> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        check_policy(quiet_start_minute, quiet_end_minute, daily_cap)?;
        let mut tx = deps(ctx)?.db.begin().await?;
        store::execute!(
            &mut tx,
            "insert into push_policy (tenant_id, quiet_start_minute, quiet_end_minute, daily_cap)
             values ($1, $2, $3, $4)
             on conflict (tenant_id) do update set quiet_start_minute = excluded.quiet_start_minute,
                 quiet_end_minute = excluded.quiet_end_minute, daily_cap = excluded.daily_cap,
                 updated_at = now()",
            v.tenant_id,
            quiet_start_minute,
            quiet_end_minute,
            daily_cap
        )?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "push.policy.set",
            "push_policy",
            &v.tenant_id.to_string(),
            serde_json::json!({
                "quiet_start_minute": quiet_start_minute,
                "quiet_end_minute": quiet_end_minute,
                "daily_cap": daily_cap,
            }),
        )
        .await?;
        let policy = find_policy(&mut tx, v.tenant_id).await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Sets the channels new messages of one kind try, first first (operators): each channel
    /// once, IN_APP only last. Messages already written keep their order.
    async fn set_push_route(
        &self,
        ctx: &Context<'_>,
        kind: Kind,
        channels: Vec<DeliveryChannel>,
    ) -> Result<PushRoute> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let channels = check_route(&channels)?;
        let mut tx = deps(ctx)?.db.begin().await?;
        route::set(&mut tx, v.tenant_id, kind, &channels).await?;
        audit::record(
            &mut tx,
            Some(v.tenant_id),
            Some(v.user_id),
            "push.route.set",
            "push_route",
            kind.as_str(),
            serde_json::json!({ "channels": route::format(&channels) }),
        )
        .await?;
        tx.commit().await?;
        Ok(route_of(kind, Some(channels)))
    }

    /// Goes back to the built-in channel order of one kind (operators).
    async fn reset_push_route(&self, ctx: &Context<'_>, kind: Kind) -> Result<PushRoute> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut tx = deps(ctx)?.db.begin().await?;
        if route::reset(&mut tx, v.tenant_id, kind).await? {
            audit::record(
                &mut tx,
                Some(v.tenant_id),
                Some(v.user_id),
                "push.route.reset",
                "push_route",
                kind.as_str(),
                serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(route_of(kind, None))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn f(keyword: &str, field: &str) -> PushTemplateField {
        PushTemplateField {
            keyword: keyword.into(),
            field: field.into(),
        }
    }

    fn field_of(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn template_fields_name_real_keywords_and_the_kinds_payload() {
        let ok = check_fields(Kind::Notice, &[f(" thing1 ", "title"), f("time2", "at")]).unwrap();
        assert_eq!(ok.get("thing1"), Some(&serde_json::json!("title")));
        assert_eq!(ok.len(), 2);
        for bad in [
            vec![],
            vec![f("thing1", "amount")],
            vec![f("1thing", "title")],
            vec![f("thing 1", "title")],
            vec![f("thing1", "title"), f("thing1", "at")],
        ] {
            assert_eq!(field_of(check_fields(Kind::Notice, &bad)), "fields");
        }
        assert!(check_fields(Kind::Payment, &[f("amount1", "amount")]).is_ok());
        assert_eq!(field_of(check_template_id("a b")), "templateId");
        assert_eq!(field_of(check_template_id("")), "templateId");
        assert!(check_template_id("Vx3C-_9kQ").is_ok());
        assert_eq!(check_page(Some("  ")).unwrap(), None);
        assert_eq!(field_of(check_page(Some("pages/a b"))), "page");
    }

    #[test]
    fn policies_and_routes_are_checked_field_by_field() {
        assert!(check_policy(0, 1439, 0).is_ok());
        assert_eq!(field_of(check_policy(1440, 0, 3)), "quietStartMinute");
        assert_eq!(field_of(check_policy(0, -1, 3)), "quietEndMinute");
        assert_eq!(field_of(check_policy(0, 0, -1)), "dailyCap");
        use DeliveryChannel::{InApp, Subscribe, Template};
        assert_eq!(
            check_route(&[Template, InApp]).unwrap(),
            [Channel::Template, Channel::InApp]
        );
        for bad in [vec![], vec![InApp, Subscribe], vec![Template, Template]] {
            assert_eq!(field_of(check_route(&bad)), "channels");
        }
    }
}
