//! The app push clients against local fakes of FCM, APNs and Huawei Push Kit that check
//! credentials the way the real services do: what each sends, every class of refusal, which
//! refusals disown a token, token refreshes, and the APNs provider token's renewal cadence across
//! two replicas (in-process, and through Redis when `REDIS_URL` names a server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minigate_fakes::apns::FakeApns;
use minigate_fakes::fcm::{FakeFcm, FcmFailure};
use minigate_fakes::huawei::{FakeHuawei, HuaweiFailure};
use minigate_push::app::{
    AppMessage, AppPush, AppPushConfig, Clock, DeviceAnswer, Environment, apns::ApnsKey,
    fcm::FcmAccount, huawei::HuaweiApp, system_clock,
};
use minigate_push::outcome::SendOutcome;
use minigate_push::tokens::TokenStore;
use secrecy::SecretString;

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.minigate.driver";
const HUAWEI_APP: &str = "10734021";

fn config(fcm: &str, apns_production: &str, apns_sandbox: &str, huawei: &str) -> AppPushConfig {
    AppPushConfig {
        fcm_api_base: fcm.to_owned(),
        apns_production: apns_production.to_owned(),
        apns_sandbox: apns_sandbox.to_owned(),
        huawei_oauth_url: format!("{huawei}/oauth2/v3/token"),
        huawei_api_base: huawei.to_owned(),
        timeout: Duration::from_secs(5),
    }
}

/// A message whose id is a UUID made from `id` (APNs wants `apns-id` to be one).
fn message(id: &str, urgent: bool) -> AppMessage {
    let n = id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1_000_000_000_000;
    AppMessage {
        id: if id.len() == 36 {
            id.to_owned()
        } else {
            format!("00000000-0000-4000-8000-{n:012}")
        },
        title: "付款成功".to_owned(),
        body: "3月租金 已收到 1280.00元".to_owned(),
        data: BTreeMap::from([
            ("kind".to_owned(), "PAYMENT".to_owned()),
            ("billId".to_owned(), "b-1".to_owned()),
        ]),
        collapse_key: None,
        urgent,
    }
}

fn apns_token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn code_of(a: &DeviceAnswer) -> &str {
    a.outcome.code()
}

fn retry_after(a: &DeviceAnswer) -> Option<Duration> {
    match &a.outcome {
        SendOutcome::Transient { retry_after, .. } => *retry_after,
        other => panic!("not transient: {other:?}"),
    }
}

struct Fakes {
    fcm: FakeFcm,
    production: FakeApns,
    sandbox: FakeApns,
    huawei: FakeHuawei,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            fcm: FakeFcm::start().await,
            production: FakeApns::start().await,
            sandbox: FakeApns::start().await,
            huawei: FakeHuawei::start().await,
        }
    }

    fn push(&self, tokens: TokenStore, clock: Clock) -> AppPush {
        AppPush::new(
            &config(
                &self.fcm.base_url,
                &self.production.base_url,
                &self.sandbox.base_url,
                &self.huawei.base_url,
            ),
            tokens,
            clock,
        )
        .unwrap()
    }
}

// ---- FCM ----

#[tokio::test]
async fn fcm_sends_with_a_token_made_from_the_key_file_and_reuses_it() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    let account = FcmAccount::from_key_file(&f.fcm.add_project("fleet-app")).unwrap();
    assert_eq!(account.project_id, "fleet-app");
    f.fcm.add_device("fleet-app", "fcm-token-1");

    let a = push
        .fcm
        .send(&account, "fcm-token-1", &message("d-1", true))
        .await;
    let SendOutcome::Sent { provider_msg_id } = &a.outcome else {
        panic!("{a:?}");
    };
    assert!(
        provider_msg_id
            .as_deref()
            .is_some_and(|n| n.starts_with("projects/fleet-app/messages/")),
        "{provider_msg_id:?}"
    );
    let b = push
        .fcm
        .send(&account, "fcm-token-1", &message("d-2", false))
        .await;
    assert_eq!(b.outcome.kind(), "SENT");

    let got = f.fcm.messages("fleet-app");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].token, "fcm-token-1");
    assert_eq!(got[0].title.as_deref(), Some("付款成功"));
    assert_eq!(got[0].data["billId"], "b-1");
    assert_eq!(got[0].raw["android"]["priority"], "HIGH");
    assert_eq!(got[1].raw["android"]["priority"], "NORMAL");
    assert_eq!(f.fcm.token_requests(), 1, "one access token for both sends");
}

#[tokio::test]
async fn fcm_refreshes_a_refused_access_token_once_for_all_concurrent_sends() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    let account = FcmAccount::from_key_file(&f.fcm.add_project("p1")).unwrap();
    for i in 0..8 {
        f.fcm.add_device("p1", &format!("t{i}"));
    }
    push.fcm.send(&account, "t0", &message("d0", true)).await;
    assert_eq!(f.fcm.token_requests(), 1);

    f.fcm.expire_access_tokens();
    let sends = (0..8).map(|i| {
        let push = push.clone();
        let account = account.clone();
        async move {
            push.fcm
                .send(&account, &format!("t{i}"), &message(&format!("e{i}"), true))
                .await
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    assert!(
        answers.iter().all(|a| a.outcome.kind() == "SENT"),
        "{answers:?}"
    );
    assert_eq!(
        f.fcm.token_requests(),
        2,
        "one refresh for eight refused sends"
    );
}

#[tokio::test]
async fn fcm_disowned_tokens_are_flagged_and_nothing_else_is() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    let account = FcmAccount::from_key_file(&f.fcm.add_project("mine")).unwrap();
    f.fcm.add_project("theirs");
    f.fcm.add_device("mine", "uninstalled");
    f.fcm.unregister("uninstalled");
    f.fcm.add_device("theirs", "other-project");

    let a = push
        .fcm
        .send(&account, "uninstalled", &message("d", true))
        .await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "FCM_UNREGISTERED");

    let a = push
        .fcm
        .send(&account, "never-issued", &message("d", true))
        .await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "FCM_INVALID_ARGUMENT");

    let a = push
        .fcm
        .send(&account, "other-project", &message("d", true))
        .await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "FCM_SENDER_ID_MISMATCH");

    assert!(f.fcm.messages("mine").is_empty());
}

#[tokio::test]
async fn fcm_quota_outages_and_credentials_are_classed_apart() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    let account = FcmAccount::from_key_file(&f.fcm.add_project("p")).unwrap();
    f.fcm.add_device("p", "t");

    f.fcm.fail_next(
        1,
        FcmFailure {
            status: 429,
            error_code: "QUOTA_EXCEEDED",
            retry_after_secs: Some(30),
        },
    );
    let a = push.fcm.send(&account, "t", &message("d", false)).await;
    assert_eq!(code_of(&a), "FCM_QUOTA_EXCEEDED");
    assert_eq!(retry_after(&a), Some(Duration::from_secs(30)));
    assert!(!a.token_gone);

    f.fcm.fail_next(
        1,
        FcmFailure {
            status: 503,
            error_code: "UNAVAILABLE",
            retry_after_secs: None,
        },
    );
    let a = push.fcm.send(&account, "t", &message("d", false)).await;
    assert_eq!(a.outcome.kind(), "TRANSIENT");
    assert_eq!(code_of(&a), "FCM_UNAVAILABLE");

    f.fcm.fail_next(
        1,
        FcmFailure {
            status: 401,
            error_code: "THIRD_PARTY_AUTH_ERROR",
            retry_after_secs: None,
        },
    );
    let a = push.fcm.send(&account, "t", &message("d", false)).await;
    assert_eq!(a.outcome.kind(), "CREDENTIAL");
    assert_eq!(
        f.fcm.token_requests(),
        1,
        "not a reason to refresh our token"
    );

    // Then it goes through again.
    let a = push.fcm.send(&account, "t", &message("d", false)).await;
    assert_eq!(a.outcome.kind(), "SENT");
}

#[tokio::test]
async fn a_service_account_google_does_not_know_is_a_credential_problem() {
    let f = Fakes::start().await;
    let elsewhere = FakeFcm::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    // A key file of another (deleted) account, pointed at this token endpoint.
    let mut file: serde_json::Value = serde_json::from_str(&elsewhere.add_project("p")).unwrap();
    file["token_uri"] = format!("{}/token", f.fcm.base_url).into();
    let account = FcmAccount::from_key_file(&file.to_string()).unwrap();
    f.fcm.add_project("p");
    f.fcm.add_device("p", "t");

    let a = push.fcm.send(&account, "t", &message("d", true)).await;
    assert_eq!(a.outcome.kind(), "CREDENTIAL", "{a:?}");
    assert_eq!(code_of(&a), "PUSH_KEY_INVALID");
    assert!(!a.token_gone);
    assert_eq!(f.fcm.sends(), 0, "nothing sent without a token");
}

// ---- APNs ----

fn apns_key(fake: &FakeApns) -> ApnsKey {
    ApnsKey::new(TEAM, KEY_ID, TOPIC, &fake.add_key(TEAM, KEY_ID)).unwrap()
}

#[tokio::test]
async fn apns_sends_over_http2_to_the_tokens_environment_only() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    // One key, known to both hosts, as Apple's are.
    let p8 = f.sandbox.add_key(TEAM, KEY_ID);
    f.production.add_existing_key(TEAM, KEY_ID, &p8);
    let key = ApnsKey::new(TEAM, KEY_ID, TOPIC, &p8).unwrap();
    let dev = apns_token(1);
    f.sandbox.add_device(TOPIC, &dev);

    let id = "0b0e8f4c-5a8e-4f36-9d1a-3f0c2b7d9e11";
    let a = push
        .apns
        .send(&key, Environment::Sandbox, &dev, &message(id, true))
        .await;
    assert_eq!(
        a.outcome,
        SendOutcome::Sent {
            provider_msg_id: Some(id.to_owned())
        }
    );
    let got = f.sandbox.notifications();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic, TOPIC);
    assert_eq!(got[0].push_type, "alert");
    assert_eq!(got[0].priority, Some(10));
    assert_eq!(got[0].payload["aps"]["alert"]["title"], "付款成功");
    assert_eq!(got[0].payload["billId"], "b-1");

    // The same token at production is not a production device.
    let a = push
        .apns
        .send(&key, Environment::Production, &dev, &message(id, true))
        .await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "APNS_BadDeviceToken");
    assert!(f.production.notifications().is_empty());
}

#[tokio::test]
async fn apns_refusals_are_classed_and_only_disowned_tokens_flagged() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    let key = apns_key(&f.production);
    let (gone, other_app, ok) = (apns_token(2), apns_token(3), apns_token(4));
    f.production.add_device(TOPIC, &gone);
    f.production.unregister(&gone);
    f.production.add_device("com.other.app", &other_app);
    f.production.add_device(TOPIC, &ok);
    let send = |dev: String| {
        let push = push.clone();
        let key = key.clone();
        async move {
            push.apns
                .send(&key, Environment::Production, &dev, &message("d", false))
                .await
        }
    };

    let a = send(gone).await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "APNS_Unregistered");
    let a = send(other_app).await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "APNS_DeviceTokenNotForTopic");

    f.production.fail_next(1, 429, "TooManyRequests", Some(5));
    let a = send(ok.clone()).await;
    assert_eq!(code_of(&a), "APNS_TooManyRequests");
    assert_eq!(retry_after(&a), Some(Duration::from_secs(5)));
    f.production.fail_next(1, 503, "ServiceUnavailable", None);
    let a = send(ok.clone()).await;
    assert_eq!(a.outcome.kind(), "TRANSIENT");
    assert!(!a.token_gone);

    let a = send(ok.clone()).await;
    assert_eq!(a.outcome.kind(), "SENT");
    assert_eq!(f.production.notifications()[0].priority, Some(5));
}

#[tokio::test]
async fn a_key_apple_does_not_know_is_a_credential_problem() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    f.production.add_key(TEAM, KEY_ID);
    // A key of the right ids but other bytes (a revoked key's file, say).
    let stranger = FakeApns::start().await;
    let key = ApnsKey::new(TEAM, KEY_ID, TOPIC, &stranger.add_key(TEAM, KEY_ID)).unwrap();
    let dev = apns_token(5);
    f.production.add_device(TOPIC, &dev);
    let a = push
        .apns
        .send(&key, Environment::Production, &dev, &message("d", true))
        .await;
    assert_eq!(a.outcome.kind(), "CREDENTIAL");
    assert_eq!(code_of(&a), "APNS_InvalidProviderToken");
    assert!(!a.token_gone);
}

/// A clock tests move, shared by the replicas and the fake; each replica reads it `offset`
/// seconds off, as two machines' clocks differ (so two tokens made "at once" differ too).
fn test_clock(now: &Arc<AtomicI64>, offset: i64) -> Clock {
    let read = now.clone();
    Arc::new(move || read.load(Ordering::SeqCst) + offset)
}

/// Two replicas (each its own client) sharing `store_a` / `store_b` send for two hours of
/// test time; Apple sees one provider token per renewal, renewals at least 20 minutes apart
/// and at most 60, and an early `ExpiredProviderToken` renews only a token 20 minutes old.
async fn provider_token_cadence(store_a: TokenStore, store_b: TokenStore) {
    let f = Fakes::start().await;
    let t0: i64 = 1_800_000_000;
    let now = Arc::new(AtomicI64::new(t0));
    let set = |secs: i64| {
        now.store(t0 + secs, Ordering::SeqCst);
        // Apple's clock is the later replica's.
        f.production.set_now(t0 + secs + 1);
    };
    set(0);
    let a = f.push(store_a, test_clock(&now, 0));
    let b = f.push(store_b, test_clock(&now, 1));
    let made_near = |iat: i64, secs: i64| (t0 + secs..=t0 + secs + 1).contains(&iat);
    let key = apns_key(&f.production);
    let dev = apns_token(6);
    f.production.add_device(TOPIC, &dev);
    let send_all = |n: usize| {
        let sends = (0..n).map(|i| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            let key = key.clone();
            let dev = dev.clone();
            async move {
                client
                    .apns
                    .send(&key, Environment::Production, &dev, &message("d", true))
                    .await
            }
        });
        futures_util::future::join_all(sends)
    };

    // 16 sends at once on two replicas: one token (a second, a second apart, would be
    // TooManyProviderTokenUpdates).
    let answers = send_all(16).await;
    assert!(
        answers.iter().all(|x| x.outcome.kind() == "SENT"),
        "{answers:?}"
    );
    let iats = f.production.provider_tokens(TEAM, KEY_ID);
    assert!(iats.len() == 1 && made_near(iats[0], 0), "{iats:?}");

    // Used for the whole of its first 50 minutes.
    set(49 * 60);
    assert!(send_all(4).await.iter().all(|x| x.outcome.kind() == "SENT"));
    assert_eq!(f.production.provider_tokens(TEAM, KEY_ID).len(), 1);

    // Renewed once it is 50 minutes old, by one replica for both.
    set(51 * 60);
    let answers = send_all(8).await;
    assert!(
        answers.iter().all(|x| x.outcome.kind() == "SENT"),
        "{answers:?}"
    );
    let iats = f.production.provider_tokens(TEAM, KEY_ID);
    assert!(iats.len() == 2 && made_near(iats[1], 51 * 60), "{iats:?}");

    // Apple calls a 10-minute-old token expired: not renewed (that would be 429 and worse).
    set(61 * 60);
    f.production.fail_next(1, 403, "ExpiredProviderToken", None);
    let x = &send_all(1).await[0];
    assert_eq!(x.outcome.kind(), "CREDENTIAL", "{x:?}");
    assert_eq!(f.production.provider_tokens(TEAM, KEY_ID).len(), 2);

    // Once it is 25 minutes old, an ExpiredProviderToken renews it at once.
    set(76 * 60);
    f.production.fail_next(1, 403, "ExpiredProviderToken", None);
    let x = &send_all(1).await[0];
    assert_eq!(x.outcome.kind(), "SENT", "{x:?}");
    let iats = f.production.provider_tokens(TEAM, KEY_ID);
    assert!(iats.len() == 3 && made_near(iats[2], 76 * 60), "{iats:?}");
    for pair in iats.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((20 * 60..=60 * 60).contains(&gap), "renewed after {gap}s");
    }
}

#[tokio::test]
async fn apns_provider_token_cadence_in_one_process() {
    let store = TokenStore::local();
    provider_token_cadence(store.clone(), store).await;
}

#[tokio::test]
async fn apns_provider_token_cadence_across_replicas_through_redis() {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL not set: Redis run skipped");
        return;
    };
    let client = redis::Client::open(url).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("minigate-test:{}:{nanos}:", std::process::id());
    provider_token_cadence(
        TokenStore::redis(conn.clone(), prefix.clone()),
        TokenStore::redis(conn, prefix),
    )
    .await;
}

// ---- Huawei ----

#[tokio::test]
async fn huawei_sends_refreshes_an_expired_token_and_flags_invalid_ones() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    f.huawei.add_app(HUAWEI_APP, "app-secret");
    let app = HuaweiApp::new(HUAWEI_APP, SecretString::from("app-secret")).unwrap();
    f.huawei.add_device(HUAWEI_APP, "hw-1");
    f.huawei.add_device(HUAWEI_APP, "hw-gone");
    f.huawei.unregister("hw-gone");

    let a = push.huawei.send(&app, "hw-1", &message("d", true)).await;
    assert_eq!(a.outcome.kind(), "SENT", "{a:?}");
    let got = f.huawei.messages(HUAWEI_APP);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tokens, ["hw-1"]);
    assert_eq!(got[0].title.as_deref(), Some("付款成功"));
    let data: serde_json::Value = serde_json::from_str(got[0].data.as_deref().unwrap()).unwrap();
    assert_eq!(data["billId"], "b-1");

    f.huawei.expire_access_tokens();
    let a = push.huawei.send(&app, "hw-1", &message("d", true)).await;
    assert_eq!(a.outcome.kind(), "SENT");
    assert_eq!(f.huawei.token_requests(), 2);

    let a = push.huawei.send(&app, "hw-gone", &message("d", true)).await;
    assert!(a.token_gone);
    assert_eq!(code_of(&a), "HUAWEI_80300007");
}

#[tokio::test]
async fn huawei_flow_control_internal_errors_and_a_wrong_secret() {
    let f = Fakes::start().await;
    let push = f.push(TokenStore::local(), system_clock());
    f.huawei.add_app(HUAWEI_APP, "app-secret");
    f.huawei.add_device(HUAWEI_APP, "hw-1");
    let app = HuaweiApp::new(HUAWEI_APP, SecretString::from("app-secret")).unwrap();

    f.huawei.fail_next(
        1,
        HuaweiFailure {
            http_status: 503,
            code: None,
            msg: "flow control",
        },
    );
    let a = push.huawei.send(&app, "hw-1", &message("d", false)).await;
    assert_eq!(a.outcome.kind(), "TRANSIENT");
    assert_eq!(code_of(&a), "HUAWEI_HTTP_503");
    f.huawei.fail_next(
        1,
        HuaweiFailure {
            http_status: 500,
            code: Some("81000001"),
            msg: "System inner error",
        },
    );
    let a = push.huawei.send(&app, "hw-1", &message("d", false)).await;
    assert_eq!(a.outcome.kind(), "TRANSIENT");
    assert_eq!(code_of(&a), "HUAWEI_81000001");

    let wrong = HuaweiApp::new(HUAWEI_APP, SecretString::from("old-secret")).unwrap();
    let other = f.push(TokenStore::local(), system_clock());
    let a = other
        .huawei
        .send(&wrong, "hw-1", &message("d", false))
        .await;
    assert_eq!(a.outcome.kind(), "CREDENTIAL");
    assert_eq!(code_of(&a), "PUSH_KEY_INVALID");
}
