use std::{path::PathBuf, sync::Arc};

use minigate_fakes::{
    alipay::FakeAlipay, apns::FakeApns, fcm::FakeFcm, huawei::FakeHuawei, wechat::FakeWechat,
    wechat_pay::FakeWechatPay,
};
use minigate_gateway::{app, config::Config};
use minigate_resolvers::{
    Role, auth::create_password_user, registry::db as registry_db, tenant::db as tenant_db,
};
use minigate_store::{Db, Id, testing::TestDb};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-0123";
pub const PASSWORD: &str = "correct horse battery";

/// Runs a test on SQLite and, when `DATABASE_URL` is set, on PostgreSQL + Redis.
macro_rules! both {
    ($name:ident, $body:expr) => {
        both!($name, |_c: &mut minigate_gateway::config::Config| {}, $body);
    };
    ($name:ident, $tweak:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = crate::support::TestApp::spawn(false, $tweak).await.unwrap();
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if std::env::var("DATABASE_URL").is_err() {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI must run the PostgreSQL variant: set DATABASE_URL"
                    );
                    eprintln!("DATABASE_URL not set: PostgreSQL run skipped");
                    return;
                }
                let app = crate::support::TestApp::spawn(true, $tweak).await.unwrap();
                ($body)(app).await;
            }
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: Arc<app::State>,
    pub wechat: FakeWechat,
    /// WeChat Pay API v3, as the app's `payments.wechat_base`.
    pub wxpay: FakeWechatPay,
    /// The Alipay gateway, as the app's `payments.alipay_gateway`.
    pub alipay: FakeAlipay,
    /// FCM, APNs (production and sandbox) and Huawei, as the app's `app_push` hosts.
    pub fcm: FakeFcm,
    pub apns: FakeApns,
    pub apns_sandbox: FakeApns,
    pub huawei: FakeHuawei,
    pub test_db: TestDb,
    pub dir: PathBuf,
    pub servers: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A GraphQL answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
}

impl Resp {
    pub fn code(&self) -> Option<&str> {
        self.json["errors"][0]["extensions"]["code"].as_str()
    }
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            self.json.get("errors").is_none(),
            "unexpected errors: {}",
            self.json
        );
        assert_eq!(self.status, 200, "{}", self.json);
        &self.json["data"]
    }
}

/// On the servers run, photos go to a fresh bucket of the local S3-compatible server (`S3_URL`).
async fn use_s3(config: &mut Config) -> anyhow::Result<()> {
    let Ok(url) = std::env::var("S3_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the servers variant with S3: set S3_URL"
        );
        return Ok(());
    };
    let m = &mut config.media;
    m.storage = "s3".into();
    m.s3.endpoint = url;
    m.s3.bucket = format!("minigate-e2e-{}", uuid::Uuid::new_v4().simple());
    m.s3.access_key_id = std::env::var("S3_ACCESS_KEY_ID").unwrap_or_else(|_| "minigate".into());
    m.s3.secret_access_key = Some(SecretString::from(
        std::env::var("S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| "minigate-test-secret".into()),
    ));
    match minigate_gateway::media::storage(config)? {
        minigate_media::storage::Storage::S3(bucket) => bucket.create_bucket().await?,
        minigate_media::storage::Storage::Local(_) => anyhow::bail!("expected S3 storage"),
    }
    Ok(())
}

impl TestApp {
    pub async fn spawn(servers: bool, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        // `E2E_LOG=1` (with `RUST_LOG` as usual) shows the service's logs, for a failure's why.
        if std::env::var_os("E2E_LOG").is_some() {
            minigate_gateway::logging::init("pretty");
        }
        let test_db = if servers {
            TestDb::postgres(&std::env::var("DATABASE_URL")?).await?
        } else {
            TestDb::sqlite().await?
        };
        let dir = std::env::temp_dir().join(format!("minigate-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let wechat = FakeWechat::start().await;
        let mut config = Config {
            listen: "127.0.0.1:0".parse()?,
            database_url: test_db.url(),
            redis_url: if servers {
                std::env::var("REDIS_URL").ok()
            } else {
                None
            },
            redis_prefix: format!("e2e:{}:", uuid::Uuid::new_v4().simple()),
            data_dir: dir.clone(),
            jwt_secret: Some(SecretString::from(JWT_SECRET.to_owned())),
            ..Config::default()
        };
        config.wechat.api_base = wechat.base_url.clone();
        config.wechat.timeout_ms = 2_000;
        let wxpay = FakeWechatPay::start().await;
        let alipay = FakeAlipay::start().await;
        config.payments.wechat_base = Some(wxpay.base_url.clone());
        config.payments.alipay_gateway = Some(format!("{}/gateway.do", alipay.base_url));
        config.payments.timeout_ms = 3_000;
        // Tests that want the active query turn it on.
        config.payments.first_query_seconds = 3_600;
        let (fcm, apns, apns_sandbox, huawei) = (
            FakeFcm::start().await,
            FakeApns::start().await,
            FakeApns::start().await,
            FakeHuawei::start().await,
        );
        let p = &mut config.app_push;
        p.fcm_api_base = fcm.base_url.clone();
        p.apns_production = apns.base_url.clone();
        p.apns_sandbox = apns_sandbox.base_url.clone();
        p.huawei_oauth_url = format!("{}/oauth2/v3/token", huawei.base_url);
        p.huawei_api_base = huawei.base_url.clone();
        p.timeout_ms = 3_000;
        if servers {
            use_s3(&mut config).await?;
        }
        tweak(&mut config);
        // Bound first: the providers must be told where to send notifications.
        let (acceptor, addr) = app::bind(config.listen).await?;
        config.listen = addr;
        if config.payments.notify_base.is_none() {
            config.payments.notify_base = Some(format!("http://{addr}"));
        }
        let state = app::build(config.clone()).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app::serve(state.clone(), acceptor, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            state,
            wechat,
            wxpay,
            alipay,
            fcm,
            apns,
            apns_sandbox,
            huawei,
            test_db,
            dir,
            servers,
            stop: Some(stop),
        })
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub async fn post(&self, query: &str, variables: Value, token: Option<&str>) -> Resp {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.base))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let json = r.json().await.unwrap_or(Value::Null);
        Resp { status, json }
    }

    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Resp {
        self.post(query, variables, Some(token)).await
    }

    // ---- seeding ----

    pub async fn tenant(&self, slug: &str) -> Id {
        let mut c = self.db().conn().await.unwrap();
        tenant_db::insert_tenant(&mut c, slug, &format!("{slug} leasing"))
            .await
            .unwrap()
            .id
    }

    pub async fn branch(&self, tenant: Id, code: &str) -> Id {
        let mut c = self.db().conn().await.unwrap();
        registry_db::insert_branch(&mut c, tenant, code, &format!("branch {code}"))
            .await
            .unwrap()
    }

    pub async fn vehicle(&self, tenant: Id, branch: Id, plate: &str) -> Id {
        let mut c = self.db().conn().await.unwrap();
        let vin = vin_for(plate);
        registry_db::insert_vehicle(
            &mut c,
            tenant,
            &registry_db::VehicleFields {
                branch_id: branch,
                plate,
                vin: &vin,
                model: Some("BYD Qin"),
                status: "AVAILABLE",
            },
        )
        .await
        .unwrap()
    }

    pub async fn driver(&self, tenant: Id, branch: Id, phone: &str, id_number: &str) -> Id {
        let mut c = self.db().conn().await.unwrap();
        registry_db::insert_driver(
            &mut c,
            tenant,
            &registry_db::DriverFields {
                branch_id: branch,
                vehicle_id: None,
                name: "张伟",
                phone,
                id_number,
            },
        )
        .await
        .unwrap()
    }

    /// Creates a password user and signs them in; returns the access and refresh tokens.
    pub async fn password_user(
        &self,
        slug: &str,
        tenant: Id,
        role: Role,
        phone: &str,
        branch: Option<Id>,
    ) -> (String, String) {
        create_password_user(
            self.db(),
            tenant,
            None,
            role,
            phone,
            PASSWORD.into(),
            "someone",
            branch,
        )
        .await
        .unwrap();
        self.login_password(slug, phone).await
    }

    pub async fn login_password(&self, slug: &str, phone: &str) -> (String, String) {
        let r = self
            .post(
                "mutation($t: String!, $p: String!, $w: String!) { loginWithPassword(tenant: $t, phone: $p, password: $w) { accessToken refreshToken } }",
                json!({ "t": slug, "p": phone, "w": PASSWORD }),
                None,
            )
            .await;
        let d = &r.ok()["loginWithPassword"];
        (
            d["accessToken"].as_str().unwrap().to_owned(),
            d["refreshToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn admin(&self, slug: &str) -> (Id, String) {
        let t = self.tenant(slug).await;
        let (token, _) = self
            .password_user(slug, t, Role::Admin, "13900000001", None)
            .await;
        (t, token)
    }

    /// Registers a mini-program for `tenant` with WeChat (the fake) and the database.
    pub async fn mini_program(&self, tenant: Id, app_id: &str) {
        let secret = format!("secret-of-{app_id}");
        let path = self.dir.join(format!("{app_id}.secret"));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        self.wechat.add_app(app_id, &secret);
        let mut tx = self.db().begin().await.unwrap();
        tenant_db::upsert_app(
            &mut tx,
            tenant,
            tenant_db::MINIPROGRAM,
            app_id,
            "drivers",
            &format!("file:{}", path.display()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn login_wechat(&self, app_id: &str, openid: &str) -> Resp {
        let code = self
            .wechat
            .login_code(app_id, openid, Some(&format!("union-{openid}")));
        self.post(
            "mutation($a: String!, $c: String!) { loginWithWechat(appId: $a, code: $c) { accessToken refreshToken user { id role } } }",
            json!({ "a": app_id, "c": code }),
            None,
        )
        .await
    }

    /// A driver record (with `vehicle`, if any) bound to a WeChat user of mini-program `app_id`
    /// (registered first with [`TestApp::mini_program`]): (access token, driver id).
    pub async fn bound_driver(
        &self,
        app_id: &str,
        tenant: Id,
        branch: Id,
        vehicle: Option<Id>,
        phone: &str,
        serial: u32,
    ) -> (String, Id) {
        let d = self.driver(tenant, branch, phone, &id_number(serial)).await;
        if let Some(v) = vehicle {
            let mut c = self.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "update driver set vehicle_id = $1 where id = $2",
                v,
                d
            )
            .unwrap();
        }
        let login = self.login_wechat(app_id, &format!("openid-{phone}")).await;
        let token = login.ok()["loginWithWechat"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = self.wechat.phone_code(app_id, phone);
        let bound = self
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

    pub async fn count(&self, table_sql: &'static str) -> i64 {
        let mut c = self.db().conn().await.unwrap();
        minigate_store::fetch_scalar!(&mut c, i64, table_sql).unwrap()
    }
}

/// A syntactically valid VIN (ISO 3779 check digit) derived from any text.
pub fn vin_for(seed: &str) -> String {
    let alphabet: Vec<char> = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789".chars().collect();
    let mut h: u64 = 1469598103934665603;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    let mut chars: Vec<char> = (0..17)
        .map(|i| {
            h = h.rotate_left(7) ^ (i + 1);
            alphabet[usize::try_from(h % 33).unwrap()]
        })
        .collect();
    chars[0] = 'L';
    chars[8] = '0';
    let draft: String = chars.iter().collect();
    chars[8] = minigate_resolvers::validate::vin_check_digit(&draft).unwrap();
    chars.into_iter().collect()
}

/// Valid resident ID numbers (GB 11643 check character) for tests.
pub fn id_number(serial: u32) -> String {
    let base = format!("11010519900101{:03}", serial % 1000);
    let check = minigate_resolvers::validate::id_check_char(&base).unwrap();
    format!("{base}{check}")
}

/// A `graphql-transport-ws` client, as a mini-program would be.
pub struct Ws {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// Opens a socket to `base` (`http://host:port`) with the given subprotocol.
pub async fn ws_connect(
    base: &str,
    path: &str,
    protocol: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Ws { ws })
}

/// Connects to `base` and completes `connection_init` with `token`.
pub async fn ws_signed_in(base: &str, token: &str) -> Ws {
    let mut ws = ws_connect(base, "/graphql/ws", "graphql-transport-ws")
        .await
        .unwrap();
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
        .await;
    let ack = ws.recv().await.expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

impl TestApp {
    pub async fn ws_raw(&self, path: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        ws_connect(&self.base, path, "graphql-transport-ws").await
    }

    pub async fn ws(&self, token: &str) -> Ws {
        ws_signed_in(&self.base, token).await
    }

    /// Sends the shutdown signal, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub enum WsEvent {
    Message(Value),
    Closed(u16, String),
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                v.to_string().into(),
            ))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next protocol message or the close, answering pings on the way; `None` after 5 s.
    pub async fn event(&mut self) -> Option<WsEvent> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(WsEvent::Message(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(frame.map_or(WsEvent::Closed(1005, String::new()), |f| {
                        WsEvent::Closed(f.code.into(), f.reason.to_string())
                    }));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(WsEvent::Closed(1006, String::new())),
            }
        }
    }

    pub async fn recv(&mut self) -> Option<Value> {
        match self.event().await? {
            WsEvent::Message(v) => Some(v),
            WsEvent::Closed(code, reason) => panic!("socket closed: {code} {reason}"),
        }
    }

    /// The next `next` payload's data for subscription `id`.
    pub async fn data(&mut self, id: &str) -> Value {
        let m = self.recv().await.expect("a message in time");
        assert_eq!(m["id"], id, "{m}");
        assert_eq!(m["type"], "next", "{m}");
        assert!(m["payload"].get("errors").is_none(), "{m}");
        m["payload"]["data"].clone()
    }

    /// Nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        use futures_util::StreamExt;
        let r = tokio::time::timeout(std::time::Duration::from_millis(400), self.ws.next()).await;
        if let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) = r {
            panic!("unexpected message: {t}");
        }
    }

    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.event().await.expect("the socket to close in time") {
                WsEvent::Closed(code, reason) => return (code, reason),
                WsEvent::Message(_) => continue,
            }
        }
    }
}

/// Runs the `minigate` binary prepared in `cmd` (its arguments and environment), waits until it
/// says it listens, and returns it with its address (`host:port`). Its remaining log is drained.
pub async fn spawn_minigate(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "minigate listening" {
                return v["addr"].as_str().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

impl TestApp {
    /// A plain GET on this app.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

impl TestApp {
    /// Registers an official account of `tenant` with the fake WeChat and the database, its
    /// secret in a file of the test's folder.
    pub async fn official_account(&self, tenant: Id, app_id: &str, secret: &str) {
        let path = self.dir.join(format!("{app_id}.secret"));
        std::fs::write(&path, secret).unwrap();
        self.wechat.add_app(app_id, secret);
        let mut tx = self.db().begin().await.unwrap();
        tenant_db::upsert_app(
            &mut tx,
            tenant,
            tenant_db::OFFICIAL_ACCOUNT,
            app_id,
            "service account",
            &format!("file:{}", path.display()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// What `POST /media` answered.
pub struct Upload {
    pub status: u16,
    pub json: Value,
}

impl Upload {
    pub fn code(&self) -> Option<&str> {
        self.json["errors"][0]["extensions"]["code"].as_str()
    }
    pub fn id(&self) -> &str {
        assert_eq!(self.status, 201, "{}", self.json);
        self.json["id"].as_str().unwrap()
    }
}

impl TestApp {
    /// A user of `tenant` with `role`, and an access token for them (drivers sign in through
    /// WeChat in real life; here the row and the token are made directly).
    pub async fn member(
        &self,
        tenant: minigate_store::Id,
        role: Role,
        branch: Option<minigate_store::Id>,
    ) -> String {
        let id = minigate_store::Id::new();
        let mut c = self.db().conn().await.unwrap();
        minigate_store::execute!(
            &mut c,
            "insert into app_user (id, tenant_id, role, display_name, branch_id) values ($1, $2, $3, 'someone', $4)",
            id,
            tenant,
            role.as_str(),
            branch
        )
        .unwrap();
        let viewer = minigate_resolvers::Viewer {
            user_id: id,
            tenant_id: tenant,
            role,
            branch_id: branch,
            driver_id: None,
            session_id: minigate_store::Id::new(),
        };
        self.state
            .deps
            .tokens
            .access_token(&viewer, chrono::Utc::now())
            .unwrap()
            .0
    }

    /// `POST /media` as `wx.uploadFile` sends it: the file part, then the form fields.
    pub async fn upload_media(
        &self,
        token: Option<&str>,
        bytes: Vec<u8>,
        file_name: &str,
        purpose: Option<&str>,
    ) -> Upload {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str("image/jpeg")
            .unwrap();
        let mut form = reqwest::multipart::Form::new().part("file", part);
        if let Some(p) = purpose {
            form = form.text("purpose", p.to_owned());
        }
        let mut req = self
            .http
            .post(format!("{}/media", self.base))
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let json = r.json().await.unwrap_or(Value::Null);
        Upload { status, json }
    }
}
