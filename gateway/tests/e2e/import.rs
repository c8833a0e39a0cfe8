use serde_json::json;

use crate::support::{TestApp, id_number, vin_for};

const IMPORT: &str = "mutation($k: ImportKind!, $c: String!, $m: ImportMode!, $d: Boolean!) {
    importRegistryCsv(kind: $k, csv: $c, mode: $m, dryRun: $d) {
        totalRows inserted updated unchanged applied rejected { line field code message } } }";

fn vehicles_csv() -> String {
    format!(
        "\u{feff}plate,vin,branch_code,model,status\n粤B10001,{},SZ,BYD Qin,AVAILABLE\n粤B10002,{},SZ,,RENTED\nB10003,{},SZ,,\n粤B10004,{},XX,,\n粤B10001,{},SZ,,\n",
        vin_for("1"),
        vin_for("2"),
        vin_for("3"),
        vin_for("4"),
        vin_for("5")
    )
}

both!(
    an_import_with_bad_rows_writes_nothing_unless_told_to_skip_them,
    |app: TestApp| async move {
        let (t, token) = app.admin("acme").await;
        app.branch(t, "SZ").await;
        let csv = vehicles_csv();
        let all = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "VEHICLES", "c": csv, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let rep = &all.ok()["importRegistryCsv"];
        assert_eq!(rep["totalRows"], 5);
        assert_eq!(rep["applied"], false);
        let rejected = rep["rejected"].as_array().unwrap();
        let lines: Vec<i64> = rejected
            .iter()
            .map(|r| r["line"].as_i64().unwrap())
            .collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert_eq!(rejected[0]["field"], "plate");
        assert_eq!(rejected[1]["field"], "branch_code");
        assert_eq!(rejected[2]["field"], "plate");
        assert_eq!(app.count("select count(*) from vehicle").await, 0);

        let dry = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "VEHICLES", "c": csv, "m": "SKIP_INVALID", "d": true }),
            )
            .await;
        assert_eq!(dry.ok()["importRegistryCsv"]["inserted"], 2);
        assert_eq!(app.count("select count(*) from vehicle").await, 0);

        let skip = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "VEHICLES", "c": csv, "m": "SKIP_INVALID", "d": false }),
            )
            .await;
        let rep = &skip.ok()["importRegistryCsv"];
        assert_eq!(
            (rep["inserted"].as_i64(), rep["applied"].as_bool()),
            (Some(2), Some(true))
        );
        assert_eq!(app.count("select count(*) from vehicle").await, 2);

        // The same file again changes nothing.
        let again = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "VEHICLES", "c": csv, "m": "SKIP_INVALID", "d": false }),
            )
            .await;
        let rep = &again.ok()["importRegistryCsv"];
        assert_eq!(
            (rep["inserted"].as_i64(), rep["unchanged"].as_i64()),
            (Some(0), Some(2))
        );
    }
);

both!(
    drivers_import_links_vehicles_and_refuses_a_phone_of_another_driver,
    |app: TestApp| async move {
        let (t, token) = app.admin("acme").await;
        let b = app.branch(t, "SZ").await;
        app.vehicle(t, b, "粤B20001").await;
        app.driver(t, b, "13700000000", &id_number(900)).await;
        let csv = format!(
            "name,phone,id_number,branch_code,plate\n王芳,13800000001,{},SZ,粤B20001\n刘洋,13700000000,{},SZ,\n",
            id_number(1),
            id_number(2)
        );
        let r = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "DRIVERS", "c": csv, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        let rep = &r.ok()["importRegistryCsv"];
        assert_eq!(rep["applied"], false);
        assert_eq!(rep["rejected"][0]["line"], 3);
        assert_eq!(rep["rejected"][0]["code"], "ALREADY_EXISTS");
        assert_eq!(app.count("select count(*) from driver").await, 1);
        let missing = app
        .gql(&token, IMPORT, json!({ "k": "DRIVERS", "c": "name,phone\n王芳,13800000001\n", "m": "ALL_OR_NOTHING", "d": false }))
        .await;
        assert_eq!(missing.code(), Some("INVALID_INPUT"));
        let csv_ok = format!(
            "name,phone,id_number,branch_code,plate\n王芳,13800000001,{},SZ,粤B20001\n",
            id_number(1)
        );
        let ok = app
            .gql(
                &token,
                IMPORT,
                json!({ "k": "DRIVERS", "c": csv_ok, "m": "ALL_OR_NOTHING", "d": false }),
            )
            .await;
        assert_eq!(ok.ok()["importRegistryCsv"]["inserted"], 1);
        let list = app
            .gql(
                &token,
                "{ drivers { items { name vehicle { plate } } } }",
                json!({}),
            )
            .await;
        let names: Vec<_> = list.ok()["drivers"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(
            list.ok()["drivers"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["vehicle"]["plate"] == "粤B20001")
        );
    }
);

/// The CLI import: progress, a report, exit code 2 and nothing written when a row is bad.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_import_reports_rejected_rows_and_writes_nothing() {
    let app = TestApp::spawn(false, |_c: &mut minigate_gateway::config::Config| {})
        .await
        .unwrap();
    let t = app.tenant("acme").await;
    app.branch(t, "SZ").await;
    let file = app.dir.join("vehicles.csv");
    std::fs::write(&file, vehicles_csv()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["import", "vehicles", "--tenant", "acme", "--file"])
        .arg(&file)
        .env("DATABASE_URL", app.test_db.url())
        .env("MINIGATE_LOG_FORMAT", "pretty")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("line 4: INVALID_INPUT plate"), "{stdout}");
    assert!(stdout.contains("nothing written"), "{stdout}");
    assert_eq!(app.count("select count(*) from vehicle").await, 0);
}
