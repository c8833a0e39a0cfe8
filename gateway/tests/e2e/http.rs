use serde_json::json;

use crate::support::TestApp;

both!(
    graphql_over_http_follows_the_spec,
    |app: TestApp| async move {
        let url = format!("{}/graphql", app.base);
        let gr = "application/graphql-response+json";
        // GET runs queries...
        let r = app
            .http
            .get(&url)
            .header("accept", gr)
            .query(&[("query", "{ __typename }")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(gr)
        );
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["data"]["__typename"],
            "Query"
        );
        // ...never mutations.
        let r = app
            .http
            .get(&url)
            .query(&[("query", "mutation { logout }")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
        // A document refused before execution is a 400 under the spec's media type, 200 under JSON.
        for (accept, status) in [(gr, 400), ("application/json", 200)] {
            let r = app
                .http
                .post(&url)
                .header("accept", accept)
                .json(&json!({ "query": "{ noSuchField }" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{accept}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(
                body["errors"][0]["extensions"]["code"],
                "GRAPHQL_VALIDATION_FAILED"
            );
        }
        let r = app
            .http
            .post(&url)
            .header("content-type", "text/plain")
            .body("{ __typename }")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415);
        let r = app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body("{ not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["errors"][0]["extensions"]["code"],
            "BAD_REQUEST"
        );
        let r = app
            .http
            .post(&url)
            .json(&json!({ "variables": {} }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = app
            .http
            .post(&url)
            .json(&json!({ "query": "{ __typename }", "variables": [1] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = app
            .http
            .post(&url)
            .header("accept", "text/html")
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 406);
        let big = "x".repeat(2 * 1024 * 1024);
        let r = app
            .http
            .post(&url)
            .json(&json!({ "query": big }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert!(r.headers().contains_key("x-request-id"));
    }
);

both!(
    health_readiness_and_metrics_answer,
    |app: TestApp| async move {
        let r = app.get("/healthz").await;
        assert_eq!(r.status(), 200);
        let r = app.get("/readyz").await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["database"], "ok");
        if app.servers && std::env::var("REDIS_URL").is_ok() {
            assert_eq!(body["redis"], "ok");
        }
        app.post("query Probe { __typename }", json!({}), None)
            .await
            .ok();
        let m = app.get("/metrics").await.text().await.unwrap();
        assert!(m.contains("minigate_graphql_requests_total"), "{m}");
        assert!(m.contains("operation=\"Probe\""));
        assert!(m.contains("minigate_db_pool_connections"));
        let page = app.get("/graphiql").await;
        assert_eq!(page.status(), 200);
    }
);

both!(
    a_lost_database_fails_readiness_and_requests_fast_with_a_code,
    |app: TestApp| async move {
        let (_, token) = app.admin("acme").await;
        app.db().close().await;
        let started = std::time::Instant::now();
        let r = app.get("/readyz").await;
        assert_eq!(r.status(), 503);
        let r = app.gql(&token, "{ me { id } }", json!({})).await;
        assert_eq!(r.code(), Some("DATABASE_UNAVAILABLE"), "{}", r.json);
        assert_eq!(r.status, 503);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let text = r.json.to_string();
        assert!(!text.contains("pool") && !text.contains("sqlx"), "{text}");
    }
);

both!(
    internal_failures_show_no_sql_and_are_coded,
    |app: TestApp| async move {
        let (_, token) = app.admin("acme").await;
        let mut c = app.db().conn().await.unwrap();
        minigate_store::execute!(&mut c, "drop table vehicle cascade").ok();
        minigate_store::execute!(&mut c, "drop table vehicle").ok();
        let r = app
            .gql(&token, "{ vehicles { items { id } } }", json!({}))
            .await;
        assert_eq!(r.code(), Some("INTERNAL"));
        assert_eq!(r.json["errors"][0]["message"], "internal error");
        let text = r.json.to_string().to_lowercase();
        assert!(
            !text.contains("vehicle ") && !text.contains("select") && !text.contains("relation"),
            "{text}"
        );
    }
);

both!(
    production_mode_hides_graphiql_and_introspection_from_mobile_clients,
    |c: &mut minigate_gateway::config::Config| {
        c.mode = minigate_gateway::config::Mode::Production;
        // Production refuses plain-http providers; this test never calls them.
        c.wechat.api_base = "https://127.0.0.1:9".into();
        c.payments.wechat_base = None;
        c.payments.alipay_gateway = None;
        c.payments.notify_base = Some("https://pay.example.com".into());
        c.media.public_base = Some("https://api.example.com".into());
        c.app_push = Default::default();
    },
    |app: TestApp| async move {
        let page = app.get("/graphiql").await;
        assert_eq!(page.status(), 404);
        let anon = app
            .post("{ __schema { queryType { name } } }", json!({}), None)
            .await;
        assert_eq!(
            (anon.status, anon.code()),
            (400, Some("INTROSPECTION_DISABLED")),
            "{}",
            anon.json
        );
        assert!(anon.json.get("data").is_none());
        let (_, admin) = app.admin("acme").await;
        let r = app
            .gql(&admin, "{ __schema { queryType { name } } }", json!({}))
            .await;
        assert_eq!(r.ok()["__schema"]["queryType"]["name"], "Query");
    }
);
