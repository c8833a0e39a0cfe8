//! Official-account template messages (`cgi-bin/message/template/send`) and mini-program
//! subscribe messages (`cgi-bin/message/subscribe/send`).
//!
//! What WeChat checks, and so the fake: the template belongs to the app the token was issued to
//! (40037); the recipient is an openid of that app (40003). A template message goes to a follower
//! of the official account only (43004), and a user may turn one template's messages off
//! (43101). The same `client_msg_id` for the same openid within ten minutes sends one message.
//! A subscribe message needs one unused consent of the user for that template (43101): each
//! accepted `wx.requestSubscribeMessage` allows exactly one send. Its `page` must not start with
//! `/` (41030), and each value must fit its keyword's type: `thing` at most 20 characters,
//! `phrase` at most 5 Chinese characters, `character_string` / `number` / `letter` at most 32,
//! `phone_number` at most 17, `car_number` at most 8, `name` 10 Chinese or 20 Latin (47003).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use poem::http::Method;
use serde_json::{Value, json};

use super::followers::FollowState;
use super::{Answer, FakeWechat, State};

/// How long WeChat promises that a `client_msg_id` is not sent twice to the same openid.
const CLIENT_MSG_ID_WINDOW: Duration = Duration::from_secs(600);

/// Where a template message leads when tapped, when it opens a mini-program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiniprogramLink {
    pub appid: String,
    pub pagepath: String,
}

/// A template message the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateMessage {
    pub msgid: i64,
    pub touser: String,
    pub template_id: String,
    pub url: Option<String>,
    pub miniprogram: Option<MiniprogramLink>,
    /// keyword → value (colours are not kept)
    pub data: BTreeMap<String, String>,
    pub client_msg_id: Option<String>,
}

/// A subscribe message the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeMessage {
    pub msgid: i64,
    pub touser: String,
    pub template_id: String,
    pub page: Option<String>,
    /// keyword → value
    pub data: BTreeMap<String, String>,
    pub miniprogram_state: Option<String>,
    pub lang: Option<String>,
}

/// (app id, openid, template id)
type UserTemplate = (String, String, String);

pub(super) struct Messages {
    /// (app id, template id) → the template's keywords
    templates: HashMap<(String, String), Vec<String>>,
    /// users who turned a template's messages off
    refused: HashSet<UserTemplate>,
    /// unused subscribe consents
    consents: HashMap<UserTemplate, u32>,
    /// app id → accepted template messages, oldest first
    template_sent: HashMap<String, Vec<TemplateMessage>>,
    /// app id → accepted subscribe messages, oldest first
    subscribe_sent: HashMap<String, Vec<SubscribeMessage>>,
    /// (app id, openid, client_msg_id) → when it was first accepted, and its msgid
    client_msg_ids: HashMap<UserTemplate, (Instant, i64)>,
    client_msg_id_window: Duration,
    last_msgid: i64,
}

impl Default for Messages {
    fn default() -> Messages {
        Messages {
            templates: HashMap::new(),
            refused: HashSet::new(),
            consents: HashMap::new(),
            template_sent: HashMap::new(),
            subscribe_sent: HashMap::new(),
            client_msg_ids: HashMap::new(),
            client_msg_id_window: CLIENT_MSG_ID_WINDOW,
            // WeChat's msgids are large integers; any start will do.
            last_msgid: 2_000_000_000,
        }
    }
}

impl FakeWechat {
    /// Adds a template to an app (an official account's template message or a mini-program's
    /// subscribe message), with the keywords its `data` must have exactly (e.g. `thing1`,
    /// `time2`). Adding it again replaces its keywords.
    pub fn add_template(&self, app_id: &str, template_id: &str, keywords: &[&str]) {
        self.state().messages.templates.insert(
            (app_id.to_owned(), template_id.to_owned()),
            keywords.iter().map(|k| (*k).to_owned()).collect(),
        );
    }

    /// The user accepted this subscribe-message template `n` more times in
    /// `wx.requestSubscribeMessage`: `n` more sends are allowed. Makes the openid a user of the
    /// app.
    pub fn grant_subscribe(&self, app_id: &str, openid: &str, template_id: &str, n: u32) {
        let mut state = self.state();
        state.add_user(app_id, openid);
        let left = state
            .messages
            .consents
            .entry(user_template(app_id, openid, template_id))
            .or_default();
        *left = left.saturating_add(n);
    }

    /// Sends this user still allows for this subscribe-message template.
    pub fn subscribe_consents_left(&self, app_id: &str, openid: &str, template_id: &str) -> u32 {
        self.state()
            .messages
            .consents
            .get(&user_template(app_id, openid, template_id))
            .copied()
            .unwrap_or(0)
    }

    /// The follower turned this template's messages off: template messages to them answer 43101.
    pub fn refuse_template(&self, app_id: &str, openid: &str, template_id: &str) {
        self.state()
            .messages
            .refused
            .insert(user_template(app_id, openid, template_id));
    }

    /// How long a `client_msg_id` keeps a template message from being sent again to the same
    /// openid (ten minutes unless changed; zero turns the deduplication off).
    pub fn set_client_msg_id_window(&self, window: Duration) {
        self.state().messages.client_msg_id_window = window;
    }

    /// The template messages accepted for this official account, oldest first.
    pub fn template_messages(&self, app_id: &str) -> Vec<TemplateMessage> {
        self.state()
            .messages
            .template_sent
            .get(app_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The subscribe messages accepted for this mini-program, oldest first.
    pub fn subscribe_messages(&self, app_id: &str) -> Vec<SubscribeMessage> {
        self.state()
            .messages
            .subscribe_sent
            .get(app_id)
            .cloned()
            .unwrap_or_default()
    }
}

fn user_template(app_id: &str, openid: &str, template_id: &str) -> UserTemplate {
    (app_id.to_owned(), openid.to_owned(), template_id.to_owned())
}

impl State {
    pub(super) fn template_send(
        &mut self,
        method: &Method,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let (app_id, body) = self.authorized_post(method, query, body)?;
        let template_id = required_str(&body, "template_id").ok_or(40037)?;
        let keywords = self.template(&app_id, &template_id)?;
        let touser = required_str(&body, "touser").ok_or(40003)?;
        let url = optional_str(&body, "url")?;
        let miniprogram = match body.get("miniprogram") {
            None | Some(Value::Null) => None,
            Some(link) => Some(MiniprogramLink {
                appid: required_str(link, "appid").ok_or(47001)?,
                pagepath: optional_str(link, "pagepath")?.unwrap_or_default(),
            }),
        };
        let client_msg_id = optional_str(&body, "client_msg_id")?;
        let data = data_values(&body, &keywords, |_, _| true)?;

        let messages = &mut self.messages;
        let dedup_key = client_msg_id
            .as_ref()
            .map(|id| (app_id.clone(), touser.clone(), id.clone()));
        if let Some(key) = &dedup_key {
            let window = messages.client_msg_id_window;
            if let Some((at, msgid)) = messages.client_msg_ids.get(key)
                && at.elapsed() < window
            {
                // Already sent, so not sent again. Checked before the follower checks: a retry
                // of a message that went out still learns its msgid after the user unfollowed.
                return Ok(sent(*msgid));
            }
        }

        match self.follow_state(&app_id, &touser) {
            FollowState::Unknown => return Err(40003),
            FollowState::NotFollowing => return Err(43004),
            FollowState::Following => {}
        }
        let messages = &mut self.messages;
        if messages
            .refused
            .contains(&user_template(&app_id, &touser, &template_id))
        {
            return Err(43101);
        }

        let msgid = messages.next_msgid();
        if let Some(key) = dedup_key {
            messages.client_msg_ids.insert(key, (Instant::now(), msgid));
        }
        messages
            .template_sent
            .entry(app_id)
            .or_default()
            .push(TemplateMessage {
                msgid,
                touser,
                template_id,
                url,
                miniprogram,
                data,
                client_msg_id,
            });
        Ok(sent(msgid))
    }

    pub(super) fn subscribe_send(
        &mut self,
        method: &Method,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let (app_id, body) = self.authorized_post(method, query, body)?;
        let template_id = required_str(&body, "template_id").ok_or(40037)?;
        let keywords = self.template(&app_id, &template_id)?;
        let touser = required_str(&body, "touser").ok_or(40003)?;
        if self.follow_state(&app_id, &touser) == FollowState::Unknown {
            return Err(40003);
        }
        let page = optional_str(&body, "page")?;
        if page.as_deref().is_some_and(|p| p.starts_with('/')) {
            return Err(41030);
        }
        let miniprogram_state = optional_str(&body, "miniprogram_state")?;
        let lang = optional_str(&body, "lang")?;
        let data = data_values(&body, &keywords, value_fits)?;

        let messages = &mut self.messages;
        let consent = user_template(&app_id, &touser, &template_id);
        match messages.consents.get_mut(&consent) {
            Some(left) if *left > 0 => *left -= 1,
            _ => return Err(43101),
        }
        let msgid = messages.next_msgid();
        messages
            .subscribe_sent
            .entry(app_id)
            .or_default()
            .push(SubscribeMessage {
                msgid,
                touser,
                template_id,
                page,
                data,
                miniprogram_state,
                lang,
            });
        Ok(sent(msgid))
    }

    /// The keywords of this app's template; 40037 when the app has no such template.
    fn template(&self, app_id: &str, template_id: &str) -> Result<Vec<String>, i64> {
        self.messages
            .templates
            .get(&(app_id.to_owned(), template_id.to_owned()))
            .cloned()
            .ok_or(40037)
    }
}

impl Messages {
    fn next_msgid(&mut self) -> i64 {
        self.last_msgid += 1;
        self.last_msgid
    }
}

fn sent(msgid: i64) -> Value {
    json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid })
}

/// A present, non-empty string field.
fn required_str(value: &Value, name: &str) -> Option<String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An optional string field; anything but a string or null is a format error.
fn optional_str(value: &Value, name: &str) -> Result<Option<String>, i64> {
    match value.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(47001),
    }
}

/// `data: {keyword: {value}}` with exactly the template's keywords, each value a string that
/// `fits` its keyword (47003 otherwise).
fn data_values(
    body: &Value,
    keywords: &[String],
    fits: fn(&str, &str) -> bool,
) -> Result<BTreeMap<String, String>, i64> {
    let data = match body.get("data") {
        None | Some(Value::Null) => return Err(47003),
        Some(Value::Object(data)) => data,
        Some(_) => return Err(47001),
    };
    if data.len() != keywords.len() || keywords.iter().any(|k| !data.contains_key(k)) {
        return Err(47003);
    }
    data.iter()
        .map(|(keyword, item)| {
            let value = item.get("value").and_then(Value::as_str).ok_or(47003)?;
            if !fits(keyword, value) {
                return Err(47003);
            }
            Ok((keyword.clone(), value.to_owned()))
        })
        .collect()
}

/// Whether a subscribe-message value fits its keyword's type (the keyword without its number).
fn value_fits(keyword: &str, value: &str) -> bool {
    let kind = keyword.trim_end_matches(|c: char| c.is_ascii_digit());
    let chars = value.chars().count();
    if chars == 0 {
        return false;
    }
    match kind {
        "thing" => chars <= 20,
        "number" => chars <= 32 && value.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "letter" => chars <= 32 && value.chars().all(|c| c.is_ascii_alphabetic()),
        "symbol" => chars <= 5,
        "character_string" => chars <= 32 && value.is_ascii(),
        "phone_number" => chars <= 17 && value.is_ascii(),
        "car_number" => chars <= 8,
        "name" if value.is_ascii() => chars <= 20,
        "name" => chars <= 10,
        "phrase" => chars <= 5 && value.chars().all(|c| !c.is_ascii()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::value_fits;

    #[test]
    fn subscribe_values_are_held_to_their_keyword_types() {
        assert!(value_fits("thing1", "车辆已还,请确认"));
        assert!(!value_fits("thing1", &"车".repeat(21)));
        assert!(!value_fits("thing1", ""));
        assert!(value_fits("phrase3", "待取车"));
        assert!(!value_fits("phrase3", "ready"));
        assert!(!value_fits("phrase3", "一二三四五六"));
        assert!(value_fits("character_string2", "SA2505200079288032"));
        assert!(!value_fits("character_string2", "订单"));
        assert!(value_fits("number4", "3.5"));
        assert!(!value_fits("number4", "three"));
        assert!(value_fits("car_number5", "粤A8Z888挂"));
        assert!(!value_fits("car_number5", "粤A8Z888挂12"));
        assert!(value_fits("name6", "Alexander Hamilton"));
        assert!(!value_fits("name6", "欧阳一二三四五六七八九"));
        assert!(value_fits("time7", "2025年6月1日 15:01"));
    }
}
