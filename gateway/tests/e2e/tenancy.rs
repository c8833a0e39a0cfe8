use minigate_resolvers::Role;
use serde_json::json;

use crate::support::{TestApp, id_number, vin_for};

const VEHICLES: &str =
    "query($b: ID) { vehicles(branchId: $b) { items { id plate branch { code } } } }";

both!(
    no_field_leaks_another_tenants_data,
    |app: TestApp| async move {
        let (a, token_a) = app.admin("alpha").await;
        let b = app.tenant("beta").await;
        let ba = app.branch(a, "SZ").await;
        let bb = app.branch(b, "SZ").await;
        app.vehicle(a, ba, "粤B11111").await;
        let vb = app.vehicle(b, bb, "粤B22222").await;
        let db_ = app.driver(b, bb, "13800000002", &id_number(2)).await;
        app.mini_program(b, "wx_beta_app").await;

        let list = app.gql(&token_a, VEHICLES, json!({})).await;
        let items = list.ok()["vehicles"]["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["plate"], "粤B11111");

        for (q, id) in [
            ("query($i: ID!) { vehicle(id: $i) { plate } }", vb),
            ("query($i: ID!) { driver(id: $i) { name } }", db_),
        ] {
            let r = app.gql(&token_a, q, json!({ "i": id.to_string() })).await;
            assert_eq!(r.code(), Some("NOT_FOUND"), "{q}");
        }
        // Filtering by the other tenant's branch finds nothing.
        let r = app
            .gql(&token_a, VEHICLES, json!({ "b": bb.to_string() }))
            .await;
        assert_eq!(r.ok()["vehicles"]["items"].as_array().unwrap().len(), 0);
        // Writing into the other tenant is refused and leaves its row as it was.
        let upd = app
        .gql(&token_a, "mutation($i: ID!) { updateVehicle(id: $i, patch: { plate: \"粤B33333\" }) { plate } }", json!({ "i": vb.to_string() }))
        .await;
        assert_eq!(upd.code(), Some("NOT_FOUND"));
        let mut c = app.db().conn().await.unwrap();
        let plate: String = minigate_store::fetch_scalar!(
            &mut c,
            String,
            "select plate from vehicle where id = $1",
            vb
        )
        .unwrap();
        assert_eq!(plate, "粤B22222");
        let create = app
        .gql(
            &token_a,
            "mutation($b: ID!, $v: String!) { createVehicle(input: { branchId: $b, plate: \"粤B44444\", vin: $v }) { id } }",
            json!({ "b": bb.to_string(), "v": vin_for("x") }),
        )
        .await;
        assert_eq!(create.code(), Some("INVALID_INPUT"));
        assert_eq!(create.json["errors"][0]["extensions"]["field"], "branchId");
        let apps = app
            .gql(&token_a, "{ tenant { slug apps { appId } } }", json!({}))
            .await;
        assert_eq!(apps.ok()["tenant"]["slug"], "alpha");
        assert_eq!(apps.ok()["tenant"]["apps"], json!([]));
    }
);

both!(
    staff_see_their_branch_only_and_masked_id_numbers,
    |app: TestApp| async move {
        let (t, _) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let gz = app.branch(t, "GZ").await;
        app.vehicle(t, sz, "粤B11111").await;
        let vgz = app.vehicle(t, gz, "粤A22222").await;
        let d = app.driver(t, sz, "13800000003", &id_number(3)).await;
        let (staff, _) = app
            .password_user("acme", t, Role::Staff, "13900000009", Some(sz))
            .await;

        let list = app.gql(&staff, VEHICLES, json!({})).await;
        let items = list.ok()["vehicles"]["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["branch"]["code"], "SZ");
        let other = app
            .gql(&staff, VEHICLES, json!({ "b": gz.to_string() }))
            .await;
        assert_eq!(other.code(), Some("FORBIDDEN"));
        let one = app
            .gql(
                &staff,
                "query($i: ID!) { vehicle(id: $i) { plate } }",
                json!({ "i": vgz.to_string() }),
            )
            .await;
        assert_eq!(one.code(), Some("NOT_FOUND"));
        let branches = app.gql(&staff, "{ branches { code } }", json!({})).await;
        assert_eq!(branches.ok()["branches"], json!([{ "code": "SZ" }]));

        let drv = app
            .gql(
                &staff,
                "query($i: ID!) { driver(id: $i) { phone idNumber } }",
                json!({ "i": d.to_string() }),
            )
            .await;
        assert_eq!(drv.ok()["driver"]["phone"], "13800000003");
        let masked = drv.ok()["driver"]["idNumber"].as_str().unwrap().to_owned();
        assert_ne!(masked, id_number(3));
        assert!(masked.contains("***"), "{masked}");
        // Registry writes are for operators.
        let w = app
            .gql(
                &staff,
                "mutation { createBranch(input: { code: \"X\", name: \"x\" }) { id } }",
                json!({}),
            )
            .await;
        assert_eq!(w.code(), Some("FORBIDDEN"));
    }
);

both!(
    drivers_and_consumers_see_no_registry,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        app.mini_program(t, "wx_drivers_app").await;
        let login = app.login_wechat("wx_drivers_app", "openid-c").await;
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        for q in [
            "{ vehicles { items { id } } }",
            "{ branches { id } }",
            "{ drivers { items { id } } }",
        ] {
            let r = app.gql(&token, q, json!({})).await;
            assert_eq!(r.code(), Some("FORBIDDEN"), "{q}");
        }
        let tenant_apps = app
            .gql(&token, "{ tenant { apps { appId } } }", json!({}))
            .await;
        assert_eq!(tenant_apps.code(), Some("FORBIDDEN"));
    }
);
