//! The fake WeChat's official-account and subscribe-message routes, driven over HTTP the way a
//! push gateway's client calls them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use minigate_fakes::wechat::{Failure, FakeWechat, MiniprogramLink, routes};
use serde_json::{Value, json};

const OA: &str = "wx_oa_fleet";
const OA_SECRET: &str = "oa-secret";
const MP: &str = "wx_drivers_app";
const MP_SECRET: &str = "mp-secret";
const RETURN_TEMPLATE: &str = "tmpl-vehicle-returned";
const PICKUP_TEMPLATE: &str = "tmpl-pickup-reminder";

struct Harness {
    fake: FakeWechat,
    http: reqwest::Client,
}

async fn harness() -> Harness {
    let fake = FakeWechat::start().await;
    fake.add_app(OA, OA_SECRET);
    fake.add_app(MP, MP_SECRET);
    fake.add_template(OA, RETURN_TEMPLATE, &["thing1", "time2", "amount3"]);
    fake.add_template(MP, PICKUP_TEMPLATE, &["thing1", "time2", "phrase3"]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Harness { fake, http }
}

/// An answer: HTTP status, `Retry-After`, and the body as JSON (null when it is not JSON).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn errcode(&self) -> i64 {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body["errcode"].as_i64().unwrap_or(0)
    }

    fn msgid(&self) -> i64 {
        assert_eq!(self.errcode(), 0, "{}", self.body);
        assert_eq!(self.body["errmsg"], "ok");
        self.body["msgid"].as_i64().unwrap()
    }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fake.base_url)
    }

    async fn token(&self, app_id: &str, secret: &str) -> String {
        let a = self
            .http
            .post(self.url(routes::STABLE_TOKEN))
            .json(&json!({ "grant_type": "client_credential", "appid": app_id, "secret": secret }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        a["access_token"].as_str().unwrap().to_owned()
    }

    async fn oa_token(&self) -> String {
        self.token(OA, OA_SECRET).await
    }

    async fn mp_token(&self) -> String {
        self.token(MP, MP_SECRET).await
    }

    async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
        }
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        let res = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token)])
            .json(body)
            .send()
            .await
            .unwrap();
        Self::answer(res).await
    }

    async fn send_template(&self, token: &str, body: &Value) -> Answer {
        self.post(routes::TEMPLATE_SEND, token, body).await
    }

    async fn send_subscribe(&self, token: &str, body: &Value) -> Answer {
        self.post(routes::SUBSCRIBE_SEND, token, body).await
    }

    async fn batchget(&self, token: &str, openids: &[&str]) -> Answer {
        let list: Vec<Value> = openids
            .iter()
            .map(|o| json!({ "openid": o, "lang": "zh_CN" }))
            .collect();
        self.post(
            routes::USER_INFO_BATCHGET,
            token,
            &json!({ "user_list": list }),
        )
        .await
    }

    async fn user_get(&self, token: &str, next_openid: Option<&str>) -> Answer {
        let mut query = vec![("access_token", token)];
        if let Some(next) = next_openid {
            query.push(("next_openid", next));
        }
        let res = self
            .http
            .get(self.url(routes::USER_GET))
            .query(&query)
            .send()
            .await
            .unwrap();
        Self::answer(res).await
    }
}

fn returned_message(touser: &str) -> Value {
    json!({
        "touser": touser,
        "template_id": RETURN_TEMPLATE,
        "url": "https://fleet.example.com/bills/42",
        "miniprogram": { "appid": MP, "pagepath": "pages/bill/index?id=42" },
        "data": {
            "thing1": { "value": "粤A8Z888" },
            "time2": { "value": "2025年6月1日 15:01", "color": "#173177" },
            "amount3": { "value": "¥320.00" },
        },
    })
}

fn pickup_message(touser: &str) -> Value {
    json!({
        "touser": touser,
        "template_id": PICKUP_TEMPLATE,
        "page": "pages/order/detail?id=7",
        "miniprogram_state": "formal",
        "lang": "zh_CN",
        "data": {
            "thing1": { "value": "深圳北站停车场" },
            "time2": { "value": "2025-06-01 09:00" },
            "phrase3": { "value": "待取车" },
        },
    })
}

#[tokio::test]
async fn a_template_message_to_a_follower_is_accepted_recorded_and_counted() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", Some("union-1"));
    let token = h.oa_token().await;

    let msgid = h
        .send_template(&token, &returned_message("oa-open-1"))
        .await
        .msgid();

    let sent = h.fake.template_messages(OA);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.msgid, msgid);
    assert_eq!(m.touser, "oa-open-1");
    assert_eq!(m.template_id, RETURN_TEMPLATE);
    assert_eq!(m.url.as_deref(), Some("https://fleet.example.com/bills/42"));
    assert_eq!(
        m.miniprogram,
        Some(MiniprogramLink {
            appid: MP.to_owned(),
            pagepath: "pages/bill/index?id=42".to_owned(),
        })
    );
    assert_eq!(m.data["thing1"], "粤A8Z888");
    assert_eq!(m.data["amount3"], "¥320.00");
    assert_eq!(m.client_msg_id, None);

    // Another message gets another msgid.
    let second = h
        .send_template(&token, &returned_message("oa-open-1"))
        .await
        .msgid();
    assert_ne!(second, msgid);
    assert_eq!(h.fake.template_messages(OA).len(), 2);
    assert_eq!(h.fake.calls(routes::TEMPLATE_SEND), 2);
    assert!(h.fake.template_messages(MP).is_empty());
}

#[tokio::test]
async fn template_messages_are_refused_with_the_errcodes_wechat_uses() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-follower", None);
    h.fake.add_follower(OA, "oa-gone", None);
    h.fake.unfollow(OA, "oa-gone");
    h.fake.add_user(OA, "oa-never-followed");
    h.fake
        .add_template(MP, "tmpl-of-the-mini-program", &["thing1"]);
    let token = h.oa_token().await;

    // A template the account does not have, including another app's.
    let mut unknown = returned_message("oa-follower");
    unknown["template_id"] = json!("tmpl-nobody-has");
    assert_eq!(h.send_template(&token, &unknown).await.errcode(), 40037);
    unknown["template_id"] = json!("tmpl-of-the-mini-program");
    assert_eq!(h.send_template(&token, &unknown).await.errcode(), 40037);

    // An openid the account does not know, e.g. the user's mini-program openid.
    let a = h
        .send_template(&token, &returned_message("mp-open-1"))
        .await;
    assert_eq!(a.errcode(), 40003);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("invalid openid")
    );

    // Known, but not following (any more).
    let a = h.send_template(&token, &returned_message("oa-gone")).await;
    assert_eq!(a.errcode(), 43004);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("require subscribe")
    );
    let a = h
        .send_template(&token, &returned_message("oa-never-followed"))
        .await;
    assert_eq!(a.errcode(), 43004);

    // Data keys that are not the template's: one missing, one extra.
    let mut missing = returned_message("oa-follower");
    missing["data"].as_object_mut().unwrap().remove("amount3");
    assert_eq!(h.send_template(&token, &missing).await.errcode(), 47003);
    let mut extra = returned_message("oa-follower");
    extra["data"]["remark"] = json!({ "value": "谢谢" });
    assert_eq!(h.send_template(&token, &extra).await.errcode(), 47003);

    // A follower who turned this template off.
    h.fake.refuse_template(OA, "oa-follower", RETURN_TEMPLATE);
    let a = h
        .send_template(&token, &returned_message("oa-follower"))
        .await;
    assert_eq!(a.errcode(), 43101);

    // Not JSON; not POST.
    let res = h
        .http
        .post(h.url(routes::TEMPLATE_SEND))
        .query(&[("access_token", token.as_str())])
        .body("touser=oa-follower")
        .send()
        .await
        .unwrap();
    assert_eq!(Harness::answer(res).await.errcode(), 47001);
    let res = h
        .http
        .get(h.url(routes::TEMPLATE_SEND))
        .query(&[("access_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(Harness::answer(res).await.errcode(), 43002);

    assert!(h.fake.template_messages(OA).is_empty());
    assert_eq!(h.fake.calls(routes::TEMPLATE_SEND), 10);
}

#[tokio::test]
async fn a_repeated_client_msg_id_gets_the_same_msgid_and_is_sent_once() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", None);
    h.fake.add_follower(OA, "oa-open-2", None);
    let token = h.oa_token().await;
    let mut message = returned_message("oa-open-1");
    message["client_msg_id"] = json!("outbox-17");

    let first = h.send_template(&token, &message).await.msgid();
    let again = h.send_template(&token, &message).await.msgid();
    assert_eq!(first, again);
    assert_eq!(h.fake.template_messages(OA).len(), 1);
    assert_eq!(
        h.fake.template_messages(OA)[0].client_msg_id.as_deref(),
        Some("outbox-17")
    );

    // Another id, or the same id to someone else, is another message.
    message["client_msg_id"] = json!("outbox-18");
    let other_id = h.send_template(&token, &message).await.msgid();
    let mut to_other = returned_message("oa-open-2");
    to_other["client_msg_id"] = json!("outbox-17");
    let other_user = h.send_template(&token, &to_other).await.msgid();
    assert_ne!(other_id, first);
    assert_ne!(other_user, first);
    assert_ne!(other_user, other_id);
    assert_eq!(h.fake.template_messages(OA).len(), 3);

    // Once the window is over, the id sends again.
    h.fake.set_client_msg_id_window(Duration::ZERO);
    message["client_msg_id"] = json!("outbox-17");
    let later = h.send_template(&token, &message).await.msgid();
    assert_ne!(later, first);
    assert_eq!(h.fake.template_messages(OA).len(), 4);
}

#[tokio::test]
async fn each_subscribe_consent_allows_exactly_one_send() {
    let h = harness().await;
    h.fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 2);
    let token = h.mp_token().await;

    let first = h
        .send_subscribe(&token, &pickup_message("mp-open-1"))
        .await
        .msgid();
    assert_eq!(
        h.fake
            .subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        1
    );
    let second = h
        .send_subscribe(&token, &pickup_message("mp-open-1"))
        .await
        .msgid();
    assert_ne!(first, second);
    assert_eq!(
        h.fake
            .subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        0
    );

    let a = h.send_subscribe(&token, &pickup_message("mp-open-1")).await;
    assert_eq!(a.errcode(), 43101);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("user refuse to accept the msg")
    );

    let sent = h.fake.subscribe_messages(MP);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].msgid, first);
    assert_eq!(sent[0].touser, "mp-open-1");
    assert_eq!(sent[0].page.as_deref(), Some("pages/order/detail?id=7"));
    assert_eq!(sent[0].miniprogram_state.as_deref(), Some("formal"));
    assert_eq!(sent[0].lang.as_deref(), Some("zh_CN"));
    assert_eq!(sent[0].data["phrase3"], "待取车");

    // A new consent allows one more.
    h.fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    h.send_subscribe(&token, &pickup_message("mp-open-1"))
        .await
        .msgid();
    assert_eq!(h.fake.subscribe_messages(MP).len(), 3);
    assert_eq!(h.fake.calls(routes::SUBSCRIBE_SEND), 4);
}

#[tokio::test]
async fn subscribe_messages_are_refused_without_using_a_consent() {
    let h = harness().await;
    h.fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    h.fake.add_template(OA, "tmpl-of-the-account", &["thing1"]);
    // A user of the mini-program who never consented.
    let _ = h.fake.login_code(MP, "mp-open-2", None);
    let token = h.mp_token().await;

    let mut unknown = pickup_message("mp-open-1");
    unknown["template_id"] = json!("tmpl-of-the-account");
    assert_eq!(h.send_subscribe(&token, &unknown).await.errcode(), 40037);

    let a = h.send_subscribe(&token, &pickup_message("oa-open-1")).await;
    assert_eq!(a.errcode(), 40003);
    let a = h.send_subscribe(&token, &pickup_message("mp-open-2")).await;
    assert_eq!(a.errcode(), 43101);

    let mut slash = pickup_message("mp-open-1");
    slash["page"] = json!("/pages/order/detail?id=7");
    assert_eq!(h.send_subscribe(&token, &slash).await.errcode(), 41030);

    let mut too_long = pickup_message("mp-open-1");
    too_long["data"]["thing1"] = json!({ "value": "深圳市福田区深圳北站东广场地下停车场B2层" });
    assert_eq!(h.send_subscribe(&token, &too_long).await.errcode(), 47003);
    let mut empty = pickup_message("mp-open-1");
    empty["data"]["phrase3"] = json!({ "value": "" });
    assert_eq!(h.send_subscribe(&token, &empty).await.errcode(), 47003);
    let mut missing = pickup_message("mp-open-1");
    missing["data"].as_object_mut().unwrap().remove("time2");
    assert_eq!(h.send_subscribe(&token, &missing).await.errcode(), 47003);

    assert!(h.fake.subscribe_messages(MP).is_empty());
    assert_eq!(
        h.fake
            .subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        1
    );
    h.send_subscribe(&token, &pickup_message("mp-open-1"))
        .await
        .msgid();
}

#[tokio::test]
async fn the_follower_list_comes_in_pages_until_an_empty_one() {
    let h = harness().await;
    h.fake.set_user_list_page_size(2);
    for i in 1..=6 {
        h.fake.add_follower(OA, &format!("oa-open-{i}"), None);
    }
    h.fake.unfollow(OA, "oa-open-3");
    let token = h.oa_token().await;

    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let a = h.user_get(&token, next.as_deref()).await;
        assert_eq!(a.errcode(), 0, "{}", a.body);
        assert_eq!(a.body["total"], 5);
        let count = a.body["count"].as_u64().unwrap();
        if count == 0 {
            assert_eq!(a.body["next_openid"], "");
            assert!(a.body.get("data").is_none(), "{}", a.body);
            break;
        }
        let openids: Vec<String> = a.body["data"]["openid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(u64::try_from(openids.len()).unwrap(), count);
        assert_eq!(
            a.body["next_openid"].as_str(),
            openids.last().map(String::as_str)
        );
        next = openids.last().cloned();
        pages.push(openids);
    }
    assert_eq!(
        pages,
        vec![
            vec!["oa-open-1", "oa-open-2"],
            vec!["oa-open-4", "oa-open-5"],
            vec!["oa-open-6"],
        ]
    );
    assert_eq!(h.fake.calls(routes::USER_GET), 4);

    // A cursor that unfollowed since still continues the list; one never seen is refused.
    let a = h.user_get(&token, Some("oa-open-3")).await;
    assert_eq!(a.body["data"]["openid"], json!(["oa-open-4", "oa-open-5"]));
    assert_eq!(h.user_get(&token, Some("nobody")).await.errcode(), 40003);

    // Another account's list is its own.
    let mp_token = h.mp_token().await;
    let a = h.user_get(&mp_token, None).await;
    assert_eq!(a.body, json!({ "total": 0, "count": 0, "next_openid": "" }));
}

#[tokio::test]
async fn batchget_tells_followers_from_former_ones_and_takes_at_most_100() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", Some("union-1"));
    h.fake.add_follower(OA, "oa-open-2", None);
    h.fake.add_follower(OA, "oa-open-3", Some("union-3"));
    h.fake.unfollow(OA, "oa-open-3");
    let token = h.oa_token().await;

    let a = h
        .batchget(&token, &["oa-open-1", "oa-open-2", "oa-open-3"])
        .await;
    assert_eq!(a.errcode(), 0, "{}", a.body);
    let list = a.body["user_info_list"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["subscribe"], 1);
    assert_eq!(list[0]["openid"], "oa-open-1");
    assert_eq!(list[0]["unionid"], "union-1");
    assert!(list[0]["subscribe_time"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(list[1]["subscribe"], 1);
    assert!(list[1].get("unionid").is_none());
    assert_eq!(list[2], json!({ "subscribe": 0, "openid": "oa-open-3" }));

    // Following again shows them again.
    h.fake.add_follower(OA, "oa-open-3", Some("union-3"));
    let a = h.batchget(&token, &["oa-open-3"]).await;
    assert_eq!(a.body["user_info_list"][0]["subscribe"], 1);
    assert_eq!(a.body["user_info_list"][0]["unionid"], "union-3");

    assert_eq!(
        h.batchget(&token, &["oa-open-1", "stranger"])
            .await
            .errcode(),
        40003
    );
    assert_eq!(h.batchget(&token, &[]).await.errcode(), 40032);
    let hundred: Vec<&str> = std::iter::repeat_n("oa-open-1", 100).collect();
    assert_eq!(h.batchget(&token, &hundred).await.errcode(), 0);
    let too_many: Vec<&str> = std::iter::repeat_n("oa-open-1", 101).collect();
    let a = h.batchget(&token, &too_many).await;
    assert_eq!(a.errcode(), 40032);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("invalid openid list size")
    );
    assert_eq!(h.fake.calls(routes::USER_INFO_BATCHGET), 6);
}

#[tokio::test]
async fn injected_failures_hit_only_their_route_for_the_given_number_of_calls() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", None);
    h.fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    let oa = h.oa_token().await;
    let mp = h.mp_token().await;

    h.fake
        .fail_route(routes::TEMPLATE_SEND, 2, Failure::Errcode(-1));
    h.fake
        .fail_route(routes::TEMPLATE_SEND, 1, Failure::Errcode(45009));
    let message = returned_message("oa-open-1");
    let a = h.send_template(&oa, &message).await;
    assert_eq!(a.errcode(), -1);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("system error")
    );
    // Other routes answer normally meanwhile.
    assert_eq!(h.user_get(&oa, None).await.body["total"], 1);
    assert_eq!(h.send_template(&oa, &message).await.errcode(), -1);
    let a = h.send_template(&oa, &message).await;
    assert_eq!(a.errcode(), 45009);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("reach max api daily quota limit")
    );
    h.send_template(&oa, &message).await.msgid();
    assert_eq!(h.fake.template_messages(OA).len(), 1);
    assert_eq!(h.fake.calls(routes::TEMPLATE_SEND), 4);

    // HTTP failures, with and without Retry-After; they use up no consent.
    h.fake.fail_route(
        routes::SUBSCRIBE_SEND,
        1,
        Failure::Http {
            status: 429,
            retry_after_secs: Some(7),
        },
    );
    h.fake.fail_route(
        routes::SUBSCRIBE_SEND,
        1,
        Failure::Http {
            status: 503,
            retry_after_secs: None,
        },
    );
    let a = h.send_subscribe(&mp, &pickup_message("mp-open-1")).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.retry_after.as_deref(), Some("7"));
    let a = h.send_subscribe(&mp, &pickup_message("mp-open-1")).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.retry_after, None);
    assert_eq!(
        h.fake
            .subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        1
    );
    h.send_subscribe(&mp, &pickup_message("mp-open-1"))
        .await
        .msgid();
    assert_eq!(h.fake.calls(routes::SUBSCRIBE_SEND), 3);

    // The token route can be made to fail too.
    h.fake
        .fail_route(routes::STABLE_TOKEN, 1, Failure::Errcode(45011));
    let res = h
        .http
        .post(h.url(routes::STABLE_TOKEN))
        .json(&json!({ "grant_type": "client_credential", "appid": OA, "secret": OA_SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(Harness::answer(res).await.errcode(), 45011);
    assert_eq!(h.oa_token().await, oa);
}

#[tokio::test]
async fn an_expired_token_gets_42001_on_every_route_until_a_new_one_is_fetched() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", None);
    h.fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    let old = h.oa_token().await;
    let mp = h.mp_token().await;

    h.fake.expire_access_token(OA);
    let a = h.send_template(&old, &returned_message("oa-open-1")).await;
    assert_eq!(a.errcode(), 42001);
    assert!(
        a.body["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("access_token expired")
    );
    assert_eq!(h.user_get(&old, None).await.errcode(), 42001);
    assert_eq!(h.batchget(&old, &["oa-open-1"]).await.errcode(), 42001);
    // The mini-program's token was not touched.
    h.send_subscribe(&mp, &pickup_message("mp-open-1"))
        .await
        .msgid();

    // stable_token issues a new token without a forced refresh, and it works.
    let new = h.oa_token().await;
    assert_ne!(new, old);
    h.send_template(&new, &returned_message("oa-open-1"))
        .await
        .msgid();
    assert_eq!(
        h.send_template(&old, &returned_message("oa-open-1"))
            .await
            .errcode(),
        42001
    );

    // Invalid rather than expired: every token dropped, a token never issued, none at all.
    h.fake.expire_access_tokens();
    assert_eq!(
        h.send_template(&new, &returned_message("oa-open-1"))
            .await
            .errcode(),
        40001
    );
    assert_eq!(
        h.send_subscribe(&mp, &pickup_message("mp-open-1"))
            .await
            .errcode(),
        40001
    );
    assert_eq!(h.user_get("made-up", None).await.errcode(), 40001);
    assert_eq!(h.user_get("", None).await.errcode(), 41001);
    assert_eq!(h.fake.template_messages(OA).len(), 1);
}

#[tokio::test]
async fn a_forced_refresh_makes_the_replaced_token_invalid_for_these_routes() {
    let h = harness().await;
    h.fake.add_follower(OA, "oa-open-1", None);
    let old = h.oa_token().await;
    let res = h
        .http
        .post(h.url(routes::STABLE_TOKEN))
        .json(&json!({
            "grant_type": "client_credential",
            "appid": OA,
            "secret": OA_SECRET,
            "force_refresh": true,
        }))
        .send()
        .await
        .unwrap();
    let new = Harness::answer(res).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(h.user_get(&old, None).await.errcode(), 40001);
    assert_eq!(h.user_get(&new, None).await.body["total"], 1);
}
