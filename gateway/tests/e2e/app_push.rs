//! Phone apps through the real service: devices registered per provider and environment, a
//! company's provider credentials set and checked, and one notice fanned out to people reached
//! by a subscribe message, a template message, FCM, APNs, Huawei and only the in-app list, with
//! the tokens the providers disown removed for their provider and environment only.

use std::time::Duration;

use minigate_resolvers::Role;
use minigate_store::{self as store, Id};
use serde_json::{Value, json};

use crate::{
    push_sources::{MP, PUBLISH, all_settled, configure_notices, id_of, reader_and_follower},
    support::TestApp,
};

const REGISTER: &str = "mutation($p: PushPlatform!, $t: String!, $e: PushEnvironment) { registerDevice(platform: $p, token: $t, environment: $e) { id platform environment tokenTail } }";
const UNREGISTER: &str = "mutation($p: PushPlatform!, $t: String!, $e: PushEnvironment) { unregisterDevice(platform: $p, token: $t, environment: $e) }";
const MY_DEVICES: &str = "{ myDevices { platform environment tokenTail } }";
const SET_PROVIDER: &str = "mutation($i: AppPushProviderInput!) { setAppPushProvider(input: $i) { platform keyRef appId teamId keyId topic } }";
const PROVIDERS: &str = "{ appPushProviders { platform keyRef appId teamId keyId topic } }";

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.minigate.driver";
const HUAWEI_APP: &str = "10734021";

fn apns_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn device_rows(app: &TestApp, user: Id) -> Vec<(String, String, String)> {
    let mut c = app.test_db.db.conn().await.unwrap();
    store::fetch_all!(
        &mut c,
        (String, String, String),
        "select provider, environment, token from push_device where user_id = $1 order by provider, environment, token",
        user
    )
    .unwrap()
}

/// Someone signed in from the mini-program (drivers and consumers sign in with WeChat).
async fn wechat_person(app: &TestApp, openid: &str) -> (String, Id) {
    let login = app.login_wechat(MP, openid).await;
    let d = &login.ok()["loginWithWechat"];
    (
        d["accessToken"].as_str().unwrap().to_owned(),
        id_of(&d["user"]["id"]),
    )
}

/// Writes `text` as a secret file of the test and returns its reference.
fn secret_file(app: &TestApp, name: &str, text: &str) -> String {
    let path = app.dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("file:{}", path.display())
}

/// The company's credentials with all three providers, set the way operators do.
async fn configure_providers(app: &TestApp, admin: &str) {
    let fcm_key = secret_file(app, "fcm.json", &app.fcm.add_project("fleet-app"));
    let p8 = app.apns.add_key(TEAM, KEY_ID);
    app.apns_sandbox.add_existing_key(TEAM, KEY_ID, &p8);
    let apns_key = secret_file(app, "AuthKey.p8", &p8);
    app.huawei.add_app(HUAWEI_APP, "huawei-app-secret");
    let huawei_secret = secret_file(app, "huawei.secret", "huawei-app-secret");
    for input in [
        json!({ "platform": "FCM", "keyRef": fcm_key }),
        json!({ "platform": "APNS", "keyRef": apns_key, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC }),
        json!({ "platform": "HUAWEI", "keyRef": huawei_secret, "appId": HUAWEI_APP }),
    ] {
        let r = app.gql(admin, SET_PROVIDER, json!({ "i": input })).await;
        assert_eq!(
            r.ok()["setAppPushProvider"]["platform"],
            input["platform"],
            "{:?}",
            r.json
        );
    }
}

both!(
    devices_are_kept_per_provider_and_environment_and_bad_input_changes_nothing,
    |app: TestApp| async move {
        let tenant = app.tenant("devices").await;
        app.mini_program(tenant, MP).await;
        let (alice, alice_id) = wechat_person(&app, "o-alice").await;
        let (bob, bob_id) = wechat_person(&app, "o-bob").await;

        let iphone = apns_token(0xab);
        let r = app
            .gql(
                &alice,
                REGISTER,
                json!({ "p": "APNS", "t": iphone.to_uppercase(), "e": "SANDBOX" }),
            )
            .await;
        assert_eq!(r.ok()["registerDevice"]["environment"], "SANDBOX");
        assert_eq!(r.ok()["registerDevice"]["tokenTail"], "ababab");
        // The same token from a production build is another registration.
        app.gql(
            &alice,
            REGISTER,
            json!({ "p": "APNS", "t": iphone, "e": "PRODUCTION" }),
        )
        .await
        .ok();
        let r = app
            .gql(
                &alice,
                REGISTER,
                json!({ "p": "FCM", "t": "fcm:APA91b-shared" }),
            )
            .await;
        assert_eq!(r.ok()["registerDevice"]["environment"], "PRODUCTION");
        // Registering again (every app start) keeps one row.
        app.gql(
            &alice,
            REGISTER,
            json!({ "p": "FCM", "t": "fcm:APA91b-shared" }),
        )
        .await
        .ok();
        assert_eq!(
            device_rows(&app, alice_id).await,
            [
                ("APNS".into(), "PRODUCTION".into(), iphone.clone()),
                ("APNS".into(), "SANDBOX".into(), iphone.clone()),
                (
                    "FCM".into(),
                    "PRODUCTION".into(),
                    "fcm:APA91b-shared".into()
                ),
            ]
        );
        let r = app.gql(&alice, MY_DEVICES, json!({})).await;
        assert_eq!(r.ok()["myDevices"].as_array().unwrap().len(), 3);

        // Bad input: a clear code, nothing stored or changed.
        for (vars, field) in [
            (json!({ "p": "APNS", "t": "not-hex" }), "token"),
            (json!({ "p": "APNS", "t": "ab".repeat(31) }), "token"),
            (json!({ "p": "FCM", "t": "" }), "token"),
            (json!({ "p": "HUAWEI", "t": "has space" }), "token"),
            (
                json!({ "p": "FCM", "t": "fcm:x", "e": "SANDBOX" }),
                "environment",
            ),
        ] {
            let r = app.gql(&bob, REGISTER, vars.clone()).await;
            assert_eq!(r.code(), Some("INVALID_INPUT"), "{vars}");
            assert_eq!(r.json["errors"][0]["extensions"]["field"], field, "{vars}");
        }
        let r = app
            .post(REGISTER, json!({ "p": "FCM", "t": "fcm:anon" }), None)
            .await;
        assert_eq!(r.code(), Some("UNAUTHENTICATED"));
        assert!(device_rows(&app, bob_id).await.is_empty());

        // The phone changes hands: the token moves to whoever registers it now.
        app.gql(
            &bob,
            REGISTER,
            json!({ "p": "FCM", "t": "fcm:APA91b-shared" }),
        )
        .await
        .ok();
        assert_eq!(
            device_rows(&app, bob_id).await,
            [(
                "FCM".into(),
                "PRODUCTION".into(),
                "fcm:APA91b-shared".into()
            )]
        );
        assert_eq!(device_rows(&app, alice_id).await.len(), 2);

        // Alice cannot drop Bob's device; Bob can, once (a retry answers false).
        let drop_it = json!({ "p": "FCM", "t": "fcm:APA91b-shared" });
        let r = app.gql(&alice, UNREGISTER, drop_it.clone()).await;
        assert_eq!(r.ok()["unregisterDevice"], false);
        let r = app.gql(&bob, UNREGISTER, drop_it.clone()).await;
        assert_eq!(r.ok()["unregisterDevice"], true);
        let r = app.gql(&bob, UNREGISTER, drop_it).await;
        assert_eq!(r.ok()["unregisterDevice"], false);
        assert!(device_rows(&app, bob_id).await.is_empty());
        assert_eq!(device_rows(&app, alice_id).await.len(), 2);
    }
);

both!(
    provider_credentials_are_checked_before_they_are_kept,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("providers").await;
        let branch = app.branch(tenant, "B1").await;
        let (staff, _) = app
            .password_user(
                "providers",
                tenant,
                Role::Staff,
                "13800000021",
                Some(branch),
            )
            .await;
        let garbage = secret_file(&app, "garbage.json", "{\"type\": \"service_account\"}");
        let p8 = app.apns.add_key(TEAM, KEY_ID);
        let apns_key = secret_file(&app, "AuthKey.p8", &p8);
        let missing = format!("file:{}", app.dir.join("nowhere.p8").display());
        for (input, code, field) in [
            (
                json!({ "platform": "FCM", "keyRef": garbage }),
                "PUSH_KEY_INVALID",
                Value::Null,
            ),
            (
                json!({ "platform": "APNS", "keyRef": missing, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC }),
                "INVALID_INPUT",
                json!("keyRef"),
            ),
            (
                json!({ "platform": "APNS", "keyRef": apns_key, "keyId": KEY_ID, "topic": TOPIC }),
                "INVALID_INPUT",
                json!("teamId"),
            ),
            (
                json!({ "platform": "APNS", "keyRef": garbage, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC }),
                "PUSH_KEY_INVALID",
                Value::Null,
            ),
            (
                json!({ "platform": "HUAWEI", "keyRef": apns_key, "appId": "com.not.a.number" }),
                "PUSH_KEY_INVALID",
                Value::Null,
            ),
        ] {
            let r = app.gql(&admin, SET_PROVIDER, json!({ "i": input })).await;
            assert_eq!(r.code(), Some(code), "{input}: {:?}", r.json);
            assert_eq!(r.json["errors"][0]["extensions"]["field"], field, "{input}");
        }
        let r = app
            .gql(&staff, SET_PROVIDER, json!({ "i": { "platform": "APNS", "keyRef": apns_key, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC } }))
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let r = app.gql(&admin, PROVIDERS, json!({})).await;
        assert_eq!(r.ok()["appPushProviders"], json!([]));

        // A setting of another provider's is refused, not dropped unseen.
        let r = app
            .gql(&admin, SET_PROVIDER, json!({ "i": { "platform": "APNS", "keyRef": apns_key, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC, "appId": "10734021" } }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(r.json["errors"][0]["extensions"]["field"], "appId");
        let r = app
            .gql(&admin, SET_PROVIDER, json!({ "i": { "platform": "APNS", "keyRef": apns_key, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC } }))
            .await;
        assert_eq!(
            r.ok()["setAppPushProvider"],
            json!({ "platform": "APNS", "keyRef": apns_key, "appId": null, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC })
        );
        // A bad change later leaves the good one in place.
        let r = app
            .gql(&admin, SET_PROVIDER, json!({ "i": { "platform": "APNS", "keyRef": garbage, "teamId": TEAM, "keyId": KEY_ID, "topic": TOPIC } }))
            .await;
        assert_eq!(r.code(), Some("PUSH_KEY_INVALID"));
        let r = app.gql(&admin, PROVIDERS, json!({})).await;
        assert_eq!(r.ok()["appPushProviders"][0]["keyRef"], apns_key);
    }
);

/// Signs someone in and registers `devices` (platform, token, environment) for them.
async fn person_with(app: &TestApp, openid: &str, devices: &[(&str, &str, &str)]) -> Id {
    let (token, id) = wechat_person(app, openid).await;
    for (platform, device, env) in devices {
        let r = app
            .gql(
                &token,
                REGISTER,
                json!({ "p": platform, "t": device, "e": env }),
            )
            .await;
        assert!(r.json["errors"].is_null(), "{:?}", r.json);
    }
    id
}

both!(
    one_notice_reaches_people_on_wechat_fcm_apns_huawei_and_in_app,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("mixed").await;
        configure_notices(&app, tenant, &admin).await;
        configure_providers(&app, &admin).await;

        // WeChat: one with a subscribe consent, one following the official account.
        let (reader, follower) = reader_and_follower(&app, tenant, "mixed-").await;

        // Apps: Android with Google, an iPhone on a development build (its stale production
        // registration is not Apple's), a Huawei phone, and an Android app since uninstalled.
        app.fcm.add_device("fleet-app", "fcm-android-1");
        let android =
            person_with(&app, "o-android", &[("FCM", "fcm-android-1", "PRODUCTION")]).await;
        let dev_build = apns_token(0x31);
        let stale = apns_token(0x32);
        app.apns_sandbox.add_device(TOPIC, &dev_build);
        let iphone = person_with(
            &app,
            "o-iphone",
            &[
                ("APNS", &dev_build, "SANDBOX"),
                ("APNS", &stale, "PRODUCTION"),
            ],
        )
        .await;
        app.huawei.add_device(HUAWEI_APP, "hw-mate-1");
        let mate = person_with(&app, "o-mate", &[("HUAWEI", "hw-mate-1", "PRODUCTION")]).await;
        app.fcm.add_device("fleet-app", "fcm-uninstalled");
        app.fcm.unregister("fcm-uninstalled");
        let uninstalled = person_with(
            &app,
            "o-uninstalled",
            &[("FCM", "fcm-uninstalled", "PRODUCTION")],
        )
        .await;
        let nobody = person_with(&app, "o-nobody", &[]).await;

        let r = app
            .gql(&admin, PUBLISH, json!({ "i": { "title": "Depot closed Monday", "body": "Return vehicles to the south depot.", "audience": "TENANT" }, "k": "mixed-0001" }))
            .await;
        let notice = id_of(&r.ok()["publishNotice"]["id"]);
        // The operator, the two WeChat users and the five app people.
        all_settled(&app, notice, 8, Duration::from_secs(60)).await;

        let mut c = app.test_db.db.conn().await.unwrap();
        let sent: Vec<(Id, String)> = store::fetch_all!(
            &mut c,
            (Id, String),
            "select user_id, channel from push_delivery where source_id = $1 and status = 'SENT'",
            notice
        )
        .unwrap();
        drop(c);
        let channel_of = |user: Id| {
            sent.iter()
                .find(|(u, _)| *u == user)
                .map(|(_, ch)| ch.clone())
                .unwrap_or_default()
        };
        for (user, channel) in [
            (reader, "SUBSCRIBE"),
            (follower, "TEMPLATE"),
            (android, "APP"),
            (iphone, "APP"),
            (mate, "APP"),
            (uninstalled, "IN_APP"),
            (nobody, "IN_APP"),
        ] {
            assert_eq!(channel_of(user), channel, "{user}");
        }

        let fcm = app.fcm.messages("fleet-app");
        assert_eq!(fcm.len(), 1);
        assert_eq!(fcm[0].token, "fcm-android-1");
        assert_eq!(fcm[0].title.as_deref(), Some("Depot closed Monday"));
        assert_eq!(fcm[0].data["kind"], "NOTICE");
        let apns = app.apns_sandbox.notifications();
        assert_eq!(apns.len(), 1);
        assert_eq!(apns[0].device_token, dev_build);
        assert_eq!(
            apns[0].payload["aps"]["alert"]["title"],
            "Depot closed Monday"
        );
        assert!(app.apns.notifications().is_empty());
        let hw = app.huawei.messages(HUAWEI_APP);
        assert_eq!(hw.len(), 1);
        assert_eq!(hw[0].tokens, ["hw-mate-1"]);

        // Disowned tokens are gone, for their provider and environment only.
        assert_eq!(
            device_rows(&app, iphone).await,
            [("APNS".into(), "SANDBOX".into(), dev_build.clone())]
        );
        assert!(device_rows(&app, uninstalled).await.is_empty());
        assert_eq!(device_rows(&app, android).await.len(), 1);
        assert_eq!(device_rows(&app, mate).await.len(), 1);
    }
);
