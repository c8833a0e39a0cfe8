//! Drivers' reports end to end: income, accidents followed live through their workflow, and
//! maintenance; who may see and do what; idempotent retries; bad input that stores nothing.

use chrono::{Datelike, Duration, Utc};
use minigate_fakes::photos;
use minigate_resolvers::Role;
use minigate_store::Id;
use serde_json::{Value, json};

use crate::support::TestApp;

const APP_ID: &str = "wx_drivers_app";

const FILE_INCOME: &str = "mutation($i: IncomeReportInput!, $k: String) {
    fileIncomeReport(input: $i, idempotencyKey: $k) {
        id weekStart platform orders onlineMinutes grossIncomeFen status
        driver { id } screenshots { role media { id } } } }";

const UPDATE_INCOME: &str = "mutation($id: ID!, $i: IncomeReportInput!) {
    updateIncomeReport(id: $id, input: $i) { id orders status screenshots { media { id } } } }";

const CONFIRM_INCOME: &str =
    "mutation($id: ID!) { confirmIncomeReport(id: $id) { id status confirmedAt } }";

const INCOME_LIST: &str = "query($w: NaiveDate, $f: Int! = 20, $a: String) {
    incomeReports(weekStart: $w, first: $f, after: $a) { items { id orders driver { id } } nextCursor } }";

const REPORT_ACCIDENT: &str = "mutation($i: AccidentReportInput!, $k: String) {
    reportAccident(input: $i, idempotencyKey: $k) {
        id status description address injuredCount vehicle { id plate } driver { id }
        photos { role media { id } } timeline { status actorId note } } }";

const ADVANCE: &str = "mutation($id: ID!, $to: AccidentStatus!, $n: String) {
    advanceAccident(id: $id, to: $to, note: $n) {
        id status rejectReason timeline { status actorId note at } } }";

const ACCIDENT: &str = "query($id: ID!) { accidentReport(id: $id) {
    id status timeline { status } photos { role } } }";

const ACCIDENTS: &str = "query($s: AccidentStatus, $f: Int! = 20, $a: String) {
    accidentReports(status: $s, first: $f, after: $a) { items { id status } nextCursor } }";

const FILE_MAINTENANCE: &str = "mutation($i: MaintenanceReportInput!, $k: String) {
    fileMaintenanceReport(input: $i, idempotencyKey: $k) {
        id kind shop costFen mileageKm nextDueMileageKm vehicle { plate } invoices { role media { id } } } }";

const MAINTENANCE_LIST: &str = "query($v: ID) {
    maintenanceReports(vehicleId: $v) { items { id shop } nextCursor } }";

const REPORTED_SUB: &str = "subscription($a: ID) {
    accidentReported(after: $a) { eventId accident { id status description } } }";

const UPDATED_SUB: &str = "subscription($id: ID!, $a: ID) {
    accidentUpdated(id: $id, after: $a) { eventId accident { id status rejectReason } } }";

/// A company with two branches, a vehicle in each, a bound driver in SZ with its vehicle, staff
/// in each branch and an operator.
struct Fleet {
    tenant: Id,
    admin: String,
    sz: Id,
    gz: Id,
    sz_car: Id,
    gz_car: Id,
    driver: String,
    driver_id: Id,
    sz_staff: String,
    gz_staff: String,
}

async fn fleet(app: &TestApp) -> Fleet {
    let (tenant, admin) = app.admin("acme").await;
    app.mini_program(tenant, APP_ID).await;
    let sz = app.branch(tenant, "SZ").await;
    let gz = app.branch(tenant, "GZ").await;
    let sz_car = app.vehicle(tenant, sz, "粤B12345").await;
    let gz_car = app.vehicle(tenant, gz, "粤A54321").await;
    let (driver, driver_id) = app
        .bound_driver(APP_ID, tenant, sz, Some(sz_car), "13800138000", 1)
        .await;
    let (sz_staff, _) = app
        .password_user("acme", tenant, Role::Staff, "13700000001", Some(sz))
        .await;
    let (gz_staff, _) = app
        .password_user("acme", tenant, Role::Staff, "13700000002", Some(gz))
        .await;
    Fleet {
        tenant,
        admin,
        sz,
        gz,
        sz_car,
        gz_car,
        driver,
        driver_id,
        sz_staff,
        gz_staff,
    }
}

/// A processed photo of `purpose` uploaded by the holder of `token`.
async fn photo(app: &TestApp, token: &str, purpose: &str, seed: u32) -> String {
    let jpeg = photos::jpeg(64 + seed, 48, &photos::gradient(64 + seed, 48));
    app.upload_media(Some(token), jpeg, "p.jpg", Some(purpose))
        .await
        .id()
        .to_owned()
}

fn last_monday() -> String {
    let today = (Utc::now() + Duration::hours(8)).date_naive();
    let back = i64::from(today.weekday().num_days_from_monday()) + 7;
    (today - Duration::days(back)).to_string()
}

fn income(orders: i32, shots: &[&str]) -> Value {
    json!({
        "weekStart": last_monday(),
        "platform": "DIDI",
        "orders": orders,
        "onlineMinutes": 3_720,
        "grossIncomeFen": 498_050,
        "screenshotIds": shots,
    })
}

fn accident(scene: &[&str], damage: &[&str]) -> Value {
    // An hour before the tests started, the same for every call: a retry sends the very same
    // input.
    static AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| (Utc::now() - Duration::hours(1)).to_rfc3339());
    json!({
        "occurredAt": at,
        "latitude": 22.5431,
        "longitude": 114.0579,
        "address": "深圳市南山区深南大道9678号",
        "description": "等红灯时被后车追尾，后保险杠凹陷，尾灯碎了",
        "otherParty": "粤B·7K2Q9 平安保险",
        "injuredCount": 0,
        "scenePhotoIds": scene,
        "damagePhotoIds": damage,
    })
}

fn maintenance(shots: &[&str]) -> Value {
    json!({
        "servicedOn": (Utc::now() + Duration::hours(8)).date_naive().to_string(),
        "mileageKm": 58_200,
        "kind": "ROUTINE",
        "shop": "途虎养车(科技园店)",
        "costFen": 38_000,
        "notes": "小保养，换机油机滤，空调滤芯也换了",
        "nextDueMileageKm": 63_200,
        "invoicePhotoIds": shots,
    })
}

both!(
    an_income_report_is_filed_once_corrected_until_confirmed_and_then_locked,
    |app: TestApp| async move {
        let f = fleet(&app).await;
        let shot = photo(&app, &f.driver, "income_screenshot", 1).await;
        let first = app
            .gql(
                &f.driver,
                FILE_INCOME,
                json!({ "i": income(182, &[&shot]), "k": "income-key-0001" }),
            )
            .await;
        let r = first.ok()["fileIncomeReport"].clone();
        assert_eq!(r["status"], "SUBMITTED");
        assert_eq!(r["platform"], "DIDI");
        assert_eq!(r["driver"]["id"], f.driver_id.to_string());
        assert_eq!(r["screenshots"][0]["role"], "SCREENSHOT");
        assert_eq!(r["screenshots"][0]["media"]["id"], shot.as_str());
        let id = r["id"].as_str().unwrap().to_owned();

        // A retry with the same key and input answers the first report; nothing twice.
        let again = app
            .gql(
                &f.driver,
                FILE_INCOME,
                json!({ "i": income(182, &[&shot]), "k": "income-key-0001" }),
            )
            .await;
        assert_eq!(again.ok()["fileIncomeReport"]["id"], id.as_str());
        // The same key with other input is refused.
        let reused = app
            .gql(
                &f.driver,
                FILE_INCOME,
                json!({ "i": income(183, &[&shot]), "k": "income-key-0001" }),
            )
            .await;
        assert_eq!(reused.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        // Another report of the same platform and week is a conflict.
        let twin = app
            .gql(&f.driver, FILE_INCOME, json!({ "i": income(10, &[]) }))
            .await;
        assert_eq!(twin.code(), Some("ALREADY_EXISTS"));
        assert_eq!(app.count("select count(*) from income_report").await, 1);
        assert_eq!(app.count("select count(*) from record_photo").await, 1);

        // The driver corrects it; the screenshots are replaced.
        let fixed = app
            .gql(
                &f.driver,
                UPDATE_INCOME,
                json!({ "id": id, "i": income(190, &[]) }),
            )
            .await;
        assert_eq!(fixed.ok()["updateIncomeReport"]["orders"], 190);
        assert_eq!(fixed.ok()["updateIncomeReport"]["screenshots"], json!([]));

        // Staff may not confirm; an operator does, once.
        let staff = app
            .gql(&f.sz_staff, CONFIRM_INCOME, json!({ "id": id }))
            .await;
        assert_eq!(staff.code(), Some("FORBIDDEN"));
        let ok = app.gql(&f.admin, CONFIRM_INCOME, json!({ "id": id })).await;
        assert_eq!(ok.ok()["confirmIncomeReport"]["status"], "CONFIRMED");
        let twice = app.gql(&f.admin, CONFIRM_INCOME, json!({ "id": id })).await;
        assert_eq!(twice.code(), Some("RECORD_LOCKED"));

        // Confirmed: the driver's correction is refused and nothing changes.
        let late = app
            .gql(
                &f.driver,
                UPDATE_INCOME,
                json!({ "id": id, "i": income(999, &[]) }),
            )
            .await;
        assert_eq!(late.code(), Some("RECORD_LOCKED"));
        let list = app.gql(&f.admin, INCOME_LIST, json!({})).await;
        assert_eq!(list.ok()["incomeReports"]["items"][0]["orders"], 190);

        // The branch's staff see it; another branch's staff and another driver do not.
        let seen = app.gql(&f.sz_staff, INCOME_LIST, json!({})).await;
        assert_eq!(
            seen.ok()["incomeReports"]["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let other = app.gql(&f.gz_staff, INCOME_LIST, json!({})).await;
        assert_eq!(other.ok()["incomeReports"]["items"], json!([]));
        let (stranger, _) = app
            .bound_driver(APP_ID, f.tenant, f.sz, None, "13800138001", 2)
            .await;
        let hidden = app.gql(&stranger, INCOME_LIST, json!({})).await;
        assert_eq!(hidden.ok()["incomeReports"]["items"], json!([]));
        let theirs = app
            .gql(
                &stranger,
                UPDATE_INCOME,
                json!({ "id": id, "i": income(1, &[]) }),
            )
            .await;
        assert_eq!(theirs.code(), Some("NOT_FOUND"));
    }
);

both!(
    photos_that_are_not_yours_not_processed_or_of_another_purpose_file_nothing,
    |app: TestApp| async move {
        let f = fleet(&app).await;
        let (other, _) = app
            .bound_driver(APP_ID, f.tenant, f.sz, None, "13800138001", 2)
            .await;
        let theirs = photo(&app, &other, "income_screenshot", 1).await;
        let invoice = photo(&app, &f.driver, "invoice", 2).await;
        let pending = photo(&app, &f.driver, "income_screenshot", 3).await;
        let mut c = app.db().conn().await.unwrap();
        minigate_store::execute!(
            &mut c,
            "update media set status = 'PROCESSING' where id = $1",
            pending.parse::<Id>().unwrap()
        )
        .unwrap();
        drop(c);
        for (shot, code) in [
            (theirs.as_str(), "MEDIA_NOT_FOUND"),
            (invoice.as_str(), "MEDIA_PURPOSE_INVALID"),
            (pending.as_str(), "MEDIA_NOT_READY"),
            (&Id::new().to_string(), "MEDIA_NOT_FOUND"),
        ] {
            let r = app
                .gql(
                    &f.driver,
                    FILE_INCOME,
                    json!({ "i": income(1, &[shot]), "k": format!("k-{shot}") }),
                )
                .await;
            assert_eq!(r.code(), Some(code), "{shot}");
        }
        let r = app
            .gql(
                &f.driver,
                REPORT_ACCIDENT,
                json!({ "i": accident(&[&theirs], &[]) }),
            )
            .await;
        assert_eq!(r.code(), Some("MEDIA_NOT_FOUND"));
        assert_eq!(app.count("select count(*) from income_report").await, 0);
        assert_eq!(app.count("select count(*) from accident_report").await, 0);
        assert_eq!(app.count("select count(*) from record_photo").await, 0);
        assert_eq!(app.count("select count(*) from idempotency_key").await, 0);
        // A refused attempt does not burn its key: the same key with good input files it.
        let ok = app
            .gql(
                &f.driver,
                FILE_INCOME,
                json!({ "i": income(1, &[]), "k": format!("k-{theirs}") }),
            )
            .await;
        assert_eq!(ok.ok()["fileIncomeReport"]["orders"], 1);
    }
);

both!(
    an_accident_is_seen_live_moves_only_forward_and_its_driver_follows_each_step,
    |app: TestApp| async move {
        let f = fleet(&app).await;
        let mut sz_ws = app.ws(&f.sz_staff).await;
        sz_ws.subscribe("r", REPORTED_SUB, json!({})).await;
        let mut gz_ws = app.ws(&f.gz_staff).await;
        gz_ws.subscribe("r", REPORTED_SUB, json!({})).await;
        let mut admin_ws = app.ws(&f.admin).await;
        admin_ws.subscribe("r", REPORTED_SUB, json!({})).await;

        let scene = photo(&app, &f.driver, "accident", 1).await;
        let damage = photo(&app, &f.driver, "damage", 2).await;
        let r = app
            .gql(
                &f.driver,
                REPORT_ACCIDENT,
                json!({ "i": accident(&[&scene], &[&damage]), "k": "accident-0001" }),
            )
            .await;
        let a = r.ok()["reportAccident"].clone();
        let id = a["id"].as_str().unwrap().to_owned();
        assert_eq!(a["status"], "SUBMITTED");
        assert_eq!(a["vehicle"]["plate"], "粤B12345");
        assert_eq!(a["photos"][0]["role"], "SCENE");
        assert_eq!(a["photos"][1]["role"], "DAMAGE");
        assert_eq!(a["timeline"].as_array().unwrap().len(), 1);
        // A retry on a weak network answers the same accident.
        let again = app
            .gql(
                &f.driver,
                REPORT_ACCIDENT,
                json!({ "i": accident(&[&scene], &[&damage]), "k": "accident-0001" }),
            )
            .await;
        assert_eq!(again.ok()["reportAccident"]["id"], id.as_str());
        assert_eq!(app.count("select count(*) from accident_report").await, 1);

        // The branch's staff and the operator see it at once; the other branch does not.
        let seen = sz_ws.data("r").await;
        assert_eq!(seen["accidentReported"]["accident"]["id"], id.as_str());
        let first_event = seen["accidentReported"]["eventId"].clone();
        let op = admin_ws.data("r").await;
        assert_eq!(op["accidentReported"]["accident"]["id"], id.as_str());
        gz_ws.quiet().await;

        // The driver follows it.
        let mut drv_ws = app.ws(&f.driver).await;
        drv_ws
            .subscribe("u", UPDATED_SUB, json!({ "id": id }))
            .await;

        // Out of order: nothing changes.
        for (to, who) in [
            ("IN_REPAIR", &f.sz_staff),
            ("CLOSED", &f.admin),
            ("SUBMITTED", &f.admin),
        ] {
            let r = app.gql(who, ADVANCE, json!({ "id": id, "to": to })).await;
            assert_eq!(r.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"), "{to}");
        }
        // Not theirs to move: the driver, and another branch's staff.
        let r = app
            .gql(
                &f.driver,
                ADVANCE,
                json!({ "id": id, "to": "ACKNOWLEDGED" }),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let r = app
            .gql(
                &f.gz_staff,
                ADVANCE,
                json!({ "id": id, "to": "ACKNOWLEDGED" }),
            )
            .await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let still = app.gql(&f.driver, ACCIDENT, json!({ "id": id })).await;
        assert_eq!(still.ok()["accidentReport"]["status"], "SUBMITTED");
        assert_eq!(
            still.ok()["accidentReport"]["timeline"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let ack = app
            .gql(
                &f.sz_staff,
                ADVANCE,
                json!({ "id": id, "to": "ACKNOWLEDGED", "n": "已联系保险" }),
            )
            .await;
        assert_eq!(ack.ok()["advanceAccident"]["status"], "ACKNOWLEDGED");
        let step = drv_ws.data("u").await;
        assert_eq!(
            step["accidentUpdated"]["accident"]["status"],
            "ACKNOWLEDGED"
        );
        // The same step twice (two people pressing at once) moves it once.
        let twice = app
            .gql(&f.admin, ADVANCE, json!({ "id": id, "to": "ACKNOWLEDGED" }))
            .await;
        assert_eq!(twice.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"));

        let repair = app
            .gql(
                &f.admin,
                ADVANCE,
                json!({ "id": id, "to": "IN_REPAIR", "n": "比亚迪4S店" }),
            )
            .await;
        assert_eq!(repair.ok()["advanceAccident"]["status"], "IN_REPAIR");
        assert_eq!(
            drv_ws.data("u").await["accidentUpdated"]["accident"]["status"],
            "IN_REPAIR"
        );
        // A rejection needs its reason.
        let r = app
            .gql(&f.admin, ADVANCE, json!({ "id": id, "to": "REJECTED" }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        let closed = app
            .gql(&f.admin, ADVANCE, json!({ "id": id, "to": "CLOSED" }))
            .await;
        let timeline = closed.ok()["advanceAccident"]["timeline"]
            .as_array()
            .unwrap()
            .clone();
        let statuses: Vec<&str> = timeline
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["SUBMITTED", "ACKNOWLEDGED", "IN_REPAIR", "CLOSED"]
        );
        assert_eq!(timeline[1]["note"], "已联系保险");
        assert_eq!(
            drv_ws.data("u").await["accidentUpdated"]["accident"]["status"],
            "CLOSED"
        );
        let r = app
            .gql(
                &f.admin,
                ADVANCE,
                json!({ "id": id, "to": "REJECTED", "n": "重复" }),
            )
            .await;
        assert_eq!(r.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"));

        // The driver was told of each status in the push outbox, once each.
        assert_eq!(
            app.count(
                "select count(distinct source_id) from push_delivery where kind = 'ACCIDENT'"
            )
            .await,
            4
        );

        // A staff phone that lost its socket resumes after the last event it saw.
        let mut late = app.ws(&f.sz_staff).await;
        late.subscribe(
            "r",
            REPORTED_SUB,
            json!({ "a": first_event.to_string().trim_matches('"') }),
        )
        .await;
        late.quiet().await;
        let mut from_start = app.ws(&f.sz_staff).await;
        from_start
            .subscribe("r", REPORTED_SUB, json!({ "a": "0" }))
            .await;
        assert_eq!(
            from_start.data("r").await["accidentReported"]["accident"]["id"],
            id.as_str()
        );
    }
);

both!(
    accidents_stay_with_their_driver_and_branch_and_bad_reports_store_nothing,
    |app: TestApp| async move {
        let f = fleet(&app).await;
        // Another branch's vehicle, another company's, and no such vehicle.
        let (other_t, _) = app.admin("other").await;
        let other_b = app.branch(other_t, "XX").await;
        let foreign = app.vehicle(other_t, other_b, "沪A00001").await;
        for v in [f.gz_car, foreign, Id::new()] {
            let mut input = accident(&[], &[]);
            input["vehicleId"] = json!(v.to_string());
            let r = app
                .gql(&f.driver, REPORT_ACCIDENT, json!({ "i": input }))
                .await;
            assert_eq!(r.code(), Some("INVALID_INPUT"), "{v}");
        }
        // Missing fields are refused by the schema; bad values by the checks.
        let mut missing = accident(&[], &[]);
        missing.as_object_mut().unwrap().remove("description");
        let r = app
            .gql(&f.driver, REPORT_ACCIDENT, json!({ "i": missing }))
            .await;
        assert_eq!(r.code(), Some("GRAPHQL_VALIDATION_FAILED"));
        let mut injured = accident(&[], &[]);
        injured["injuredCount"] = json!(2);
        let r = app
            .gql(&f.driver, REPORT_ACCIDENT, json!({ "i": injured }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        // Staff and operators handle accidents; they do not report them.
        let r = app
            .gql(
                &f.sz_staff,
                REPORT_ACCIDENT,
                json!({ "i": accident(&[], &[]) }),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        assert_eq!(app.count("select count(*) from accident_report").await, 0);
        assert_eq!(app.count("select count(*) from workflow_step").await, 0);
        assert_eq!(
            app.count("select count(*) from outbox_event where topic like 'accident%'")
                .await,
            0
        );

        // A driver without a vehicle names one of the branch.
        let (walker, _) = app
            .bound_driver(APP_ID, f.tenant, f.sz, None, "13800138002", 3)
            .await;
        let r = app
            .gql(&walker, REPORT_ACCIDENT, json!({ "i": accident(&[], &[]) }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        let mut named = accident(&[], &[]);
        named["vehicleId"] = json!(f.sz_car.to_string());
        let theirs = app
            .gql(&walker, REPORT_ACCIDENT, json!({ "i": named }))
            .await;
        let theirs = theirs.ok()["reportAccident"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mine = app
            .gql(
                &f.driver,
                REPORT_ACCIDENT,
                json!({ "i": accident(&[], &[]) }),
            )
            .await;
        let mine = mine.ok()["reportAccident"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Each driver sees only their own; staff their branch's; operators all.
        let r = app.gql(&f.driver, ACCIDENT, json!({ "id": theirs })).await;
        assert_eq!(r.code(), Some("NOT_FOUND"));
        let mut sub = app.ws(&f.driver).await;
        sub.subscribe("u", UPDATED_SUB, json!({ "id": theirs }))
            .await;
        let m = sub.recv().await.unwrap();
        assert_eq!(
            m["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{m}"
        );
        let list = app.gql(&f.driver, ACCIDENTS, json!({})).await;
        let items = list.ok()["accidentReports"]["items"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], mine.as_str());
        let gz = app.gql(&f.gz_staff, ACCIDENTS, json!({})).await;
        assert_eq!(gz.ok()["accidentReports"]["items"], json!([]));
        // Pages of one cover both, newest first, once each.
        let p1 = app.gql(&f.admin, ACCIDENTS, json!({ "f": 1 })).await;
        let p1 = p1.ok()["accidentReports"].clone();
        assert_eq!(p1["items"][0]["id"], mine.as_str());
        let p2 = app
            .gql(
                &f.admin,
                ACCIDENTS,
                json!({ "f": 1, "a": p1["nextCursor"] }),
            )
            .await;
        let p2 = p2.ok()["accidentReports"].clone();
        assert_eq!(p2["items"][0]["id"], theirs.as_str());
        assert_eq!(p2["nextCursor"], Value::Null);
        let bad = app
            .gql(&f.admin, ACCIDENTS, json!({ "a": "garbage" }))
            .await;
        assert_eq!(bad.code(), Some("INVALID_INPUT"));
        let _ = f.gz;
    }
);

both!(
    a_maintenance_report_carries_its_invoices_and_is_filed_once,
    |app: TestApp| async move {
        let f = fleet(&app).await;
        let invoice = photo(&app, &f.driver, "invoice", 1).await;
        let r = app
            .gql(
                &f.driver,
                FILE_MAINTENANCE,
                json!({ "i": maintenance(&[&invoice]), "k": "maint-000001" }),
            )
            .await;
        let m = r.ok()["fileMaintenanceReport"].clone();
        assert_eq!(m["vehicle"]["plate"], "粤B12345");
        assert_eq!(m["invoices"][0]["role"], "INVOICE");
        let again = app
            .gql(
                &f.driver,
                FILE_MAINTENANCE,
                json!({ "i": maintenance(&[&invoice]), "k": "maint-000001" }),
            )
            .await;
        assert_eq!(again.ok()["fileMaintenanceReport"]["id"], m["id"]);
        let mut changed = maintenance(&[&invoice]);
        changed["costFen"] = json!(1);
        let r = app
            .gql(
                &f.driver,
                FILE_MAINTENANCE,
                json!({ "i": changed, "k": "maint-000001" }),
            )
            .await;
        assert_eq!(r.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        let mut low = maintenance(&[]);
        low["nextDueMileageKm"] = json!(100);
        let r = app
            .gql(&f.driver, FILE_MAINTENANCE, json!({ "i": low }))
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(
            app.count("select count(*) from maintenance_report").await,
            1
        );

        let list = app
            .gql(
                &f.sz_staff,
                MAINTENANCE_LIST,
                json!({ "v": f.sz_car.to_string() }),
            )
            .await;
        assert_eq!(
            list.ok()["maintenanceReports"]["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let none = app
            .gql(
                &f.sz_staff,
                MAINTENANCE_LIST,
                json!({ "v": f.gz_car.to_string() }),
            )
            .await;
        assert_eq!(none.ok()["maintenanceReports"]["items"], json!([]));
        let other = app.gql(&f.gz_staff, MAINTENANCE_LIST, json!({})).await;
        assert_eq!(other.ok()["maintenanceReports"]["items"], json!([]));
    }
);
