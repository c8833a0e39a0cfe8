//! Messages outside the app through the real service's delivery worker and the fake WeChat:
//! a subscribe message spends the consent the person gave, the official account's template
//! message to a follower comes next, and the in-app notice list is the last resort.

use std::time::{Duration, Instant};

use minigate_push::delivery::{self, Channel, Class, NewDelivery};
use minigate_store::{self as store, Id};
use serde_json::{Value, json};

use crate::support::TestApp;

const MP: &str = "wxmpdelivery0001";
const OA: &str = "wxoadelivery0001";
const SUB_TEMPLATE: &str = "sub-notice-template";
const OA_TEMPLATE: &str = "oa-notice-template";

async fn templates(app: &TestApp, tenant: Id) {
    app.wechat
        .add_template(MP, SUB_TEMPLATE, &["thing1", "time2"]);
    app.wechat
        .add_template(OA, OA_TEMPLATE, &["first", "keyword1"]);
    let mut tx = app.db().begin().await.unwrap();
    for (channel, app_id, template, fields) in [
        (
            "SUBSCRIBE",
            MP,
            SUB_TEMPLATE,
            json!({ "thing1": "title", "time2": "at" }),
        ),
        (
            "TEMPLATE",
            OA,
            OA_TEMPLATE,
            json!({ "first": "title", "keyword1": "at" }),
        ),
    ] {
        store::execute!(
            &mut tx,
            "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields, page)
             values ($1, 'NOTICE', $2, $3, $4, $5, 'pages/notice/index')",
            tenant,
            channel,
            app_id,
            template,
            store::sqlx::types::Json(fields)
        )
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn enqueue(app: &TestApp, tenant: Id, user: Id, source: Id, title: &str) {
    let payload = json!({ "title": title, "at": "2026-11-21 10:00" });
    let mut tx = app.db().begin().await.unwrap();
    let id = delivery::enqueue(
        &mut tx,
        &NewDelivery {
            tenant_id: tenant,
            user_id: user,
            kind: "NOTICE",
            class: Class::Essential,
            source_id: source,
            channels: &[Channel::Subscribe, Channel::Template, Channel::InApp],
            payload: &payload,
            not_before: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    assert!(id.is_some());
    tx.commit().await.unwrap();
}

/// The deliveries of one cause, once none is pending or sending any more (oldest first).
async fn settled(app: &TestApp, admin: &str, source: Id) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let r = app
            .gql(
                admin,
                "query($s: ID!) { deliveries(sourceId: $s) { id channel status attempts lastCode } }",
                json!({ "s": source.to_string() }),
            )
            .await;
        let mut rows = r.ok()["deliveries"].as_array().unwrap().clone();
        let done = !rows.is_empty()
            && rows
                .iter()
                .all(|d| d["status"] != "PENDING" && d["status"] != "SENDING")
            && rows
                .iter()
                .any(|d| d["status"] == "SENT" || d["status"] == "DEAD");
        if done {
            rows.reverse();
            return rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "deliveries not settled: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both!(
    a_message_takes_the_first_channel_that_can_carry_it,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("deliver").await;
        app.mini_program(tenant, MP).await;
        app.official_account(tenant, OA, "secret-of-the-official-account")
            .await;
        templates(&app, tenant).await;

        // A driver signed in with WeChat who accepted one subscribe message.
        let login = app.login_wechat(MP, "o-driver").await;
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let user: Id = login.ok()["loginWithWechat"]["user"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        app.wechat.grant_subscribe(MP, "o-driver", SUB_TEMPLATE, 1);
        let r = app
            .gql(
                &token,
                "mutation($r: [SubscribeResult!]!) { recordSubscribeConsent(results: $r) }",
                json!({ "r": [
                    { "templateId": SUB_TEMPLATE, "accepted": true },
                    { "templateId": "another", "accepted": false }
                ] }),
            )
            .await;
        assert_eq!(r.ok()["recordSubscribeConsent"], 1);

        // First message: the consent carries it as a subscribe message.
        let first = Id::new();
        enqueue(&app, tenant, user, first, "Rent due Friday").await;
        let rows = settled(&app, &admin, first).await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0]["channel"], "SUBSCRIBE");
        assert_eq!(rows[0]["status"], "SENT");
        let sent = app.wechat.subscribe_messages(MP);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].touser, "o-driver");
        assert_eq!(sent[0].data["thing1"], "Rent due Friday");
        assert_eq!(
            app.wechat
                .subscribe_consents_left(MP, "o-driver", SUB_TEMPLATE),
            0
        );

        // Second message: no consent left, so the official account carries it to the follower
        // its unionid names.
        app.wechat
            .add_follower(OA, "oa-driver", Some("union-o-driver"));
        let mut c = app.db().conn().await.unwrap();
        store::execute!(
            &mut c,
            "insert into wechat_follower (app_id, openid, tenant_id, unionid, subscribed) values ($1, 'oa-driver', $2, 'union-o-driver', true)",
            OA,
            tenant
        )
        .unwrap();
        let second = Id::new();
        enqueue(&app, tenant, user, second, "Accident report received").await;
        let rows = settled(&app, &admin, second).await;
        let channels: Vec<(&str, &str)> = rows
            .iter()
            .map(|d| {
                (
                    d["channel"].as_str().unwrap(),
                    d["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            channels,
            [("SUBSCRIBE", "FELL_THROUGH"), ("TEMPLATE", "SENT")],
            "{rows:#?}"
        );
        assert_eq!(rows[0]["lastCode"], "NO_CONSENT");
        let oa = app.wechat.template_messages(OA);
        assert_eq!(oa.len(), 1);
        assert_eq!(oa[0].touser, "oa-driver");
        assert_eq!(oa[0].data["first"], "Accident report received");
        // The delivery's id makes a resend after a lost answer safe.
        assert!(oa[0].client_msg_id.is_some());

        // The follower left: the message ends in the app's notice list.
        app.wechat.unfollow(OA, "oa-driver");
        store::execute!(
            &mut c,
            "update wechat_follower set subscribed = false where openid = 'oa-driver'"
        )
        .unwrap();
        let third = Id::new();
        enqueue(&app, tenant, user, third, "New notice").await;
        let rows = settled(&app, &admin, third).await;
        let channels: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|d| {
                (
                    d["channel"].as_str().unwrap(),
                    d["status"].as_str().unwrap(),
                    d["lastCode"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            channels,
            [
                ("SUBSCRIBE", "FELL_THROUGH", "NO_CONSENT"),
                ("TEMPLATE", "FELL_THROUGH", "NOT_A_FOLLOWER"),
                ("IN_APP", "SENT", "")
            ],
            "{rows:#?}"
        );
        assert_eq!(app.wechat.template_messages(OA).len(), 1);

        // Only a dead letter can be sent again; people other than operators see nothing.
        let r = app
            .gql(
                &admin,
                "mutation($id: ID!) { retryDelivery(id: $id) { id } }",
                json!({ "id": rows[2]["id"] }),
            )
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let r = app.gql(&token, "{ deliveries { id } }", json!({})).await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
    }
);

both!(
    consents_need_a_wechat_sign_in_and_sane_input,
    |app: TestApp| async move {
        let (_, admin) = app.admin("consent").await;
        // An operator signed in with a password has no mini-program to consent in.
        let r = app
            .gql(
                &admin,
                "mutation($r: [SubscribeResult!]!) { recordSubscribeConsent(results: $r) }",
                json!({ "r": [{ "templateId": SUB_TEMPLATE, "accepted": true }] }),
            )
            .await;
        assert_eq!(r.code(), Some("WECHAT_SIGN_IN_REQUIRED"));
        let r = app
            .gql(
                &admin,
                "mutation($r: [SubscribeResult!]!) { recordSubscribeConsent(results: $r) }",
                json!({ "r": [] }),
            )
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(app.count("select count(*) from subscribe_consent").await, 0);
    }
);
