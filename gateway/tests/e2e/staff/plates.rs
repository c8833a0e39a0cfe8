//! Plate registration and inspection (验车上牌): the workflow, the registry's plate at the
//! end, who may do what, bad input.

use minigate_store::Id;
use serde_json::{Value, json};

use super::{count_of, crew, field, ids, photo};
use crate::support::{Resp, TestApp};

const REGISTER: &str = "mutation($i: PlateRegistrationInput!, $k: String) {
    registerPlate(input: $i, idempotencyKey: $k) {
        id status plate previousPlate note vehicle { id plate } branch { code }
        certificatePhotos { role media { id } } inspectionPhotos { role media { id } }
        timeline { status actorId note } } }";

const ADVANCE: &str = "mutation($id: ID!, $to: PlateRegistrationStatus!, $n: String) {
    advancePlateRegistration(id: $id, to: $to, note: $n) {
        id status rejectReason timeline { status note } } }";

const ONE: &str = "query($id: ID!) { plateRegistration(id: $id) {
    id status plate rejectReason timeline { status } certificatePhotos { media { id } } } }";

const LIST: &str = "query($b: ID, $s: PlateRegistrationStatus) {
    plateRegistrations(branchId: $b, status: $s) { id status } }";

const VEHICLE: &str = "query($id: ID!) { vehicle(id: $id) { plate } }";

fn input(vehicle: Id, plate: &str, certificates: &[&str], inspections: &[&str]) -> Value {
    json!({ "vehicleId": vehicle.to_string(), "plate": plate,
            "certificatePhotoIds": certificates, "inspectionPhotoIds": inspections })
}

async fn register(app: &TestApp, token: &str, i: Value) -> Resp {
    app.gql(token, REGISTER, json!({ "i": i })).await
}

async fn advance(app: &TestApp, token: &str, id: &str, to: &str, note: Option<&str>) -> Resp {
    app.gql(token, ADVANCE, json!({ "id": id, "to": to, "n": note }))
        .await
}

async fn plate_of(app: &TestApp, token: &str, vehicle: Id) -> String {
    let r = app
        .gql(token, VEHICLE, json!({ "id": vehicle.to_string() }))
        .await;
    r.ok()["vehicle"]["plate"].as_str().unwrap().to_owned()
}

both!(
    a_plate_registration_moves_forward_and_gives_the_vehicle_its_plate,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let car = app.vehicle(crew.tenant, crew.sz, "粤BLS001").await;
        let cert = photo(&app, &crew.sz_staff, "certificate").await;
        let insp = photo(&app, &crew.sz_staff, "inspection").await;
        let mut i = input(car, "粤b·d88888", &[&cert], &[&insp]);
        i["note"] = json!(" 新车上牌 ");
        let r = register(&app, &crew.sz_staff, i).await;
        let reg = r.ok()["registerPlate"].clone();
        assert_eq!(reg["status"], "SUBMITTED");
        assert_eq!(reg["plate"], "粤BD88888");
        assert_eq!(reg["previousPlate"], "粤BLS001");
        assert_eq!(reg["note"], "新车上牌");
        assert_eq!(reg["vehicle"]["id"], car.to_string());
        assert_eq!(reg["branch"]["code"], "SZ");
        assert_eq!(reg["certificatePhotos"][0]["role"], "CERTIFICATE");
        assert_eq!(reg["certificatePhotos"][0]["media"]["id"], cert.as_str());
        assert_eq!(reg["inspectionPhotos"][0]["role"], "INSPECTION");
        assert_eq!(reg["inspectionPhotos"][0]["media"]["id"], insp.as_str());
        assert_eq!(reg["timeline"][0]["status"], "SUBMITTED");
        let id = reg["id"].as_str().unwrap().to_owned();

        // Staff do not move it; an operator cannot skip a step or go back.
        let staff = advance(&app, &crew.sz_staff, &id, "INSPECTED", None).await;
        assert_eq!(staff.code(), Some("FORBIDDEN"));
        let skip = advance(&app, &crew.admin, &id, "PLATED", None).await;
        assert_eq!(skip.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"));
        let back = advance(&app, &crew.admin, &id, "SUBMITTED", None).await;
        assert_eq!(back.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"));
        let read = app.gql(&crew.sz_staff, ONE, json!({ "id": id })).await;
        assert_eq!(read.ok()["plateRegistration"]["status"], "SUBMITTED");
        assert_eq!(
            read.ok()["plateRegistration"]["timeline"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        for (to, note) in [
            ("INSPECTED", Some("验车通过")),
            ("PLATED", None),
            ("COMPLETED", None),
        ] {
            let r = advance(&app, &crew.admin, &id, to, note).await;
            assert_eq!(r.ok()["advancePlateRegistration"]["status"], to);
        }
        assert_eq!(plate_of(&app, &crew.sz_staff, car).await, "粤BD88888");
        let read = app.gql(&crew.sz_staff, ONE, json!({ "id": id })).await;
        let statuses: Vec<&str> = read.ok()["plateRegistration"]["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["SUBMITTED", "INSPECTED", "PLATED", "COMPLETED"]);
        let late = advance(&app, &crew.admin, &id, "REJECTED", Some("晚了")).await;
        assert_eq!(late.code(), Some("WORKFLOW_STEP_OUT_OF_ORDER"));

        // Lists and reads follow the branch.
        let listed = app
            .gql(&crew.sz_staff, LIST, json!({ "s": "COMPLETED" }))
            .await;
        assert_eq!(ids(&listed.ok()["plateRegistrations"]), [id.as_str()]);
        let far = app.gql(&crew.gz_staff, LIST, json!({})).await;
        assert_eq!(far.ok()["plateRegistrations"], json!([]));
        let far = app
            .gql(&crew.gz_staff, LIST, json!({ "b": crew.sz.to_string() }))
            .await;
        assert_eq!(far.code(), Some("FORBIDDEN"));
        let far = app.gql(&crew.gz_staff, ONE, json!({ "id": id })).await;
        assert_eq!(far.code(), Some("NOT_FOUND"));
        let stranger = app.gql(&crew.stranger, ONE, json!({ "id": id })).await;
        assert_eq!(stranger.code(), Some("NOT_FOUND"));
        let driver = app.gql(&crew.driver, LIST, json!({})).await;
        assert_eq!(driver.code(), Some("FORBIDDEN"));
        assert_eq!(
            app.count("select count(*) from audit_log where action = 'vehicle.plate'")
                .await,
            1
        );
    }
);

both!(
    a_plate_taken_meanwhile_stops_the_completion_and_changes_nothing,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let car = app.vehicle(crew.tenant, crew.sz, "粤BLS001").await;
        let cert = photo(&app, &crew.admin, "certificate").await;
        let r = register(&app, &crew.admin, input(car, "粤B66666", &[&cert], &[])).await;
        let id = r.ok()["registerPlate"]["id"].as_str().unwrap().to_owned();
        for to in ["INSPECTED", "PLATED"] {
            advance(&app, &crew.admin, &id, to, None).await.ok();
        }
        // Another vehicle of the company got that plate in the meantime.
        app.vehicle(crew.tenant, crew.gz, "粤B66666").await;
        let done = advance(&app, &crew.admin, &id, "COMPLETED", None).await;
        assert_eq!(
            (done.code(), field(&done)),
            (Some("ALREADY_EXISTS"), Some("plate"))
        );
        let read = app.gql(&crew.admin, ONE, json!({ "id": id })).await;
        assert_eq!(read.ok()["plateRegistration"]["status"], "PLATED");
        assert_eq!(
            read.ok()["plateRegistration"]["timeline"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(plate_of(&app, &crew.admin, car).await, "粤BLS001");
        assert_eq!(
            app.count("select count(*) from audit_log where action = 'vehicle.plate'")
                .await,
            0
        );

        // It is rejected instead, with its reason.
        let no_reason = advance(&app, &crew.admin, &id, "REJECTED", Some("  ")).await;
        assert_eq!(
            (no_reason.code(), field(&no_reason)),
            (Some("INVALID_INPUT"), Some("note"))
        );
        let rejected = advance(&app, &crew.admin, &id, "REJECTED", Some("号牌已被占用")).await;
        let r = rejected.ok()["advancePlateRegistration"].clone();
        assert_eq!(r["status"], "REJECTED");
        assert_eq!(r["rejectReason"], "号牌已被占用");
        assert_eq!(r["timeline"][3]["note"], "号牌已被占用");
        // A new registration of the vehicle may start once that one ended.
        let again = register(&app, &crew.admin, input(car, "粤B66667", &[&cert], &[])).await;
        assert_eq!(again.ok()["registerPlate"]["status"], "SUBMITTED");
    }
);

both!(
    bad_plate_registrations_are_refused_and_store_nothing,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let car = app.vehicle(crew.tenant, crew.sz, "粤BLS001").await;
        let gz_car = app.vehicle(crew.tenant, crew.gz, "粤ALS002").await;
        app.vehicle(crew.tenant, crew.gz, "粤B55555").await;
        let hq = app.branch(crew.other_tenant, "HQ").await;
        let foreign_car = app.vehicle(crew.other_tenant, hq, "粤BLS009").await;
        let cert = photo(&app, &crew.sz_staff, "certificate").await;
        let far_cert = photo(&app, &crew.gz_staff, "certificate").await;
        let audit_pic = photo(&app, &crew.sz_staff, "audit").await;
        let pending = photo(&app, &crew.sz_staff, "certificate").await;
        let mut c = app.db().conn().await.unwrap();
        let pending_id: Id = pending.parse().unwrap();
        minigate_store::execute!(
            &mut c,
            "update media set status = 'PROCESSING' where id = $1",
            pending_id
        )
        .unwrap();
        drop(c);

        let cases: Vec<(&String, Value, &str, Option<&str>)> = vec![
            (
                &crew.sz_staff,
                input(gz_car, "粤B77777", &[&cert], &[]),
                "FORBIDDEN",
                None,
            ),
            (
                &crew.driver,
                input(car, "粤B77777", &[&cert], &[]),
                "FORBIDDEN",
                None,
            ),
            (
                &crew.admin,
                input(foreign_car, "粤B77777", &[&cert], &[]),
                "INVALID_INPUT",
                Some("vehicleId"),
            ),
            (
                &crew.sz_staff,
                input(car, "粤Z", &[&cert], &[]),
                "INVALID_INPUT",
                Some("plate"),
            ),
            (
                &crew.sz_staff,
                input(car, "粤B77777", &[], &[]),
                "INVALID_INPUT",
                Some("certificatePhotoIds"),
            ),
            (
                &crew.sz_staff,
                input(car, "粤B77777", &[&cert], &[&cert]),
                "INVALID_INPUT",
                Some("inspectionPhotoIds"),
            ),
            (
                &crew.sz_staff,
                input(car, "粤B55555", &[&cert], &[]),
                "ALREADY_EXISTS",
                Some("plate"),
            ),
            (
                &crew.sz_staff,
                input(car, "粤B77777", &[&far_cert], &[]),
                "MEDIA_NOT_FOUND",
                None,
            ),
            (
                &crew.sz_staff,
                input(car, "粤B77777", &[&audit_pic], &[]),
                "MEDIA_PURPOSE_INVALID",
                None,
            ),
            (
                &crew.sz_staff,
                input(car, "粤B77777", &[&pending], &[]),
                "MEDIA_NOT_READY",
                None,
            ),
        ];
        for (token, i, code, f) in cases {
            let r = register(&app, token, i.clone()).await;
            assert_eq!((r.code(), field(&r)), (Some(code), f), "{i}");
        }
        assert_eq!(
            app.count("select count(*) from plate_registration").await,
            0
        );
        assert_eq!(app.count("select count(*) from record_photo").await, 0);
        assert_eq!(app.count("select count(*) from workflow_step").await, 0);

        // A retry with the same key files once; the same key with other input is refused.
        let vars = json!({ "i": input(car, "粤B77777", &[&cert], &[]), "k": "plate-retry-0001" });
        let (one, two) = tokio::join!(
            app.gql(&crew.sz_staff, REGISTER, vars.clone()),
            app.gql(&crew.sz_staff, REGISTER, vars.clone())
        );
        let id = one.ok()["registerPlate"]["id"].as_str().unwrap().to_owned();
        assert_eq!(two.ok()["registerPlate"]["id"], id.as_str());
        let other = app
            .gql(
                &crew.sz_staff,
                REGISTER,
                json!({ "i": input(car, "粤B77778", &[&cert], &[]), "k": "plate-retry-0001" }),
            )
            .await;
        assert_eq!(other.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        // One registration under way per vehicle.
        let second = register(&app, &crew.sz_staff, input(car, "粤B77779", &[&cert], &[])).await;
        assert_eq!(
            (second.code(), field(&second)),
            (Some("ALREADY_EXISTS"), Some("vehicleId"))
        );
        assert_eq!(
            app.count("select count(*) from plate_registration").await,
            1
        );
        assert_eq!(
            count_of(
                &app,
                "select count(*) from record_photo where record_id = $1",
                &id
            )
            .await,
            1
        );
        assert_eq!(app.count("select count(*) from workflow_step").await, 1);
        // Another company cannot move it.
        let stranger = advance(&app, &crew.stranger, &id, "INSPECTED", None).await;
        assert_eq!(stranger.code(), Some("NOT_FOUND"));
        let read = app.gql(&crew.admin, ONE, json!({ "id": id })).await;
        assert_eq!(read.ok()["plateRegistration"]["status"], "SUBMITTED");
    }
);
