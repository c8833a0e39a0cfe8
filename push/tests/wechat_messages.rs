//! Template and subscribe messages through the WeChat client against the fake WeChat server:
//! what is sent, and what each of WeChat's answers (and the lack of one) comes to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use minigate_fakes::wechat::{Failure, FakeWechat, routes};
use minigate_push::outcome::SendOutcome;
use minigate_push::wechat::messages::{
    MiniprogramLink, MiniprogramState, SubscribeMessage, TemplateMessage,
};
use minigate_push::wechat::{AppCredentials, TokenStore, WechatClient, WechatConfig};
use secrecy::SecretString;

const OA: &str = "wx_oa_fleet";
const OA_SECRET: &str = "oa-secret";
const MP: &str = "wx_drivers_app";
const MP_SECRET: &str = "mp-secret";
const RETURN_TEMPLATE: &str = "tmpl-vehicle-returned";
const PICKUP_TEMPLATE: &str = "tmpl-pickup-reminder";

const RETURN_DATA: &[(&str, &str)] = &[
    ("thing1", "粤A8Z888"),
    ("time2", "2025年6月1日 15:01"),
    ("amount3", "¥320.00"),
];
const PICKUP_DATA: &[(&str, &str)] = &[
    ("thing1", "深圳北站停车场"),
    ("time2", "2025-06-01 09:00"),
    ("phrase3", "待取车"),
];

fn credentials(app_id: &str, secret: &str) -> AppCredentials {
    AppCredentials {
        app_id: app_id.to_owned(),
        secret: SecretString::from(secret),
    }
}

fn oa() -> AppCredentials {
    credentials(OA, OA_SECRET)
}

fn mp() -> AppCredentials {
    credentials(MP, MP_SECRET)
}

fn client(api_base: &str) -> WechatClient {
    let config = WechatConfig {
        api_base: api_base.to_owned(),
        timeout: Duration::from_secs(5),
    };
    WechatClient::new(config, TokenStore::local()).unwrap()
}

async fn fake() -> FakeWechat {
    let fake = FakeWechat::start().await;
    fake.add_app(OA, OA_SECRET);
    fake.add_app(MP, MP_SECRET);
    fake.add_template(OA, RETURN_TEMPLATE, &["thing1", "time2", "amount3"]);
    fake.add_template(MP, PICKUP_TEMPLATE, &["thing1", "time2", "phrase3"]);
    fake
}

fn returned(touser: &str) -> TemplateMessage<'_> {
    TemplateMessage {
        touser,
        template_id: RETURN_TEMPLATE,
        url: Some("https://fleet.example.com/bills/42"),
        miniprogram: Some(MiniprogramLink {
            appid: MP,
            pagepath: "pages/bill/index?id=42",
        }),
        client_msg_id: None,
        data: RETURN_DATA,
    }
}

fn pickup(touser: &str) -> SubscribeMessage<'_> {
    SubscribeMessage {
        touser,
        template_id: PICKUP_TEMPLATE,
        page: Some("pages/order/detail?id=7"),
        miniprogram_state: Some(MiniprogramState::Formal),
        lang: Some("zh_CN"),
        data: PICKUP_DATA,
    }
}

fn msgid(outcome: &SendOutcome) -> String {
    match outcome {
        SendOutcome::Sent {
            provider_msg_id: Some(id),
        } => id.clone(),
        other => panic!("not sent with a msgid: {other:?}"),
    }
}

fn assert_permanent(outcome: &SendOutcome, code: &str) {
    assert!(
        matches!(outcome, SendOutcome::Permanent { .. }),
        "{outcome:?}"
    );
    assert_eq!(outcome.code(), code, "{outcome:?}");
}

#[tokio::test]
async fn a_template_message_to_a_follower_is_sent_with_its_data_and_msgid() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-open-1", Some("union-1"));
    let wechat = client(&fake.base_url);

    let outcome = wechat.send_template(&oa(), &returned("oa-open-1")).await;
    let id = msgid(&outcome);

    let sent = fake.template_messages(OA);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.msgid.to_string(), id);
    assert_eq!(m.touser, "oa-open-1");
    assert_eq!(m.template_id, RETURN_TEMPLATE);
    assert_eq!(m.url.as_deref(), Some("https://fleet.example.com/bills/42"));
    assert_eq!(
        m.miniprogram,
        Some(minigate_fakes::wechat::MiniprogramLink {
            appid: MP.to_owned(),
            pagepath: "pages/bill/index?id=42".to_owned(),
        })
    );
    assert_eq!(m.data.len(), 3);
    for (key, value) in RETURN_DATA {
        assert_eq!(m.data[*key], *value, "{key}");
    }
    assert_eq!(m.client_msg_id, None);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);
    assert_eq!(fake.calls(routes::TEMPLATE_SEND), 1);
}

#[tokio::test]
async fn a_template_message_resent_with_its_client_msg_id_goes_out_once() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-open-1", None);
    let wechat = client(&fake.base_url);
    let msg = TemplateMessage {
        client_msg_id: Some("delivery-17"),
        url: None,
        ..returned("oa-open-1")
    };

    let first = msgid(&wechat.send_template(&oa(), &msg).await);
    let again = msgid(&wechat.send_template(&oa(), &msg).await);
    assert_eq!(first, again);
    let sent = fake.template_messages(OA);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].client_msg_id.as_deref(), Some("delivery-17"));
    assert_eq!(sent[0].url, None);
}

#[tokio::test]
async fn template_messages_wechat_refuses_for_good_are_permanent() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-follower", None);
    fake.add_follower(OA, "oa-gone", None);
    fake.unfollow(OA, "oa-gone");
    let wechat = client(&fake.base_url);

    let outcome = wechat.send_template(&oa(), &returned("oa-gone")).await;
    assert_permanent(&outcome, "WECHAT_43004");
    let SendOutcome::Permanent { detail, .. } = &outcome else {
        unreachable!()
    };
    assert!(detail.contains("require subscribe"), "{detail}");

    // The user's mini-program openid is not the official account's.
    let outcome = wechat.send_template(&oa(), &returned("mp-open-1")).await;
    assert_permanent(&outcome, "WECHAT_40003");

    let unknown = TemplateMessage {
        template_id: "tmpl-nobody-has",
        ..returned("oa-follower")
    };
    let outcome = wechat.send_template(&oa(), &unknown).await;
    assert_permanent(&outcome, "WECHAT_40037");

    let missing_keyword = TemplateMessage {
        data: &RETURN_DATA[..2],
        ..returned("oa-follower")
    };
    let outcome = wechat.send_template(&oa(), &missing_keyword).await;
    assert_permanent(&outcome, "WECHAT_47003");

    fake.refuse_template(OA, "oa-follower", RETURN_TEMPLATE);
    let outcome = wechat.send_template(&oa(), &returned("oa-follower")).await;
    assert_permanent(&outcome, "WECHAT_43101");

    assert!(fake.template_messages(OA).is_empty());
    assert_eq!(fake.calls(routes::TEMPLATE_SEND), 5);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);
}

#[tokio::test]
async fn a_subscribe_message_with_a_consent_is_sent_and_uses_it() {
    let fake = fake().await;
    fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    let wechat = client(&fake.base_url);

    let id = msgid(&wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await);

    assert_eq!(
        fake.subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        0
    );
    let sent = fake.subscribe_messages(MP);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.msgid.to_string(), id);
    assert_eq!(m.touser, "mp-open-1");
    assert_eq!(m.template_id, PICKUP_TEMPLATE);
    assert_eq!(m.page.as_deref(), Some("pages/order/detail?id=7"));
    assert_eq!(m.miniprogram_state.as_deref(), Some("formal"));
    assert_eq!(m.lang.as_deref(), Some("zh_CN"));
    for (key, value) in PICKUP_DATA {
        assert_eq!(m.data[*key], *value, "{key}");
    }

    // The consent is used up: the next one is refused.
    let outcome = wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await;
    assert_permanent(&outcome, "WECHAT_43101");
}

#[tokio::test]
async fn subscribe_messages_wechat_refuses_for_good_are_permanent_and_use_no_consent() {
    let fake = fake().await;
    fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    // A user of the mini-program who never consented.
    let _ = fake.login_code(MP, "mp-open-2", None);
    let wechat = client(&fake.base_url);

    let outcome = wechat.send_subscribe(&mp(), &pickup("mp-open-2")).await;
    assert_permanent(&outcome, "WECHAT_43101");

    let outcome = wechat.send_subscribe(&mp(), &pickup("oa-open-1")).await;
    assert_permanent(&outcome, "WECHAT_40003");

    let slash = SubscribeMessage {
        page: Some("/pages/order/detail?id=7"),
        ..pickup("mp-open-1")
    };
    let outcome = wechat.send_subscribe(&mp(), &slash).await;
    assert_permanent(&outcome, "WECHAT_41030");

    // Values are sent as given, not cut to fit: a `thing` over 20 characters is WeChat's 47003.
    let too_long = SubscribeMessage {
        data: &[
            ("thing1", "深圳市福田区深圳北站东广场地下停车场B2层"),
            ("time2", "2025-06-01 09:00"),
            ("phrase3", "待取车"),
        ],
        ..pickup("mp-open-1")
    };
    let outcome = wechat.send_subscribe(&mp(), &too_long).await;
    assert_permanent(&outcome, "WECHAT_47003");

    let other_apps_template = SubscribeMessage {
        template_id: RETURN_TEMPLATE,
        ..pickup("mp-open-1")
    };
    let outcome = wechat.send_subscribe(&mp(), &other_apps_template).await;
    assert_permanent(&outcome, "WECHAT_40037");

    assert!(fake.subscribe_messages(MP).is_empty());
    assert_eq!(
        fake.subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        1
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_message_sent() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-open-1", None);
    fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 2);
    let wechat = client(&fake.base_url);
    msgid(&wechat.send_template(&oa(), &returned("oa-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);

    fake.expire_access_token(OA);
    msgid(&wechat.send_template(&oa(), &returned("oa-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 2);
    assert_eq!(fake.calls(routes::TEMPLATE_SEND), 3);
    assert_eq!(fake.template_messages(OA).len(), 2);

    // The new token is cached: the next message needs no token call.
    msgid(&wechat.send_template(&oa(), &returned("oa-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 2);

    // Every token invalidated (40001): the same for subscribe messages.
    msgid(&wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 3);
    fake.expire_access_tokens();
    msgid(&wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 4);
    assert_eq!(fake.calls(routes::SUBSCRIBE_SEND), 3);
    assert_eq!(fake.subscribe_messages(MP).len(), 2);
}

#[tokio::test]
async fn a_token_rejected_again_after_the_refresh_is_a_credential_problem() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-open-1", None);
    let wechat = client(&fake.base_url);
    fake.fail_route(routes::TEMPLATE_SEND, 2, Failure::Errcode(40001));

    let outcome = wechat.send_template(&oa(), &returned("oa-open-1")).await;
    assert!(
        matches!(outcome, SendOutcome::Credential { .. }),
        "{outcome:?}"
    );
    assert_eq!(outcome.code(), "WECHAT_40001");
    // One refresh, one retry, no more.
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 2);
    assert_eq!(fake.calls(routes::TEMPLATE_SEND), 2);
    assert!(fake.template_messages(OA).is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_a_credential_problem() {
    let fake = fake().await;
    fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    let wechat = client(&fake.base_url);

    let outcome = wechat
        .send_subscribe(&credentials(MP, "not-the-secret"), &pickup("mp-open-1"))
        .await;
    assert!(
        matches!(outcome, SendOutcome::Credential { .. }),
        "{outcome:?}"
    );
    assert_eq!(outcome.code(), "WECHAT_40125");
    let SendOutcome::Credential { detail, .. } = &outcome else {
        unreachable!()
    };
    assert!(!detail.contains("not-the-secret"), "{detail}");
    assert_eq!(fake.calls(routes::SUBSCRIBE_SEND), 0);
    assert_eq!(
        fake.subscribe_consents_left(MP, "mp-open-1", PICKUP_TEMPLATE),
        1
    );
}

#[tokio::test]
async fn http_failures_are_transient_with_the_retry_after_given() {
    let fake = fake().await;
    fake.grant_subscribe(MP, "mp-open-1", PICKUP_TEMPLATE, 1);
    let wechat = client(&fake.base_url);
    fake.fail_route(
        routes::SUBSCRIBE_SEND,
        1,
        Failure::Http {
            status: 503,
            retry_after_secs: Some(7),
        },
    );
    fake.fail_route(
        routes::SUBSCRIBE_SEND,
        1,
        Failure::Http {
            status: 429,
            retry_after_secs: None,
        },
    );

    let outcome = wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await;
    let SendOutcome::Transient {
        code, retry_after, ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(code, "HTTP_503");
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));

    let outcome = wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await;
    let SendOutcome::Transient {
        code, retry_after, ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(code, "HTTP_429");
    assert_eq!(*retry_after, None);

    // Neither used the consent, and HTTP failures do not touch the token.
    msgid(&wechat.send_subscribe(&mp(), &pickup("mp-open-1")).await);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);
    assert_eq!(fake.calls(routes::SUBSCRIBE_SEND), 3);
}

#[tokio::test]
async fn wechat_busy_or_over_quota_is_transient() {
    let fake = fake().await;
    fake.add_follower(OA, "oa-open-1", None);
    let wechat = client(&fake.base_url);
    fake.fail_route(routes::TEMPLATE_SEND, 1, Failure::Errcode(-1));
    fake.fail_route(routes::TEMPLATE_SEND, 1, Failure::Errcode(45009));

    for code in ["WECHAT_-1", "WECHAT_45009"] {
        let outcome = wechat.send_template(&oa(), &returned("oa-open-1")).await;
        let SendOutcome::Transient { retry_after, .. } = &outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(outcome.code(), code);
        assert_eq!(*retry_after, None);
    }
    msgid(&wechat.send_template(&oa(), &returned("oa-open-1")).await);
    assert_eq!(fake.template_messages(OA).len(), 1);
}

#[tokio::test]
async fn an_unreachable_wechat_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let wechat = client(&format!("http://127.0.0.1:{port}"));

    let outcome = wechat.send_template(&oa(), &returned("oa-open-1")).await;
    assert!(
        matches!(outcome, SendOutcome::Transient { .. }),
        "{outcome:?}"
    );
    // The access token could not be fetched either.
    assert_eq!(outcome.code(), "UPSTREAM_UNAVAILABLE");
    let text = format!("{outcome:?}");
    assert!(!text.contains(OA_SECRET), "{text}");
}
