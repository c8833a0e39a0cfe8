//! The official account's followers through the real service: its callback URL (verification,
//! signed and sealed follow / unfollow events, template send reports) and the follower sync, with
//! the fake WeChat playing the account's API. Callbacks are sealed here the way WeChat seals them.

use std::time::{Duration, Instant};

use chrono::Utc;
use minigate_fakes::wechat::{Failure, routes};
use minigate_push::delivery::{self, Channel, Class, NewDelivery};
use minigate_push::wechat::oa_crypto::OaCrypto;
use minigate_resolvers::delivery::followers::{self, Step, SyncSettings, db as follower_db};
use minigate_store::{self as store, Id};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::TestApp;

const OA: &str = "wxoafollowers001";
const MP: &str = "wxmpfollowers001";
const OA_TEMPLATE: &str = "oa-followers-template";
const TOKEN: &str = "oa-callback-token";
/// An EncodingAESKey of the shape WeChat's admin page makes (43 base64 characters).
const AES_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aQ";

/// Registers the company's official account with the fake WeChat, and with the service through
/// `upsertTenantApp` with its callback token and EncodingAESKey.
async fn official_account(app: &TestApp, admin: &str) {
    let secret = "secret-of-the-followers-account";
    let mut refs = Vec::new();
    for (name, value) in [
        ("oa.secret", secret),
        ("oa.token", TOKEN),
        ("oa.aes", AES_KEY),
    ] {
        let path = app.dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        refs.push(format!("file:{}", path.display()));
    }
    app.wechat.add_app(OA, secret);
    let r = app
        .gql(
            admin,
            "mutation($a: String!, $s: String!, $t: String, $k: String) {
                upsertTenantApp(kind: OFFICIAL_ACCOUNT, appId: $a, name: \"fleet news\", secretRef: $s,
                                oaTokenRef: $t, oaAesKeyRef: $k) { appId oaTokenRef oaAesKeyRef }
            }",
            json!({ "a": OA, "s": refs[0], "t": refs[1], "k": refs[2] }),
        )
        .await;
    assert_eq!(r.ok()["upsertTenantApp"]["oaTokenRef"], refs[1].as_str());
    assert_eq!(r.ok()["upsertTenantApp"]["oaAesKeyRef"], refs[2].as_str());
}

fn crypto(app_id: &str) -> OaCrypto {
    OaCrypto::new(SecretString::from(TOKEN), AES_KEY, app_id).unwrap()
}

fn hex_sha1(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sorted.concat().as_bytes(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn event(openid: &str, create_time: i64, event: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fleet]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )
}

/// A POST as WeChat sends it in safe mode: the query and the body.
struct Callback {
    query: String,
    body: String,
}

/// `xml` sealed with `crypto` and signed at `timestamp`.
fn sealed_with(crypto: &OaCrypto, xml: &str, timestamp: i64) -> Callback {
    let ts = timestamp.to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let random: [u8; 16] = *uuid::Uuid::new_v4().as_bytes();
    let sealed = crypto.seal(xml, &ts, &nonce, random).unwrap();
    let signature = hex_sha1(&[TOKEN, &ts, &nonce]);
    Callback {
        query: format!(
            "signature={signature}&timestamp={ts}&nonce={nonce}&openid=o&encrypt_type=aes&msg_signature={}",
            sealed.msg_signature
        ),
        body: sealed.to_xml("gh_fleet"),
    }
}

fn sealed(xml: &str) -> Callback {
    sealed_with(&crypto(OA), xml, Utc::now().timestamp())
}

async fn post(app: &TestApp, app_id: &str, cb: &Callback) -> (u16, String) {
    let r = app
        .http
        .post(format!(
            "{}/wechat/oa/callback/{app_id}?{}",
            app.base, cb.query
        ))
        .header("content-type", "text/xml")
        .body(cb.body.clone())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Posts `xml` sealed for the account and expects WeChat's `success`.
async fn deliver(app: &TestApp, xml: &str) {
    let (status, body) = post(app, OA, &sealed(xml)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Follower {
    openid: String,
    unionid: Option<String>,
    subscribed: bool,
}

async fn followers(app: &TestApp) -> Vec<Follower> {
    let mut c = app.db().conn().await.unwrap();
    store::fetch_all!(
        &mut c,
        Follower,
        "select openid, unionid, subscribed from wechat_follower where app_id = $1 order by openid",
        OA
    )
    .unwrap()
}

async fn follower(app: &TestApp, openid: &str) -> Option<Follower> {
    followers(app)
        .await
        .into_iter()
        .find(|f| f.openid == openid)
}

both!(
    url_verification_answers_the_echostr_only_to_the_tokens_signature,
    |app: TestApp| async move {
        let (_, admin) = app.admin("oaverify").await;
        official_account(&app, &admin).await;
        let ts = Utc::now().timestamp().to_string();
        let good = hex_sha1(&[TOKEN, &ts, "n0nce"]);
        let url = |app_id: &str, signature: &str| {
            format!(
                "/wechat/oa/callback/{app_id}?signature={signature}&timestamp={ts}&nonce=n0nce&echostr=e-12345"
            )
        };

        let r = app.get(&url(OA, &good)).await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(r.text().await.unwrap(), "e-12345");

        let forged = hex_sha1(&["another-token", &ts, "n0nce"]);
        let r = app.get(&url(OA, &forged)).await;
        assert_eq!(r.status().as_u16(), 401);
        let body = r.text().await.unwrap();
        assert!(body.contains("WECHAT_OA_SIGNATURE_INVALID"), "{body}");
        assert!(!body.contains("e-12345"), "{body}");

        let r = app.get(&url("wxnosuchaccount", &good)).await;
        assert_eq!(r.status().as_u16(), 404);
        assert!(r.text().await.unwrap().contains("WECHAT_APP_UNKNOWN"));
    }
);

both!(
    follow_events_failing_a_check_are_refused_and_change_nothing,
    |app: TestApp| async move {
        let (_, admin) = app.admin("oarefuse").await;
        official_account(&app, &admin).await;
        app.wechat.add_follower(OA, "oa-1", Some("union-1"));
        let now = Utc::now().timestamp();
        let follow = event("oa-1", now, "subscribe", "");

        // A signature made without the token.
        let mut cb = sealed(&follow);
        cb.query = cb.query.replace("msg_signature=", "msg_signature=0");
        let (status, body) = post(&app, OA, &cb).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("WECHAT_OA_SIGNATURE_INVALID"), "{body}");

        // The ciphertext changed after signing.
        let mut cb = sealed(&follow);
        let at = cb.body.find("<Encrypt><![CDATA[").unwrap() + 20;
        let flipped = if &cb.body[at..=at] == "A" { "B" } else { "A" };
        cb.body.replace_range(at..=at, flipped);
        let (status, body) = post(&app, OA, &cb).await;
        assert_eq!(status, 401, "{body}");

        // Signed and sealed long ago (a replay).
        let cb = sealed_with(&crypto(OA), &follow, now - 10 * 60);
        let (status, body) = post(&app, OA, &cb).await;
        assert_eq!(status, 401, "{body}");

        // Sealed for another account, and posted to this one's URL.
        let cb = sealed_with(&crypto("wxanotheraccount"), &follow, now);
        let (status, body) = post(&app, OA, &cb).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("WECHAT_OA_MESSAGE_MALFORMED"), "{body}");

        // A well-sealed event for an account the service does not know.
        let cb = sealed_with(&crypto("wxunknownaccount"), &follow, now);
        let (status, body) = post(&app, "wxunknownaccount", &cb).await;
        assert_eq!(status, 404, "{body}");

        // Plain mode to an account in safe mode.
        let ts = now.to_string();
        let plain = Callback {
            query: format!(
                "signature={}&timestamp={ts}&nonce=n&openid=oa-1",
                hex_sha1(&[TOKEN, &ts, "n"])
            ),
            body: follow.clone(),
        };
        let (status, _) = post(&app, OA, &plain).await;
        assert_eq!(status, 401);

        assert!(followers(&app).await.is_empty());
        assert_eq!(app.wechat.calls(routes::USER_INFO_BATCHGET), 0);

        // The same event, properly sealed, is taken.
        deliver(&app, &follow).await;
        assert_eq!(
            followers(&app).await,
            [Follower {
                openid: "oa-1".into(),
                unionid: Some("union-1".into()),
                subscribed: true
            }]
        );
    }
);

async fn template(app: &TestApp, tenant: Id) {
    app.wechat
        .add_template(OA, OA_TEMPLATE, &["first", "keyword1"]);
    let mut c = app.db().conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields, page)
         values ($1, 'NOTICE', 'TEMPLATE', $2, $3, $4, null)",
        tenant,
        OA,
        OA_TEMPLATE,
        store::sqlx::types::Json(json!({ "first": "title", "keyword1": "at" }))
    )
    .unwrap();
}

async fn enqueue(app: &TestApp, tenant: Id, user: Id, source: Id) {
    let payload = json!({ "title": "Rent due Friday", "at": "2026-11-21 10:00" });
    let mut tx = app.db().begin().await.unwrap();
    delivery::enqueue(
        &mut tx,
        &NewDelivery {
            tenant_id: tenant,
            user_id: user,
            kind: "NOTICE",
            class: Class::Essential,
            source_id: source,
            channels: &[Channel::Template, Channel::InApp],
            payload: &payload,
            not_before: Utc::now(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
}

/// (channel, status, lastCode) of one cause's deliveries once they settled, oldest first.
async fn settled(app: &TestApp, admin: &str, source: Id) -> Vec<(String, String, String)> {
    let started = Instant::now();
    loop {
        let r = app
            .gql(
                admin,
                "query($s: ID!) { deliveries(sourceId: $s) { channel status lastCode } }",
                json!({ "s": source.to_string() }),
            )
            .await;
        let rows = r.ok()["deliveries"].as_array().unwrap().clone();
        let field = |d: &Value, f: &str| d[f].as_str().unwrap_or_default().to_owned();
        if rows.iter().any(|d| d["status"] == "SENT")
            && rows
                .iter()
                .all(|d| d["status"] != "PENDING" && d["status"] != "SENDING")
        {
            return rows
                .iter()
                .rev()
                .map(|d| {
                    (
                        field(d, "channel"),
                        field(d, "status"),
                        field(d, "lastCode"),
                    )
                })
                .collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "deliveries not settled: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(channel: &str, status: &str, code: &str) -> (String, String, String) {
    (channel.into(), status.into(), code.into())
}

both!(
    a_follower_gets_template_messages_with_receipts_until_they_unfollow,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oafollow").await;
        app.mini_program(tenant, MP).await;
        official_account(&app, &admin).await;
        template(&app, tenant).await;
        let login = app.login_wechat(MP, "o-driver").await;
        let user: Id = login.ok()["loginWithWechat"]["user"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = Utc::now().timestamp();

        // They follow the account: the callback stores them with the unionid WeChat tells.
        app.wechat
            .add_follower(OA, "oa-driver", Some("union-o-driver"));
        deliver(
            &app,
            &event(
                "oa-driver",
                now - 100,
                "subscribe",
                "<EventKey><![CDATA[]]></EventKey>",
            ),
        )
        .await;
        assert_eq!(
            follower(&app, "oa-driver").await,
            Some(Follower {
                openid: "oa-driver".into(),
                unionid: Some("union-o-driver".into()),
                subscribed: true
            })
        );
        // WeChat sends it again: nothing changes.
        deliver(&app, &event("oa-driver", now - 100, "subscribe", "")).await;
        assert_eq!(followers(&app).await.len(), 1);

        // A template message reaches them through the service's worker.
        let first = Id::new();
        enqueue(&app, tenant, user, first).await;
        assert_eq!(
            settled(&app, &admin, first).await,
            [row("TEMPLATE", "SENT", "")]
        );
        let sent = app.wechat.template_messages(OA);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].touser, "oa-driver");

        // WeChat reports it delivered.
        let msg_id = sent[0].msgid.to_string();
        let report = |msg_id: &str, status: &str| {
            event(
                "oa-driver",
                now - 40,
                "TEMPLATESENDJOBFINISH",
                &format!("<MsgID>{msg_id}</MsgID><Status><![CDATA[{status}]]></Status>"),
            )
        };
        deliver(&app, &report(&msg_id, "success")).await;
        let receipt = || async {
            let mut c = app.db().conn().await.unwrap();
            store::fetch_one!(
                &mut c,
                (Option<String>, Option<chrono::DateTime<Utc>>),
                "select receipt, receipt_at from push_delivery where source_id = $1",
                first
            )
            .unwrap()
        };
        let (r, at) = receipt().await;
        assert_eq!(r.as_deref(), Some("DELIVERED"));
        assert_eq!(at.map(|t| t.timestamp()), Some(now - 40));
        // A report of a message nobody knows is taken and changes nothing.
        deliver(&app, &report("99999", "failed:user block")).await;
        assert_eq!(receipt().await.0.as_deref(), Some("DELIVERED"));

        // They unfollow; the next message falls through to the app.
        app.wechat.unfollow(OA, "oa-driver");
        deliver(&app, &event("oa-driver", now - 50, "unsubscribe", "")).await;
        assert!(!follower(&app, "oa-driver").await.unwrap().subscribed);
        let second = Id::new();
        enqueue(&app, tenant, user, second).await;
        assert_eq!(
            settled(&app, &admin, second).await,
            [
                row("TEMPLATE", "FELL_THROUGH", "NOT_A_FOLLOWER"),
                row("IN_APP", "SENT", "")
            ]
        );
        assert_eq!(app.wechat.template_messages(OA).len(), 1);

        // A follow older than the unfollow, arriving late, does not make them a follower again;
        // neither does one in the same second. A newer one does.
        deliver(&app, &event("oa-driver", now - 70, "subscribe", "")).await;
        deliver(&app, &event("oa-driver", now - 50, "subscribe", "")).await;
        assert!(!follower(&app, "oa-driver").await.unwrap().subscribed);
        deliver(&app, &event("oa-driver", now - 30, "subscribe", "")).await;
        assert!(follower(&app, "oa-driver").await.unwrap().subscribed);
        // And an unfollow older than that follow, arriving late, does not undo it.
        deliver(&app, &event("oa-driver", now - 35, "unsubscribe", "")).await;
        assert!(follower(&app, "oa-driver").await.unwrap().subscribed);

        // Someone the service never saw follow unfollows; their late follow stays undone.
        deliver(&app, &event("oa-stranger", now - 10, "unsubscribe", "")).await;
        deliver(&app, &event("oa-stranger", now - 20, "subscribe", "")).await;
        assert!(!follower(&app, "oa-stranger").await.unwrap().subscribed);

        // Other messages and events are answered and stored nowhere.
        let text = format!(
            "<xml><ToUserName>gh_fleet</ToUserName><FromUserName>oa-driver</FromUserName><CreateTime>{now}</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>123</MsgId></xml>"
        );
        deliver(&app, &text).await;
        deliver(
            &app,
            &event("oa-driver", now, "CLICK", "<EventKey>menu</EventKey>"),
        )
        .await;
        assert_eq!(followers(&app).await.len(), 2);
    }
);

both!(
    a_follow_while_wechat_is_down_is_stored_and_the_sync_fills_in_the_unionid,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oadown").await;
        official_account(&app, &admin).await;
        app.wechat.add_follower(OA, "oa-1", Some("union-1"));
        app.wechat
            .fail_route(routes::USER_INFO_BATCHGET, 1, Failure::Errcode(-1));
        deliver(
            &app,
            &event("oa-1", Utc::now().timestamp(), "subscribe", ""),
        )
        .await;
        let f = follower(&app, "oa-1").await.unwrap();
        assert_eq!((f.subscribed, f.unionid), (true, None));

        let holder = "test-runner";
        let settings = SyncSettings::default();
        followers::start(&app.state.deps, tenant, OA, holder, &settings, Utc::now())
            .await
            .unwrap();
        while followers::step(&app.state.deps, OA, holder, &settings, Utc::now())
            .await
            .unwrap()
            == Step::Page
        {}
        assert_eq!(
            follower(&app, "oa-1").await.unwrap().unionid.as_deref(),
            Some("union-1")
        );
    }
);

async fn sync_state(app: &TestApp, admin: &str) -> Value {
    let r = app
        .gql(
            admin,
            "query($a: String!) { followerSync(appId: $a) { status total listed stored lastError startedAt finishedAt } }",
            json!({ "a": OA }),
        )
        .await;
    r.ok()["followerSync"].clone()
}

fn progress(s: &Value) -> (&str, i64, i64, i64) {
    (
        s["status"].as_str().unwrap(),
        s["total"].as_i64().unwrap(),
        s["listed"].as_i64().unwrap(),
        s["stored"].as_i64().unwrap(),
    )
}

fn add_followers(app: &TestApp, n: usize) {
    for i in 0..n {
        app.wechat
            .add_follower(OA, &format!("oa-{i:05}"), Some(&format!("union-{i:05}")));
    }
}

async fn count_followers(app: &TestApp, sql: &'static str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    store::fetch_scalar!(&mut c, i64, sql, OA).unwrap()
}

both!(
    a_sync_stores_every_follower_with_unionid_and_reports_progress,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oasync").await;
        official_account(&app, &admin).await;
        add_followers(&app, 2_500);
        app.wechat.set_user_list_page_size(1_000);
        let d = &app.state.deps;
        let settings = SyncSettings::default();
        let holder = "test-runner";

        // Page by page, as a runner goes: progress after each page.
        let (row, started) = followers::start(d, tenant, OA, holder, &settings, Utc::now())
            .await
            .unwrap();
        assert!(started);
        assert_eq!(row.status, follower_db::RUNNING);
        assert_eq!(
            progress(&sync_state(&app, &admin).await),
            ("RUNNING", 0, 0, 0)
        );
        let mut seen = Vec::new();
        loop {
            let step = followers::step(d, OA, holder, &settings, Utc::now())
                .await
                .unwrap();
            let s = sync_state(&app, &admin).await;
            seen.push((progress(&s).0.to_owned(), progress(&s).2));
            if step != Step::Page {
                assert_eq!(step, Step::Done);
                break;
            }
        }
        assert_eq!(
            seen,
            [
                ("RUNNING".to_owned(), 1_000),
                ("RUNNING".to_owned(), 2_000),
                ("RUNNING".to_owned(), 2_500),
                ("DONE".to_owned(), 2_500)
            ]
        );
        let s = sync_state(&app, &admin).await;
        assert_eq!(progress(&s), ("DONE", 2_500, 2_500, 2_500));
        assert!(s["finishedAt"].is_string());
        assert_eq!(
            count_followers(
                &app,
                "select count(*) from wechat_follower where app_id = $1 and subscribed and unionid is not null"
            )
            .await,
            2_500
        );
        // 100 openids a call.
        assert_eq!(app.wechat.calls(routes::USER_INFO_BATCHGET), 25);

        // Through GraphQL the sync runs in the background, from the first page again.
        let r = app
            .gql(
                &admin,
                "mutation($a: String!) { startFollowerSync(appId: $a) { status listed } }",
                json!({ "a": OA }),
            )
            .await;
        assert_eq!(r.ok()["startFollowerSync"]["status"], "RUNNING");
        let started = Instant::now();
        while sync_state(&app, &admin).await["status"] == "RUNNING" {
            assert!(started.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            progress(&sync_state(&app, &admin).await),
            ("DONE", 2_500, 2_500, 2_500)
        );
        assert_eq!(
            count_followers(
                &app,
                "select count(*) from wechat_follower where app_id = $1"
            )
            .await,
            2_500
        );

        // Only the company's operators.
        app.mini_program(tenant, MP).await;
        let login = app.login_wechat(MP, "o-someone").await;
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = app
            .gql(
                &token,
                "query($a: String!) { followerSync(appId: $a) { status } }",
                json!({ "a": OA }),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let (_, other_admin) = app.admin("oasyncother").await;
        let r = app
            .gql(
                &other_admin,
                "mutation($a: String!) { startFollowerSync(appId: $a) { status } }",
                json!({ "a": OA }),
            )
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
    }
);

both!(
    a_sync_cut_off_midway_resumes_from_its_page,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oaresume").await;
        official_account(&app, &admin).await;
        add_followers(&app, 2_500);
        app.wechat.set_user_list_page_size(1_000);
        let d = &app.state.deps;
        let settings = SyncSettings::default();
        let me = "test-runner";
        let t0 = Utc::now();
        let later = |hours: i64| t0 + chrono::Duration::hours(hours);

        followers::start(d, tenant, OA, me, &settings, t0)
            .await
            .unwrap();
        assert_eq!(
            followers::step(d, OA, me, &settings, t0).await.unwrap(),
            Step::Page
        );

        // WeChat is busy: the page is tried again later, from the same cursor.
        app.wechat
            .fail_route(routes::USER_INFO_BATCHGET, 2, Failure::Errcode(-1));
        assert_eq!(
            followers::step(d, OA, me, &settings, t0).await.unwrap(),
            Step::Retry
        );
        let s = sync_state(&app, &admin).await;
        assert_eq!(progress(&s), ("RUNNING", 2_500, 1_000, 1_000));
        assert!(
            s["lastError"]
                .as_str()
                .unwrap()
                .starts_with("failure 1 of 5: UPSTREAM_UNAVAILABLE"),
            "{s}"
        );
        // Nobody takes it up before its retry is due.
        assert_eq!(
            followers::step(d, OA, "another-runner", &settings, t0)
                .await
                .unwrap(),
            Step::NotHeld
        );
        assert_eq!(
            followers::step(d, OA, me, &settings, later(1))
                .await
                .unwrap(),
            Step::Retry
        );
        assert!(
            sync_state(&app, &admin).await["lastError"]
                .as_str()
                .unwrap()
                .starts_with("failure 2 of 5")
        );

        // Its runner dies holding it: another takes it over once the lease has run out.
        let mut c = app.db().conn().await.unwrap();
        let held = follower_db::claim_sync(
            &mut c,
            OA,
            "a-runner-that-dies",
            later(2),
            later(2) + chrono::Duration::minutes(2),
        )
        .await
        .unwrap();
        assert_eq!(held.unwrap().next_openid, "oa-00999");
        assert_eq!(
            followers::step(d, OA, me, &settings, later(2))
                .await
                .unwrap(),
            Step::NotHeld
        );
        let mut steps = Vec::new();
        loop {
            let step = followers::step(d, OA, me, &settings, later(3))
                .await
                .unwrap();
            steps.push(step.clone());
            if step != Step::Page {
                break;
            }
        }
        assert_eq!(steps, [Step::Page, Step::Page, Step::Done]);
        let s = sync_state(&app, &admin).await;
        assert_eq!(progress(&s), ("DONE", 2_500, 2_500, 2_500));
        assert!(s["lastError"].is_null());
        // Every follower once, each with their unionid.
        assert_eq!(
            count_followers(
                &app,
                "select count(distinct openid) from wechat_follower where app_id = $1 and unionid is not null"
            )
            .await,
            2_500
        );
        assert_eq!(
            count_followers(
                &app,
                "select count(*) from wechat_follower where app_id = $1"
            )
            .await,
            2_500
        );
        // The first page was read once; the second three times (two refused descriptions).
        assert_eq!(app.wechat.calls(routes::USER_GET), 1 + 3 + 1 + 1);
    }
);

both!(
    a_sync_gives_up_after_five_failures_in_a_row_and_can_be_started_again,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oagiveup").await;
        official_account(&app, &admin).await;
        add_followers(&app, 3);
        let d = &app.state.deps;
        let settings = SyncSettings::default();
        let t0 = Utc::now();
        followers::start(d, tenant, OA, "r", &settings, t0)
            .await
            .unwrap();
        app.wechat
            .fail_route(routes::USER_GET, 5, Failure::Errcode(-1));
        let mut steps = Vec::new();
        for h in 0..5 {
            let now = t0 + chrono::Duration::hours(h);
            steps.push(followers::step(d, OA, "r", &settings, now).await.unwrap());
        }
        assert_eq!(
            steps,
            [
                Step::Retry,
                Step::Retry,
                Step::Retry,
                Step::Retry,
                Step::Failed
            ]
        );
        let s = sync_state(&app, &admin).await;
        assert_eq!(s["status"], "FAILED");
        assert!(
            s["lastError"]
                .as_str()
                .unwrap()
                .starts_with("failure 5 of 5")
        );
        assert!(followers(&app).await.is_empty());

        let (_, started) = followers::start(d, tenant, OA, "r", &settings, Utc::now())
            .await
            .unwrap();
        assert!(started);
        assert_eq!(
            followers::run(d, OA, "r", &settings, &|_| {})
                .await
                .unwrap(),
            Step::Done
        );
        assert_eq!(followers(&app).await.len(), 3);
    }
);

both!(
    a_follower_missing_from_a_complete_sync_is_let_go,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("oagone").await;
        official_account(&app, &admin).await;
        add_followers(&app, 3);
        let now = Utc::now().timestamp();
        // Followed, then left while the callback URL was down: WeChat no longer lists them.
        app.wechat.add_follower(OA, "oa-gone", Some("union-gone"));
        deliver(&app, &event("oa-gone", now - 3_600, "subscribe", "")).await;
        app.wechat.unfollow(OA, "oa-gone");

        let d = &app.state.deps;
        let settings = SyncSettings::default();
        followers::start(d, tenant, OA, "r", &settings, Utc::now())
            .await
            .unwrap();
        // Someone follows while the sync runs, after their place in the list was read.
        assert_eq!(
            followers::step(d, OA, "r", &settings, Utc::now())
                .await
                .unwrap(),
            Step::Page
        );
        deliver(&app, &event("oa-late", now + 5, "subscribe", "")).await;
        assert_eq!(
            followers::run(d, OA, "r", &settings, &|_| {})
                .await
                .unwrap(),
            Step::Done
        );

        let all = followers(&app).await;
        let subscribed: Vec<&str> = all
            .iter()
            .filter(|f| f.subscribed)
            .map(|f| f.openid.as_str())
            .collect();
        assert_eq!(subscribed, ["oa-00000", "oa-00001", "oa-00002", "oa-late"]);
        assert!(!follower(&app, "oa-gone").await.unwrap().subscribed);
    }
);

both!(
    callback_settings_are_for_official_accounts_and_must_be_references,
    |app: TestApp| async move {
        let (_, admin) = app.admin("oasettings").await;
        let upsert = "mutation($k: AppKind!, $t: String) {
            upsertTenantApp(kind: $k, appId: \"wxoasettings01\", name: \"n\", secretRef: \"env:OA_SECRET\", oaTokenRef: $t) { appId oaTokenRef }
        }";
        let r = app
            .gql(
                &admin,
                upsert,
                json!({ "k": "OFFICIAL_ACCOUNT", "t": "plain-token-value" }),
            )
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        let r = app
            .gql(
                &admin,
                upsert,
                json!({ "k": "MINIPROGRAM", "t": "env:OA_TOKEN" }),
            )
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        let r = app
            .gql(
                &admin,
                upsert,
                json!({ "k": "OFFICIAL_ACCOUNT", "t": "env:OA_TOKEN" }),
            )
            .await;
        assert_eq!(r.ok()["upsertTenantApp"]["oaTokenRef"], "env:OA_TOKEN");
        // Left out: kept.
        let r = app
            .gql(&admin, upsert, json!({ "k": "OFFICIAL_ACCOUNT" }))
            .await;
        assert_eq!(r.ok()["upsertTenantApp"]["oaTokenRef"], "env:OA_TOKEN");
    }
);
