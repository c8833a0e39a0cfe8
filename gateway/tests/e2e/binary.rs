use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

/// `minigate serve` with no configuration starts on an embedded SQLite file under `./data/`,
/// and SIGTERM lets a request already in flight finish before the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_on_embedded_defaults_and_drains_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("minigate-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    drains_on_sigterm(&dir, None).await;
    assert!(dir.join("data/minigate.db").exists());
    assert!(dir.join("data/jwt.secret").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same on PostgreSQL and Redis: the dispatcher and its LISTEN connection stop with the
/// service instead of holding it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_on_sigterm_with_postgres_and_redis() {
    let (Ok(pg), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this: set DATABASE_URL and REDIS_URL"
        );
        return;
    };
    let db = minigate_store::testing::TestDb::postgres(&pg)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("minigate-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    drains_on_sigterm(&dir, Some((db.url(), redis))).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn drains_on_sigterm(dir: &std::path::Path, servers: Option<(String, String)>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minigate"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    if let Some((db, redis)) = servers {
        cmd.env("DATABASE_URL", db).env("REDIS_URL", redis).env(
            "MINIGATE_REDIS_PREFIX",
            format!("bin:{}:", uuid::Uuid::new_v4().simple()),
        );
    }
    let (mut child, addr) = crate::support::spawn_minigate(cmd).await;

    let body = br#"{"query":"{ __typename }"}"#;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: minigate\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    conn.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"__typename\":\"Query\""), "{answer}");

    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect(&addr).await.is_err());
}
