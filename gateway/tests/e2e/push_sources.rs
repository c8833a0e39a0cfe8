//! What sends messages outside the app, through the real service and its delivery worker: a
//! notice fanned out to its whole audience, a payment received, tomorrow's rent, a traffic
//! violation recorded; and what operators configure about them (templates, quiet hours and
//! the cap, each kind's channel order).

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use minigate_resolvers::{Role, delivery::sources, registry::db as registry_db};
use minigate_store::{self as store, Backend, Id};
use serde_json::{Value, json};

use crate::{
    paying::{bill, create_payment, shop},
    support::{TestApp, id_number},
};

pub(crate) const MP: &str = "wxmpsources00001";
pub(crate) const OA: &str = "wxoasources00001";
pub(crate) const SUB_TEMPLATE: &str = "sub-notice-sources";
const OA_TEMPLATE: &str = "oa-notice-sources";

pub(crate) const PUBLISH: &str = "mutation($i: NoticeInput!, $k: String) { publishNotice(input: $i, idempotencyKey: $k) { id } }";
const SET_TEMPLATE: &str = "mutation($i: PushTemplateInput!) { setPushTemplate(input: $i) { kind channel appId templateId fields { keyword field } page } }";
const SET_POLICY: &str = "mutation($s: Int!, $e: Int!, $c: Int!) { setPushPolicy(quietStartMinute: $s, quietEndMinute: $e, dailyCap: $c) { quietStartMinute quietEndMinute dailyCap custom } }";
const SET_ROUTE: &str = "mutation($k: PushKind!, $c: [DeliveryChannel!]!) { setPushRoute(kind: $k, channels: $c) { kind class channels custom } }";
const RECORD: &str = "mutation($i: ViolationInput!, $k: String) { recordViolation(input: $i, idempotencyKey: $k) { id vehicleId plate driverId fineFen fineYuan points reference } }";

/// The company's notice templates, set the way operators do, and no quiet hours, so that the
/// tests do not depend on the hour they run at.
pub(crate) async fn configure_notices(app: &TestApp, tenant: Id, admin: &str) {
    app.mini_program(tenant, MP).await;
    app.official_account(tenant, OA, "secret-of-the-sources-account")
        .await;
    app.wechat
        .add_template(MP, SUB_TEMPLATE, &["thing1", "time2"]);
    app.wechat
        .add_template(OA, OA_TEMPLATE, &["first", "keyword1"]);
    for (channel, app_id, template, fields) in [
        (
            "SUBSCRIBE",
            MP,
            SUB_TEMPLATE,
            json!([{ "keyword": "thing1", "field": "title" }, { "keyword": "time2", "field": "at" }]),
        ),
        (
            "TEMPLATE",
            OA,
            OA_TEMPLATE,
            json!([{ "keyword": "first", "field": "title" }, { "keyword": "keyword1", "field": "excerpt" }]),
        ),
    ] {
        let r = app
            .gql(
                admin,
                SET_TEMPLATE,
                json!({ "i": { "kind": "NOTICE", "channel": channel, "appId": app_id,
                               "templateId": template, "fields": fields, "page": "pages/notice/index" } }),
            )
            .await;
        assert_eq!(r.ok()["setPushTemplate"]["templateId"], template);
    }
    let r = app
        .gql(admin, SET_POLICY, json!({ "s": 0, "e": 0, "c": 1000 }))
        .await;
    assert_eq!(r.ok()["setPushPolicy"]["custom"], true);
}

/// `n` consumers of `tenant` in one statement; returns their ids.
async fn consumers(app: &TestApp, tenant: Id, n: usize) -> Vec<Id> {
    let ids: Vec<Id> = (0..n).map(|_| Id::new()).collect();
    let list = serde_json::to_string(&ids).unwrap();
    let mut c = app.db().conn().await.unwrap();
    match app.db().backend() {
        Backend::Postgres => store::execute!(
            &mut c,
            "insert into app_user (id, tenant_id, role)
             select value::uuid, $1, 'consumer' from json_array_elements_text($2::json)",
            tenant,
            list
        ),
        Backend::Sqlite => store::execute!(
            &mut c,
            "insert into app_user (id, tenant_id, role)
             select value, $1, 'consumer' from json_each($2)",
            tenant,
            list
        ),
    }
    .unwrap();
    ids
}

async fn scalar(app: &TestApp, sql: &'static str, id: Id) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    store::fetch_scalar!(&mut c, i64, sql, id).unwrap()
}

/// Like [`scalar`], through a pool of the test's own while the service's worker is busy with
/// the same database (its pool may be all taken for a moment).
async fn watch(app: &TestApp, sql: &'static str, id: Id) -> i64 {
    let started = Instant::now();
    loop {
        let got = async {
            let mut c = app.test_db.db.conn().await?;
            store::fetch_scalar!(&mut c, i64, sql, id)
        }
        .await;
        match got {
            Ok(n) => return n,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no delivery of `source` is pending or sending any more, then checks that each of
/// `people` people has exactly one that was sent and none is a dead letter.
pub(crate) async fn all_settled(app: &TestApp, source: Id, people: i64, within: Duration) {
    let started = Instant::now();
    loop {
        let open = watch(
            app,
            "select count(*) from push_delivery where source_id = $1 and status in ('PENDING', 'SENDING')",
            source,
        )
        .await;
        if open == 0 {
            break;
        }
        if started.elapsed() >= within {
            let mut c = app.test_db.db.conn().await.unwrap();
            let by: Vec<(String, String, Option<String>, i64)> = store::fetch_all!(
                &mut c,
                (String, String, Option<String>, i64),
                "select status, channel, last_code, count(*) from push_delivery where source_id = $1
                 group by status, channel, last_code order by status, channel",
                source
            )
            .unwrap();
            panic!(
                "{open} deliveries still open after {:?}: {by:?}",
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{people} people settled in {:?}", started.elapsed());
    let sent = watch(
        app,
        "select count(*) from push_delivery where source_id = $1 and status = 'SENT'",
        source,
    )
    .await;
    let reached = watch(
        app,
        "select count(distinct user_id) from push_delivery where source_id = $1 and status = 'SENT'",
        source,
    )
    .await;
    let dead = watch(
        app,
        "select count(*) from push_delivery where source_id = $1 and status = 'DEAD'",
        source,
    )
    .await;
    assert_eq!((sent, reached, dead), (people, people, 0));
}

/// The deliveries of one cause as operators see them, oldest first.
async fn deliveries(app: &TestApp, admin: &str, source: &str) -> Vec<Value> {
    let r = app
        .gql(
            admin,
            "query($s: ID!) { deliveries(sourceId: $s, first: 200) { kind channel status userId lastCode } }",
            json!({ "s": source }),
        )
        .await;
    let mut rows = r.ok()["deliveries"].as_array().unwrap().clone();
    rows.reverse();
    rows
}

/// Waits until the deliveries of `source` end in a sent one.
async fn settled(app: &TestApp, admin: &str, source: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let rows = deliveries(app, admin, source).await;
        if !rows.is_empty()
            && rows
                .iter()
                .all(|d| d["status"] != "PENDING" && d["status"] != "SENDING")
        {
            return rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not settled: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two people signed in from the mini-program: `o-{tag}reader`, who accepted the notice's
/// subscribe template once, and `o-{tag}follower`, who follows the official account as
/// `oa-{tag}follower`. Returns their ids.
pub(crate) async fn reader_and_follower(app: &TestApp, tenant: Id, tag: &str) -> (Id, Id) {
    let login = app.login_wechat(MP, &format!("o-{tag}reader")).await;
    let reader = id_of(&login.ok()["loginWithWechat"]["user"]["id"]);
    let token = login.ok()["loginWithWechat"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wechat
        .grant_subscribe(MP, &format!("o-{tag}reader"), SUB_TEMPLATE, 1);
    let r = app
        .gql(
            &token,
            "mutation($r: [SubscribeResult!]!) { recordSubscribeConsent(results: $r) }",
            json!({ "r": [{ "templateId": SUB_TEMPLATE, "accepted": true }] }),
        )
        .await;
    assert_eq!(r.ok()["recordSubscribeConsent"], 1);
    let login = app.login_wechat(MP, &format!("o-{tag}follower")).await;
    let follower = id_of(&login.ok()["loginWithWechat"]["user"]["id"]);
    let (openid, unionid) = (
        format!("oa-{tag}follower"),
        format!("union-o-{tag}follower"),
    );
    app.wechat.add_follower(OA, &openid, Some(&unionid));
    let mut c = app.db().conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into wechat_follower (app_id, openid, tenant_id, unionid, subscribed) values ($1, $2, $3, $4, true)",
        OA,
        &openid,
        tenant,
        &unionid
    )
    .unwrap();
    (reader, follower)
}

pub(crate) fn id_of(v: &Value) -> Id {
    v.as_str().unwrap().parse().unwrap()
}

both!(
    a_notice_to_ten_thousand_people_reaches_every_one_of_them,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("fanout").await;
        configure_notices(&app, tenant, &admin).await;
        // One person signed in with WeChat and accepted the notice template once; one follows
        // the official account; everyone else has only the app.
        let (reader, follower) = reader_and_follower(&app, tenant, "").await;
        // With the operator: 10,000 people.
        consumers(&app, tenant, 9_997).await;
        let audience = 10_000;

        let input = json!({ "title": "Depot closed Monday", "body": "The north depot is closed on Monday for repairs; return vehicles to the south depot.", "audience": "TENANT" });
        let started = Instant::now();
        let r = app
            .gql(
                &admin,
                PUBLISH,
                json!({ "i": input, "k": "notice-fanout-0001" }),
            )
            .await;
        let notice = id_of(&r.ok()["publishNotice"]["id"]);
        eprintln!("published to {audience} people in {:?}", started.elapsed());
        // A retry with the same key is the same notice and sends nothing more.
        let again = app
            .gql(
                &admin,
                PUBLISH,
                json!({ "i": input, "k": "notice-fanout-0001" }),
            )
            .await;
        assert_eq!(id_of(&again.ok()["publishNotice"]["id"]), notice);
        assert_eq!(
            scalar(
                &app,
                "select count(*) from notice where tenant_id = $1",
                tenant
            )
            .await,
            1
        );
        assert_eq!(
            scalar(
                &app,
                "select count(distinct user_id) from push_delivery where source_id = $1",
                notice
            )
            .await,
            audience
        );

        all_settled(&app, notice, audience, Duration::from_secs(180)).await;
        // The consent carried the subscribe message, the follower got the template message,
        // everyone else has it in the app.
        let sent = app.wechat.subscribe_messages(MP);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].touser, "o-reader");
        assert_eq!(sent[0].data["thing1"], "Depot closed Monday");
        let oa = app.wechat.template_messages(OA);
        assert_eq!(oa.len(), 1);
        assert_eq!(oa[0].touser, "oa-follower");
        let excerpt = oa[0].data["keyword1"].as_str();
        assert!(
            excerpt.starts_with("The north depot") && excerpt.ends_with('…'),
            "{excerpt}"
        );
        assert_eq!(excerpt.chars().count(), 20);
        let mut c = app.db().conn().await.unwrap();
        let by_channel: Vec<(String, i64)> = store::fetch_all!(
            &mut c,
            (String, i64),
            "select channel, count(*) from push_delivery where source_id = $1 and status = 'SENT' group by channel order by channel",
            notice
        )
        .unwrap();
        assert_eq!(
            by_channel,
            [
                ("IN_APP".to_owned(), audience - 2),
                ("SUBSCRIBE".to_owned(), 1),
                ("TEMPLATE".to_owned(), 1)
            ]
        );
        for (user, channel) in [(reader, "SUBSCRIBE"), (follower, "TEMPLATE")] {
            let sent: String = store::fetch_scalar!(
                &mut c,
                String,
                "select channel from push_delivery where source_id = $1 and user_id = $2 and status = 'SENT'",
                notice,
                user
            )
            .unwrap();
            assert_eq!(sent, channel);
        }
    }
);

both!(
    a_notice_published_twice_with_one_key_is_sent_once,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("onekey").await;
        let people = consumers(&app, tenant, 3).await;
        let ids: Vec<String> = people.iter().map(Id::to_string).collect();
        let input = json!({ "title": "Fuel card", "body": "New fuel cards are ready.", "audience": "USERS", "userIds": ids });
        let first = app
            .gql(
                &admin,
                PUBLISH,
                json!({ "i": input, "k": "notice-key-twice" }),
            )
            .await;
        let notice = id_of(&first.ok()["publishNotice"]["id"]);
        for _ in 0..2 {
            let r = app
                .gql(
                    &admin,
                    PUBLISH,
                    json!({ "i": input, "k": "notice-key-twice" }),
                )
                .await;
            assert_eq!(id_of(&r.ok()["publishNotice"]["id"]), notice);
        }
        // Nothing outside the app reaches these people: one in-app row each, and nothing to
        // fall through to.
        let rows = scalar(
            &app,
            "select count(*) from push_delivery where source_id = $1 and channel = 'IN_APP'",
            notice,
        )
        .await;
        assert_eq!(rows, 3);
        assert_eq!(
            scalar(
                &app,
                "select count(*) from push_delivery where source_id = $1",
                notice
            )
            .await,
            3
        );
        // Only the listed people: not the operator.
        let mut c = app.db().conn().await.unwrap();
        let mut to: Vec<Id> = store::fetch_all!(
            &mut c,
            (Id,),
            "select user_id from push_delivery where source_id = $1 and channel = 'IN_APP'",
            notice
        )
        .unwrap()
        .into_iter()
        .map(|(u,)| u)
        .collect();
        to.sort();
        let mut expected = people.clone();
        expected.sort();
        assert_eq!(to, expected);
        // Another key is another notice, sent again.
        let other = app
            .gql(
                &admin,
                PUBLISH,
                json!({ "i": input, "k": "notice-key-other" }),
            )
            .await;
        let other = id_of(&other.ok()["publishNotice"]["id"]);
        assert_ne!(other, notice);
        assert_eq!(
            scalar(
                &app,
                "select count(distinct user_id) from push_delivery where source_id = $1",
                other
            )
            .await,
            3
        );
    }
);

both!(a_payment_tells_its_payer_once, |app: TestApp| async move {
    let shop = shop(&app, "paid").await;
    let bill = bill(&app, &shop, 150_000).await;
    let r = create_payment(&app, &shop.staff, &bill, "WECHAT_NATIVE").await;
    let order = r.ok()["createPayment"].clone();
    let no = order["outTradeNo"].as_str().unwrap().to_owned();
    let order_id = id_of(&order["id"]);
    // Nothing is said before the money arrives.
    assert_eq!(
        scalar(
            &app,
            "select count(*) from push_delivery where source_id = $1",
            order_id
        )
        .await,
        0
    );
    assert!(app.wxpay.pay(&no, Some("o-payer")));
    for _ in 0..2 {
        // WeChat Pay says it twice: one message.
        let (status, _) = app.wxpay.notify(&no).await.unwrap();
        assert!((200..300).contains(&status), "{status}");
    }
    let payer = {
        let mut c = app.db().conn().await.unwrap();
        store::fetch_scalar!(
            &mut c,
            Id,
            "select id from app_user where driver_id = $1",
            shop.driver
        )
        .unwrap()
    };
    let mut c = app.db().conn().await.unwrap();
    let first: Vec<(Id, String, String, store::sqlx::types::Json<Value>)> = store::fetch_all!(
        &mut c,
        (Id, String, String, store::sqlx::types::Json<Value>),
        "select user_id, kind, class, payload from push_delivery where source_id = $1",
        order_id
    )
    .unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    let (user, kind, class, payload) = &first[0];
    assert_eq!(
        (*user, kind.as_str(), class.as_str()),
        (payer, "PAYMENT", "ESSENTIAL")
    );
    assert_eq!(payload.0["amount"], "1500.00元");
    assert_eq!(payload.0["title"], "Rent, week 47");
    assert_eq!(payload.0["billId"], bill.as_str());
    // No template is configured and the payer has no device: the message starts, and stays, in
    // the app's notice list, with no attempt on a channel that cannot reach them.
    let rows = settled(&app, &shop.admin, &order_id.to_string()).await;
    let channels: Vec<(&str, &str)> = rows
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(channels, [("IN_APP", "SENT")], "{rows:#?}");
});

fn beijing(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

struct BillSpec {
    kind: &'static str,
    status: &'static str,
    due: NaiveDate,
    driver: Id,
}

async fn insert_bill(app: &TestApp, tenant: Id, b: &BillSpec) -> Id {
    let id = Id::new();
    let mut c = app.db().conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into bill (id, tenant_id, driver_id, payer_name, kind, title, amount_fen, due_date, status)
         values ($1, $2, $3, '张伟', $4, 'Rent, March', 320000, $5, $6)",
        id,
        tenant,
        b.driver,
        b.kind,
        b.due,
        b.status
    )
    .unwrap();
    id
}

/// The job at `now`, retried while another pass (the service's own loop) holds its lock.
async fn rent_job(app: &TestApp, now: DateTime<Utc>, expected: usize) {
    let started = Instant::now();
    loop {
        let n = sources::run_rent_due(app.db(), now).await.unwrap();
        if n == expected {
            return;
        }
        assert!(
            n < expected && started.elapsed() < Duration::from_secs(5),
            "{n} reminders, {expected} expected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both!(
    rent_due_tomorrow_is_told_once_and_nothing_else_is,
    |app: TestApp| async move {
        let tenant = app.tenant("rent").await;
        let branch = app.branch(tenant, "SZ").await;
        let mut drivers = Vec::new();
        for n in 0..4u32 {
            drivers.push(
                app.driver(
                    tenant,
                    branch,
                    &format!("1380013810{n}"),
                    &id_number(40 + n),
                )
                .await,
            );
        }
        // The first three drivers use the app; the fourth never signed in.
        let mut users = Vec::new();
        let mut c = app.db().conn().await.unwrap();
        for d in &drivers[..3] {
            let u = Id::new();
            store::execute!(
                &mut c,
                "insert into app_user (id, tenant_id, role, driver_id) values ($1, $2, 'driver', $3)",
                u,
                tenant,
                *d
            )
            .unwrap();
            users.push(u);
        }
        drop(c);
        // Far from today, so that the service's own pass never finds these bills.
        let today = NaiveDate::from_ymd_opt(2030, 3, 9).unwrap();
        let tomorrow = today.succ_opt().unwrap();
        let later = tomorrow.succ_opt().unwrap();
        let spec = |kind, status, due, driver| BillSpec {
            kind,
            status,
            due,
            driver,
        };
        let due = insert_bill(&app, tenant, &spec("rent", "OPEN", tomorrow, drivers[0])).await;
        for b in [
            spec("rent", "PAID", tomorrow, drivers[1]),
            spec("rent", "CANCELLED", tomorrow, drivers[0]),
            spec("rent", "OPEN", today, drivers[1]),
            spec("deposit", "OPEN", tomorrow, drivers[2]),
            spec("rent", "OPEN", tomorrow, drivers[3]),
        ] {
            insert_bill(&app, tenant, &b).await;
        }
        let day_after = insert_bill(&app, tenant, &spec("rent", "OPEN", later, drivers[2])).await;

        // Before nine nothing goes out.
        rent_job(&app, beijing(today, 8, 59), 0).await;
        assert_eq!(
            scalar(
                &app,
                "select count(*) from push_delivery where tenant_id = $1",
                tenant
            )
            .await,
            0
        );
        rent_job(&app, beijing(today, 9, 30), 1).await;
        // Passes later in the day send nothing again.
        rent_job(&app, beijing(today, 14, 0), 0).await;
        rent_job(&app, beijing(today, 23, 50), 0).await;
        let mut c = app.db().conn().await.unwrap();
        let rows: Vec<(Id, Id, String, String, store::sqlx::types::Json<Value>)> = store::fetch_all!(
            &mut c,
            (Id, Id, String, String, store::sqlx::types::Json<Value>),
            "select source_id, user_id, kind, class, payload from push_delivery where tenant_id = $1",
            tenant
        )
        .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let (source, user, kind, class, payload) = &rows[0];
        assert_eq!(
            (*source, *user, kind.as_str(), class.as_str()),
            (due, users[0], "RENT_DUE", "REMINDER")
        );
        assert_eq!(payload.0["dueDate"], "2030-03-10");
        assert_eq!(payload.0["amount"], "3200.00元");
        // The next day, the next day's bill.
        rent_job(&app, beijing(tomorrow, 9, 0), 1).await;
        assert_eq!(
            scalar(
                &app,
                "select count(*) from push_delivery where source_id = $1",
                day_after
            )
            .await,
            1
        );
    }
);

/// A company with a vehicle, its driver signed in with WeChat, and an operator.
struct Fleet {
    tenant: Id,
    admin: String,
    vehicle: Id,
    driver: Id,
    driver_user: Id,
    driver_token: String,
    branch: Id,
}

async fn fleet(app: &TestApp, slug: &str) -> Fleet {
    let (tenant, admin) = app.admin(slug).await;
    let branch = app.branch(tenant, "SZ").await;
    let vehicle = app.vehicle(tenant, branch, "粤B12345").await;
    let phone = "13800138123";
    let driver = {
        let mut c = app.db().conn().await.unwrap();
        registry_db::insert_driver(
            &mut c,
            tenant,
            &registry_db::DriverFields {
                branch_id: branch,
                vehicle_id: Some(vehicle),
                name: "李强",
                phone,
                id_number: &id_number(77),
            },
        )
        .await
        .unwrap()
    };
    app.mini_program(tenant, MP).await;
    let openid = format!("o-{slug}-driver");
    let login = app.login_wechat(MP, &openid).await;
    let driver_user = id_of(&login.ok()["loginWithWechat"]["user"]["id"]);
    let token = login.ok()["loginWithWechat"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let bound = app
        .gql(
            &token,
            "mutation($c: String!) { bindPhone(code: $c) { accessToken } }",
            json!({ "c": app.wechat.phone_code(MP, phone) }),
        )
        .await;
    let driver_token = bound.ok()["bindPhone"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    Fleet {
        tenant,
        admin,
        vehicle,
        driver,
        driver_user,
        driver_token,
        branch,
    }
}

fn violation(vehicle: Id, reference: &str) -> Value {
    json!({
        "vehicleId": vehicle.to_string(),
        "occurredAt": (Utc::now() - chrono::Duration::days(2)).to_rfc3339(),
        "place": "深南大道与科技路交叉口",
        "description": "机动车违反禁止标线指示",
        "fineFen": 20000,
        "points": 3,
        "reference": reference,
    })
}

async fn stored(app: &TestApp) -> (i64, i64) {
    let mut c = app.db().conn().await.unwrap();
    let violations: i64 =
        store::fetch_scalar!(&mut c, i64, "select count(*) from traffic_violation").unwrap();
    let messages: i64 = store::fetch_scalar!(
        &mut c,
        i64,
        "select count(distinct source_id) from push_delivery where kind = 'VIOLATION'"
    )
    .unwrap();
    (violations, messages)
}

both!(
    a_violation_is_recorded_once_and_its_driver_told,
    |app: TestApp| async move {
        let f = fleet(&app, "fines").await;
        let (other_tenant, _) = app.admin("elsewhere").await;
        let other_branch = app.branch(other_tenant, "GZ").await;
        let foreign = app.vehicle(other_tenant, other_branch, "粤A54321").await;

        // Bad inputs store nothing and tell nobody.
        let r = app
            .gql(
                &f.admin,
                RECORD,
                json!({ "i": violation(foreign, "4403-0001") }),
            )
            .await;
        assert_eq!(r.code(), Some("INVALID_INPUT"));
        assert_eq!(r.json["errors"][0]["extensions"]["field"], "vehicleId");
        let mut bad = violation(f.vehicle, "4403-0001");
        bad["points"] = json!(13);
        let r = app.gql(&f.admin, RECORD, json!({ "i": bad })).await;
        assert_eq!(
            (
                r.code(),
                r.json["errors"][0]["extensions"]["field"].as_str()
            ),
            (Some("INVALID_INPUT"), Some("points"))
        );
        let mut bad = violation(f.vehicle, "4403-0001");
        bad["place"] = json!("   ");
        let r = app.gql(&f.admin, RECORD, json!({ "i": bad })).await;
        assert_eq!(r.json["errors"][0]["extensions"]["field"], "place");
        let mut missing = violation(f.vehicle, "4403-0001");
        missing.as_object_mut().unwrap().remove("reference");
        let r = app.gql(&f.admin, RECORD, json!({ "i": missing })).await;
        assert!(r.json["errors"].is_array(), "{}", r.json);
        assert!(r.json["data"]["recordViolation"].is_null());
        // Drivers and other branches' staff do not record violations.
        let r = app
            .gql(
                &f.driver_token,
                RECORD,
                json!({ "i": violation(f.vehicle, "4403-0001") }),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let other = app.branch(f.tenant, "DG").await;
        let (staff, _) = app
            .password_user("fines", f.tenant, Role::Staff, "13900000077", Some(other))
            .await;
        let r = app
            .gql(
                &staff,
                RECORD,
                json!({ "i": violation(f.vehicle, "4403-0001") }),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        assert_eq!(stored(&app).await, (0, 0));

        // Recorded: the vehicle's driver is named and told.
        let r = app
            .gql(
                &f.admin,
                RECORD,
                json!({ "i": violation(f.vehicle, " 4403-0001 "), "k": "violation-key-1" }),
            )
            .await;
        let v = r.ok()["recordViolation"].clone();
        assert_eq!(v["driverId"], f.driver.to_string());
        assert_eq!(v["plate"], "粤B12345");
        assert_eq!(v["reference"], "4403-0001");
        assert_eq!(
            (v["fineFen"].as_i64(), v["fineYuan"].as_str()),
            (Some(20_000), Some("200.00"))
        );
        let id = id_of(&v["id"]);
        assert_eq!(stored(&app).await, (1, 1));
        let mut c = app.db().conn().await.unwrap();
        let (user, channel, payload): (Id, String, store::sqlx::types::Json<Value>) =
            store::fetch_one!(
                &mut c,
                (Id, String, store::sqlx::types::Json<Value>),
                "select user_id, channel, payload from push_delivery where source_id = $1 order by created_at, id limit 1",
                id
            )
            .unwrap();
        drop(c);
        assert_eq!(user, f.driver_user);
        // Violations try the official account first, but nothing outside the app reaches this
        // driver: the message starts in the app.
        assert_eq!(channel, "IN_APP");
        assert_eq!(payload.0["fine"], "200.00元");
        assert_eq!(payload.0["plate"], "粤B12345");

        // The same reference again, by a retry or by hand: the same violation, nobody told again.
        for k in [
            json!("violation-key-1"),
            json!("violation-key-2"),
            Value::Null,
        ] {
            let r = app
                .gql(
                    &f.admin,
                    RECORD,
                    json!({ "i": violation(f.vehicle, "4403-0001"), "k": k }),
                )
                .await;
            assert_eq!(id_of(&r.ok()["recordViolation"]["id"]), id);
        }
        let staff_here = app
            .password_user(
                "fines",
                f.tenant,
                Role::Staff,
                "13900000078",
                Some(f.branch),
            )
            .await
            .0;
        let r = app
            .gql(
                &staff_here,
                RECORD,
                json!({ "i": violation(f.vehicle, "4403-0001") }),
            )
            .await;
        assert_eq!(id_of(&r.ok()["recordViolation"]["id"]), id);
        // … unless it names another vehicle.
        let second = app.vehicle(f.tenant, f.branch, "粤B67890").await;
        let r = app
            .gql(
                &f.admin,
                RECORD,
                json!({ "i": violation(second, "4403-0001") }),
            )
            .await;
        assert_eq!(
            (
                r.code(),
                r.json["errors"][0]["extensions"]["field"].as_str()
            ),
            (Some("ALREADY_EXISTS"), Some("reference"))
        );
        // A vehicle without a driver: recorded, nobody to tell.
        let r = app
            .gql(
                &f.admin,
                RECORD,
                json!({ "i": violation(second, "4403-0002") }),
            )
            .await;
        assert!(r.ok()["recordViolation"]["driverId"].is_null());
        assert_eq!(stored(&app).await, (2, 1));

        // Lists: operators see the company's, the driver only their own.
        let list =
            "query($v: ID, $d: ID) { violations(vehicleId: $v, driverId: $d) { id reference } }";
        let r = app.gql(&f.admin, list, json!({})).await;
        assert_eq!(r.ok()["violations"].as_array().unwrap().len(), 2);
        let r = app
            .gql(&f.admin, list, json!({ "v": f.vehicle.to_string() }))
            .await;
        assert_eq!(r.ok()["violations"][0]["id"], id.to_string());
        let r = app.gql(&f.driver_token, list, json!({})).await;
        let own = r.ok()["violations"].as_array().unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0]["id"], id.to_string());
        let r = app
            .gql(&f.driver_token, list, json!({ "d": Id::new().to_string() }))
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let r = app.gql(&staff, list, json!({})).await;
        assert_eq!(r.ok()["violations"].as_array().unwrap().len(), 0);
        let audited = {
            let mut c = app.db().conn().await.unwrap();
            store::fetch_scalar!(
                &mut c,
                i64,
                "select count(*) from audit_log where action = 'violation.record'"
            )
            .unwrap()
        };
        assert_eq!(audited, 2);
    }
);

both!(
    operators_configure_templates_quiet_hours_and_channel_orders,
    |app: TestApp| async move {
        let (tenant, admin) = app.admin("config").await;
        let branch = app.branch(tenant, "SZ").await;
        let (staff, _) = app
            .password_user("config", tenant, Role::Staff, "13900000002", Some(branch))
            .await;
        app.mini_program(tenant, MP).await;
        app.official_account(tenant, OA, "secret-of-the-sources-account")
            .await;
        let (other, _) = app.admin("neighbour").await;
        app.mini_program(other, "wxmpneighbour001").await;
        let template = |kind: &str, channel: &str, app_id: &str, fields: Value| {
            json!({ "i": { "kind": kind, "channel": channel, "appId": app_id,
                           "templateId": "tmpl-rent-1", "fields": fields } })
        };
        let good_fields = json!([{ "keyword": "thing1", "field": "title" }, { "keyword": "amount2", "field": "amount" }]);

        // Only operators.
        for q in [
            "{ pushTemplates { kind } }",
            "{ pushPolicy { dailyCap } }",
            "{ pushRoutes { kind } }",
        ] {
            assert_eq!(
                app.gql(&staff, q, json!({})).await.code(),
                Some("FORBIDDEN")
            );
        }
        let r = app
            .gql(
                &staff,
                SET_TEMPLATE,
                template("RENT_DUE", "SUBSCRIBE", MP, good_fields.clone()),
            )
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));
        let r = app
            .gql(&staff, SET_ROUTE, json!({ "k": "NOTICE", "c": ["IN_APP"] }))
            .await;
        assert_eq!(r.code(), Some("FORBIDDEN"));

        // Every bad input names its field and changes nothing.
        let bad = [
            (
                template(
                    "RENT_DUE",
                    "SUBSCRIBE",
                    "wxmpneighbour001",
                    good_fields.clone(),
                ),
                "appId",
            ),
            (
                template("RENT_DUE", "SUBSCRIBE", OA, good_fields.clone()),
                "appId",
            ),
            (
                template("RENT_DUE", "TEMPLATE", MP, good_fields.clone()),
                "appId",
            ),
            (
                template(
                    "RENT_DUE",
                    "SUBSCRIBE",
                    MP,
                    json!([{ "keyword": "thing1", "field": "plate" }]),
                ),
                "fields",
            ),
            (template("RENT_DUE", "SUBSCRIBE", MP, json!([])), "fields"),
        ];
        for (vars, field) in bad {
            let r = app.gql(&admin, SET_TEMPLATE, vars).await;
            assert_eq!(
                (
                    r.code(),
                    r.json["errors"][0]["extensions"]["field"].as_str()
                ),
                (Some("INVALID_INPUT"), Some(field)),
                "{}",
                r.json
            );
        }
        for (s, e, c, field) in [
            (1440, 0, 3, "quietStartMinute"),
            (0, -1, 3, "quietEndMinute"),
            (0, 0, -1, "dailyCap"),
        ] {
            let r = app
                .gql(&admin, SET_POLICY, json!({ "s": s, "e": e, "c": c }))
                .await;
            assert_eq!(r.json["errors"][0]["extensions"]["field"], field);
        }
        for channels in [
            json!([]),
            json!(["IN_APP", "TEMPLATE"]),
            json!(["TEMPLATE", "TEMPLATE"]),
        ] {
            let r = app
                .gql(&admin, SET_ROUTE, json!({ "k": "NOTICE", "c": channels }))
                .await;
            assert_eq!(
                (
                    r.code(),
                    r.json["errors"][0]["extensions"]["field"].as_str()
                ),
                (Some("INVALID_INPUT"), Some("channels"))
            );
        }
        assert_eq!(
            scalar(
                &app,
                "select count(*) from push_template where tenant_id = $1",
                tenant
            )
            .await
                + scalar(
                    &app,
                    "select count(*) from push_policy where tenant_id = $1",
                    tenant
                )
                .await
                + scalar(
                    &app,
                    "select count(*) from push_route where tenant_id = $1",
                    tenant
                )
                .await
                + scalar(
                    &app,
                    "select count(*) from audit_log where tenant_id = $1 and action like 'push.%'",
                    tenant
                )
                .await,
            0
        );

        // Templates.
        let r = app
            .gql(
                &admin,
                SET_TEMPLATE,
                template("RENT_DUE", "SUBSCRIBE", MP, good_fields.clone()),
            )
            .await;
        let t = &r.ok()["setPushTemplate"];
        assert_eq!(t["appId"], MP);
        assert_eq!(
            t["fields"],
            json!([{ "keyword": "amount2", "field": "amount" }, { "keyword": "thing1", "field": "title" }])
        );
        let r = app
            .gql(
                &admin,
                SET_TEMPLATE,
                template("RENT_DUE", "TEMPLATE", OA, good_fields.clone()),
            )
            .await;
        assert_eq!(r.ok()["setPushTemplate"]["channel"], "TEMPLATE");
        let r = app
            .gql(
                &admin,
                "{ pushTemplates { kind channel appId } }",
                json!({}),
            )
            .await;
        assert_eq!(r.ok()["pushTemplates"].as_array().unwrap().len(), 2);
        let delete = "mutation { deletePushTemplate(kind: RENT_DUE, channel: TEMPLATE) }";
        assert_eq!(
            app.gql(&admin, delete, json!({})).await.ok()["deletePushTemplate"],
            true
        );
        assert_eq!(
            app.gql(&admin, delete, json!({})).await.ok()["deletePushTemplate"],
            false
        );
        assert_eq!(
            scalar(
                &app,
                "select count(*) from push_template where tenant_id = $1",
                tenant
            )
            .await,
            1
        );

        // Quiet hours and the cap.
        let r = app
            .gql(
                &admin,
                "{ pushPolicy { quietStartMinute quietEndMinute dailyCap custom } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r.ok()["pushPolicy"],
            json!({ "quietStartMinute": 1320, "quietEndMinute": 480, "dailyCap": 3, "custom": false })
        );
        let r = app
            .gql(&admin, SET_POLICY, json!({ "s": 1380, "e": 420, "c": 5 }))
            .await;
        assert_eq!(
            r.ok()["setPushPolicy"],
            json!({ "quietStartMinute": 1380, "quietEndMinute": 420, "dailyCap": 5, "custom": true })
        );

        // Channel orders: built in until set; new messages take the order in force.
        let routes = "{ pushRoutes { kind class channels custom payloadFields } }";
        let r = app.gql(&admin, routes, json!({})).await;
        let all = r.ok()["pushRoutes"].as_array().unwrap().clone();
        assert_eq!(all.len(), 5);
        let of = |kind: &str| all.iter().find(|x| x["kind"] == kind).unwrap().clone();
        assert_eq!(
            of("VIOLATION")["channels"],
            json!(["TEMPLATE", "SUBSCRIBE", "APP", "IN_APP"])
        );
        assert_eq!(of("PAYMENT")["class"], "ESSENTIAL");
        assert_eq!(
            of("NOTICE")["channels"],
            json!(["SUBSCRIBE", "TEMPLATE", "APP", "IN_APP"])
        );
        assert_eq!(of("NOTICE")["custom"], false);
        let r = app
            .gql(
                &admin,
                SET_ROUTE,
                json!({ "k": "NOTICE", "c": ["TEMPLATE", "IN_APP"] }),
            )
            .await;
        assert_eq!(
            r.ok()["setPushRoute"],
            json!({ "kind": "NOTICE", "class": "REMINDER", "channels": ["TEMPLATE", "IN_APP"], "custom": true })
        );
        let reader = consumers(&app, tenant, 1).await;
        // Both WeChat channels reach the reader (a notice template on each, an unused consent,
        // a follow): a new message starts at whichever the order in force names first.
        let mut c = app.db().conn().await.unwrap();
        for (channel, app_id) in [("SUBSCRIBE", MP), ("TEMPLATE", OA)] {
            store::execute!(
                &mut c,
                "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields) values ($1, 'NOTICE', $2, $3, 'notice-template', '{}')",
                tenant,
                channel,
                app_id
            )
            .unwrap();
        }
        store::execute!(
            &mut c,
            "insert into subscribe_consent (id, tenant_id, user_id, app_id, template_id) values ($1, $2, $3, $4, 'notice-template')",
            Id::new(),
            tenant,
            reader[0],
            MP
        )
        .unwrap();
        store::execute!(
            &mut c,
            "update app_user set wx_unionid = 'union-route-reader' where id = $1",
            reader[0]
        )
        .unwrap();
        store::execute!(
            &mut c,
            "insert into wechat_follower (app_id, openid, tenant_id, unionid, subscribed) values ($1, 'oa-route-reader', $2, 'union-route-reader', true)",
            OA,
            tenant
        )
        .unwrap();
        drop(c);
        let publish = |title: &str| json!({ "i": { "title": title, "body": "Body.", "audience": "USERS", "userIds": [reader[0].to_string()] } });
        let r = app.gql(&admin, PUBLISH, publish("After the change")).await;
        let notice = id_of(&r.ok()["publishNotice"]["id"]);
        let mut c = app.db().conn().await.unwrap();
        let (channel, fallback): (String, String) = store::fetch_one!(
            &mut c,
            (String, String),
            "select channel, fallback from push_delivery where source_id = $1 order by created_at, id limit 1",
            notice
        )
        .unwrap();
        drop(c);
        assert_eq!(
            (channel.as_str(), fallback.as_str()),
            ("TEMPLATE", "IN_APP")
        );
        let r = app
            .gql(
                &admin,
                "mutation { resetPushRoute(kind: NOTICE) { channels custom } }",
                json!({}),
            )
            .await;
        assert_eq!(r.ok()["resetPushRoute"]["custom"], false);
        let r = app
            .gql(&admin, PUBLISH, publish("Back to the default"))
            .await;
        let notice = id_of(&r.ok()["publishNotice"]["id"]);
        let mut c = app.db().conn().await.unwrap();
        let channel: String = store::fetch_scalar!(
            &mut c,
            String,
            "select channel from push_delivery where source_id = $1 order by created_at, id limit 1",
            notice
        )
        .unwrap();
        assert_eq!(channel, "SUBSCRIBE");
        let actions: Vec<(String,)> = store::fetch_all!(
            &mut c,
            (String,),
            "select action from audit_log where tenant_id = $1 and action like 'push.%' order by action",
            tenant
        )
        .unwrap();
        let actions: Vec<&str> = actions.iter().map(|(a,)| a.as_str()).collect();
        // One entry per change: the second delete and the failed attempts wrote none.
        assert_eq!(
            actions,
            [
                "push.policy.set",
                "push.route.reset",
                "push.route.set",
                "push.template.delete",
                "push.template.set",
                "push.template.set"
            ]
        );
    }
);
