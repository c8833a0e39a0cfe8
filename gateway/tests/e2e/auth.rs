use chrono::Utc;
use minigate_resolvers::{
    Role, Viewer,
    auth::token::{TokenConfig, Tokens},
};
use minigate_store::Id;
use secrecy::SecretString;
use serde_json::json;

use crate::support::{JWT_SECRET, TestApp, id_number};

const REFRESH: &str = "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken refreshToken user { id } } }";
const ME: &str = "{ me { id role phone driver { id name phone idNumber } tenant { slug } } }";

both!(
    wechat_sign_in_creates_a_consumer_once_and_finds_them_again,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        app.mini_program(t, "wx_drivers_app").await;
        let first = app.login_wechat("wx_drivers_app", "openid-1").await;
        let d = &first.ok()["loginWithWechat"];
        assert_eq!(d["user"]["role"], "CONSUMER");
        let again = app.login_wechat("wx_drivers_app", "openid-1").await;
        assert_eq!(again.ok()["loginWithWechat"]["user"]["id"], d["user"]["id"]);
        assert_eq!(app.count("select count(*) from app_user").await, 1);
        let me = app
            .gql(d["accessToken"].as_str().unwrap(), ME, json!({}))
            .await;
        assert_eq!(me.ok()["me"]["tenant"]["slug"], "acme");
    }
);

both!(
    wechat_sign_in_errors_map_to_stable_codes_and_create_nobody,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        app.mini_program(t, "wx_drivers_app").await;
        let unknown = app.login_wechat("wx_not_registered", "o").await;
        assert_eq!(unknown.code(), Some("WECHAT_APP_UNKNOWN"));

        let code = app.wechat.login_code("wx_drivers_app", "o2", None);
        let q = "mutation($c: String!) { loginWithWechat(appId: \"wx_drivers_app\", code: $c) { accessToken } }";
        app.post(q, json!({ "c": code }), None).await.ok();
        let reused = app.post(q, json!({ "c": code }), None).await;
        assert_eq!(
            reused.code(),
            Some("WECHAT_CODE_INVALID"),
            "{}",
            reused.json
        );

        app.wechat.fail_next(-1);
        let busy = app.login_wechat("wx_drivers_app", "o3").await;
        assert_eq!(busy.code(), Some("UPSTREAM_UNAVAILABLE"));
        assert_eq!(app.count("select count(*) from app_user").await, 1);
    }
);

both!(
    binding_a_registered_phone_makes_the_user_that_driver,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let b = app.branch(t, "SZ").await;
        let driver = app.driver(t, b, "13800138000", &id_number(1)).await;
        app.mini_program(t, "wx_drivers_app").await;
        let login = app.login_wechat("wx_drivers_app", "openid-d").await;
        let old_refresh = login.ok()["loginWithWechat"]["refreshToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();

        let code = app.wechat.phone_code("wx_drivers_app", "13800138000");
        let bound = app
            .gql(
                &token,
                "mutation($c: String!) { bindPhone(code: $c) { accessToken user { role } } }",
                json!({ "c": code }),
            )
            .await;
        let bp = &bound.ok()["bindPhone"];
        assert_eq!(bp["user"]["role"], "DRIVER");
        let me = app
            .gql(bp["accessToken"].as_str().unwrap(), ME, json!({}))
            .await;
        let me = &me.ok()["me"];
        assert_eq!(me["driver"]["id"], driver.to_string());
        // The driver sees their own record in full.
        assert_eq!(me["driver"]["phone"], "13800138000");
        assert_eq!(me["driver"]["idNumber"], id_number(1));
        // The sign-in that carried the consumer role is over.
        let r = app.post(REFRESH, json!({ "r": old_refresh }), None).await;
        assert_eq!(r.code(), Some("REFRESH_TOKEN_INVALID"));
    }
);

both!(
    binding_an_unknown_phone_is_refused_and_changes_nothing,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let b = app.branch(t, "SZ").await;
        app.driver(t, b, "13800138000", &id_number(1)).await;
        app.mini_program(t, "wx_drivers_app").await;
        let login = app.login_wechat("wx_drivers_app", "openid-x").await;
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = app.wechat.phone_code("wx_drivers_app", "13911112222");
        let r = app
            .gql(
                &token,
                "mutation($c: String!) { bindPhone(code: $c) { accessToken } }",
                json!({ "c": code }),
            )
            .await;
        assert_eq!(r.code(), Some("PHONE_NOT_REGISTERED"));
        let me = app.gql(&token, ME, json!({})).await;
        assert_eq!(me.ok()["me"]["role"], "CONSUMER");
        assert!(me.ok()["me"]["driver"].is_null());
        assert_eq!(
            app.count("select count(*) from app_user where driver_id is not null")
                .await,
            0
        );
    }
);

both!(
    a_driver_record_binds_to_one_wechat_user_only,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let b = app.branch(t, "SZ").await;
        app.driver(t, b, "13800138000", &id_number(1)).await;
        app.mini_program(t, "wx_drivers_app").await;
        let q = "mutation($c: String!) { bindPhone(code: $c) { accessToken } }";
        let first = app.login_wechat("wx_drivers_app", "openid-a").await;
        let ta = first.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        app.gql(
            &ta,
            q,
            json!({ "c": app.wechat.phone_code("wx_drivers_app", "13800138000") }),
        )
        .await
        .ok();
        let second = app.login_wechat("wx_drivers_app", "openid-b").await;
        let tb = second.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app
            .gql(
                &tb,
                q,
                json!({ "c": app.wechat.phone_code("wx_drivers_app", "13800138000") }),
            )
            .await;
        assert_eq!(r.code(), Some("PHONE_ALREADY_BOUND"));
    }
);

both!(
    password_sign_in_refuses_wrong_passwords_and_throttles_guessing,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        app.password_user("acme", t, Role::Admin, "13900000001", None)
            .await;
        let q = "mutation($w: String!) { loginWithPassword(tenant: \"acme\", phone: \"13900000001\", password: $w) { accessToken } }";
        let wrong = app.post(q, json!({ "w": "not the password" }), None).await;
        assert_eq!(wrong.code(), Some("LOGIN_FAILED"));
        let other_tenant = app
        .post("mutation { loginWithPassword(tenant: \"nope\", phone: \"13900000001\", password: \"x\") { accessToken } }", json!({}), None)
        .await;
        assert_eq!(other_tenant.code(), Some("LOGIN_FAILED"));
        // One login above succeeded inside password_user; eight more wrong ones reach the limit of 10.
        for _ in 0..8 {
            app.post(q, json!({ "w": "guess" }), None).await;
        }
        let throttled = app.post(q, json!({ "w": "guess" }), None).await;
        assert_eq!(throttled.code(), Some("RATE_LIMITED"), "{}", throttled.json);
        assert!(
            throttled.json["errors"][0]["extensions"]["retryAfter"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
);

both!(
    refresh_rotates_and_a_quick_retry_gets_the_same_pair,
    |app: TestApp| async move {
        let (_, _admin) = app.admin("acme").await;
        let (_, r0) = app.login_password("acme", "13900000001").await;
        let a = app.post(REFRESH, json!({ "r": r0 }), None).await;
        let a = a.ok()["refreshSession"].clone();
        assert_ne!(a["refreshToken"], r0);
        // The answer was lost on the way: the client retries with the old token.
        let retry = app.post(REFRESH, json!({ "r": r0 }), None).await;
        let retry = &retry.ok()["refreshSession"];
        assert_eq!(retry["refreshToken"], a["refreshToken"]);
        assert_eq!(retry["accessToken"], a["accessToken"]);
        // The new pair works and rotates on.
        let b = app
            .post(REFRESH, json!({ "r": a["refreshToken"] }), None)
            .await;
        assert_ne!(b.ok()["refreshSession"]["refreshToken"], a["refreshToken"]);
    }
);

both!(
    reusing_a_rotated_refresh_token_revokes_the_whole_sign_in,
    |app: TestApp| async move {
        app.admin("acme").await;
        let (_, r0) = app.login_password("acme", "13900000001").await;
        let r1 = app.post(REFRESH, json!({ "r": r0 }), None).await.ok()["refreshSession"]["refreshToken"].clone();
        let r2 = app.post(REFRESH, json!({ "r": r1 }), None).await.ok()["refreshSession"]["refreshToken"].clone();
        // r0's successor has been used: presenting r0 again is theft or a broken client.
        let reuse = app.post(REFRESH, json!({ "r": r0 }), None).await;
        assert_eq!(reuse.code(), Some("REFRESH_TOKEN_REUSED"));
        let after = app.post(REFRESH, json!({ "r": r2 }), None).await;
        assert_eq!(after.code(), Some("REFRESH_TOKEN_INVALID"));
        assert!(
            app.count("select count(*) from audit_log where action = 'session.refresh_reuse'")
                .await
                >= 1
        );
    }
);

both!(
    a_retry_after_the_grace_window_revokes_too,
    |app: TestApp| async move {
        app.admin("acme").await;
        let (_, r0) = app.login_password("acme", "13900000001").await;
        let r1 = app.post(REFRESH, json!({ "r": r0 }), None).await.ok()["refreshSession"]["refreshToken"].clone();
        // Move the rotation 61 seconds into the past instead of waiting.
        let mut c = app.db().conn().await.unwrap();
        let past = Utc::now() - chrono::Duration::seconds(61);
        minigate_store::execute!(
            &mut c,
            "update refresh_token set rotated_at = $1 where rotated_at is not null",
            past
        )
        .unwrap();
        let late = app.post(REFRESH, json!({ "r": r0 }), None).await;
        assert_eq!(late.code(), Some("REFRESH_TOKEN_REUSED"));
        let r1_now = app.post(REFRESH, json!({ "r": r1 }), None).await;
        assert_eq!(r1_now.code(), Some("REFRESH_TOKEN_INVALID"));
    }
);

both!(
    unknown_refresh_tokens_and_logged_out_sessions_are_refused,
    |app: TestApp| async move {
        let (_, token) = app.admin("acme").await;
        let garbage = app.post(REFRESH, json!({ "r": "not-a-token" }), None).await;
        assert_eq!(garbage.code(), Some("REFRESH_TOKEN_INVALID"));
        let (access, refresh) = app.login_password("acme", "13900000001").await;
        app.gql(&access, "mutation { logout }", json!({}))
            .await
            .ok();
        let r = app.post(REFRESH, json!({ "r": refresh }), None).await;
        assert_eq!(r.code(), Some("REFRESH_TOKEN_INVALID"));
        // Another sign-in of the same user is unaffected.
        app.gql(&token, "{ me { id } }", json!({})).await.ok();
    }
);

both!(
    expired_and_forged_access_tokens_get_401_with_their_code,
    |app: TestApp| async move {
        let (t, _) = app.admin("acme").await;
        let viewer = Viewer {
            user_id: Id::new(),
            tenant_id: t,
            role: Role::Admin,
            branch_id: None,
            driver_id: None,
            session_id: Id::new(),
        };
        let tokens = |secret: &str| {
            Tokens::new(TokenConfig {
                secret: SecretString::from(secret.to_owned()),
                access_ttl: std::time::Duration::from_secs(7200),
                refresh_ttl: std::time::Duration::from_secs(86400),
                reuse_grace: std::time::Duration::from_secs(60),
            })
            .unwrap()
        };
        let (expired, _) = tokens(JWT_SECRET)
            .access_token(&viewer, Utc::now() - chrono::Duration::hours(3))
            .unwrap();
        let r = app.gql(&expired, "{ me { id } }", json!({})).await;
        assert_eq!((r.status, r.code()), (401, Some("TOKEN_EXPIRED")));
        let (forged, _) = tokens("some-other-secret-some-other-secret!!")
            .access_token(&viewer, Utc::now())
            .unwrap();
        let r = app.gql(&forged, "{ me { id } }", json!({})).await;
        assert_eq!((r.status, r.code()), (401, Some("TOKEN_INVALID")));
        let r = app.gql("garbage", "{ me { id } }", json!({})).await;
        assert_eq!((r.status, r.code()), (401, Some("TOKEN_INVALID")));
        let anonymous = app.post("{ me { id } }", json!({}), None).await;
        assert_eq!(anonymous.code(), Some("UNAUTHENTICATED"));
    }
);
