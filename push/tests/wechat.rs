//! The WeChat client against the fake WeChat server. The token cache runs in-process, and in
//! Redis too when `REDIS_URL` names a server (an unreachable one fails the test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minigate_fakes::wechat::FakeWechat;
use minigate_push::wechat::{AppCredentials, TokenStore, WechatClient, WechatConfig};
use secrecy::{ExposeSecret, SecretString};

const APP_ID: &str = "wx0123456789abcdef";
const SECRET: &str = "app-secret-1";

fn app(secret: &str) -> AppCredentials {
    AppCredentials {
        app_id: APP_ID.to_owned(),
        secret: SecretString::from(secret),
    }
}

fn client(api_base: &str, tokens: TokenStore) -> WechatClient {
    let config = WechatConfig {
        api_base: api_base.to_owned(),
        timeout: Duration::from_secs(5),
    };
    WechatClient::new(config, tokens).unwrap_or_else(|e| panic!("client setup failed: {e:?}"))
}

async fn fake_with_app() -> FakeWechat {
    let fake = FakeWechat::start().await;
    fake.add_app(APP_ID, SECRET);
    fake
}

#[tokio::test]
async fn a_login_code_yields_the_users_openid_and_unionid() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());

    let code = fake.login_code(APP_ID, "openid-1", Some("unionid-1"));
    let session = wechat.code_to_session(&app(SECRET), &code).await.unwrap();
    assert_eq!(session.openid, "openid-1");
    assert_eq!(session.unionid.as_deref(), Some("unionid-1"));

    let code = fake.login_code(APP_ID, "openid-2", None);
    let session = wechat.code_to_session(&app(SECRET), &code).await.unwrap();
    assert_eq!(session.openid, "openid-2");
    assert_eq!(session.unionid, None);
}

#[tokio::test]
async fn a_login_code_used_twice_is_rejected_as_an_invalid_code() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());
    let code = fake.login_code(APP_ID, "openid-1", None);

    wechat.code_to_session(&app(SECRET), &code).await.unwrap();
    let err = wechat
        .code_to_session(&app(SECRET), &code)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WECHAT_CODE_INVALID", "{err:?}");

    let err = wechat
        .code_to_session(&app(SECRET), "never-issued")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WECHAT_CODE_INVALID", "{err:?}");
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_configuration_error() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());
    let code = fake.login_code(APP_ID, "openid-1", None);

    let err = wechat
        .code_to_session(&app("not-the-secret"), &code)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WECHAT_CONFIG_INVALID", "{err:?}");

    let err = wechat
        .access_token(&app("not-the-secret"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WECHAT_CONFIG_INVALID", "{err:?}");
}

#[tokio::test]
async fn wechat_being_busy_is_reported_as_upstream_unavailable() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());
    let code = fake.login_code(APP_ID, "openid-1", None);

    fake.fail_next(-1);
    let err = wechat
        .code_to_session(&app(SECRET), &code)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE", "{err:?}");
    assert!(err.is_transient());

    // The refusal did not use up the code.
    let session = wechat.code_to_session(&app(SECRET), &code).await.unwrap();
    assert_eq!(session.openid, "openid-1");
}

#[tokio::test]
async fn an_unreachable_wechat_is_reported_as_upstream_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let wechat = client(&format!("http://127.0.0.1:{port}"), TokenStore::local());

    let err = wechat
        .code_to_session(&app(SECRET), "any-code")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE", "{err:?}");
    // Neither the secret nor the query string reaches the error's text.
    let text = format!("{err:?} {err}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("js_code"), "{text}");
}

#[tokio::test]
async fn phone_numbers_are_fetched_with_one_cached_access_token() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());

    let code = fake.phone_code(APP_ID, "13800138000");
    let phone = wechat.phone_number(&app(SECRET), &code).await.unwrap();
    assert_eq!(phone.phone_number, "13800138000");
    assert_eq!(phone.pure_phone_number, "13800138000");
    assert_eq!(phone.country_code, "86");

    // A clone shares the cache.
    let code = fake.phone_code(APP_ID, "13900139000");
    let phone = wechat
        .clone()
        .phone_number(&app(SECRET), &code)
        .await
        .unwrap();
    assert_eq!(phone.pure_phone_number, "13900139000");

    assert_eq!(fake.calls("/cgi-bin/stable_token"), 1);
    assert_eq!(fake.calls("/wxa/business/getuserphonenumber"), 2);
}

#[tokio::test]
async fn a_phone_code_used_twice_is_rejected_as_an_invalid_code() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());
    let code = fake.phone_code(APP_ID, "13800138000");

    wechat.phone_number(&app(SECRET), &code).await.unwrap();
    let err = wechat.phone_number(&app(SECRET), &code).await.unwrap_err();
    assert_eq!(err.code(), "WECHAT_CODE_INVALID", "{err:?}");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_call_succeeds() {
    let fake = fake_with_app().await;
    let wechat = client(&fake.base_url, TokenStore::local());
    wechat.access_token(&app(SECRET)).await.unwrap();
    fake.expire_access_tokens();

    let code = fake.phone_code(APP_ID, "13800138000");
    let phone = wechat.phone_number(&app(SECRET), &code).await.unwrap();
    assert_eq!(phone.pure_phone_number, "13800138000");
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 2);
    assert_eq!(fake.calls("/wxa/business/getuserphonenumber"), 2);

    // The new token is cached.
    let code = fake.phone_code(APP_ID, "13900139000");
    wechat.phone_number(&app(SECRET), &code).await.unwrap();
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 2);
}

#[tokio::test]
async fn replicas_share_one_access_token_through_redis() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL not set: Redis token store run skipped");
        return;
    };
    let redis_client = redis::Client::open(url).unwrap();
    let conn = redis::aio::ConnectionManager::new(redis_client)
        .await
        .unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("minigate-test:{}:{nanos}:", std::process::id());

    let fake = fake_with_app().await;
    let replica_a = client(
        &fake.base_url,
        TokenStore::redis(conn.clone(), prefix.clone()),
    );
    let replica_b = client(
        &fake.base_url,
        TokenStore::redis(conn.clone(), prefix.clone()),
    );

    let code = fake.phone_code(APP_ID, "13800138000");
    replica_a.phone_number(&app(SECRET), &code).await.unwrap();
    let code = fake.phone_code(APP_ID, "13900139000");
    let phone = replica_b.phone_number(&app(SECRET), &code).await.unwrap();
    assert_eq!(phone.pure_phone_number, "13900139000");
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 1);

    // Kept until five minutes before WeChat's 7200 s run out.
    let key = format!("{prefix}wechat:access_token:{APP_ID}");
    let mut conn = conn;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((6800..=6900).contains(&ttl), "ttl {ttl}");

    // A token WeChat stopped accepting is replaced for every replica.
    fake.expire_access_tokens();
    let code = fake.phone_code(APP_ID, "13700137000");
    replica_a.phone_number(&app(SECRET), &code).await.unwrap();
    let code = fake.phone_code(APP_ID, "13600136000");
    replica_b.phone_number(&app(SECRET), &code).await.unwrap();
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 2);

    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Two replicas that each have their own process-local lock, sharing Redis.
async fn two_replicas(fake: &FakeWechat) -> Option<(WechatClient, WechatClient, String)> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL not set: Redis token store run skipped");
        return None;
    };
    let conn = || async {
        redis::aio::ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
            .await
            .unwrap()
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("minigate-test:{}:{nanos}:", std::process::id());
    let a = client(
        &fake.base_url,
        TokenStore::redis(conn().await, prefix.clone()),
    );
    let b = client(
        &fake.base_url,
        TokenStore::redis(conn().await, prefix.clone()),
    );
    Some((a, b, prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_asking_for_a_token_at_once_cause_one_refresh() {
    let fake = fake_with_app().await;
    let Some((a, b, _)) = two_replicas(&fake).await else {
        return;
    };
    // Many callers on each replica, all at once, none with a cached token.
    let mut calls = Vec::new();
    for i in 0..16 {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            replica.access_token(&app(SECRET)).await.unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(c.await.unwrap().expose_secret().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller got the same token");
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rejected_on_two_replicas_at_once_is_replaced_once() {
    let fake = fake_with_app().await;
    let Some((a, b, _)) = two_replicas(&fake).await else {
        return;
    };
    a.access_token(&app(SECRET)).await.unwrap();
    fake.expire_access_tokens();
    let codes: Vec<String> = (0..8)
        .map(|i| fake.phone_code(APP_ID, &format!("1380013800{i}")))
        .collect();
    let mut calls = Vec::new();
    for (i, code) in codes.into_iter().enumerate() {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            replica.phone_number(&app(SECRET), &code).await.unwrap()
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    // The first token, then one forced refresh for all eight rejected calls: not a storm of
    // forced refreshes each invalidating the token the others just got.
    assert_eq!(fake.calls("/cgi-bin/stable_token"), 2);
}
