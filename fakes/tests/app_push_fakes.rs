//! The app push fakes (FCM with Google OAuth, APNs, Huawei Push Kit) driven over raw HTTP by
//! reqwest, with JWTs signed here with aws-lc-rs directly from the key text each fake hands out,
//! so a mistake in a fake's checks cannot hide behind the same mistake on the client side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use minigate_fakes::apns::FakeApns;
use minigate_fakes::fcm::{FakeFcm, FcmFailure};
use minigate_fakes::huawei::{FakeHuawei, HuaweiFailure};
use serde_json::{Value, json};

/// A fixed moment for tests that move the fakes' clocks.
const T0: i64 = 1_750_000_000;

fn http1() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn http2() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The DER inside the PEM block `label`, decoded here rather than with the fakes' helper.
fn pem_der(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let inner = pem
        .split_once(&begin)
        .unwrap()
        .1
        .split_once(&end)
        .unwrap()
        .0;
    let b64: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

fn rs256(private_pem: &str, header: &Value, claims: &Value) -> String {
    let key = RsaKeyPair::from_pkcs8(&pem_der(private_pem, "PRIVATE KEY")).unwrap();
    let input = signing_input(header, claims);
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64url(&sig))
}

fn es256(p8: &str, header: &Value, claims: &Value) -> String {
    let der = pem_der(p8, "PRIVATE KEY");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let input = signing_input(header, claims);
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    assert_eq!(sig.as_ref().len(), 64, "ES256 signatures are r || s");
    format!("{input}.{}", b64url(sig.as_ref()))
}

/// The status, the `Retry-After` header and the body as JSON (`Null` when it is not JSON).
async fn answer(res: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

// ---------------------------------------------------------------------------------------------
// FCM and Google OAuth
// ---------------------------------------------------------------------------------------------

const PROJECT: &str = "minigate-test";
const OTHER_PROJECT: &str = "someone-else";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

struct Fcm {
    fake: FakeFcm,
    /// The key file of PROJECT's service account.
    key: Value,
    http: reqwest::Client,
}

async fn fcm() -> Fcm {
    let fake = FakeFcm::start().await;
    let key = serde_json::from_str(&fake.add_project(PROJECT)).unwrap();
    Fcm {
        fake,
        key,
        http: http1(),
    }
}

fn field<'a>(key: &'a Value, name: &str) -> &'a str {
    key[name].as_str().unwrap()
}

/// The assertion a service account signs, with these claims over the defaults.
fn assertion(key: &Value, overrides: Value) -> String {
    let iat = now();
    let mut claims = json!({
        "iss": field(key, "client_email"),
        "scope": FCM_SCOPE,
        "aud": field(key, "token_uri"),
        "iat": iat,
        "exp": iat + 3600,
    });
    for (name, value) in overrides.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": field(key, "private_key_id") });
    rs256(field(key, "private_key"), &header, &claims)
}

impl Fcm {
    async fn exchange_form(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(field(&self.key, "token_uri"))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, _, body) = answer(res).await;
        (status, body)
    }

    async fn exchange(&self, assertion: &str) -> (u16, Value) {
        self.exchange_form(&[("grant_type", JWT_BEARER), ("assertion", assertion)])
            .await
    }

    async fn access_token(&self) -> String {
        let (status, body) = self.exchange(&assertion(&self.key, json!({}))).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn send_with(
        &self,
        http: &reqwest::Client,
        project: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> (u16, Option<String>, Value) {
        let url = format!("{}/v1/projects/{project}/messages:send", self.fake.base_url);
        let mut req = http.post(url).json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn send(&self, bearer: &str, body: &Value) -> (u16, Option<String>, Value) {
        self.send_with(&self.http, PROJECT, Some(bearer), body)
            .await
    }
}

fn fcm_message(token: &str) -> Value {
    json!({
        "message": {
            "token": token,
            "notification": { "title": "订单已送达", "body": "您的外卖已放在门口" },
            "data": { "order_id": "42", "kind": "delivered" },
            "android": { "priority": "HIGH" },
        }
    })
}

/// The `errorCode` of the FcmError detail, if any.
fn fcm_error_code(body: &Value) -> Option<&str> {
    body["error"]["details"]
        .as_array()?
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.firebase.fcm.v1.FcmError")?["errorCode"]
        .as_str()
}

fn token_violation(body: &Value) -> bool {
    body["error"]["details"].as_array().is_some_and(|details| {
        details.iter().any(|d| {
            d["@type"] == "type.googleapis.com/google.rpc.BadRequest"
                && d["fieldViolations"][0]["field"] == "message.token"
                && d["fieldViolations"][0]["description"] == "Invalid registration token"
        })
    })
}

#[tokio::test]
async fn fcm_key_file_is_a_service_account_key_whose_token_uri_is_the_fake() {
    let f = fcm().await;
    assert_eq!(field(&f.key, "type"), "service_account");
    assert_eq!(field(&f.key, "project_id"), PROJECT);
    assert_eq!(
        field(&f.key, "client_email"),
        "minigate-push@minigate-test.iam.gserviceaccount.com"
    );
    assert_eq!(
        field(&f.key, "token_uri"),
        format!("{}/token", f.fake.base_url)
    );
    assert_eq!(
        field(&f.key, "auth_uri"),
        "https://accounts.google.com/o/oauth2/auth"
    );
    let kid = field(&f.key, "private_key_id");
    assert!(kid.len() == 40 && kid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        field(&f.key, "client_id")
            .bytes()
            .all(|b| b.is_ascii_digit())
    );
    let pem = field(&f.key, "private_key");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    let key = RsaKeyPair::from_pkcs8(&pem_der(pem, "PRIVATE KEY")).unwrap();
    assert_eq!(key.public_modulus_len(), 256, "RSA-2048");
    assert!(!f.fake.base_url.ends_with('/'));
}

#[tokio::test]
async fn fcm_token_exchange_then_send_is_recorded_over_http1_and_http2() {
    let f = fcm().await;
    f.fake.add_device(PROJECT, "device-a");

    let (status, body) = f.exchange(&assertion(&f.key, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();

    let (status, _, body) = f.send(token, &fcm_message("device-a")).await;
    assert_eq!(status, 200, "{body}");
    let name = body["name"].as_str().unwrap();
    assert!(
        name.starts_with("projects/minigate-test/messages/") && name.len() > 32,
        "{name}"
    );

    let h2 = http2();
    let second = json!({ "message": { "token": "device-a", "data": { "n": "2" } } });
    let (status, _, body) = f.send_with(&h2, PROJECT, Some(token), &second).await;
    assert_eq!(status, 200, "{body}");

    let messages = f.fake.messages(PROJECT);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].token, "device-a");
    assert_eq!(messages[0].title.as_deref(), Some("订单已送达"));
    assert_eq!(messages[0].body.as_deref(), Some("您的外卖已放在门口"));
    assert_eq!(messages[0].data["order_id"], "42");
    assert_eq!(messages[0].data["kind"], "delivered");
    assert_eq!(messages[0].raw["android"]["priority"], "HIGH");
    assert_eq!(messages[1].title, None);
    assert_eq!(messages[1].data["n"], "2");
    assert_eq!(f.fake.token_requests(), 1);
    assert_eq!(f.fake.sends(), 2);
    assert_eq!(f.fake.accepted(), 2);
    assert!(f.fake.messages(OTHER_PROJECT).is_empty());
}

#[tokio::test]
async fn fcm_token_endpoint_refuses_bad_assertions_as_google_does() {
    let f = fcm().await;
    let other: Value = serde_json::from_str(&f.fake.add_project(OTHER_PROJECT)).unwrap();
    let time_problem = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                        reasonable timeframe. Check your iat and exp values in the JWT claim.";

    // Not the JWT-bearer grant.
    let (status, body) = f
        .exchange_form(&[("grant_type", "client_credentials"), ("assertion", "x")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // Signed by another account's key while claiming to be this one.
    let mut forged = f.key.clone();
    forged["private_key"] = other["private_key"].clone();
    let (status, body) = f.exchange(&assertion(&forged, json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    // A good signature over claims changed afterwards.
    let good = assertion(&f.key, json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["iss"] = json!(field(&other, "client_email"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    );
    let (_, body) = f.exchange(&tampered).await;
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    // Times: longer than an hour, issued in the future, already expired.
    let t = now();
    for claims in [
        json!({ "iat": t, "exp": t + 3601 }),
        json!({ "iat": t + 120, "exp": t + 1800 }),
        json!({ "iat": t - 4000, "exp": t - 400 }),
        json!({ "iat": null }),
    ] {
        let (status, body) = f.exchange(&assertion(&f.key, claims.clone())).await;
        assert_eq!(status, 400, "{claims}");
        assert_eq!(body["error"], "invalid_grant", "{claims}");
        assert_eq!(body["error_description"], time_problem, "{claims}");
    }
    // A minute of clock skew is tolerated.
    let (status, body) = f
        .exchange(&assertion(
            &f.key,
            json!({ "iat": t + 30, "exp": t + 3600 }),
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    // The fake's clock, not the system's, judges the times.
    f.fake.set_now(t + 7200);
    let (_, body) = f.exchange(&assertion(&f.key, json!({}))).await;
    assert_eq!(body["error_description"], time_problem);
    let (status, _) = f
        .exchange(&assertion(
            &f.key,
            json!({ "iat": t + 7200, "exp": t + 10800 }),
        ))
        .await;
    assert_eq!(status, 200);
    f.fake.set_now(t);

    // Scope: missing, or without FCM.
    for scope in [
        json!(null),
        json!("https://www.googleapis.com/auth/userinfo.email"),
    ] {
        let (status, body) = f
            .exchange(&assertion(&f.key, json!({ "scope": scope })))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
    }
    let cloud = "https://www.googleapis.com/auth/userinfo.email \
                 https://www.googleapis.com/auth/cloud-platform";
    let (status, _) = f
        .exchange(&assertion(&f.key, json!({ "scope": cloud })))
        .await;
    assert_eq!(status, 200);

    // Audience other than the token URI.
    let (status, body) = f
        .exchange(&assertion(
            &f.key,
            json!({ "aud": "https://oauth2.googleapis.com/token" }),
        ))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    assert_eq!(f.fake.token_requests(), 14);
}

#[tokio::test]
async fn fcm_access_token_lives_3599_seconds_by_the_fake_clock_and_can_be_expired() {
    let f = fcm().await;
    f.fake.add_device(PROJECT, "device-a");
    f.fake.set_now(T0);
    let (status, body) = f
        .exchange(&assertion(&f.key, json!({ "iat": T0, "exp": T0 + 3600 })))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    f.fake.set_now(T0 + 3598);
    let (status, _, _) = f.send(&token, &fcm_message("device-a")).await;
    assert_eq!(status, 200);

    f.fake.set_now(T0 + 3599);
    let (status, _, body) = f.send(&token, &fcm_message("device-a")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(body["error"]["message"].as_str().unwrap().starts_with(
        "Request had invalid authentication credentials. Expected OAuth 2 access token"
    ));
    assert!(body["error"].get("details").is_none());

    // expire_access_tokens: every token so far, not the next one.
    f.fake.set_now(now());
    let token = f.access_token().await;
    assert_eq!(f.send(&token, &fcm_message("device-a")).await.0, 200);
    f.fake.expire_access_tokens();
    let (status, _, body) = f.send(&token, &fcm_message("device-a")).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (401, Some(401)));
    let fresh = f.access_token().await;
    assert_eq!(f.send(&fresh, &fcm_message("device-a")).await.0, 200);
    assert_eq!(f.fake.messages(PROJECT).len(), 3);
}

#[tokio::test]
async fn fcm_refuses_sends_as_fcm_does_and_records_none_of_them() {
    let f = fcm().await;
    let other: Value = serde_json::from_str(&f.fake.add_project(OTHER_PROJECT)).unwrap();
    f.fake.add_device(PROJECT, "device-a");
    f.fake.add_device(PROJECT, "uninstalled");
    f.fake.unregister("uninstalled");
    f.fake.add_device(OTHER_PROJECT, "their-device");
    let token = f.access_token().await;

    // No bearer token, an unknown one.
    let (status, _, body) = f
        .send_with(&f.http, PROJECT, None, &fcm_message("device-a"))
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, _, body) = f.send("ya29.not-issued", &fcm_message("device-a")).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert_eq!(fcm_error_code(&body), None);

    // A token of another project's service account.
    let (_, their_token) = f.exchange(&assertion(&other, json!({}))).await;
    let their_token = their_token["access_token"].as_str().unwrap();
    let (status, _, body) = f.send(their_token, &fcm_message("device-a")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(fcm_error_code(&body), None);

    // Token missing, or never registered.
    let no_token = json!({ "message": { "notification": { "title": "t", "body": "b" } } });
    for body in [no_token, fcm_message("never-registered")] {
        let (status, _, answer) = f.send(&token, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(fcm_error_code(&answer), Some("INVALID_ARGUMENT"));
        assert!(token_violation(&answer), "{answer}");
    }

    // Registered to the other project.
    let (status, _, body) = f.send(&token, &fcm_message("their-device")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(fcm_error_code(&body), Some("SENDER_ID_MISMATCH"));

    // Uninstalled.
    let (status, _, body) = f.send(&token, &fcm_message("uninstalled")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["message"], "Requested entity was not found.");
    assert_eq!(fcm_error_code(&body), Some("UNREGISTERED"));

    // A data value that is not a string; nothing to deliver.
    let bad_payloads = [
        json!({ "message": { "token": "device-a", "data": { "order_id": 42 } } }),
        json!({ "message": { "token": "device-a" } }),
    ];
    for payload in bad_payloads {
        let (status, _, body) = f.send(&token, &payload).await;
        assert_eq!(status, 400, "{payload}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(fcm_error_code(&body), Some("INVALID_ARGUMENT"));
        assert!(!token_violation(&body), "{body}");
    }

    // A field FCM does not know.
    let typo = json!({ "message": { "token": "device-a", "notifcation": { "title": "t" } } });
    let (status, _, body) = f.send(&token, &typo).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );

    assert!(f.fake.messages(PROJECT).is_empty());
    assert!(f.fake.messages(OTHER_PROJECT).is_empty());
    assert_eq!(f.fake.sends(), 10);
    assert_eq!(f.fake.accepted(), 0);
}

#[tokio::test]
async fn fcm_scripted_failures_answer_in_order_with_retry_after_then_sends_succeed() {
    let f = fcm().await;
    f.fake.add_device(PROJECT, "device-a");
    let token = f.access_token().await;
    f.fake.fail_next(
        1,
        FcmFailure {
            status: 429,
            error_code: "QUOTA_EXCEEDED",
            retry_after_secs: Some(30),
        },
    );
    f.fake.fail_next(
        2,
        FcmFailure {
            status: 503,
            error_code: "UNAVAILABLE",
            retry_after_secs: None,
        },
    );

    let (status, retry_after, body) = f.send(&token, &fcm_message("device-a")).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("30")));
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(fcm_error_code(&body), Some("QUOTA_EXCEEDED"));
    for _ in 0..2 {
        let (status, retry_after, body) = f.send(&token, &fcm_message("device-a")).await;
        assert_eq!((status, retry_after), (503, None));
        assert_eq!(body["error"]["status"], "UNAVAILABLE");
        assert_eq!(fcm_error_code(&body), Some("UNAVAILABLE"));
    }
    assert!(f.fake.messages(PROJECT).is_empty());
    assert_eq!(f.send(&token, &fcm_message("device-a")).await.0, 200);
    assert_eq!(f.fake.messages(PROJECT).len(), 1);
    assert_eq!(f.fake.sends(), 4);
}

#[tokio::test]
async fn fcm_validate_only_and_recording_off_store_nothing() {
    let f = fcm().await;
    f.fake.add_device(PROJECT, "device-a");
    f.fake.add_device(PROJECT, "uninstalled");
    f.fake.unregister("uninstalled");
    let token = f.access_token().await;

    let mut dry_run = fcm_message("device-a");
    dry_run["validate_only"] = json!(true);
    let (status, _, body) = f.send(&token, &dry_run).await;
    assert_eq!(status, 200);
    assert!(
        body["name"]
            .as_str()
            .unwrap()
            .starts_with("projects/minigate-test/messages/")
    );
    // A dry run still checks the token.
    let mut dry_run = fcm_message("uninstalled");
    dry_run["validate_only"] = json!(true);
    assert_eq!(f.send(&token, &dry_run).await.0, 404);

    f.fake.set_recording(false);
    for _ in 0..3 {
        assert_eq!(f.send(&token, &fcm_message("device-a")).await.0, 200);
    }
    assert!(f.fake.messages(PROJECT).is_empty());
    assert_eq!(f.fake.accepted(), 3);
    f.fake.set_recording(true);
    assert_eq!(f.send(&token, &fcm_message("device-a")).await.0, 200);
    assert_eq!(f.fake.messages(PROJECT).len(), 1);
    assert_eq!(f.fake.sends(), 6);
}

// ---------------------------------------------------------------------------------------------
// APNs
// ---------------------------------------------------------------------------------------------

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEYABC1234";
const BUNDLE: &str = "com.example.minigate";

struct Apns {
    fake: FakeApns,
    p8: String,
    http: reqwest::Client,
}

async fn apns() -> Apns {
    let fake = FakeApns::start().await;
    let p8 = fake.add_key(TEAM, KEY_ID);
    Apns {
        fake,
        p8,
        http: http2(),
    }
}

fn device(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn provider_token(p8: &str, kid: &str, team: &str, iat: i64) -> String {
    es256(
        p8,
        &json!({ "alg": "ES256", "kid": kid }),
        &json!({ "iss": team, "iat": iat }),
    )
}

/// A push request; `headers` are sent as given (the standard ones from [`alert_headers`]).
struct Push<'a> {
    authorization: Option<String>,
    device: String,
    headers: Vec<(&'a str, String)>,
    body: String,
}

fn alert_headers() -> Vec<(&'static str, String)> {
    vec![
        ("apns-topic", BUNDLE.to_owned()),
        ("apns-push-type", "alert".to_owned()),
    ]
}

fn alert_body() -> String {
    let alert = json!({ "title": "骑手已取餐", "body": "预计 12 分钟送达" });
    json!({ "aps": { "alert": alert, "sound": "default" }, "order_id": 42 }).to_string()
}

impl Apns {
    fn push(&self, token: &str, device: &str) -> Push<'static> {
        Push {
            authorization: Some(format!("bearer {token}")),
            device: device.to_owned(),
            headers: alert_headers(),
            body: alert_body(),
        }
    }

    /// The status, `apns-id` and `reason` of the answer (the whole body, if any, in the last).
    async fn send(&self, push: Push<'_>) -> (u16, String, Value) {
        send_apns(&self.http, &self.fake.base_url, push).await
    }
}

async fn send_apns(http: &reqwest::Client, base_url: &str, push: Push<'_>) -> (u16, String, Value) {
    let mut req = http
        .post(format!("{base_url}/3/device/{}", push.device))
        .body(push.body);
    if let Some(authorization) = push.authorization {
        req = req.header("authorization", authorization);
    }
    for (name, value) in push.headers {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let apns_id = res
        .headers()
        .get("apns-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, _, body) = answer(res).await;
    (status, apns_id, body)
}

fn with(mut push: Push<'static>, name: &'static str, value: &str) -> Push<'static> {
    push.headers.retain(|(n, _)| *n != name);
    push.headers.push((name, value.to_owned()));
    push
}

fn without(mut push: Push<'static>, name: &str) -> Push<'static> {
    push.headers.retain(|(n, _)| *n != name);
    push
}

fn is_uppercase_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok() && id.len() == 36 && id == id.to_uppercase()
}

#[tokio::test]
async fn apns_key_is_a_p8_and_a_good_push_is_recorded_with_its_apns_id() {
    let a = apns().await;
    assert!(a.p8.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(a.p8.trim_end().ends_with("-----END PRIVATE KEY-----"));
    a.fake.add_device(BUNDLE, &device(1));
    let token = provider_token(&a.p8, KEY_ID, TEAM, now());

    let id = "8b5e8b9c-5a0e-4c27-9d4c-0f7bd7a5e3c1";
    let push = with(a.push(&token, &device(1)), "apns-id", id);
    let push = with(push, "apns-priority", "10");
    let push = with(push, "apns-collapse-id", "order-42");
    let push = with(push, "apns-expiration", "0");
    let (status, apns_id, body) = a.send(push).await;
    assert_eq!((status, apns_id.as_str(), body), (200, id, Value::Null));

    let push = with(a.push(&token, &device(1)), "apns-push-type", "background");
    let push = with(push, "apns-priority", "5");
    let push = Push {
        body: json!({ "aps": { "content-available": 1 } }).to_string(),
        ..push
    };
    let (status, generated, _) = a.send(push).await;
    assert_eq!(status, 200);
    assert!(is_uppercase_uuid(&generated), "{generated}");

    let sent = a.fake.notifications();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].device_token, device(1));
    assert_eq!(sent[0].topic, BUNDLE);
    assert_eq!(sent[0].push_type, "alert");
    assert_eq!(sent[0].priority, Some(10));
    assert_eq!(sent[0].collapse_id.as_deref(), Some("order-42"));
    assert_eq!(sent[0].apns_id, id);
    assert_eq!(sent[0].payload["aps"]["alert"]["title"], "骑手已取餐");
    assert_eq!(sent[0].payload["order_id"], 42);
    assert_eq!(sent[1].push_type, "background");
    assert_eq!(sent[1].priority, Some(5));
    assert_eq!(sent[1].collapse_id, None);
    assert_eq!(sent[1].apns_id, generated);
    assert_eq!(a.fake.sends(), 2);
    assert_eq!(a.fake.provider_tokens(TEAM, KEY_ID).len(), 1);
}

#[tokio::test]
async fn apns_refuses_http1_requests() {
    let a = apns().await;
    a.fake.add_device(BUNDLE, &device(1));
    let token = provider_token(&a.p8, KEY_ID, TEAM, now());
    let res = http1()
        .post(format!("{}/3/device/{}", a.fake.base_url, device(1)))
        .header("authorization", format!("bearer {token}"))
        .header("apns-topic", BUNDLE)
        .header("apns-push-type", "alert")
        .body(alert_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.status().as_u16(), 505);
    assert!(a.fake.notifications().is_empty());
    assert!(a.fake.provider_tokens(TEAM, KEY_ID).is_empty());
}

#[tokio::test]
async fn apns_refuses_bad_provider_tokens() {
    let a = apns().await;
    let other_p8 = a.fake.add_key(TEAM, "OTHERKEY01");
    a.fake.add_device(BUNDLE, &device(1));
    let t = now();

    let mut missing = a.push("x", &device(1));
    missing.authorization = None;
    let (status, apns_id, body) = a.send(missing).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("MissingProviderToken"))
    );
    assert!(is_uppercase_uuid(&apns_id));

    let es256_as_hs256 = es256(
        &a.p8,
        &json!({ "alg": "HS256", "kid": KEY_ID }),
        &json!({ "iss": TEAM, "iat": t }),
    );
    let invalid = [
        "not-a-jwt".to_owned(),
        es256_as_hs256,
        // Unknown key id, another team, signed by another key of the team.
        provider_token(&a.p8, "UNKNOWNKEY", TEAM, t),
        provider_token(&a.p8, KEY_ID, "OTHERTEAM1", t),
        provider_token(&other_p8, KEY_ID, TEAM, t),
    ];
    for token in invalid {
        let (status, _, body) = a.send(a.push(&token, &device(1))).await;
        assert_eq!(status, 403, "{token}");
        assert_eq!(body["reason"], "InvalidProviderToken", "{token}");
    }
    // Basic credentials are no provider token either.
    let mut basic = a.push("x", &device(1));
    basic.authorization = Some("Basic dXNlcjpwYXNz".to_owned());
    assert_eq!(a.send(basic).await.2["reason"], "InvalidProviderToken");

    assert!(a.fake.notifications().is_empty());
    assert!(a.fake.provider_tokens(TEAM, KEY_ID).is_empty());
    // Both keys work once signed properly.
    let (status, _, _) = a
        .send(a.push(
            &provider_token(&other_p8, "OTHERKEY01", TEAM, t),
            &device(1),
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a.fake.provider_tokens(TEAM, "OTHERKEY01"), vec![t]);
    assert!(
        a.fake
            .provider_tokens("OTHERTEAM1", "OTHERKEY01")
            .is_empty()
    );
}

#[tokio::test]
async fn apns_provider_tokens_expire_after_an_hour_and_renew_no_more_than_every_20_minutes() {
    let a = apns().await;
    a.fake.add_device(BUNDLE, &device(1));
    a.fake.set_now(T0);
    let first = provider_token(&a.p8, KEY_ID, TEAM, T0);
    assert_eq!(a.send(a.push(&first, &device(1))).await.0, 200);

    // A new token 5 minutes later is refused; the first still works.
    a.fake.set_now(T0 + 300);
    let early = provider_token(&a.p8, KEY_ID, TEAM, T0 + 300);
    let (status, _, body) = a.send(a.push(&early, &device(1))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (429, Some("TooManyProviderTokenUpdates"))
    );
    assert_eq!(a.send(a.push(&first, &device(1))).await.0, 200);

    // 25 minutes after the first, a new one is accepted, and the first still is too.
    a.fake.set_now(T0 + 1500);
    let second = provider_token(&a.p8, KEY_ID, TEAM, T0 + 1500);
    assert_eq!(a.send(a.push(&second, &device(1))).await.0, 200);
    assert_eq!(a.send(a.push(&first, &device(1))).await.0, 200);
    // The refused one stays refused: it is still too close to the second.
    assert_eq!(a.send(a.push(&early, &device(1))).await.0, 429);

    // 61 minutes after it was issued, the first has expired; the second has not.
    a.fake.set_now(T0 + 61 * 60);
    let (status, _, body) = a.send(a.push(&first, &device(1))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("ExpiredProviderToken"))
    );
    assert_eq!(a.send(a.push(&second, &device(1))).await.0, 200);

    assert_eq!(a.fake.provider_tokens(TEAM, KEY_ID), vec![T0, T0 + 1500]);
    assert_eq!(a.fake.notifications().len(), 5);
}

#[tokio::test]
async fn apns_refuses_bad_requests_with_apples_reasons() {
    let a = apns().await;
    a.fake.add_device(BUNDLE, &device(1));
    a.fake.add_device("com.example.other", &device(2));
    a.fake.add_device(BUNDLE, &device(3));
    a.fake.set_now(T0);
    a.fake.unregister(&device(3));
    a.fake.set_now(T0 + 10);
    let token = provider_token(&a.p8, KEY_ID, TEAM, T0);
    let push = || a.push(&token, &device(1));

    let too_large = json!({ "aps": { "alert": "x" }, "pad": "x".repeat(4100) }).to_string();
    let cases: Vec<(Push<'static>, u16, &str)> = vec![
        (without(push(), "apns-topic"), 400, "MissingTopic"),
        (without(push(), "apns-push-type"), 400, "InvalidPushType"),
        (
            with(push(), "apns-push-type", "banner"),
            400,
            "InvalidPushType",
        ),
        (with(push(), "apns-priority", "7"), 400, "BadPriority"),
        (with(push(), "apns-priority", "high"), 400, "BadPriority"),
        (
            with(push(), "apns-expiration", "tomorrow"),
            400,
            "BadExpirationDate",
        ),
        (with(push(), "apns-id", "not-a-uuid"), 400, "BadMessageId"),
        (
            with(push(), "apns-id", "8b5e8b9c5a0e4c279d4c0f7bd7a5e3c1"),
            400,
            "BadMessageId",
        ),
        (
            with(push(), "apns-collapse-id", &"c".repeat(65)),
            400,
            "BadCollapseId",
        ),
        (a.push(&token, &"zz".repeat(32)), 400, "BadDeviceToken"),
        (a.push(&token, &device(9)), 400, "BadDeviceToken"),
        (a.push(&token, &device(2)), 400, "DeviceTokenNotForTopic"),
        // A VoIP push names the bundle id plus ".voip".
        (
            with(push(), "apns-push-type", "voip"),
            400,
            "DeviceTokenNotForTopic",
        ),
        (
            Push {
                body: String::new(),
                ..push()
            },
            400,
            "PayloadEmpty",
        ),
        (
            Push {
                body: too_large,
                ..push()
            },
            413,
            "PayloadTooLarge",
        ),
        (
            Push {
                body: "{\"aps\":".to_owned(),
                ..push()
            },
            400,
            "BadPayload",
        ),
        (
            Push {
                body: "{\"alert\":\"hi\"}".to_owned(),
                ..push()
            },
            400,
            "BadPayload",
        ),
    ];
    let count = cases.len();
    for (push, status, reason) in cases {
        let headers = format!("{:?}", push.headers);
        let (got, apns_id, body) = a.send(push).await;
        assert_eq!(
            (got, body["reason"].as_str()),
            (status, Some(reason)),
            "{headers}"
        );
        assert!(uuid::Uuid::try_parse(&apns_id).is_ok(), "{apns_id}");
    }

    let (status, _, body) = a.send(a.push(&token, &device(3))).await;
    assert_eq!(status, 410);
    assert_eq!(body["reason"], "Unregistered");
    assert_eq!(body["timestamp"], T0 * 1000);

    // 64 bytes of collapse id, the right VoIP topic and 5 KB of VoIP payload are fine.
    let ok = with(push(), "apns-collapse-id", &"c".repeat(64));
    assert_eq!(a.send(ok).await.0, 200);
    let voip = with(push(), "apns-push-type", "voip");
    let voip = with(voip, "apns-topic", &format!("{BUNDLE}.voip"));
    let voip = Push {
        body: json!({ "aps": {}, "pad": "x".repeat(5000) }).to_string(),
        ..voip
    };
    assert_eq!(a.send(voip).await.0, 200);
    assert_eq!(a.fake.notifications().len(), 2);
    assert_eq!(a.fake.sends(), count + 3);
}

#[tokio::test]
async fn apns_scripted_failures_answer_their_reason_and_retry_after() {
    let a = apns().await;
    a.fake.add_device(BUNDLE, &device(1));
    let token = provider_token(&a.p8, KEY_ID, TEAM, now());
    a.fake.fail_next(1, 429, "TooManyRequests", Some(12));
    a.fake.fail_next(1, 503, "ServiceUnavailable", None);

    let res = a
        .http
        .post(format!("{}/3/device/{}", a.fake.base_url, device(1)))
        .header("authorization", format!("bearer {token}"))
        .header("apns-topic", BUNDLE)
        .header("apns-push-type", "alert")
        .body(alert_body())
        .send()
        .await
        .unwrap();
    let (status, retry_after, body) = answer(res).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("12")));
    assert_eq!(body, json!({ "reason": "TooManyRequests" }));
    let (status, _, body) = a.send(a.push(&token, &device(1))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    assert!(a.fake.notifications().is_empty());
    assert_eq!(a.send(a.push(&token, &device(1))).await.0, 200);
    assert_eq!(a.fake.notifications().len(), 1);
    assert_eq!(a.fake.sends(), 3);
}

#[tokio::test]
async fn apns_sandbox_and_production_are_separate_environments_sharing_a_key() {
    let sandbox = apns().await;
    let production = FakeApns::start().await;
    production.add_existing_key(TEAM, KEY_ID, &sandbox.p8);
    sandbox.fake.add_device(BUNDLE, &device(1));
    production.add_device(BUNDLE, &device(2));
    let token = provider_token(&sandbox.p8, KEY_ID, TEAM, now());
    let http = http2();

    let (status, _, body) = send_apns(
        &http,
        &production.base_url,
        sandbox.push(&token, &device(1)),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (400, Some("BadDeviceToken"))
    );
    let (status, _, _) = send_apns(
        &http,
        &production.base_url,
        sandbox.push(&token, &device(2)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sandbox.send(sandbox.push(&token, &device(1))).await.0, 200);
    assert_eq!(production.notifications()[0].device_token, device(2));
    assert_eq!(sandbox.fake.notifications()[0].device_token, device(1));

    // Recording off still counts.
    production.set_recording(false);
    let (status, _, _) = send_apns(
        &http,
        &production.base_url,
        sandbox.push(&token, &device(2)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(production.notifications().len(), 1);
    assert_eq!(production.accepted(), 2);
}

// ---------------------------------------------------------------------------------------------
// Huawei Push Kit
// ---------------------------------------------------------------------------------------------

const HW_APP: &str = "104712345";
const HW_SECRET: &str = "3f1c9e0b7d2a4c6e8f0a1b2c3d4e5f60";
const HW_OTHER_APP: &str = "104799999";

struct Huawei {
    fake: FakeHuawei,
    http: reqwest::Client,
}

async fn huawei() -> Huawei {
    let fake = FakeHuawei::start().await;
    fake.add_app(HW_APP, HW_SECRET);
    fake.add_app(HW_OTHER_APP, "other-secret");
    Huawei {
        fake,
        http: http1(),
    }
}

impl Huawei {
    async fn token_form(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/oauth2/v3/token", self.fake.base_url))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, _, body) = answer(res).await;
        (status, body)
    }

    async fn access_token(&self, app: &str, secret: &str) -> String {
        let (status, body) = self
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app),
                ("client_secret", secret),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The status and body (`Null` when not JSON) and the raw text.
    async fn send(&self, bearer: Option<&str>, body: &Value) -> (u16, Value, String) {
        let mut req = self
            .http
            .post(format!("{}/v1/{HW_APP}/messages:send", self.fake.base_url))
            .json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }
}

fn hw_message(tokens: &[&str]) -> Value {
    json!({
        "validate_only": false,
        "message": {
            "data": "{\"order_id\":42}",
            "android": {
                "collapse_key": -1,
                "urgency": "HIGH",
                "category": "EXPRESS",
                "ttl": "86400s",
                "notification": {
                    "title": "订单已送达",
                    "body": "您的外卖已放在门口",
                    "click_action": { "type": 3 },
                },
            },
            "token": tokens,
        }
    })
}

fn assert_code(answer: &(u16, Value, String), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.2);
    assert_eq!(answer.1["code"], code, "{}", answer.2);
    let request_id = answer.1["requestId"].as_str().unwrap();
    assert!(!request_id.is_empty() && request_id.bytes().all(|b| b.is_ascii_digit()));
}

#[tokio::test]
async fn huawei_token_then_send_is_recorded() {
    let h = huawei().await;
    h.fake.add_device(HW_APP, "hw-token-a");
    let (status, body) = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", HW_APP),
            ("client_secret", HW_SECRET),
        ])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();

    let answer = h.send(Some(token), &hw_message(&["hw-token-a"])).await;
    assert_code(&answer, 200, "80000000");
    assert_eq!(answer.1["msg"], "Success");

    let sent = h.fake.messages(HW_APP);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].tokens, vec!["hw-token-a"]);
    assert_eq!(sent[0].title.as_deref(), Some("订单已送达"));
    assert_eq!(sent[0].body.as_deref(), Some("您的外卖已放在门口"));
    assert_eq!(sent[0].data.as_deref(), Some("{\"order_id\":42}"));
    assert_eq!(sent[0].raw["android"]["category"], "EXPRESS");
    assert_eq!((h.fake.token_requests(), h.fake.sends()), (1, 1));
}

#[tokio::test]
async fn huawei_token_endpoint_refuses_wrong_clients_and_grants() {
    let h = huawei().await;
    for (app, secret) in [(HW_APP, "wrong"), ("unknown-app", HW_SECRET), (HW_APP, "")] {
        let (status, body) = h
            .token_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app),
                ("client_secret", secret),
            ])
            .await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({ "error": 1101, "error_description": "invalid client" })
        );
    }
    let (status, body) = h
        .token_form(&[
            ("grant_type", "password"),
            ("client_id", HW_APP),
            ("client_secret", HW_SECRET),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], 1102);
    assert_eq!(h.fake.token_requests(), 4);
}

#[tokio::test]
async fn huawei_refuses_missing_foreign_and_expired_access_tokens() {
    let h = huawei().await;
    h.fake.add_device(HW_APP, "hw-token-a");
    let message = hw_message(&["hw-token-a"]);

    let answer = h.send(None, &message).await;
    assert_code(&answer, 401, "80200001");
    assert_eq!(answer.1["msg"], "Oauth authentication error");
    assert_code(
        &h.send(Some("never-issued"), &message).await,
        401,
        "80200001",
    );
    let theirs = h.access_token(HW_OTHER_APP, "other-secret").await;
    assert_code(&h.send(Some(&theirs), &message).await, 401, "80200001");

    // Lifetime by the fake's clock.
    h.fake.set_now(T0);
    let token = h.access_token(HW_APP, HW_SECRET).await;
    h.fake.set_now(T0 + 3599);
    assert_code(&h.send(Some(&token), &message).await, 200, "80000000");
    h.fake.set_now(T0 + 3600);
    let answer = h.send(Some(&token), &message).await;
    assert_code(&answer, 401, "80200003");
    assert_eq!(answer.1["msg"], "Oauth Token expired.");

    // expire_access_tokens.
    let token = h.access_token(HW_APP, HW_SECRET).await;
    assert_code(&h.send(Some(&token), &message).await, 200, "80000000");
    h.fake.expire_access_tokens();
    assert_code(&h.send(Some(&token), &message).await, 401, "80200003");
    let fresh = h.access_token(HW_APP, HW_SECRET).await;
    assert_code(&h.send(Some(&fresh), &message).await, 200, "80000000");
    assert_eq!(h.fake.messages(HW_APP).len(), 3);
}

#[tokio::test]
async fn huawei_refuses_bad_messages() {
    let h = huawei().await;
    h.fake.add_device(HW_APP, "hw-token-a");
    let token = h.access_token(HW_APP, HW_SECRET).await;

    let mut no_click_action = hw_message(&["hw-token-a"]);
    no_click_action["message"]["android"]["notification"]
        .as_object_mut()
        .unwrap()
        .remove("click_action");
    let mut open_url_without_url = hw_message(&["hw-token-a"]);
    open_url_without_url["message"]["android"]["notification"]["click_action"] =
        json!({ "type": 2 });
    let nothing = json!({ "message": { "token": ["hw-token-a"] } });
    let mut data_object = hw_message(&["hw-token-a"]);
    data_object["message"]["data"] = json!({ "order_id": 42 });
    for body in [no_click_action, open_url_without_url, nothing, data_object] {
        let answer = h.send(Some(&token), &body).await;
        assert_code(&answer, 400, "80100003");
        assert_eq!(answer.1["msg"], "Illegal payload");
    }

    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let no_tokens = json!({ "message": { "data": "x" } });
    for body in [hw_message(&[]), hw_message(&many), no_tokens] {
        let answer = h.send(Some(&token), &body).await;
        assert_code(&answer, 400, "80300010");
        assert_eq!(
            answer.1["msg"],
            "The number of tokens in the message body exceeds the default value."
        );
    }

    let mut bad_ttl = hw_message(&["hw-token-a"]);
    bad_ttl["message"]["android"]["ttl"] = json!("86400");
    assert_code(&h.send(Some(&token), &bad_ttl).await, 400, "80100001");

    assert!(h.fake.messages(HW_APP).is_empty());
    assert_eq!(h.fake.sends(), 8);
}

#[tokio::test]
async fn huawei_partial_success_lists_the_illegal_tokens_and_sends_to_the_rest() {
    let h = huawei().await;
    h.fake.add_device(HW_APP, "good-1");
    h.fake.add_device(HW_APP, "good-2");
    h.fake.add_device(HW_APP, "uninstalled");
    h.fake.unregister("uninstalled");
    h.fake.add_device(HW_OTHER_APP, "their-token");
    let token = h.access_token(HW_APP, HW_SECRET).await;

    let tokens = ["good-1", "uninstalled", "unknown", "good-2", "their-token"];
    let answer = h.send(Some(&token), &hw_message(&tokens)).await;
    assert_code(&answer, 200, "80100000");
    let detail: Value = serde_json::from_str(answer.1["msg"].as_str().unwrap()).unwrap();
    assert_eq!(detail["success"], 2);
    assert_eq!(detail["failure"], 3);
    assert_eq!(
        detail["illegal_tokens"],
        json!(["uninstalled", "unknown", "their-token"])
    );
    let sent = h.fake.messages(HW_APP);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].tokens, vec!["good-1", "good-2"]);

    let answer = h
        .send(Some(&token), &hw_message(&["uninstalled", "unknown"]))
        .await;
    assert_code(&answer, 400, "80300007");
    assert_eq!(answer.1["msg"], "All the tokens are invalid");
    assert_eq!(h.fake.messages(HW_APP).len(), 1);
}

#[tokio::test]
async fn huawei_scripted_failures_validate_only_and_recording() {
    let h = huawei().await;
    h.fake.add_device(HW_APP, "hw-token-a");
    let token = h.access_token(HW_APP, HW_SECRET).await;
    h.fake.fail_next(
        1,
        HuaweiFailure {
            http_status: 503,
            code: None,
            msg: "Service Unavailable",
        },
    );
    h.fake.fail_next(
        1,
        HuaweiFailure {
            http_status: 500,
            code: Some("81000001"),
            msg: "System inner error",
        },
    );
    let message = hw_message(&["hw-token-a"]);
    let (status, body, text) = h.send(Some(&token), &message).await;
    assert_eq!(
        (status, body, text.as_str()),
        (503, Value::Null, "Service Unavailable")
    );
    let answer = h.send(Some(&token), &message).await;
    assert_code(&answer, 500, "81000001");
    assert_eq!(answer.1["msg"], "System inner error");
    assert!(h.fake.messages(HW_APP).is_empty());

    let mut dry_run = message.clone();
    dry_run["validate_only"] = json!(true);
    assert_code(&h.send(Some(&token), &dry_run).await, 200, "80000000");
    assert!(h.fake.messages(HW_APP).is_empty());

    h.fake.set_recording(false);
    assert_code(&h.send(Some(&token), &message).await, 200, "80000000");
    assert!(h.fake.messages(HW_APP).is_empty());
    assert_eq!(h.fake.accepted(), 1);
    h.fake.set_recording(true);
    assert_code(&h.send(Some(&token), &message).await, 200, "80000000");
    assert_eq!(h.fake.messages(HW_APP).len(), 1);
    assert_eq!(h.fake.sends(), 5);
}
