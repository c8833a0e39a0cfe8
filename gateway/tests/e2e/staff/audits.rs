//! Asset audits: the list, findings, live progress, discrepancies at close, bad input.

use minigate_store::Id;
use serde_json::{Value, json};

use super::{Crew, count_of, crew, field, ids, photo};
use crate::support::{TestApp, vin_for};

const OPEN: &str = "mutation($b: ID!, $t: String!, $k: String) {
    openAssetAudit(branchId: $b, title: $t, idempotencyKey: $k) {
        id title status listedCount foundCount missingCount progress branch { code }
        listedVehicles { vehicleId plate found } } }";

const RECORD: &str = "mutation($a: ID!, $i: AuditFindingInput!, $k: String) {
    recordAuditFinding(auditId: $a, input: $i, idempotencyKey: $k) {
        id vehicleId plate vin listed mileageKm condition note photos { role media { id } }
        audit { foundCount unlistedCount missingCount progress } } }";

const AUDIT: &str = "query($id: ID!) { assetAudit(id: $id) {
    id status listedCount foundCount missingCount unlistedCount progress closedAt closedById
    findings { id vehicleId plate vin listed mileageKm condition note photos { role media { id } } }
    listedVehicles { vehicleId plate found findingId }
    discrepancies { kind vehicleId findingId plate vin } } }";

const AUDITS: &str = "query($b: ID, $s: AuditStatus) {
    assetAudits(branchId: $b, status: $s) { id status } }";

const CLOSE: &str = "mutation($a: ID!) { closeAssetAudit(auditId: $a) {
    id status foundCount missingCount closedAt discrepancies { kind plate } } }";

const PROGRESS: &str = "subscription($a: ID!, $after: ID) {
    auditProgress(auditId: $a, after: $after) {
        eventId auditId status listedCount foundCount unlistedCount missingCount progress
        lastFinding { id plate vin listed mileageKm condition } } }";

async fn open(app: &TestApp, crew: &Crew, title: &str) -> String {
    let r = app
        .gql(
            &crew.admin,
            OPEN,
            json!({ "b": crew.sz.to_string(), "t": title }),
        )
        .await;
    r.ok()["openAssetAudit"]["id"].as_str().unwrap().to_owned()
}

fn finding(plate: Option<&str>, vin: Option<&str>, km: i32, photos: &[&str]) -> Value {
    json!({ "plate": plate, "vin": vin, "mileageKm": km, "condition": "GOOD", "photoIds": photos })
}

async fn record(app: &TestApp, token: &str, audit: &str, input: Value) -> crate::support::Resp {
    app.gql(token, RECORD, json!({ "a": audit, "i": input }))
        .await
}

async fn retire(app: &TestApp, vehicle: Id) {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::execute!(
        &mut c,
        "update vehicle set status = 'RETIRED' where id = $1",
        vehicle
    )
    .unwrap();
}

async fn audit_events(app: &TestApp, audit: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from outbox_event where topic = $1",
        format!("audit:{audit}")
    )
    .unwrap()
}

both!(
    an_audit_lists_the_branch_vehicles_and_stores_its_discrepancies_at_close,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let a = app.vehicle(crew.tenant, crew.sz, "粤B10001").await;
        let b = app.vehicle(crew.tenant, crew.sz, "粤B10002").await;
        let c = app.vehicle(crew.tenant, crew.sz, "粤B10003").await;
        let retired = app.vehicle(crew.tenant, crew.sz, "粤B10004").await;
        retire(&app, retired).await;
        let g = app.vehicle(crew.tenant, crew.gz, "粤A20001").await;
        // Another company's vehicle with the same plate as an unknown one: never matched.
        app.vehicle(
            crew.other_tenant,
            app.branch(crew.other_tenant, "HQ").await,
            "粤B99999",
        )
        .await;

        let opened = app
            .gql(
                &crew.admin,
                OPEN,
                json!({ "b": crew.sz.to_string(), "t": " 2026年11月盘点 ", "k": "open-audit-0001" }),
            )
            .await;
        let o = opened.ok()["openAssetAudit"].clone();
        assert_eq!(o["title"], "2026年11月盘点");
        assert_eq!(o["status"], "OPEN");
        assert_eq!(o["branch"]["code"], "SZ");
        assert_eq!(
            (o["listedCount"].as_i64(), o["foundCount"].as_i64()),
            (Some(3), Some(0))
        );
        assert_eq!(o["progress"], 0.0);
        let listed: Vec<&str> = o["listedVehicles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["plate"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["粤B10001", "粤B10002", "粤B10003"]);
        let audit = o["id"].as_str().unwrap().to_owned();

        // A listed vehicle by its plate as typed, with a photo.
        let first_photo = photo(&app, &crew.sz_staff, "audit").await;
        let r = record(
            &app,
            &crew.sz_staff,
            &audit,
            json!({ "plate": "粤b·10001", "mileageKm": 42000, "condition": "MINOR_DAMAGE",
                    "note": "左前门划痕", "photoIds": [first_photo] }),
        )
        .await;
        let f = r.ok()["recordAuditFinding"].clone();
        assert_eq!(f["vehicleId"], a.to_string());
        assert_eq!(f["plate"], "粤B10001");
        assert_eq!(f["vin"], vin_for("粤B10001"));
        assert_eq!(f["listed"], true);
        assert_eq!(f["condition"], "MINOR_DAMAGE");
        assert_eq!(f["photos"][0]["role"], "VEHICLE");
        assert_eq!(f["photos"][0]["media"]["id"], first_photo.as_str());
        assert_eq!(f["audit"]["foundCount"], 1);
        let finding_a = f["id"].as_str().unwrap().to_owned();

        // A listed vehicle by its VIN only, by the other SZ staff member.
        let r = record(
            &app,
            &crew.sz_colleague,
            &audit,
            finding(None, Some(&vin_for("粤B10002").to_lowercase()), 10, &[]),
        )
        .await;
        let f = r.ok()["recordAuditFinding"].clone();
        assert_eq!(
            (f["vehicleId"].as_str(), f["plate"].as_str()),
            (Some(b.to_string().as_str()), Some("粤B10002"))
        );
        // GZ's vehicle found in SZ, and a vehicle nobody knows: found but not listed.
        let r = record(
            &app,
            &crew.sz_staff,
            &audit,
            finding(Some("粤A20001"), None, 5, &[]),
        )
        .await;
        let f = r.ok()["recordAuditFinding"].clone();
        let finding_g = f["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (f["vehicleId"].as_str(), f["listed"].as_bool()),
            (Some(g.to_string().as_str()), Some(false))
        );
        let r = record(
            &app,
            &crew.sz_staff,
            &audit,
            finding(Some("粤B99999"), None, 7, &[]),
        )
        .await;
        let f = r.ok()["recordAuditFinding"].clone();
        assert_eq!(
            (f["vehicleId"].clone(), f["listed"].as_bool()),
            (Value::Null, Some(false))
        );
        assert_eq!(f["audit"]["unlistedCount"], 2);
        let unknown = f["id"].as_str().unwrap().to_owned();

        // The first vehicle again, by its VIN: the same finding, updated; nothing counted twice.
        let second_photo = photo(&app, &crew.sz_colleague, "audit").await;
        let r = record(
            &app,
            &crew.sz_colleague,
            &audit,
            json!({ "vin": vin_for("粤B10001"), "mileageKm": 42010, "condition": "GOOD",
                    "photoIds": [second_photo] }),
        )
        .await;
        let f = r.ok()["recordAuditFinding"].clone();
        assert_eq!(f["id"], finding_a.as_str());
        assert_eq!(f["mileageKm"], 42010);
        assert_eq!(f["plate"], "粤B10001");
        assert_eq!(f["note"], Value::Null);
        assert_eq!(f["photos"].as_array().unwrap().len(), 1);
        assert_eq!(f["photos"][0]["media"]["id"], second_photo.as_str());
        assert_eq!(
            (
                f["audit"]["foundCount"].as_i64(),
                f["audit"]["unlistedCount"].as_i64(),
                f["audit"]["missingCount"].as_i64()
            ),
            (Some(2), Some(2), Some(1))
        );

        let read = app.gql(&crew.sz_staff, AUDIT, json!({ "id": audit })).await;
        let r = read.ok()["assetAudit"].clone();
        assert_eq!(r["findings"].as_array().unwrap().len(), 4);
        assert_eq!(r["findings"][0]["id"], finding_a.as_str());
        assert!((r["progress"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        let found: Vec<(String, bool)> = r["listedVehicles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["plate"].as_str().unwrap().to_owned(),
                    v["found"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("粤B10001".to_owned(), true),
                ("粤B10002".to_owned(), true),
                ("粤B10003".to_owned(), false)
            ]
        );
        assert_eq!(r["discrepancies"], json!([]));

        // Other people: GZ staff cannot read it, nor list SZ's audits; another company neither.
        let far = app.gql(&crew.gz_staff, AUDIT, json!({ "id": audit })).await;
        assert_eq!(far.code(), Some("NOT_FOUND"));
        let far = app
            .gql(&crew.gz_staff, AUDITS, json!({ "b": crew.sz.to_string() }))
            .await;
        assert_eq!(far.code(), Some("FORBIDDEN"));
        let own = app.gql(&crew.gz_staff, AUDITS, json!({})).await;
        assert_eq!(own.ok()["assetAudits"], json!([]));
        let stranger = app.gql(&crew.stranger, AUDIT, json!({ "id": audit })).await;
        assert_eq!(stranger.code(), Some("NOT_FOUND"));
        let driver = app.gql(&crew.driver, AUDITS, json!({})).await;
        assert_eq!(driver.code(), Some("FORBIDDEN"));
        // Only operators close.
        let staff_close = app.gql(&crew.sz_staff, CLOSE, json!({ "a": audit })).await;
        assert_eq!(staff_close.code(), Some("FORBIDDEN"));

        let closed = app.gql(&crew.admin, CLOSE, json!({ "a": audit })).await;
        let cl = closed.ok()["closeAssetAudit"].clone();
        assert_eq!(cl["status"], "CLOSED");
        assert!(cl["closedAt"].is_string());
        let read = app.gql(&crew.sz_staff, AUDIT, json!({ "id": audit })).await;
        let d = read.ok()["assetAudit"]["discrepancies"].clone();
        assert_eq!(
            d,
            json!([
                { "kind": "MISSING", "vehicleId": c.to_string(), "findingId": null,
                  "plate": "粤B10003", "vin": vin_for("粤B10003") },
                { "kind": "UNLISTED", "vehicleId": g.to_string(), "findingId": finding_g,
                  "plate": "粤A20001", "vin": vin_for("粤A20001") },
                { "kind": "UNLISTED", "vehicleId": null, "findingId": unknown,
                  "plate": "粤B99999", "vin": null },
            ])
        );

        // Closed: nothing more is recorded, and closing again changes nothing.
        let events = audit_events(&app, &audit).await;
        let late = record(
            &app,
            &crew.sz_staff,
            &audit,
            finding(Some("粤B10003"), None, 1, &[]),
        )
        .await;
        assert_eq!(late.code(), Some("AUDIT_CLOSED"));
        let again = app.gql(&crew.admin, CLOSE, json!({ "a": audit })).await;
        assert_eq!(again.code(), Some("AUDIT_CLOSED"));
        assert_eq!(
            count_of(
                &app,
                "select count(*) from asset_audit_finding where audit_id = $1",
                &audit
            )
            .await,
            4
        );
        assert_eq!(
            count_of(
                &app,
                "select count(*) from asset_audit_discrepancy where audit_id = $1",
                &audit
            )
            .await,
            3
        );
        assert_eq!(audit_events(&app, &audit).await, events);
        let after = app.gql(&crew.sz_staff, AUDIT, json!({ "id": audit })).await;
        assert_eq!(after.ok()["assetAudit"]["closedAt"], cl["closedAt"]);
        assert_eq!(after.ok()["assetAudit"]["foundCount"], 2);

        let listed = app
            .gql(
                &crew.admin,
                AUDITS,
                json!({ "s": "CLOSED", "b": crew.sz.to_string() }),
            )
            .await;
        assert_eq!(ids(&listed.ok()["assetAudits"]), [audit.as_str()]);
        let open_ones = app
            .gql(&crew.sz_staff, AUDITS, json!({ "s": "OPEN" }))
            .await;
        assert_eq!(open_ones.ok()["assetAudits"], json!([]));
        assert!(
            app.count("select count(*) from audit_log where action like 'asset_audit.%'")
                .await
                >= 2
        );
    }
);

both!(
    audit_progress_streams_each_finding_and_resumes_after_a_reconnect,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        app.vehicle(crew.tenant, crew.sz, "粤B10001").await;
        app.vehicle(crew.tenant, crew.sz, "粤B10002").await;
        let audit = open(&app, &crew, "盘点").await;

        let mut ws = app.ws(&crew.sz_staff).await;
        ws.subscribe("p", PROGRESS, json!({ "a": audit })).await;
        let now = ws.data("p").await["auditProgress"].clone();
        assert_eq!(now["eventId"], Value::Null);
        assert_eq!(
            (now["listedCount"].as_i64(), now["foundCount"].as_i64()),
            (Some(2), Some(0))
        );
        assert_eq!(now["status"], "OPEN");

        record(
            &app,
            &crew.sz_colleague,
            &audit,
            finding(Some("粤B10001"), None, 100, &[]),
        )
        .await
        .ok();
        let first = ws.data("p").await["auditProgress"].clone();
        assert_eq!(first["foundCount"], 1);
        assert_eq!(first["progress"], 0.5);
        assert_eq!(first["lastFinding"]["plate"], "粤B10001");
        assert_eq!(first["lastFinding"]["mileageKm"], 100);
        assert_eq!(first["auditId"], audit.as_str());
        let first_id = first["eventId"].as_str().unwrap().to_owned();

        // The phone goes to the background; meanwhile a finding and the close.
        drop(ws);
        record(
            &app,
            &crew.sz_colleague,
            &audit,
            finding(Some("粤B77777"), None, 5, &[]),
        )
        .await
        .ok();
        record(
            &app,
            &crew.sz_colleague,
            &audit,
            finding(Some("粤B10002"), None, 200, &[]),
        )
        .await
        .ok();
        app.gql(&crew.admin, CLOSE, json!({ "a": audit }))
            .await
            .ok();

        let mut ws = app.ws(&crew.sz_staff).await;
        ws.subscribe("p", PROGRESS, json!({ "a": audit, "after": first_id }))
            .await;
        let unlisted = ws.data("p").await["auditProgress"].clone();
        assert_eq!(
            (
                unlisted["foundCount"].as_i64(),
                unlisted["unlistedCount"].as_i64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(unlisted["lastFinding"]["listed"], false);
        let second = ws.data("p").await["auditProgress"].clone();
        assert_eq!(second["foundCount"], 2);
        assert_eq!(second["lastFinding"]["plate"], "粤B10002");
        let closed = ws.data("p").await["auditProgress"].clone();
        assert_eq!(closed["status"], "CLOSED");
        assert_eq!(closed["lastFinding"], Value::Null);
        assert_eq!(closed["progress"], 1.0);
        let ids: Vec<i64> = [&first, &unlisted, &second, &closed]
            .iter()
            .map(|e| e["eventId"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        ws.quiet().await;

        // Operators follow it too; GZ staff, another company and drivers may not.
        let mut op = app.ws(&crew.admin).await;
        op.subscribe("p", PROGRESS, json!({ "a": audit })).await;
        assert_eq!(op.data("p").await["auditProgress"]["status"], "CLOSED");
        for (token, code) in [
            (&crew.gz_staff, "NOT_FOUND"),
            (&crew.stranger, "NOT_FOUND"),
            (&crew.driver, "FORBIDDEN"),
        ] {
            let mut ws = app.ws(token).await;
            ws.subscribe("p", PROGRESS, json!({ "a": audit })).await;
            let m = ws.recv().await.unwrap();
            assert_eq!(m["payload"]["errors"][0]["extensions"]["code"], code, "{m}");
        }
    }
);

both!(
    two_staff_recording_at_once_lose_no_count,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let plates: Vec<String> = (0..8).map(|i| format!("粤B3000{i}")).collect();
        for p in &plates {
            app.vehicle(crew.tenant, crew.sz, p).await;
        }
        let audit = open(&app, &crew, "并发盘点").await;
        let tasks = plates.iter().enumerate().map(|(i, p)| {
            let token = if i % 2 == 0 {
                &crew.sz_staff
            } else {
                &crew.sz_colleague
            };
            record(
                &app,
                token,
                &audit,
                finding(Some(p.as_str()), None, 1_000, &[]),
            )
        });
        for r in futures_util::future::join_all(tasks).await {
            r.ok();
        }
        let read = app.gql(&crew.admin, AUDIT, json!({ "id": audit })).await;
        let a = read.ok()["assetAudit"].clone();
        assert_eq!(
            (a["foundCount"].as_i64(), a["missingCount"].as_i64()),
            (Some(8), Some(0))
        );
        assert_eq!(a["findings"].as_array().unwrap().len(), 8);
        // Each finding's event carries its own count: 1 to 8, none lost, none twice.
        let mut c = app.db().conn().await.unwrap();
        let payloads: Vec<sqlx::types::Json<Value>> = minigate_store::fetch_all!(
            &mut c,
            (sqlx::types::Json<Value>,),
            "select payload from outbox_event where topic = $1",
            format!("audit:{audit}")
        )
        .unwrap()
        .into_iter()
        .map(|(p,)| p)
        .collect();
        let mut counts: Vec<i64> = payloads
            .iter()
            .map(|p| p.0["audit"]["found_count"].as_i64().unwrap())
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=8).collect::<Vec<i64>>());
    }
);

both!(
    bad_findings_and_openings_are_refused_and_store_nothing,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        app.vehicle(crew.tenant, crew.sz, "粤B10001").await;
        app.vehicle(crew.tenant, crew.sz, "粤B10002").await;
        let audit = open(&app, &crew, "盘点").await;

        let cases = [
            (finding(None, None, 1, &[]), "INVALID_INPUT", Some("plate")),
            (
                finding(Some("B10001"), None, 1, &[]),
                "INVALID_INPUT",
                Some("plate"),
            ),
            (
                finding(None, Some("LSVAU2180N2183294"), 1, &[]),
                "INVALID_INPUT",
                Some("vin"),
            ),
            (
                finding(Some("粤B10001"), None, -5, &[]),
                "INVALID_INPUT",
                Some("mileageKm"),
            ),
            (
                finding(Some("粤B10001"), Some(&vin_for("粤B10002")), 1, &[]),
                "INVALID_INPUT",
                Some("vin"),
            ),
        ];
        for (input, code, f) in cases {
            let r = record(&app, &crew.sz_staff, &audit, input.clone()).await;
            assert_eq!((r.code(), field(&r)), (Some(code), f), "{input}");
        }
        // Not a missing field in GraphQL's sense, but the schema refuses a missing condition.
        let r = record(
            &app,
            &crew.sz_staff,
            &audit,
            json!({ "plate": "粤B10001", "mileageKm": 1 }),
        )
        .await;
        assert_eq!(r.code(), Some("GRAPHQL_VALIDATION_FAILED"));

        // Who: GZ staff, another company, a driver.
        let ok_input = finding(Some("粤B10001"), None, 1, &[]);
        for (token, code) in [
            (&crew.gz_staff, "FORBIDDEN"),
            (&crew.stranger, "NOT_FOUND"),
            (&crew.driver, "FORBIDDEN"),
        ] {
            let r = record(&app, token, &audit, ok_input.clone()).await;
            assert_eq!(r.code(), Some(code));
        }
        let nowhere = record(
            &app,
            &crew.sz_staff,
            &Id::new().to_string(),
            ok_input.clone(),
        )
        .await;
        assert_eq!(nowhere.code(), Some("NOT_FOUND"));

        // Photos: someone else's, of the wrong purpose, not processed.
        let far = photo(&app, &crew.gz_staff, "audit").await;
        let invoice = photo(&app, &crew.sz_staff, "invoice").await;
        let pending = photo(&app, &crew.sz_staff, "audit").await;
        let mut c = app.db().conn().await.unwrap();
        let pending_id: Id = pending.parse().unwrap();
        minigate_store::execute!(
            &mut c,
            "update media set status = 'PROCESSING' where id = $1",
            pending_id
        )
        .unwrap();
        drop(c);
        let stranger_photo = photo(&app, &crew.stranger, "audit").await;
        for (p, code) in [
            (&far, "MEDIA_NOT_FOUND"),
            (&stranger_photo, "MEDIA_NOT_FOUND"),
            (&invoice, "MEDIA_PURPOSE_INVALID"),
            (&pending, "MEDIA_NOT_READY"),
        ] {
            let r = record(
                &app,
                &crew.sz_staff,
                &audit,
                finding(Some("粤B10001"), None, 1, &[p]),
            )
            .await;
            assert_eq!(r.code(), Some(code));
        }
        assert_eq!(
            app.count("select count(*) from asset_audit_finding").await,
            0
        );
        assert_eq!(app.count("select count(*) from record_photo").await, 0);
        assert_eq!(audit_events(&app, &audit).await, 0);
        let read = app.gql(&crew.admin, AUDIT, json!({ "id": audit })).await;
        assert_eq!(read.ok()["assetAudit"]["foundCount"], 0);

        // Opening: operators only, a branch of this company, a title.
        let sz = crew.sz.to_string();
        let other_branch = app.branch(crew.other_tenant, "HQ").await.to_string();
        for (token, vars, code, f) in [
            (
                &crew.sz_staff,
                json!({ "b": sz, "t": "x" }),
                "FORBIDDEN",
                None,
            ),
            (
                &crew.driver,
                json!({ "b": sz, "t": "x" }),
                "FORBIDDEN",
                None,
            ),
            (
                &crew.admin,
                json!({ "b": other_branch, "t": "x" }),
                "INVALID_INPUT",
                Some("branchId"),
            ),
            (
                &crew.admin,
                json!({ "b": "nope", "t": "x" }),
                "INVALID_INPUT",
                Some("branchId"),
            ),
            (
                &crew.admin,
                json!({ "b": sz, "t": "  " }),
                "INVALID_INPUT",
                Some("title"),
            ),
        ] {
            let r = app.gql(token, OPEN, vars).await;
            assert_eq!((r.code(), field(&r)), (Some(code), f));
        }
        assert_eq!(app.count("select count(*) from asset_audit").await, 1);
        assert_eq!(app.count("select count(*) from asset_audit_item").await, 2);
    }
);

both!(
    a_retried_opening_or_finding_files_once,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        app.vehicle(crew.tenant, crew.sz, "粤B10001").await;
        let vars = json!({ "b": crew.sz.to_string(), "t": "盘点", "k": "open-retry-0001" });
        let (one, two) = tokio::join!(
            app.gql(&crew.admin, OPEN, vars.clone()),
            app.gql(&crew.admin, OPEN, vars.clone())
        );
        let audit = one.ok()["openAssetAudit"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(two.ok()["openAssetAudit"]["id"], audit.as_str());
        let other = app
            .gql(
                &crew.admin,
                OPEN,
                json!({ "b": crew.sz.to_string(), "t": "另一个", "k": "open-retry-0001" }),
            )
            .await;
        assert_eq!(other.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        assert_eq!(app.count("select count(*) from asset_audit").await, 1);
        assert_eq!(app.count("select count(*) from asset_audit_item").await, 1);

        let pic = photo(&app, &crew.sz_staff, "audit").await;
        let vars = json!({ "a": audit, "i": finding(Some("粤B10001"), None, 100, &[&pic]), "k": "find-retry-0001" });
        let (one, two) = tokio::join!(
            app.gql(&crew.sz_staff, RECORD, vars.clone()),
            app.gql(&crew.sz_staff, RECORD, vars.clone())
        );
        let id = one.ok()["recordAuditFinding"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(two.ok()["recordAuditFinding"]["id"], id.as_str());
        let three = app.gql(&crew.sz_staff, RECORD, vars).await;
        assert_eq!(three.ok()["recordAuditFinding"]["id"], id.as_str());
        let changed = app
            .gql(
                &crew.sz_staff,
                RECORD,
                json!({ "a": audit, "i": finding(Some("粤B10001"), None, 999, &[&pic]), "k": "find-retry-0001" }),
            )
            .await;
        assert_eq!(changed.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        assert_eq!(
            app.count("select count(*) from asset_audit_finding").await,
            1
        );
        assert_eq!(app.count("select count(*) from record_photo").await, 1);
        assert_eq!(audit_events(&app, &audit).await, 1);
        let read = app.gql(&crew.sz_staff, AUDIT, json!({ "id": audit })).await;
        assert_eq!(read.ok()["assetAudit"]["findings"][0]["mileageKm"], 100);
        // After the close, a retry of a finding still answers what it recorded.
        app.gql(&crew.admin, CLOSE, json!({ "a": audit }))
            .await
            .ok();
        let retry = app
            .gql(
                &crew.sz_staff,
                RECORD,
                json!({ "a": audit, "i": finding(Some("粤B10001"), None, 100, &[&pic]), "k": "find-retry-0001" }),
            )
            .await;
        assert_eq!(retry.ok()["recordAuditFinding"]["id"], id.as_str());
    }
);
