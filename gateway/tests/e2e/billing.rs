use minigate_resolvers::Role;
use minigate_store::Id;
use serde_json::{Value, json};

use crate::support::{Resp, TestApp, id_number};

const CREATE: &str = "mutation($i: CreateBillInput!, $k: String) {
    createBill(input: $i, idempotencyKey: $k) {
        id kind title amountFen amountYuan dueDate status overdue payerName branchId reference paidAt createdAt
        driver { id name phone idNumber } } }";

const LIST: &str = "query($s: BillStatus, $d: ID, $b: ID, $o: Boolean, $f: Int! = 50, $a: String) {
    bills(status: $s, driverId: $d, branchId: $b, overdue: $o, first: $f, after: $a) {
        items { id title dueDate status overdue payerName driver { name phone idNumber } } nextCursor } }";

const ONE: &str = "query($i: ID!) { bill(id: $i) { id title payerName driver { id } } }";

const CANCEL: &str =
    "mutation($i: ID!, $r: String!) { cancelBill(id: $i, reason: $r) { id status } }";

const IMPORT: &str = "mutation($c: String!, $m: ImportMode!, $d: Boolean!) {
    importBillsCsv(csv: $c, mode: $m, dryRun: $d) {
        totalRows inserted updated unchanged applied rejected { line field code message } } }";

const APP_ID: &str = "wx_drivers_app";

/// A driver record bound to a WeChat user who signed in: (access token, driver id).
async fn driver(app: &TestApp, t: Id, branch: Id, phone: &str, n: u32) -> (String, Id) {
    let d = app.driver(t, branch, phone, &id_number(n)).await;
    let token = consumer(app, &format!("openid-{phone}")).await;
    let code = app.wechat.phone_code(APP_ID, phone);
    let bound = app
        .gql(
            &token,
            "mutation($c: String!) { bindPhone(code: $c) { accessToken } }",
            json!({ "c": code }),
        )
        .await;
    let token = bound.ok()["bindPhone"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, d)
}

/// Someone signed in with WeChat who is no driver.
async fn consumer(app: &TestApp, openid: &str) -> String {
    let login = app.login_wechat(APP_ID, openid).await;
    login.ok()["loginWithWechat"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn rent(title: &str, fen: i64, due: &str) -> Value {
    json!({ "kind": "RENT", "title": title, "amountFen": fen, "dueDate": due })
}

fn for_driver(mut input: Value, driver: Id) -> Value {
    input["driverId"] = json!(driver.to_string());
    input
}

fn for_consumer(mut input: Value, name: &str, branch: Option<Id>) -> Value {
    input["payerName"] = json!(name);
    if let Some(b) = branch {
        input["branchId"] = json!(b.to_string());
    }
    input
}

async fn create(app: &TestApp, token: &str, input: Value) -> Resp {
    app.gql(token, CREATE, json!({ "i": input })).await
}

async fn create_id(app: &TestApp, token: &str, input: Value) -> String {
    let r = create(app, token, input).await;
    r.ok()["createBill"]["id"].as_str().unwrap().to_owned()
}

async fn list(app: &TestApp, token: &str, vars: Value) -> Resp {
    app.gql(token, LIST, vars).await
}

fn titles(r: &Resp) -> Vec<String> {
    r.ok()["bills"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_owned())
        .collect()
}

fn field(r: &Resp) -> &Value {
    &r.json["errors"][0]["extensions"]["field"]
}

async fn bills_count(app: &TestApp) -> i64 {
    app.count("select count(*) from bill").await
}

async fn set_status(app: &TestApp, id: &str, status: &str) {
    let mut c = app.db().conn().await.unwrap();
    let id: Id = id.parse().unwrap();
    minigate_store::execute!(
        &mut c,
        "update bill set status = $1 where id = $2",
        status,
        id
    )
    .unwrap();
}

async fn amount_of(app: &TestApp, reference: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select amount_fen from bill where reference = $1",
        reference
    )
    .unwrap()
}

both!(
    each_role_lists_and_reads_only_the_bills_it_may_see,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        app.mini_program(t, APP_ID).await;
        let sz = app.branch(t, "SZ").await;
        let gz = app.branch(t, "GZ").await;
        let (drv_a, a) = driver(&app, t, sz, "13800000001", 1).await;
        let (drv_b, b) = driver(&app, t, gz, "13800000002", 2).await;
        let (staff, _) = app
            .password_user("acme", t, Role::Staff, "13900000009", Some(sz))
            .await;
        let shopper = consumer(&app, "openid-shopper").await;

        let made = create(
            &app,
            &admin,
            for_driver(rent("A rent", 120_000, "2020-01-01"), a),
        )
        .await;
        let bill_a = &made.ok()["createBill"];
        assert_eq!(bill_a["kind"], "RENT");
        assert_eq!(bill_a["amountFen"], 120_000);
        assert_eq!(bill_a["amountYuan"], "1200.00");
        assert_eq!(bill_a["dueDate"], "2020-01-01");
        assert_eq!(bill_a["status"], "OPEN");
        assert_eq!(bill_a["overdue"], true);
        assert_eq!(bill_a["payerName"], "张伟");
        assert_eq!(bill_a["branchId"], sz.to_string());
        assert_eq!(bill_a["driver"]["id"], a.to_string());
        assert!(bill_a["paidAt"].is_null());
        let bill_a = bill_a["id"].as_str().unwrap().to_owned();
        let bill_b = create_id(
            &app,
            &admin,
            for_driver(rent("B rent", 90_000, "2099-01-01"), b),
        )
        .await;
        let walk_in = create_id(
            &app,
            &admin,
            for_consumer(
                rent("walk-in deposit", 500_000, "2099-02-01"),
                "王先生",
                None,
            ),
        )
        .await;
        create_id(
            &app,
            &admin,
            for_consumer(rent("SZ purchase", 1, "2099-03-01"), "李女士", Some(sz)),
        )
        .await;

        // Operators: the company, by due date.
        let all = list(&app, &admin, json!({})).await;
        assert_eq!(
            titles(&all),
            ["A rent", "B rent", "walk-in deposit", "SZ purchase"]
        );
        let overdue = list(&app, &admin, json!({ "o": true })).await;
        assert_eq!(titles(&overdue), ["A rent"]);
        let on_time = list(&app, &admin, json!({ "o": false, "b": gz.to_string() })).await;
        assert_eq!(titles(&on_time), ["B rent"]);
        let of_b = list(&app, &admin, json!({ "d": b.to_string() })).await;
        assert_eq!(titles(&of_b), ["B rent"]);

        // Staff: their branch only, drivers' personal data masked as the registry masks it.
        let mine = list(&app, &staff, json!({})).await;
        assert_eq!(titles(&mine), ["A rent", "SZ purchase"]);
        let d = &mine.ok()["bills"]["items"][0]["driver"];
        assert_eq!(d["phone"], "13800000001");
        assert!(d["idNumber"].as_str().unwrap().contains("***"), "{d}");
        let other_branch = list(&app, &staff, json!({ "b": gz.to_string() })).await;
        assert_eq!(other_branch.code(), Some("FORBIDDEN"));
        let r = app.gql(&staff, ONE, json!({ "i": bill_b })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));

        // Drivers: their own, in full; never another driver's.
        let own = list(&app, &drv_a, json!({})).await;
        assert_eq!(titles(&own), ["A rent"]);
        assert_eq!(
            own.ok()["bills"]["items"][0]["driver"]["idNumber"],
            id_number(1)
        );
        let asked_own = list(&app, &drv_a, json!({ "d": a.to_string() })).await;
        assert_eq!(titles(&asked_own), ["A rent"]);
        let others = list(&app, &drv_a, json!({ "d": b.to_string() })).await;
        assert_eq!(others.code(), Some("FORBIDDEN"));
        let r = app.gql(&drv_a, ONE, json!({ "i": bill_b })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        assert!(r.json["data"]["bill"].is_null());
        let r = app.gql(&drv_b, ONE, json!({ "i": bill_a })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let r = app.gql(&drv_b, ONE, json!({ "i": bill_b })).await;
        assert_eq!(r.ok()["bill"]["title"], "B rent");

        // Consumers list nothing, but may read a consumer's bill (its QR code was scanned).
        let r = list(&app, &shopper, json!({})).await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let r = app.gql(&shopper, ONE, json!({ "i": walk_in })).await;
        assert_eq!(r.ok()["bill"]["payerName"], "王先生");
        assert!(r.ok()["bill"]["driver"].is_null());
        let r = app.gql(&shopper, ONE, json!({ "i": bill_a })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let r = app.gql(&drv_b, ONE, json!({ "i": walk_in })).await;
        assert_eq!(r.ok()["bill"]["title"], "walk-in deposit");

        // Writing bills is for operators.
        for token in [&staff, &drv_a, &shopper] {
            let r = create(
                &app,
                token,
                for_consumer(rent("x", 100, "2099-01-01"), "x", None),
            )
            .await;
            assert_eq!(r.code(), Some("FORBIDDEN"));
            let r = app
                .gql(token, CANCEL, json!({ "i": walk_in, "r": "no" }))
                .await;
            assert_eq!(r.code(), Some("FORBIDDEN"));
        }
        assert_eq!(bills_count(&app).await, 4);
    }
);

both!(
    bill_pages_follow_the_due_date_and_cover_every_bill_once,
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut csv = String::from("reference,kind,title,amount_yuan,due_date,payer_name\n");
        for i in 0..11 {
            // Several bills share a due date: the id breaks the tie.
            csv.push_str(&format!(
                "R{i:02},rent,rent {i:02},100,2099-01-{:02},王{i}\n",
                1 + i / 3
            ));
        }
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": csv, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        assert_eq!(r.ok()["importBillsCsv"]["inserted"], 11);
        let mut seen = Vec::new();
        let mut after = Value::Null;
        let mut pages = 0;
        loop {
            let r = list(&app, &admin, json!({ "f": 4, "a": after })).await;
            let page = r.ok()["bills"].clone();
            for b in page["items"].as_array().unwrap() {
                seen.push(b["dueDate"].as_str().unwrap().to_owned());
            }
            pages += 1;
            if page["nextCursor"].is_null() {
                break;
            }
            after = page["nextCursor"].clone();
        }
        assert_eq!((pages, seen.len()), (3, 11));
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, seen);
        let bad = list(&app, &admin, json!({ "a": "bm90IGEgY3Vyc29y" })).await;
        assert_eq!(bad.code(), Some("INVALID_INPUT"));
        let too_many = list(&app, &admin, json!({ "f": 500 })).await;
        assert_eq!(too_many.code(), Some("INVALID_INPUT"));
    }
);

both!(
    another_companys_driver_or_branch_is_refused_and_its_bills_stay_hidden,
    |app: TestApp| async move {
        let (a, admin_a) = app.admin("alpha").await;
        let b = app.tenant("beta").await;
        let (admin_b, _) = app
            .password_user("beta", b, Role::Admin, "13900000002", None)
            .await;
        let bb = app.branch(b, "SZ").await;
        let db_ = app.driver(b, bb, "13800000002", &id_number(2)).await;
        let r = create(
            &app,
            &admin_a,
            for_driver(rent("x", 100, "2099-01-01"), db_),
        )
        .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(field(&r), "driverId");
        let r = create(
            &app,
            &admin_a,
            for_consumer(rent("x", 100, "2099-01-01"), "王先生", Some(bb)),
        )
        .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(field(&r), "branchId");
        assert_eq!(bills_count(&app).await, 0);

        let sa = app.branch(a, "SZ").await;
        let mine = create_id(
            &app,
            &admin_a,
            for_consumer(rent("alpha's", 100, "2099-01-01"), "王先生", Some(sa)),
        )
        .await;
        let r = app.gql(&admin_b, ONE, json!({ "i": mine })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let r = app
            .gql(&admin_b, CANCEL, json!({ "i": mine, "r": "not ours" }))
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        assert!(titles(&list(&app, &admin_b, json!({})).await).is_empty());
        let r = list(&app, &admin_b, json!({ "b": sa.to_string() })).await;
        assert!(titles(&r).is_empty());
    }
);

both!(
    bad_bills_are_refused_with_their_field_and_store_nothing,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let gz = app.branch(t, "GZ").await;
        let d = app.driver(t, sz, "13800000001", &id_number(1)).await;
        let ok = for_consumer(rent("rent", 100, "2099-01-01"), "王先生", None);
        let mut cases: Vec<(Value, &str)> = Vec::new();
        for fen in [0_i64, -5, 2_147_483_648] {
            let mut i = ok.clone();
            i["amountFen"] = json!(fen);
            cases.push((i, "amountFen"));
        }
        for day in ["2026-02-30", "2026-2-1", "tomorrow"] {
            let mut i = ok.clone();
            i["dueDate"] = json!(day);
            cases.push((i, "dueDate"));
        }
        let mut i = ok.clone();
        i["title"] = json!("长".repeat(61));
        cases.push((i, "title"));
        let mut i = ok.clone();
        i["title"] = json!("  ");
        cases.push((i, "title"));
        let mut i = ok.clone();
        i["reference"] = json!("R 1");
        cases.push((i, "reference"));
        cases.push((for_driver(ok.clone(), d), "payerName"));
        cases.push((rent("rent", 100, "2099-01-01"), "driverId"));
        let mut i = rent("rent", 100, "2099-01-01");
        i["driverId"] = json!("not-an-id");
        cases.push((i, "driverId"));
        // A driver's bill is in the driver's branch.
        let mut i = for_driver(rent("rent", 100, "2099-01-01"), d);
        i["branchId"] = json!(gz.to_string());
        cases.push((i, "branchId"));
        for (input, expected) in cases {
            let r = create(&app, &admin, input.clone()).await;
            assert_eq!(r.code(), Some("INVALID_INPUT"), "{input}: {}", r.json);
            assert_eq!(field(&r), expected, "{input}: {}", r.json);
        }
        assert_eq!(bills_count(&app).await, 0);
        assert_eq!(
            app.count("select count(*) from audit_log where action = 'bill.create'")
                .await,
            0
        );
        // The largest amount is fine, and a driver's own branch may be named.
        let mut i = for_driver(rent("rent", 2_147_483_647, "2028-02-29"), d);
        i["branchId"] = json!(sz.to_string());
        let r = create(&app, &admin, i).await;
        assert_eq!(r.ok()["createBill"]["amountYuan"], "21474836.47");
        assert_eq!(bills_count(&app).await, 1);
    }
);

both!(
    a_duplicate_reference_is_refused_and_the_first_bill_is_unchanged,
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let mut first = for_consumer(rent("rent", 100, "2099-01-01"), "王先生", None);
        first["reference"] = json!("INV-0001");
        let id = create_id(&app, &admin, first.clone()).await;
        let mut second = for_consumer(rent("other", 999, "2099-05-01"), "李女士", None);
        second["reference"] = json!(" INV-0001 ");
        let r = create(&app, &admin, second).await;
        assert_eq!(r.code(), Some("BILL_REFERENCE_TAKEN"), "{}", r.json);
        assert_eq!(field(&r), "reference");
        assert_eq!(bills_count(&app).await, 1);
        assert_eq!(amount_of(&app, "INV-0001").await, 100);
        let one = app.gql(&admin, ONE, json!({ "i": id })).await;
        assert_eq!(one.ok()["bill"]["payerName"], "王先生");
        // References are per company.
        let (other, _) = {
            let b = app.tenant("beta").await;
            app.password_user("beta", b, Role::Admin, "13900000002", None)
                .await
        };
        let r = create(&app, &other, first).await;
        assert_eq!(r.ok()["createBill"]["reference"], "INV-0001");
    }
);

both!(
    a_retried_create_with_the_same_key_files_one_bill,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        let d = app.driver(t, sz, "13800000001", &id_number(1)).await;
        let input = for_driver(rent("rent", 100, "2099-01-01"), d);
        let vars = json!({ "i": input, "k": "bill-retry-0001" });
        let (first, second) = tokio::join!(
            app.gql(&admin, CREATE, vars.clone()),
            app.gql(&admin, CREATE, vars.clone())
        );
        let id = first.ok()["createBill"]["id"].clone();
        assert_eq!(second.ok()["createBill"]["id"], id);
        let third = app.gql(&admin, CREATE, vars).await;
        assert_eq!(third.ok()["createBill"]["id"], id);
        assert_eq!(bills_count(&app).await, 1);

        let mut changed = input.clone();
        changed["amountFen"] = json!(200);
        let r = app
            .gql(
                &admin,
                CREATE,
                json!({ "i": changed, "k": "bill-retry-0001" }),
            )
            .await;
        assert_eq!(r.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        let r = app
            .gql(
                &admin,
                "mutation($k: String) { createBranch(input: { code: \"GZ\", name: \"Guangzhou\" }, idempotencyKey: $k) { id } }",
                json!({ "k": "bill-retry-0001" }),
            )
            .await;
        assert_eq!(r.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        // A refused create does not spend its key.
        let mut bad = input.clone();
        bad["dueDate"] = json!("2026-02-30");
        let r = app
            .gql(&admin, CREATE, json!({ "i": bad, "k": "bill-retry-0002" }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        let r = app
            .gql(
                &admin,
                CREATE,
                json!({ "i": changed, "k": "bill-retry-0002" }),
            )
            .await;
        assert_eq!(r.ok()["createBill"]["amountFen"], 200);
        assert_eq!(bills_count(&app).await, 2);
    }
);

both!(
    only_an_open_bill_without_a_waiting_payment_can_be_cancelled,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let input = for_consumer(rent("rent", 100, "2099-01-01"), "王先生", None);
        let open = create_id(&app, &admin, input.clone()).await;
        let r = app
            .gql(&admin, CANCEL, json!({ "i": open, "r": "  " }))
            .await;
        assert_eq!(field(&r), "reason");
        let r = app
            .gql(&admin, CANCEL, json!({ "i": open, "r": "entered twice" }))
            .await;
        assert_eq!(r.ok()["cancelBill"]["status"], "CANCELLED");
        let mut c = app.db().conn().await.unwrap();
        let detail: String = minigate_store::fetch_scalar!(
            &mut c,
            String,
            "select cast(detail as text) from audit_log where action = 'bill.cancel' and entity_id = $1",
            open.clone()
        )
        .unwrap();
        assert!(detail.contains("entered twice"), "{detail}");
        let again = app
            .gql(&admin, CANCEL, json!({ "i": open, "r": "again" }))
            .await;
        assert_eq!(again.code(), Some("BILL_NOT_OPEN"));

        let paid = create_id(&app, &admin, input.clone()).await;
        set_status(&app, &paid, "PAID").await;
        let r = app
            .gql(&admin, CANCEL, json!({ "i": paid, "r": "refund" }))
            .await;
        assert_eq!(r.code(), Some("BILL_NOT_OPEN"));

        let waiting = create_id(&app, &admin, input).await;
        let waiting_id: Id = waiting.parse().unwrap();
        minigate_store::execute!(
            &mut c,
            "insert into payment_order (id, tenant_id, bill_id, provider, channel, out_trade_no, merchant_id, app_id,
                                        amount_fen, description, expires_at, next_query_at)
             values ($1, $2, $3, 'wechat', 'WECHAT_NATIVE', 'T0001', '1900000109', 'wx_acme', 100, 'rent', now(), now())",
            Id::new(),
            t,
            waiting_id
        )
        .unwrap();
        let r = app
            .gql(&admin, CANCEL, json!({ "i": waiting, "r": "no" }))
            .await;
        assert_eq!(r.code(), Some("BILL_HAS_OPEN_PAYMENT"));
        let one = app.gql(&admin, ONE, json!({ "i": waiting })).await;
        assert_eq!(one.ok()["bill"]["id"], waiting);
        let status = list(&app, &admin, json!({ "s": "OPEN" })).await;
        assert_eq!(status.ok()["bills"]["items"].as_array().unwrap().len(), 1);
        let r = app
            .gql(
                &admin,
                CANCEL,
                json!({ "i": Id::new().to_string(), "r": "no" }),
            )
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
    }
);

fn bills_csv() -> String {
    "\u{feff}reference,kind,title,amount_yuan,due_date,driver_phone,payer_name,branch_code\n\
     R1,rent,Rent week 1,1200,2099-01-01,13800000001,,\n\
     R2,deposit,\"Deposit, car 2\",5000.5,2099-01-02,,王先生,SZ\n\
     R3,fine,Parking fine,200.05,2099-01-03,,李女士,\n\
     R4,rent,Rent week 2,12.345,2099-01-08,13800000001,,\n\
     R5,lease,Rent week 3,12,2099-01-15,13800000001,,\n\
     R6,rent,Rent week 4,12,2099-01-22,13899999999,,\n"
        .to_owned()
}

both!(
    a_bill_import_with_bad_rows_writes_nothing_unless_told_to_skip_them,
    |app: TestApp| async move {
        let (t, admin) = app.admin("acme").await;
        let sz = app.branch(t, "SZ").await;
        app.driver(t, sz, "13800000001", &id_number(1)).await;
        let csv = bills_csv();
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": csv, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let rep = &r.ok()["importBillsCsv"];
        assert_eq!(rep["totalRows"], 6);
        assert_eq!(rep["applied"], false);
        let rejected: Vec<(i64, String, String)> = rep["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["line"].as_i64().unwrap(),
                    r["field"].as_str().unwrap().to_owned(),
                    r["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let invalid = |line, field: &str| (line, field.to_owned(), "INVALID_INPUT".to_owned());
        assert_eq!(
            rejected,
            [
                invalid(5, "amount_yuan"),
                invalid(6, "kind"),
                invalid(7, "driver_phone")
            ]
        );
        assert_eq!(bills_count(&app).await, 0);

        let dry = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": csv, "m": "SKIP_INVALID", "d": true }),
            )
            .await;
        assert_eq!(dry.ok()["importBillsCsv"]["inserted"], 3);
        assert_eq!(dry.ok()["importBillsCsv"]["applied"], false);
        assert_eq!(bills_count(&app).await, 0);

        let skip = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": csv, "m": "SKIP_INVALID", "d": false }),
            )
            .await;
        let rep = &skip.ok()["importBillsCsv"];
        assert_eq!(
            (rep["inserted"].as_i64(), rep["applied"].as_bool()),
            (Some(3), Some(true))
        );
        assert_eq!(bills_count(&app).await, 3);
        assert_eq!(amount_of(&app, "R1").await, 120_000);
        assert_eq!(amount_of(&app, "R2").await, 500_050);
        assert_eq!(amount_of(&app, "R3").await, 20_005);
        let all = list(&app, &admin, json!({})).await;
        let items = all.ok()["bills"]["items"].clone();
        assert_eq!(items[0]["payerName"], "张伟");
        assert_eq!(items[1]["title"], "Deposit, car 2");

        // The same file again changes nothing.
        let again = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": csv, "m": "SKIP_INVALID", "d": false }),
            )
            .await;
        let rep = &again.ok()["importBillsCsv"];
        assert_eq!(
            (
                rep["inserted"].as_i64(),
                rep["updated"].as_i64(),
                rep["unchanged"].as_i64()
            ),
            (Some(0), Some(0), Some(3))
        );
        assert_eq!(bills_count(&app).await, 3);

        // Each row names its payer once, and a reference once per file.
        let odd = "reference,kind,title,amount_yuan,due_date,driver_phone,payer_name\n\
                   N1,rent,x,1,2099-01-01,13800000001,王先生\n\
                   N2,rent,x,1,2099-01-01,,\n\
                   N3,rent,x,1,2099-01-01,,王先生\n\
                   N3,rent,y,1,2099-01-01,,王先生\n\
                   ,rent,x,1,2099-01-01,,王先生\n";
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": odd, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let fields: Vec<(i64, String)> = r.ok()["importBillsCsv"]["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["line"].as_i64().unwrap(),
                    r["field"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                (2, "payer_name".to_owned()),
                (3, "driver_phone".to_owned()),
                (5, "reference".to_owned()),
                (6, "reference".to_owned())
            ]
        );
        let missing = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": "reference,kind,title\nR1,rent,x\n", "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        assert_eq!(missing.code(), Some("INVALID_INPUT"));
        assert_eq!(bills_count(&app).await, 3);
    }
);

both!(
    a_changed_row_updates_an_open_bill_but_never_a_paid_one,
    |app: TestApp| async move {
        let (_, admin) = app.admin("acme").await;
        let header = "reference,kind,title,amount_yuan,due_date,payer_name\n";
        let original = format!(
            "{header}P1,rent,Rent,12,2099-01-01,王先生\nP2,rent,Rent,12.3,2099-01-01,李女士\n"
        );
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": original, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        assert_eq!(r.ok()["importBillsCsv"]["inserted"], 2);
        let mut c = app.db().conn().await.unwrap();
        minigate_store::execute!(
            &mut c,
            "update bill set status = 'PAID' where reference = 'P2'"
        )
        .unwrap();

        let changed = format!(
            "{header}P1,rent,Rent,12.30,2099-01-01,王先生\nP2,rent,Rent,99,2099-01-01,李女士\n"
        );
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": changed, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let rep = &r.ok()["importBillsCsv"];
        assert_eq!(rep["applied"], false);
        assert_eq!(rep["rejected"][0]["line"], 3);
        assert_eq!(rep["rejected"][0]["code"], "BILL_NOT_OPEN");
        assert_eq!(rep["rejected"][0]["field"], "reference");
        assert_eq!(amount_of(&app, "P1").await, 1200);

        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": changed, "m": "SKIP_INVALID", "d": false }),
            )
            .await;
        let rep = &r.ok()["importBillsCsv"];
        assert_eq!(
            (
                rep["updated"].as_i64(),
                rep["rejected"].as_array().unwrap().len()
            ),
            (Some(1), 1)
        );
        assert_eq!(amount_of(&app, "P1").await, 1230);
        assert_eq!(amount_of(&app, "P2").await, 1230);
        // The paid bill's own values again are simply unchanged.
        let r = app
            .gql(
                &admin,
                IMPORT,
                json!({ "c": original, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let rep = &r.ok()["importBillsCsv"];
        assert_eq!(
            (
                rep["updated"].as_i64(),
                rep["unchanged"].as_i64(),
                rep["applied"].as_bool()
            ),
            (Some(1), Some(1), Some(true))
        );
        assert_eq!(amount_of(&app, "P1").await, 1200);
        let status: String = minigate_store::fetch_scalar!(
            &mut c,
            String,
            "select status from bill where reference = 'P2'"
        )
        .unwrap();
        assert_eq!(status, "PAID");
    }
);

/// `minigate bill create` and `minigate import bills`, through the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_bills_and_imports_them_with_a_report() {
    let app = TestApp::spawn(false, |_c: &mut minigate_gateway::config::Config| {})
        .await
        .unwrap();
    let t = app.tenant("acme").await;
    let sz = app.branch(t, "SZ").await;
    let d = app.driver(t, sz, "13800000001", &id_number(1)).await;
    let minigate = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minigate"));
        cmd.args(args)
            .env("DATABASE_URL", app.test_db.url())
            .env("MINIGATE_LOG_FORMAT", "pretty");
        cmd
    };
    let out = minigate(&[
        "bill",
        "create",
        "--tenant",
        "acme",
        "--kind",
        "rent",
        "--title",
        "Rent, December",
        "--amount-yuan",
        "1200.00",
        "--due",
        "2026-12-01",
        "--driver-phone",
        "13800000001",
        "--reference",
        "CLI-1",
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Id = stdout.trim().rsplit(' ').next().unwrap().parse().unwrap();
    let mut c = app.db().conn().await.unwrap();
    let (driver, fen, branch): (Option<Id>, i64, Option<Id>) = minigate_store::fetch_one!(
        &mut c,
        (Option<Id>, i64, Option<Id>),
        "select driver_id, amount_fen, branch_id from bill where id = $1",
        id
    )
    .unwrap();
    assert_eq!((driver, fen, branch), (Some(d), 120_000, Some(sz)));

    let consumer = minigate(&[
        "bill",
        "create",
        "--tenant",
        "acme",
        "--kind",
        "deposit",
        "--title",
        "Deposit",
        "--amount-yuan",
        "500",
        "--due",
        "2026-12-01",
        "--payer-name",
        "王先生",
        "--branch",
        "SZ",
    ])
    .output()
    .await
    .unwrap();
    assert!(consumer.status.success());
    for bad in [
        ["--amount-yuan", "12.345", "--due", "2026-12-01"],
        ["--amount-yuan", "12", "--due", "2026-02-30"],
    ] {
        let mut args = vec![
            "bill",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "rent",
            "--title",
            "x",
            "--payer-name",
            "王先生",
        ];
        args.extend(bad);
        let out = minigate(&args).output().await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(if bad[1] == "12" {
                "due_date"
            } else {
                "amount_yuan"
            }),
            "{stderr}"
        );
    }
    assert_eq!(bills_count(&app).await, 2);

    let file = app.dir.join("bills.csv");
    std::fs::write(&file, bills_csv()).unwrap();
    let file = file.to_str().unwrap();
    let out = minigate(&["import", "bills", "--tenant", "acme", "--file", file])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("line 5: INVALID_INPUT amount_yuan"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert_eq!(bills_count(&app).await, 2);
    let out = minigate(&[
        "import",
        "bills",
        "--tenant",
        "acme",
        "--file",
        file,
        "--skip-invalid",
    ])
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 rows: 3 inserted"), "{stdout}");
    assert_eq!(bills_count(&app).await, 5);
}
