use minigate_resolvers::Role;
use serde_json::json;

use crate::support::{TestApp, id_number, ws_connect, ws_signed_in};

const SUB: &str =
    "subscription($a: ID) { noticePublished(after: $a) { eventId notice { id title audience } } }";
const PUBLISH: &str = "mutation($i: NoticeInput!) { publishNotice(input: $i) { id } }";

async fn publish(app: &TestApp, admin: &str, title: &str, audience: serde_json::Value) -> String {
    let mut input = json!({ "title": title, "body": "正文", "audience": "TENANT" });
    if let Some(obj) = audience.as_object() {
        for (k, v) in obj {
            input[k] = v.clone();
        }
    }
    let r = app.gql(admin, PUBLISH, json!({ "i": input })).await;
    r.ok()["publishNotice"]["id"].as_str().unwrap().to_owned()
}

/// A driver bound through WeChat, signed in; returns (access token, driver record id).
async fn driver(
    app: &TestApp,
    t: minigate_store::Id,
    branch: minigate_store::Id,
    phone: &str,
    n: u32,
) -> (String, minigate_store::Id) {
    let d = app.driver(t, branch, phone, &id_number(n)).await;
    let login = app
        .login_wechat("wx_drivers_app", &format!("openid-{phone}"))
        .await;
    let token = login.ok()["loginWithWechat"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.wechat.phone_code("wx_drivers_app", phone);
    let bound = app
        .gql(
            &token,
            "mutation($c: String!) { bindPhone(code: $c) { accessToken } }",
            json!({ "c": code }),
        )
        .await;
    (
        bound.ok()["bindPhone"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned(),
        d,
    )
}

both!(
    notices_arrive_live_and_only_where_they_belong,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let gz = app.branch(t, "GZ").await;
        let (staff_sz, _) = app
            .password_user("acme", t, Role::Staff, "13900000002", Some(sz))
            .await;
        let (staff_gz, _) = app
            .password_user("acme", t, Role::Staff, "13900000003", Some(gz))
            .await;
        let mut a = app.ws(&staff_sz).await;
        let mut b = app.ws(&staff_gz).await;
        a.subscribe("n", SUB, json!({})).await;
        b.subscribe("n", SUB, json!({})).await;
        // Let both subscriptions register before publishing.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        publish(&app, &admin, "全体通知", json!({})).await;
        assert_eq!(
            a.data("n").await["noticePublished"]["notice"]["title"],
            "全体通知"
        );
        assert_eq!(
            b.data("n").await["noticePublished"]["notice"]["title"],
            "全体通知"
        );

        publish(
            &app,
            &admin,
            "深圳门店",
            json!({ "audience": "BRANCH", "branchId": sz.to_string() }),
        )
        .await;
        assert_eq!(
            a.data("n").await["noticePublished"]["notice"]["audience"],
            "BRANCH"
        );
        b.quiet().await;

        // The list: unread first, and marking read moves a notice down.
        let list = app
            .gql(
                &staff_sz,
                "{ notices { unread items { id title read } } }",
                json!({}),
            )
            .await;
        let page = list.ok()["notices"].clone();
        assert_eq!(page["unread"], 2);
        let first = page["items"][0]["id"].as_str().unwrap().to_owned();
        app.gql(
            &staff_sz,
            "mutation($i: ID!) { markNoticeRead(id: $i) }",
            json!({ "i": first }),
        )
        .await
        .ok();
        let after = app
            .gql(
                &staff_sz,
                "{ notices { unread items { id read } } }",
                json!({}),
            )
            .await;
        assert_eq!(after.ok()["notices"]["unread"], 1);
        assert_eq!(after.ok()["notices"]["items"][1]["id"], first.as_str());
        let other = app
            .gql(&staff_gz, "{ notices { items { title } } }", json!({}))
            .await;
        assert_eq!(other.ok()["notices"]["items"].as_array().unwrap().len(), 1);
        // A notice of another branch cannot be marked by someone who cannot see it.
        let sz_notice = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["title"] == "深圳门店")
            .unwrap()["id"]
            .clone();
        let r = app
            .gql(
                &staff_gz,
                "mutation($i: ID!) { markNoticeRead(id: $i) }",
                json!({ "i": sz_notice }),
            )
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
    }
);

both!(
    a_dropped_socket_resumes_with_no_loss_and_no_duplicate,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let (staff, _) = app
            .password_user("acme", t, Role::Staff, "13900000002", Some(sz))
            .await;
        let mut ws = app.ws(&staff).await;
        ws.subscribe("n", SUB, json!({})).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        publish(&app, &admin, "one", json!({})).await;
        let first = ws.data("n").await["noticePublished"]["eventId"].clone();
        drop(ws); // the mini-program went to the background
        publish(&app, &admin, "two", json!({})).await;
        publish(
            &app,
            &admin,
            "three",
            json!({ "audience": "BRANCH", "branchId": sz.to_string() }),
        )
        .await;

        let mut ws = app.ws(&staff).await;
        ws.subscribe("n", SUB, json!({ "a": first })).await;
        assert_eq!(
            ws.data("n").await["noticePublished"]["notice"]["title"],
            "two"
        );
        assert_eq!(
            ws.data("n").await["noticePublished"]["notice"]["title"],
            "three"
        );
        publish(&app, &admin, "four", json!({})).await;
        assert_eq!(
            ws.data("n").await["noticePublished"]["notice"]["title"],
            "four"
        );
        ws.quiet().await;

        // Far behind the window: told to refetch, with a code.
        let mut c = app.db().conn().await.unwrap();
        minigate_store::execute!(&mut c, "delete from outbox_event where seq <= 2").unwrap();
        ws.subscribe("old", SUB, json!({ "a": "1" })).await;
        let m = ws.recv().await.unwrap();
        assert_eq!(m["id"], "old");
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "RESUME_WINDOW_EXPIRED",
            "{m}"
        );
        assert_eq!(ws.recv().await.unwrap()["type"], "complete");
    }
);

both!(
    authorization_is_checked_again_for_each_event,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let gz = app.branch(t, "GZ").await;
        app.mini_program(t, "wx_drivers_app").await;
        let (token, driver_id) = driver(&app, t, sz, "13800000001", 1).await;
        let mut ws = app.ws(&token).await;
        ws.subscribe("n", SUB, json!({})).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        publish(
            &app,
            &admin,
            "for SZ",
            json!({ "audience": "BRANCH", "branchId": sz.to_string() }),
        )
        .await;
        assert_eq!(
            ws.data("n").await["noticePublished"]["notice"]["title"],
            "for SZ"
        );

        // The driver moves to Guangzhou: Shenzhen's notices stop reaching them at once.
        app.gql(
            &admin,
            "mutation($i: ID!, $b: ID!) { updateDriver(id: $i, patch: { branchId: $b }) { id } }",
            json!({ "i": driver_id.to_string(), "b": gz.to_string() }),
        )
        .await
        .ok();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        publish(
            &app,
            &admin,
            "for SZ again",
            json!({ "audience": "BRANCH", "branchId": sz.to_string() }),
        )
        .await;
        publish(&app, &admin, "for all", json!({})).await;
        assert_eq!(
            ws.data("n").await["noticePublished"]["notice"]["title"],
            "for all"
        );
        ws.quiet().await;
        let list = app
            .gql(&token, "{ notices { items { title } } }", json!({}))
            .await;
        let titles: Vec<_> = list.ok()["notices"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].clone())
            .collect();
        assert!(!titles.contains(&json!("for SZ again")), "{titles:?}");
    }
);

both!(
    sockets_need_a_valid_token_and_a_subprotocol,
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        // No subprotocol: the upgrade itself is refused.
        let url = format!("{}/graphql/ws", app.base.replace("http://", "ws://"));
        let refused = tokio_tungstenite::connect_async(url).await;
        assert!(refused.is_err());
        // A bad token closes the socket with the protocol's Forbidden.
        let mut ws = app.ws_raw("/graphql/ws").await.unwrap();
        ws.send(
            json!({ "type": "connection_init", "payload": { "authorization": "Bearer forged" } }),
        )
        .await;
        assert_eq!(ws.closed().await.0, 4403);
        // No init at all: subscribing is refused.
        let mut ws = app.ws_raw("/graphql").await.unwrap();
        ws.subscribe("n", SUB, json!({})).await;
        let (code, _) = ws.closed().await;
        assert_eq!(code, 4401);
        // A valid token over the upgrade on /graphql works as on /graphql/ws.
        let mut ws = app.ws_raw("/graphql").await.unwrap();
        ws.send(json!({ "type": "connection_init", "payload": { "token": admin } }))
            .await;
        assert_eq!(ws.recv().await.unwrap()["type"], "connection_ack");
    }
);

both!(
    subscribe_messages_obey_the_same_limits_as_http,
    |c: &mut minigate_gateway::config::Config| {
        c.limits.aliases = 2;
    },
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut ws = app.ws(&admin).await;
        ws.subscribe(
            "x",
            "subscription { a: noticePublished { eventId } b: noticePublished { eventId } c: noticePublished { eventId } }",
            json!({}),
        )
        .await;
        let m = ws.recv().await.unwrap();
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "QUERY_TOO_MANY_ALIASES",
            "{m}"
        );
        assert_eq!(ws.recv().await.unwrap()["type"], "complete");
        ws.subscribe("y", "subscription { noSuchField }", json!({}))
            .await;
        let m = ws.recv().await.unwrap();
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{m}"
        );
    }
);

/// Two `minigate` processes sharing PostgreSQL and Redis: a subscriber on one receives a
/// notice published through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_published_on_one_replica_reaches_a_subscriber_of_the_other() {
    if std::env::var("DATABASE_URL").is_err() || std::env::var("REDIS_URL").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: set DATABASE_URL and REDIS_URL"
        );
        return;
    }
    let prefix = format!("e2e-replicas:{}:", uuid::Uuid::new_v4().simple());
    let p1 = prefix.clone();
    let one = TestApp::spawn(true, move |c: &mut minigate_gateway::config::Config| {
        c.redis_prefix = p1
    })
    .await
    .unwrap();
    let url = one.test_db.url();
    let two = TestApp::spawn(true, move |c: &mut minigate_gateway::config::Config| {
        c.redis_prefix = prefix;
        c.database_url = url;
    })
    .await
    .unwrap();
    let (_, admin) = one.admin("acme").await;
    let mut ws = two.ws(&admin).await;
    ws.subscribe("n", SUB, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    publish(&one, &admin, "across replicas", json!({})).await;
    assert_eq!(
        ws.data("n").await["noticePublished"]["notice"]["title"],
        "across replicas"
    );
    ws.quiet().await;
}

both!(
    a_socket_that_stops_answering_pings_is_closed,
    |c: &mut minigate_gateway::config::Config| {
        c.limits.ws_ping_seconds = 1;
        c.limits.ws_dead_after_seconds = 2;
    },
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        // A live client answers the pings (tungstenite replies while reading) and stays open.
        let mut live = app.ws(&admin).await;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
        while std::time::Instant::now() < until {
            live.quiet().await;
        }
        // A client that went silent (phone locked, network gone) reads nothing, answers nothing.
        let mut silent = app.ws(&admin).await;
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        // The close frame (1001) may be lost behind the unanswered pings; either way it is closed.
        let (code, _) = silent.closed().await;
        assert!(code == 1001 || code == 1006, "{code}");
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(
            m.contains("minigate_websocket_reaped_total"),
            "the reaper closed it"
        );
        live.subscribe("n", SUB, json!({})).await;
        live.quiet().await;
    }
);

both!(
    subscribe_messages_are_rate_limited_per_user,
    |c: &mut minigate_gateway::config::Config| {
        c.limits.subscribes_per_minute = 3;
    },
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut ws = app.ws(&admin).await;
        for i in 0..4 {
            ws.subscribe(&format!("s{i}"), SUB, json!({})).await;
        }
        let (code, reason) = ws.closed().await;
        assert_eq!((code, reason.as_str()), (4429, "rate limited"));
    }
);

both!(
    the_legacy_graphql_ws_protocol_works_too,
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut ws = ws_connect(&app.base, "/graphql/ws", "graphql-ws")
            .await
            .unwrap();
        ws.send(json!({ "type": "connection_init", "payload": { "token": admin } }))
            .await;
        assert_eq!(ws.recv().await.unwrap()["type"], "connection_ack");
        ws.send(json!({ "id": "1", "type": "start", "payload": { "query": SUB } }))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        publish(&app, &admin, "legacy", json!({})).await;
        let m = loop {
            let m = ws.recv().await.unwrap();
            if m["type"] != "ka" {
                break m;
            }
        };
        assert_eq!(m["type"], "data", "{m}");
        assert_eq!(
            m["payload"]["data"]["noticePublished"]["notice"]["title"],
            "legacy"
        );
    }
);

both!(
    shutting_down_tells_sockets_to_go_elsewhere,
    |mut app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut ws = app.ws(&admin).await;
        ws.subscribe("n", SUB, json!({})).await;
        app.begin_shutdown();
        let (code, reason) = ws.closed().await;
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    }
);

/// Two `minigate` processes on PostgreSQL and Redis; one is killed outright. Its client
/// reconnects to the other and resumes with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_process_resumes_on_the_other() {
    let (Ok(pg), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: set DATABASE_URL and REDIS_URL"
        );
        return;
    };
    let db = minigate_store::testing::TestDb::postgres(&pg)
        .await
        .unwrap();
    {
        let mut c = db.db.conn().await.unwrap();
        let t = minigate_resolvers::tenant::db::insert_tenant(&mut c, "acme", "Acme")
            .await
            .unwrap();
        drop(c);
        minigate_resolvers::auth::create_password_user(
            &db.db,
            t.id,
            None,
            Role::Admin,
            "13900000001",
            crate::support::PASSWORD.into(),
            "op",
            None,
        )
        .await
        .unwrap();
    }
    let prefix = format!("failover:{}:", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir();
    let start = || async {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minigate"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .env("DATABASE_URL", db.url())
            .env("REDIS_URL", &redis)
            .env("MINIGATE_REDIS_PREFIX", &prefix)
            .env("MINIGATE_JWT_SECRET", crate::support::JWT_SECRET);
        let (child, addr) = crate::support::spawn_minigate(cmd).await;
        (child, format!("http://{addr}"))
    };
    let (mut a, base_a) = start().await;
    let (_b, base_b) = start().await;
    let http = reqwest::Client::new();
    let post =
        |base: String, token: Option<String>, query: &'static str, vars: serde_json::Value| {
            let http = http.clone();
            async move {
                let mut r = http
                    .post(format!("{base}/graphql"))
                    .json(&json!({ "query": query, "variables": vars }));
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                r.send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            }
        };
    let login = post(
        base_a.clone(),
        None,
        "mutation($w: String!) { loginWithPassword(tenant: \"acme\", phone: \"13900000001\", password: $w) { accessToken } }",
        json!({ "w": crate::support::PASSWORD }),
    )
    .await;
    let token = login["data"]["loginWithPassword"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let notice = |base: String, title: &'static str| {
        post(
            base,
            Some(token.clone()),
            PUBLISH,
            json!({ "i": { "title": title, "body": "x", "audience": "TENANT" } }),
        )
    };

    let mut ws = ws_signed_in(&base_a, &token).await;
    ws.subscribe("n", SUB, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    notice(base_a.clone(), "before").await;
    let last = ws.data("n").await["noticePublished"]["eventId"].clone();

    a.kill().await.unwrap();
    let (code, _) = ws.closed().await;
    assert_ne!(code, 1000, "the socket died with its process");
    notice(base_b.clone(), "while away").await;

    let mut ws = ws_signed_in(&base_b, &token).await;
    ws.subscribe("n", SUB, json!({ "a": last })).await;
    assert_eq!(
        ws.data("n").await["noticePublished"]["notice"]["title"],
        "while away"
    );
    notice(base_b.clone(), "after").await;
    assert_eq!(
        ws.data("n").await["noticePublished"]["notice"]["title"],
        "after"
    );
    ws.quiet().await;
}

both!(
    a_notice_target_that_does_not_fit_its_audience_is_refused,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        for (input, field) in [
            (
                json!({ "title": "t", "body": "b", "audience": "TENANT", "branchId": sz.to_string() }),
                "branchId",
            ),
            (
                json!({ "title": "t", "body": "b", "audience": "BRANCH", "branchId": sz.to_string(), "userIds": [sz.to_string()] }),
                "userIds",
            ),
            (
                json!({ "title": "t", "body": "b", "audience": "BRANCH" }),
                "branchId",
            ),
            (
                json!({ "title": "t", "body": "b", "audience": "TENANT", "link": "javascript:alert(1)" }),
                "link",
            ),
        ] {
            let r = app.gql(&admin, PUBLISH, json!({ "i": input })).await;
            assert_eq!(r.code(), Some("INVALID_INPUT"), "{}", r.json);
            assert_eq!(r.json["errors"][0]["extensions"]["field"], field);
        }
        assert_eq!(app.count("select count(*) from notice").await, 0);
        assert_eq!(app.count("select count(*) from outbox_event").await, 0);
    }
);
