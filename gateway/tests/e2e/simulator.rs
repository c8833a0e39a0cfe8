//! The development payment simulator, through the real binary: a tenant given simulated
//! accounts pays a bill by opening the QR's URL, and the signed callback credits it. Production
//! mode refuses the simulator and refuses to start with a merchant key it cannot read.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use tokio::process::Command;

fn minigate(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minigate"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("MINIGATE_LOG_FORMAT", "json");
    cmd
}

async fn run(dir: &Path, args: &[&str]) -> String {
    let out = minigate(dir).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn gql(
    http: &reqwest::Client,
    addr: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> Value {
    let mut req = http
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": vars }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await.unwrap().json().await.unwrap();
    assert!(v.get("errors").is_none(), "{v}");
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_is_paid_through_the_simulator_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("minigate-sim-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    run(
        &dir,
        &[
            "tenant",
            "create",
            "--slug",
            "demo",
            "--name",
            "Demo Leasing",
        ],
    )
    .await;
    run(
        &dir,
        &[
            "user",
            "create",
            "--tenant",
            "demo",
            "--role",
            "admin",
            "--phone",
            "13900000001",
            "--password",
            "change me now",
        ],
    )
    .await;
    let said = run(&dir, &["tenant", "simulate-payments", "--tenant", "demo"]).await;
    assert!(said.contains("simulator"), "{said}");
    let bill_out = run(
        &dir,
        &[
            "bill",
            "create",
            "--tenant",
            "demo",
            "--kind",
            "purchase",
            "--title",
            "Helmet",
            "--amount-yuan",
            "88.50",
            "--due",
            "2026-12-01",
            "--payer-name",
            "Walk-in",
        ],
    )
    .await;
    let bill = bill_out
        .split_whitespace()
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no bill id in {bill_out:?}"))
        .to_owned();

    let mut cmd = minigate(&dir);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut child, addr) = crate::support::spawn_minigate(cmd).await;
    let http = reqwest::Client::new();
    let login = gql(&http, &addr, None, "mutation { loginWithPassword(tenant: \"demo\", phone: \"13900000001\", password: \"change me now\") { accessToken } }", json!({})).await;
    let token = login["loginWithPassword"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    for channel in ["WECHAT_NATIVE", "ALIPAY_QR"] {
        let bill = if channel == "WECHAT_NATIVE" {
            bill.clone()
        } else {
            let b = gql(&http, &addr, Some(&token), "mutation { createBill(input: { kind: DEPOSIT, title: \"Deposit\", amountFen: 300000, dueDate: \"2026-12-01\", payerName: \"Walk-in\" }) { id } }", json!({})).await;
            b["createBill"]["id"].as_str().unwrap().to_owned()
        };
        let p = gql(&http, &addr, Some(&token), "mutation($b: ID!, $c: PaymentChannel!) { createPayment(billId: $b, channel: $c) { id status codeUrl } }", json!({ "b": bill, "c": channel })).await;
        let p = &p["createPayment"];
        let url = p["codeUrl"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("http://{addr}/simulator/")),
            "{url}"
        );
        // Scanning the QR: the simulator pays and sends its signed callback.
        let page = http.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let mut status = Value::Null;
        for _ in 0..50 {
            let now = gql(
                &http,
                &addr,
                Some(&token),
                "query($id: ID!) { payment(id: $id) { status } }",
                json!({ "id": p["id"] }),
            )
            .await;
            status = now["payment"]["status"].clone();
            if status == "PAID" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, "PAID", "{channel}");
    }
    let _ = child.kill().await;

    // Production refuses the simulator...
    let out = minigate(&dir)
        .args(["serve", "--production", "--listen", "127.0.0.1:0"])
        .env(
            "MINIGATE_JWT_SECRET",
            "0123456789abcdef0123456789abcdef0123",
        )
        .env("MINIGATE_PAYMENTS__SIMULATOR", "true")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulator"));
    // ...and a configured merchant whose key cannot be read.
    let sim = dir.join("data/simulator/demo");
    std::fs::remove_file(sim.join("merchant_key.pem")).unwrap();
    let out = minigate(&dir)
        .args(["serve", "--production", "--listen", "127.0.0.1:0"])
        .env(
            "MINIGATE_JWT_SECRET",
            "0123456789abcdef0123456789abcdef0123",
        )
        .env("MINIGATE_PAYMENTS__NOTIFY_BASE", "https://pay.example.com")
        .env("MINIGATE_MEDIA__PUBLIC_BASE", "https://api.example.com")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unusable payment keys"), "{err}");
    assert!(!err.contains("BEGIN"), "a key leaked into the log: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
