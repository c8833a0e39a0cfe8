use minigate_gateway::config::Config;
use serde_json::json;

use crate::support::TestApp;

both!(
    depth_complexity_and_alias_limits_refuse_the_document,
    |c: &mut Config| {
        c.limits.depth = 3;
        c.limits.aliases = 4;
        c.limits.complexity = 12;
    },
    |app: TestApp| async move {
        let (_, token) = app.admin("acme").await;
        let deep = app
            .gql(
                &token,
                "{ me { driver { vehicle { branch { id } } } } }",
                json!({}),
            )
            .await;
        assert_eq!((deep.status, deep.code()), (400, Some("QUERY_TOO_DEEP")));
        let aliases = app
            .gql(
                &token,
                "{ a: me { id } b: me { id } c: me { id } d: me { id } e: me { id } }",
                json!({}),
            )
            .await;
        assert_eq!(
            (aliases.status, aliases.code()),
            (400, Some("QUERY_TOO_MANY_ALIASES"))
        );
        let via_fragments = app
            .gql(
                &token,
                "{ ...F ...F ...F } fragment F on Query { x: me { id } y: me { id } }",
                json!({}),
            )
            .await;
        assert_eq!(via_fragments.code(), Some("QUERY_TOO_MANY_ALIASES"));
        let complex = app
            .gql(&token, "{ vehicles { items { id plate vin model status updatedAt } nextCursor } branches { id code name } me { id role displayName phone } }", json!({}))
            .await;
        assert_eq!(
            (complex.status, complex.code()),
            (400, Some("QUERY_TOO_COMPLEX")),
            "{}",
            complex.json
        );
        let fine = app
            .gql(&token, "{ a: me { id } b: me { role } }", json!({}))
            .await;
        fine.ok();
    }
);

both!(
    the_per_ip_budget_refuses_with_429_and_retry_after,
    |c: &mut Config| {
        c.limits.per_ip_per_minute = 3;
    },
    |app: TestApp| async move {
        for _ in 0..3 {
            assert_eq!(
                app.post("{ __typename }", json!({}), None).await.status,
                200
            );
        }
        let r = app
            .http
            .post(format!("{}/graphql", app.base))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(
            r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    }
);

both!(
    forwarded_for_counts_only_behind_a_trusted_proxy,
    |c: &mut Config| {
        c.limits.per_ip_per_minute = 2;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    },
    |app: TestApp| async move {
        assert_eq!(forwarded(&app, "198.51.100.1").await, 200);
        assert_eq!(forwarded(&app, "198.51.100.1").await, 200);
        assert_eq!(forwarded(&app, "198.51.100.1").await, 429);
        // Another client behind the same proxy has its own budget.
        assert_eq!(forwarded(&app, "198.51.100.2").await, 200);
    }
);

both!(
    forwarded_for_from_an_untrusted_peer_is_ignored,
    |c: &mut Config| {
        c.limits.per_ip_per_minute = 2;
    },
    |app: TestApp| async move {
        assert_eq!(forwarded(&app, "198.51.100.1").await, 200);
        assert_eq!(forwarded(&app, "198.51.100.2").await, 200);
        // A forged header does not buy a fresh budget.
        assert_eq!(forwarded(&app, "198.51.100.3").await, 429);
    }
);

/// Two replicas sharing Redis share one budget (PostgreSQL + Redis only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_rate_budget_through_redis() {
    if std::env::var("DATABASE_URL").is_err() || std::env::var("REDIS_URL").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: set DATABASE_URL and REDIS_URL"
        );
        eprintln!("DATABASE_URL / REDIS_URL not set: skipped");
        return;
    }
    let prefix = format!("e2e-shared:{}:", uuid::Uuid::new_v4().simple());
    let p1 = prefix.clone();
    let a = TestApp::spawn(true, move |c: &mut Config| {
        c.limits.per_ip_per_minute = 4;
        c.redis_prefix = p1;
    })
    .await
    .unwrap();
    let url = a.test_db.url();
    let b = TestApp::spawn(true, move |c: &mut Config| {
        c.limits.per_ip_per_minute = 4;
        c.redis_prefix = prefix;
        c.database_url = url;
    })
    .await
    .unwrap();
    for app in [&a, &b, &a, &b] {
        assert_eq!(
            app.post("{ __typename }", json!({}), None).await.status,
            200
        );
    }
    assert_eq!(a.post("{ __typename }", json!({}), None).await.status, 429);
    assert_eq!(b.post("{ __typename }", json!({}), None).await.status, 429);
}

both!(
    websocket_upgrades_count_against_the_client_address,
    |c: &mut Config| {
        c.limits.per_ip_per_minute = 2;
    },
    |app: TestApp| async move {
        assert_eq!(
            app.post("{ __typename }", json!({}), None).await.status,
            200
        );
        app.ws_raw("/graphql/ws").await.expect("within the budget");
        match app.ws_raw("/graphql/ws").await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("an upgrade past the budget was accepted"),
        }
    }
);

/// The status of a request that claims to come from `ip` through a proxy.
async fn forwarded(app: &TestApp, ip: &str) -> u16 {
    app.http
        .post(format!("{}/graphql", app.base))
        .header("x-forwarded-for", ip)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
