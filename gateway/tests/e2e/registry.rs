use serde_json::json;

use crate::support::{TestApp, id_number, vin_for};

const CREATE: &str = "mutation($b: ID!, $p: String!, $v: String!, $k: String) {
    createVehicle(input: { branchId: $b, plate: $p, vin: $v }, idempotencyKey: $k) { id plate vin status branch { code } } }";

both!(
    bad_input_is_refused_with_its_field_and_stores_nothing,
    |app: TestApp| async move {
        let (t, token) = app.admin("acme").await;
        let b = app.branch(t, "SZ").await;
        let vin = vin_for("one");
        let bad_plate = app
            .gql(
                &token,
                CREATE,
                json!({ "b": b.to_string(), "p": "B1234", "v": vin }),
            )
            .await;
        assert_eq!(bad_plate.code(), Some("INVALID_INPUT"));
        assert_eq!(bad_plate.json["errors"][0]["extensions"]["field"], "plate");
        let mut bad_vin = vin.clone();
        bad_vin.replace_range(8..9, if &vin[8..9] == "1" { "2" } else { "1" });
        let r = app
            .gql(
                &token,
                CREATE,
                json!({ "b": b.to_string(), "p": "粤B12345", "v": bad_vin }),
            )
            .await;
        assert_eq!(r.json["errors"][0]["extensions"]["field"], "vin");
        let r = app
            .gql(
                &token,
                CREATE,
                json!({ "b": "not-an-id", "p": "粤B12345", "v": vin }),
            )
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(app.count("select count(*) from vehicle").await, 0);

        let ok = app
            .gql(
                &token,
                CREATE,
                json!({ "b": b.to_string(), "p": " 粤b 12345 ", "v": vin }),
            )
            .await;
        let v = &ok.ok()["createVehicle"];
        assert_eq!(v["plate"], "粤B12345");
        assert_eq!(v["status"], "AVAILABLE");
        assert_eq!(v["branch"]["code"], "SZ");

        let dup = app
            .gql(
                &token,
                CREATE,
                json!({ "b": b.to_string(), "p": "粤B12345", "v": vin_for("two") }),
            )
            .await;
        assert_eq!(dup.code(), Some("ALREADY_EXISTS"));
        assert_eq!(dup.json["errors"][0]["extensions"]["field"], "plate");
        let dup_vin = app
            .gql(
                &token,
                CREATE,
                json!({ "b": b.to_string(), "p": "粤B54321", "v": vin }),
            )
            .await;
        assert_eq!(dup_vin.json["errors"][0]["extensions"]["field"], "vin");
        assert_eq!(app.count("select count(*) from vehicle").await, 1);

        let d = app
        .gql(
            &token,
            "mutation($b: ID!) { createDriver(input: { branchId: $b, name: \"李娜\", phone: \"138 0013 8000\", idNumber: \"110105199001010011\" }) { id } }",
            json!({ "b": b.to_string() }),
        )
        .await;
        assert_eq!(d.json["errors"][0]["extensions"]["field"], "idNumber");
        let d = app
        .gql(
            &token,
            "mutation($b: ID!, $n: String!) { createDriver(input: { branchId: $b, name: \"李娜\", phone: \"+86 138 0013 8000\", idNumber: $n }) { phone } }",
            json!({ "b": b.to_string(), "n": id_number(7) }),
        )
        .await;
        assert_eq!(d.ok()["createDriver"]["phone"], "13800138000");
    }
);

both!(
    a_retried_create_with_the_same_key_files_one_vehicle,
    |app: TestApp| async move {
        let (t, token) = app.admin("acme").await;
        let b = app.branch(t, "SZ").await;
        let vars = json!({ "b": b.to_string(), "p": "粤B12345", "v": vin_for("k"), "k": "retry-key-0001" });
        let (first, second) = tokio::join!(
            app.gql(&token, CREATE, vars.clone()),
            app.gql(&token, CREATE, vars.clone())
        );
        assert_eq!(
            first.ok()["createVehicle"]["id"],
            second.ok()["createVehicle"]["id"]
        );
        let third = app.gql(&token, CREATE, vars).await;
        assert_eq!(
            third.ok()["createVehicle"]["id"],
            first.ok()["createVehicle"]["id"]
        );
        assert_eq!(app.count("select count(*) from vehicle").await, 1);
        let other_op = app
        .gql(&token, "mutation { createBranch(input: { code: \"GZ\", name: \"Guangzhou\" }, idempotencyKey: \"retry-key-0001\") { id } }", json!({}))
        .await;
        assert_eq!(other_op.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        assert_eq!(app.count("select count(*) from branch").await, 1);
    }
);

both!(
    vehicle_pages_cover_every_vehicle_once,
    |app: TestApp| async move {
        let (t, token) = app.admin("acme").await;
        let b1 = app.branch(t, "SZ").await;
        let b2 = app.branch(t, "GZ").await;
        for i in 0..120 {
            app.vehicle(t, if i % 2 == 0 { b1 } else { b2 }, &format!("粤B{:05}", i))
                .await;
        }
        let q = "query($a: String) { vehicles(first: 50, after: $a) { items { plate branch { code } } nextCursor } }";
        let mut seen = Vec::new();
        let mut after = serde_json::Value::Null;
        let mut pages = 0;
        loop {
            let r = app.gql(&token, q, json!({ "a": after })).await;
            let page = r.ok()["vehicles"].clone();
            for v in page["items"].as_array().unwrap() {
                assert!(v["branch"]["code"] == "SZ" || v["branch"]["code"] == "GZ");
                seen.push(v["plate"].as_str().unwrap().to_owned());
            }
            pages += 1;
            if page["nextCursor"].is_null() {
                break;
            }
            after = page["nextCursor"].clone();
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 120);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, seen);
        let too_many = app
            .gql(
                &token,
                "{ vehicles(first: 500) { items { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(too_many.code(), Some("INVALID_INPUT"));
        let bad_cursor = app
            .gql(
                &token,
                "{ vehicles(after: \"%%%\") { items { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(bad_cursor.code(), Some("INVALID_INPUT"));
    }
);

both!(
    tenant_provider_identities_keep_references_not_secrets,
    |app: TestApp| async move {
        let (_, token) = app.admin("acme").await;
        let q = "mutation($r: String!) { upsertTenantApp(kind: MINIPROGRAM, appId: \"wx_acme_drivers\", name: \"drivers\", secretRef: $r) { appId secretRef } }";
        let plain = app
            .gql(
                &token,
                q,
                json!({ "r": "d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5" }),
            )
            .await;
        assert_eq!(plain.code(), Some("INVALID_INPUT"));
        let ok = app
            .gql(&token, q, json!({ "r": "env:ACME_WX_SECRET" }))
            .await;
        assert_eq!(
            ok.ok()["upsertTenantApp"]["secretRef"],
            "env:ACME_WX_SECRET"
        );
        let pay = app
        .gql(
            &token,
            "mutation { setWechatPayMerchant(input: { mchId: \"1900000109\", appId: \"wx_acme_drivers\", merchantSerial: \"5157F09EFDC096DE15EBE81A47057A72\",
               privateKeyRef: \"file:/run/secrets/mch.pem\", apiv3KeyRef: \"env:ACME_APIV3\", publicKeyId: \"PUB_KEY_ID_0119000001092024\",
               publicKeyRef: \"file:/run/secrets/wxpay_pub.pem\" }) { mchId publicKeyId } }",
            json!({}),
        )
        .await;
        assert_eq!(pay.ok()["setWechatPayMerchant"]["mchId"], "1900000109");
        let neither = app
        .gql(
            &token,
            "mutation { setWechatPayMerchant(input: { mchId: \"1900000109\", appId: \"wx_acme_drivers\", merchantSerial: \"5157F09E\",
               privateKeyRef: \"file:/run/secrets/mch.pem\", apiv3KeyRef: \"env:ACME_APIV3\" }) { mchId } }",
            json!({}),
        )
        .await;
        assert_eq!(neither.code(), Some("INVALID_INPUT"));
        let read = app
            .gql(
                &token,
                "{ tenant { apps { appId } wechatPay { mchId merchantSerial } alipay { appId } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            read.ok()["tenant"]["wechatPay"]["merchantSerial"],
            "5157F09EFDC096DE15EBE81A47057A72"
        );
        assert!(read.ok()["tenant"]["alipay"].is_null());
        assert!(
            app.count("select count(*) from audit_log where action like 'tenant_%'")
                .await
                >= 2
        );
    }
);
