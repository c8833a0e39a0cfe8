//! Fan-out on SQLite and PostgreSQL: one statement writes a message for a whole audience (by
//! role, by branch, by list), skipping disabled people and other tenants' people; a repeat
//! writes nothing; the ids the database makes are UUIDs the rest of the code reads back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashSet, time::Instant};

use chrono::Utc;
use minigate_push::delivery::{
    Channel, Class, Delivery,
    db::{self, Filter},
    fanout::{Audience, Fanout, enqueue_all},
};
use minigate_store::{self as store, Backend, Db, Id};
use serde_json::json;

use minigate_store::on_both_backends as on_both;

async fn tenant(db: &Db) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into tenant (id, slug, name) values ($1, $2, 'T')",
        id,
        id.to_string()
    )
    .unwrap();
    id
}

async fn branch(db: &Db, tenant: Id, code: &str) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into branch (id, tenant_id, code, name) values ($1, $2, $3, $3)",
        id,
        tenant,
        code
    )
    .unwrap();
    id
}

/// A person: `role`, their own branch, and for a driver a driver record in `driver_branch`.
struct Person<'a> {
    role: &'a str,
    branch: Option<Id>,
    driver_branch: Option<Id>,
    disabled: bool,
}

async fn person(db: &Db, tenant: Id, p: Person<'_>) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    let driver = match p.driver_branch {
        Some(b) => {
            let d = Id::new();
            store::execute!(
                &mut c,
                "insert into driver (id, tenant_id, branch_id, name, phone, id_number) values ($1, $2, $3, 'D', $4, $4)",
                d,
                tenant,
                b,
                d.to_string()
            )
            .unwrap();
            Some(d)
        }
        None => None,
    };
    store::execute!(
        &mut c,
        "insert into app_user (id, tenant_id, role, branch_id, driver_id, disabled_at) values ($1, $2, $3, $4, $5, $6)",
        id,
        tenant,
        p.role,
        p.branch,
        driver,
        p.disabled.then(Utc::now)
    )
    .unwrap();
    id
}

async fn simple(db: &Db, tenant: Id, role: &str) -> Id {
    person(
        db,
        tenant,
        Person {
            role,
            branch: None,
            driver_branch: None,
            disabled: false,
        },
    )
    .await
}

/// `n` consumers in one statement.
async fn many(db: &Db, tenant: Id, n: usize) {
    let ids: Vec<Id> = (0..n).map(|_| Id::new()).collect();
    let list = serde_json::to_string(&ids).unwrap();
    let mut c = db.conn().await.unwrap();
    match db.backend() {
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
}

const ORDER: &[Channel] = &[Channel::Subscribe, Channel::Template, Channel::InApp];

/// Fans one NOTICE of `source` out to `audience` in its own transaction.
async fn fan(db: &Db, tenant: Id, source: Id, audience: Audience<'_>) -> u64 {
    let payload = json!({ "title": "Road closed", "at": "2026-03-10 10:00" });
    let mut tx = db.begin().await.unwrap();
    let n = enqueue_all(
        &mut tx,
        &Fanout {
            tenant_id: tenant,
            audience,
            kind: "NOTICE",
            class: Class::Reminder,
            source_id: source,
            channels: ORDER,
            payload: &payload,
            not_before: Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    n
}

async fn recipients(db: &Db, tenant: Id, source: Id) -> HashSet<Id> {
    rows(db, tenant, source)
        .await
        .into_iter()
        .map(|d| d.user_id)
        .collect()
}

async fn rows(db: &Db, tenant: Id, source: Id) -> Vec<Delivery> {
    let mut c = db.conn().await.unwrap();
    db::list(
        &mut c,
        tenant,
        &Filter {
            source_id: Some(source),
            ..Filter::default()
        },
        1_000,
    )
    .await
    .unwrap()
}

on_both!(
    each_audience_reaches_exactly_its_active_people,
    |db: Db| async move {
        let t = tenant(&db).await;
        let other_tenant = tenant(&db).await;
        let north = branch(&db, t, "N").await;
        let south = branch(&db, t, "S").await;
        let admin = simple(&db, t, "admin").await;
        let consumer = simple(&db, t, "consumer").await;
        // A driver whose record moved to the north branch, though their user row still says
        // south: the driver record decides, as in the notice list.
        let driver_north = person(
            &db,
            t,
            Person {
                role: "driver",
                branch: Some(south),
                driver_branch: Some(north),
                disabled: false,
            },
        )
        .await;
        let staff_north = person(
            &db,
            t,
            Person {
                role: "staff",
                branch: Some(north),
                driver_branch: None,
                disabled: false,
            },
        )
        .await;
        let staff_south = person(
            &db,
            t,
            Person {
                role: "staff",
                branch: Some(south),
                driver_branch: None,
                disabled: false,
            },
        )
        .await;
        let disabled_driver = person(
            &db,
            t,
            Person {
                role: "driver",
                branch: None,
                driver_branch: Some(north),
                disabled: true,
            },
        )
        .await;
        let stranger = simple(&db, other_tenant, "driver").await;

        let by_role = Id::new();
        assert_eq!(
            fan(&db, t, by_role, Audience::Roles(&["driver", "staff"])).await,
            3
        );
        assert_eq!(
            recipients(&db, t, by_role).await,
            HashSet::from([driver_north, staff_north, staff_south])
        );

        let everyone = Id::new();
        let all_roles = ["driver", "staff", "consumer", "admin"];
        assert_eq!(fan(&db, t, everyone, Audience::Roles(&all_roles)).await, 5);
        assert!(
            !recipients(&db, t, everyone)
                .await
                .contains(&disabled_driver)
        );
        assert!(recipients(&db, t, everyone).await.contains(&admin));

        let by_branch = Id::new();
        assert_eq!(fan(&db, t, by_branch, Audience::Branch(north)).await, 2);
        assert_eq!(
            recipients(&db, t, by_branch).await,
            HashSet::from([driver_north, staff_north])
        );

        let listed = Id::new();
        let ids = [consumer, disabled_driver, stranger, Id::new(), staff_south];
        assert_eq!(fan(&db, t, listed, Audience::Users(&ids)).await, 2);
        assert_eq!(
            recipients(&db, t, listed).await,
            HashSet::from([consumer, staff_south])
        );

        // Nobody to reach writes nothing.
        assert_eq!(fan(&db, t, Id::new(), Audience::Users(&[])).await, 0);
        assert_eq!(fan(&db, t, Id::new(), Audience::Roles(&[])).await, 0);
        assert_eq!(fan(&db, t, Id::new(), Audience::Branch(Id::new())).await, 0);
        assert!(recipients(&db, other_tenant, by_role).await.is_empty());
    }
);

on_both!(
    a_repeat_writes_nothing_and_a_person_added_since_gets_it_next_time,
    |db: Db| async move {
        let t = tenant(&db).await;
        let a = simple(&db, t, "driver").await;
        let b = simple(&db, t, "driver").await;
        let source = Id::new();
        assert_eq!(fan(&db, t, source, Audience::Roles(&["driver"])).await, 2);
        assert_eq!(fan(&db, t, source, Audience::Roles(&["driver"])).await, 0);
        assert_eq!(fan(&db, t, source, Audience::Users(&[a, b])).await, 0);
        // A person added since gets it on the next pass, the others not again.
        let c = simple(&db, t, "driver").await;
        assert_eq!(fan(&db, t, source, Audience::Roles(&["driver"])).await, 1);
        let rows = rows(&db, t, source).await;
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.iter().map(|d| d.user_id).collect::<HashSet<_>>(),
            HashSet::from([a, b, c])
        );
        for d in &rows {
            assert_eq!(d.kind, "NOTICE");
            assert_eq!(d.class, "REMINDER");
            // Nothing outside the app reaches them: no template is even configured.
            assert_eq!(d.channel, "IN_APP");
            assert_eq!(d.fallback, "");
            assert_eq!(d.status, "PENDING");
            assert_eq!(d.attempts, 0);
            assert_eq!(d.payload.0["title"], "Road closed");
            assert_eq!(d.tenant_id, t);
            assert_eq!(d.source_id, source);
        }
        // The same message with no channel at all writes nothing.
        let mut tx = db.begin().await.unwrap();
        let payload = json!({});
        let n = enqueue_all(
            &mut tx,
            &Fanout {
                tenant_id: t,
                audience: Audience::Roles(&["driver"]),
                kind: "NOTICE",
                class: Class::Reminder,
                source_id: Id::new(),
                channels: &[],
                payload: &payload,
                not_before: Utc::now(),
            },
        )
        .await
        .unwrap();
        assert_eq!(n, 0);
        tx.rollback().await.unwrap();
    }
);

on_both!(
    ids_made_by_the_database_are_distinct_version_4_uuids,
    |db: Db| async move {
        let t = tenant(&db).await;
        many(&db, t, 500).await;
        let source = Id::new();
        assert_eq!(
            fan(&db, t, source, Audience::Roles(&["consumer"])).await,
            500
        );
        // Read back as text too: the SQLite spelling must be exactly what `Id` writes.
        let mut c = db.conn().await.unwrap();
        let texts: Vec<(Id, String)> = match db.backend() {
            Backend::Postgres => store::fetch_all!(
                &mut c,
                (Id, String),
                "select id, id::text from push_delivery where source_id = $1",
                source
            ),
            Backend::Sqlite => store::fetch_all!(
                &mut c,
                (Id, String),
                "select id, id from push_delivery where source_id = $1",
                source
            ),
        }
        .unwrap();
        assert_eq!(texts.len(), 500);
        let mut seen = HashSet::new();
        for (id, text) in &texts {
            assert_eq!(id.0.get_version_num(), 4, "{text}");
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122, "{text}");
            assert_eq!(&id.to_string(), text);
            assert!(seen.insert(*id));
        }
        // The engine reads them like any other row.
        let first = texts[0].0;
        assert_eq!(db::get(&mut c, first).await.unwrap().id, first);
    }
);

on_both!(
    a_hundred_thousand_people_take_one_statement_of_a_few_seconds,
    |db: Db| async move {
        let t = tenant(&db).await;
        many(&db, t, 100_000).await;
        let source = Id::new();
        let started = Instant::now();
        assert_eq!(
            fan(&db, t, source, Audience::Roles(&["consumer"])).await,
            100_000
        );
        let took = started.elapsed();
        eprintln!("{:?}: 100,000 rows fanned out in {took:?}", db.backend());
        if db.backend() == Backend::Postgres {
            assert!(took.as_secs() < 10, "{took:?}");
        }
        let mut c = db.conn().await.unwrap();
        let n: i64 = store::fetch_scalar!(
            &mut c,
            i64,
            "select count(*) from push_delivery where source_id = $1 and status = 'PENDING'",
            source
        )
        .unwrap();
        assert_eq!(n, 100_000);
    }
);

/// An unused (or, with `used`, spent) consent of `user` to subscribe template `template`.
async fn consent(db: &Db, tenant: Id, user: Id, template: &str, used: bool) {
    let mut c = db.conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into subscribe_consent (id, tenant_id, user_id, app_id, template_id, used_at) values ($1, $2, $3, 'wx-mp', $4, $5)",
        Id::new(),
        tenant,
        user,
        template,
        used.then(Utc::now)
    )
    .unwrap();
}

/// `user` (by their unionid) follows the official account, or did.
async fn follow(db: &Db, tenant: Id, user: Id, subscribed: bool) {
    let mut c = db.conn().await.unwrap();
    let unionid = format!("union-{user}");
    store::execute!(
        &mut c,
        "update app_user set wx_unionid = $1 where id = $2",
        &unionid,
        user
    )
    .unwrap();
    store::execute!(
        &mut c,
        "insert into wechat_follower (app_id, openid, tenant_id, unionid, subscribed) values ('wx-oa', $1, $2, $3, $4)",
        format!("oa-{user}"),
        tenant,
        &unionid,
        subscribed
    )
    .unwrap();
}

/// Fans a NOTICE out to `users` in the order `channels`; returns how many rows were written and
/// (person, channel, fallback) of every row of the message.
async fn fan_in_order(
    db: &Db,
    tenant: Id,
    source: Id,
    users: &[Id],
    channels: &[Channel],
) -> (u64, Vec<(Id, String, String)>) {
    let payload = json!({ "title": "Depot moved" });
    let mut tx = db.begin().await.unwrap();
    let n = enqueue_all(
        &mut tx,
        &Fanout {
            tenant_id: tenant,
            audience: Audience::Users(users),
            kind: "NOTICE",
            class: Class::Reminder,
            source_id: source,
            channels,
            payload: &payload,
            not_before: Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rows = rows(db, tenant, source)
        .await
        .into_iter()
        .map(|d| (d.user_id, d.channel, d.fallback))
        .collect();
    (n, rows)
}

on_both!(
    each_person_starts_at_the_first_channel_that_can_reach_them,
    |db: Db| async move {
        let t = tenant(&db).await;
        let mut c = db.conn().await.unwrap();
        for (channel, app, template) in [
            ("SUBSCRIBE", "wx-mp", "sub-1"),
            ("TEMPLATE", "wx-oa", "tpl-1"),
        ] {
            store::execute!(
                &mut c,
                "insert into push_template (tenant_id, kind, channel, app_id, template_id, fields) values ($1, 'NOTICE', $2, $3, $4, '{}')",
                t,
                channel,
                app,
                template
            )
            .unwrap();
        }
        let mut people = Vec::new();
        for _ in 0..7 {
            people.push(simple(&db, t, "driver").await);
        }
        let [
            consented,
            follower,
            device,
            nothing,
            spent,
            left,
            other_template,
        ] = <[Id; 7]>::try_from(people.clone()).unwrap();
        consent(&db, t, consented, "sub-1", false).await;
        follow(&db, t, follower, true).await;
        store::execute!(
            &mut c,
            "insert into push_device (id, tenant_id, user_id, provider, environment, token) values ($1, $2, $3, 'FCM', 'PRODUCTION', 'fcm-token-1')",
            Id::new(),
            t,
            device
        )
        .unwrap();
        // A consent already spent, an account left, a consent to another template: none of
        // them reaches the person.
        consent(&db, t, spent, "sub-1", true).await;
        follow(&db, t, left, false).await;
        consent(&db, t, other_template, "sub-other", false).await;

        let order = [
            Channel::Subscribe,
            Channel::Template,
            Channel::App,
            Channel::InApp,
        ];
        let source = Id::new();
        let (n, rows) = fan_in_order(&db, t, source, &people, &order).await;
        assert_eq!(n, 7);
        let by_person: std::collections::HashMap<Id, (String, String)> =
            rows.into_iter().map(|(u, c, f)| (u, (c, f))).collect();
        let expect = |u: Id, c: &str, f: &str| {
            assert_eq!(by_person[&u], (c.to_owned(), f.to_owned()), "{u}");
        };
        expect(consented, "SUBSCRIBE", "TEMPLATE,APP,IN_APP");
        expect(follower, "TEMPLATE", "APP,IN_APP");
        expect(device, "APP", "IN_APP");
        for u in [nothing, spent, left, other_template] {
            expect(u, "IN_APP", "");
        }

        // The person with nothing consents, and the message is fanned out again: they have it
        // already, on another channel, and get no second one.
        consent(&db, t, nothing, "sub-1", false).await;
        let (again, rows) = fan_in_order(&db, t, source, &people, &order).await;
        assert_eq!((again, rows.len()), (0, 7));

        // An order with no channel that reaches someone starts them at its first.
        let (n, rows) = fan_in_order(
            &db,
            t,
            Id::new(),
            &[device, left],
            &[Channel::Subscribe, Channel::Template],
        )
        .await;
        assert_eq!(n, 2);
        for (_, channel, fallback) in rows {
            assert_eq!(
                (channel.as_str(), fallback.as_str()),
                ("SUBSCRIBE", "TEMPLATE")
            );
        }
    }
);
