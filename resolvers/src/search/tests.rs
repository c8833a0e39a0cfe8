#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The search on both backends: who finds what, synonyms, highlighting, paging, bad input and
//! indexing an edited record again.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone};
use minigate_store::{self as store, Backend, Db};

use super::*;

/// A company with two branches and people in each, and a second company.
pub(super) struct World {
    pub db: Db,
    pub tenant: Id,
    pub b1: Id,
    pub b2: Id,
    pub admin: Viewer,
    pub staff1: Viewer,
    pub staff2: Viewer,
    pub driver1: Viewer,
    pub driver2: Viewer,
    pub consumer: Viewer,
    pub other_admin: Viewer,
}

async fn tenant(c: &mut Conn) -> Id {
    let id = Id::new();
    store::execute!(
        c,
        "insert into tenant (id, slug, name) values ($1, $2, 'T')",
        id,
        id.to_string()
    )
    .unwrap();
    id
}

async fn branch(c: &mut Conn, tenant: Id, code: &str) -> Id {
    let id = Id::new();
    store::execute!(
        c,
        "insert into branch (id, tenant_id, code, name) values ($1, $2, $3, $3)",
        id,
        tenant,
        code
    )
    .unwrap();
    id
}

async fn user(c: &mut Conn, tenant: Id, role: Role, branch: Option<Id>) -> Viewer {
    let id = Id::new();
    let driver = if role == Role::Driver {
        let d = Id::new();
        store::execute!(
            c,
            "insert into driver (id, tenant_id, branch_id, name, phone, id_number)
             values ($1, $2, $3, 'D', $4, $5)",
            d,
            tenant,
            branch,
            format!("138{}", &d.to_string().replace('-', "")[24..]),
            d.to_string()
        )
        .unwrap();
        Some(d)
    } else {
        None
    };
    store::execute!(
        c,
        "insert into app_user (id, tenant_id, role, branch_id, driver_id) values ($1, $2, $3, $4, $5)",
        id,
        tenant,
        role.as_str(),
        if role == Role::Driver { None } else { branch },
        driver
    )
    .unwrap();
    Viewer {
        user_id: id,
        tenant_id: tenant,
        role,
        // A driver's token carries no branch: the search reads it from the driver record.
        branch_id: if role == Role::Driver { None } else { branch },
        driver_id: driver,
        session_id: Id::new(),
    }
}

pub(super) async fn world(db: Db) -> World {
    let mut c = db.begin().await.unwrap();
    let t = tenant(&mut c).await;
    let other = tenant(&mut c).await;
    let b1 = branch(&mut c, t, "SZ").await;
    let b2 = branch(&mut c, t, "GZ").await;
    let ob = branch(&mut c, other, "SZ").await;
    let w = World {
        tenant: t,
        b1,
        b2,
        admin: user(&mut c, t, Role::Admin, None).await,
        staff1: user(&mut c, t, Role::Staff, Some(b1)).await,
        staff2: user(&mut c, t, Role::Staff, Some(b2)).await,
        driver1: user(&mut c, t, Role::Driver, Some(b1)).await,
        driver2: user(&mut c, t, Role::Driver, Some(b2)).await,
        consumer: user(&mut c, t, Role::Consumer, None).await,
        other_admin: user(&mut c, other, Role::Admin, Some(ob)).await,
        db: db.clone(),
    };
    c.commit().await.unwrap();
    w
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub(super) struct NewDoc<'a> {
    pub kind: SearchKind,
    pub branch: Option<Id>,
    pub owner: Option<&'a Viewer>,
    pub title: &'a str,
    pub body: &'a str,
    pub minute: i64,
}

async fn put(w: &World, tenant: Id, d: NewDoc<'_>) -> Id {
    let id = Id::new();
    let mut tx = w.db.begin().await.unwrap();
    index(
        &mut tx,
        &Doc {
            id,
            tenant_id: tenant,
            kind: d.kind,
            branch_id: d.branch,
            owner_id: d.owner.map(|o| o.user_id),
            title: d.title,
            body: d.body,
            created_at: at(d.minute),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn ids(db: &Db, v: &Viewer, query: &str) -> BTreeSet<Id> {
    find(db, v, &args(query, 50))
        .await
        .unwrap()
        .hits
        .iter()
        .map(|h| h.id.parse().unwrap())
        .collect()
}

fn args(query: &str, first: i32) -> SearchArgs<'_> {
    SearchArgs {
        query,
        kinds: None,
        first: Some(first),
        after: None,
    }
}

fn set(ids: &[Id]) -> BTreeSet<Id> {
    ids.iter().copied().collect()
}

async fn everyone_finds_only_what_they_may_see(db: Db) {
    let w = world(db.clone()).await;
    let doc = |kind, branch, owner, minute| NewDoc {
        kind,
        branch,
        owner,
        title: "粤B12345",
        body: "在深南大道被追尾",
        minute,
    };
    use SearchKind::*;
    let a1 = put(&w, w.tenant, doc(Accident, Some(w.b1), Some(&w.driver1), 1)).await;
    let a2 = put(&w, w.tenant, doc(Accident, Some(w.b2), Some(&w.driver2), 2)).await;
    let m1 = put(
        &w,
        w.tenant,
        doc(Maintenance, Some(w.b1), Some(&w.driver1), 3),
    )
    .await;
    let f1 = put(&w, w.tenant, doc(FollowUp, Some(w.b1), Some(&w.staff1), 4)).await;
    let f2 = put(&w, w.tenant, doc(FollowUp, Some(w.b2), Some(&w.staff2), 5)).await;
    let nt = put(&w, w.tenant, doc(Notice, None, Some(&w.admin), 6)).await;
    let nb1 = put(&w, w.tenant, doc(Notice, Some(w.b1), Some(&w.admin), 7)).await;
    let nb2 = put(&w, w.tenant, doc(Notice, Some(w.b2), Some(&w.admin), 8)).await;
    // A notice to two named people of different branches.
    let nu = Id::new();
    let mut tx = db.begin().await.unwrap();
    index_for_readers(
        &mut tx,
        &Doc {
            id: nu,
            tenant_id: w.tenant,
            kind: Notice,
            branch_id: None,
            owner_id: Some(w.admin.user_id),
            title: "通知",
            body: "被追尾的车辆请到门店定损",
            created_at: at(9),
        },
        &[w.driver2.user_id, w.staff1.user_id, w.other_admin.user_id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let other = put(
        &w,
        w.other_admin.tenant_id,
        doc(Accident, None, Some(&w.other_admin), 10),
    )
    .await;

    let cases = [
        (
            "admin",
            &w.admin,
            set(&[a1, a2, m1, f1, f2, nt, nb1, nb2, nu]),
        ),
        (
            "staff of branch 1",
            &w.staff1,
            set(&[a1, m1, f1, nt, nb1, nu]),
        ),
        ("staff of branch 2", &w.staff2, set(&[a2, f2, nt, nb2])),
        ("driver of branch 1", &w.driver1, set(&[a1, m1, nt, nb1])),
        ("driver of branch 2", &w.driver2, set(&[a2, nt, nb2, nu])),
        ("consumer", &w.consumer, set(&[nt])),
        ("other company", &w.other_admin, set(&[other])),
    ];
    for (who, v, expected) in cases {
        assert_eq!(ids(&db, v, "追尾").await, expected, "{who}");
    }

    // A driver moved to branch 2 finds branch 2's notices from then on, not branch 1's.
    let mut c = db.conn().await.unwrap();
    store::execute!(
        &mut c,
        "update driver set branch_id = $1 where id = $2",
        w.b2,
        w.driver1.driver_id
    )
    .unwrap();
    assert_eq!(ids(&db, &w.driver1, "追尾").await, set(&[a1, m1, nt, nb2]));

    // Kinds filter.
    let found = find(
        &db,
        &w.admin,
        &SearchArgs {
            kinds: Some(&[FollowUp, Maintenance]),
            ..args("追尾", 50)
        },
    )
    .await
    .unwrap();
    let kinds: BTreeSet<SearchKind> = found.hits.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [Maintenance, FollowUp].into_iter().collect());
    assert_eq!(found.hits.len(), 3);
}
store::on_both_backends!(
    everyone_finds_only_what_they_may_see,
    everyone_finds_only_what_they_may_see
);

async fn synonyms_expand_queries_and_an_operators_group_takes_effect(db: Db) {
    let w = world(db.clone()).await;
    let doc = |body, minute| NewDoc {
        kind: SearchKind::Accident,
        branch: Some(w.b1),
        owner: Some(&w.driver1),
        title: "粤B12345 事故",
        body,
        minute,
    };
    let rear = put(&w, w.tenant, doc("等红灯的时候被后车撞了，保险杠裂了", 1)).await;
    let tyre = put(&w, w.tenant, doc("高速上右后轮胎破了，叫了道路救援", 2)).await;
    let bumped = put(&w, w.tenant, doc("停车场倒车时顶到了石墩", 3)).await;
    // Built-in groups: 追尾 ~ 后车撞, 爆胎 ~ 轮胎破了.
    assert_eq!(ids(&db, &w.admin, "追尾").await, set(&[rear]));
    assert_eq!(ids(&db, &w.admin, "爆胎").await, set(&[tyre]));
    assert!(ids(&db, &w.admin, "磕碰").await.is_empty());

    // An operator's group: found at once, listed after the built-in ones, audited.
    let g = save_group(&db, &w.admin, None, &["磕碰".into(), " 顶到 ".into()])
        .await
        .unwrap();
    assert_eq!(g.terms, vec!["磕碰", "顶到"]);
    assert_eq!(ids(&db, &w.admin, "磕碰").await, set(&[bumped]));
    let listed = list_groups(&db, &w.admin).await.unwrap();
    assert!(listed.iter().take_while(|g| g.built_in).count() >= 30);
    assert_eq!(listed.last().unwrap().terms, vec!["磕碰", "顶到"]);
    // Only in its own company.
    assert!(ids(&db, &w.other_admin, "磕碰").await.is_empty());

    // Edited, then deleted: each takes effect at once.
    let id: Id = g.id.unwrap().parse().unwrap();
    save_group(&db, &w.admin, Some(id), &["磕碰".into(), "石墩".into()])
        .await
        .unwrap();
    assert_eq!(ids(&db, &w.admin, "磕碰").await, set(&[bumped]));
    save_group(&db, &w.admin, Some(id), &["磕碰".into(), "碰了一下".into()])
        .await
        .unwrap();
    assert!(ids(&db, &w.admin, "磕碰").await.is_empty());
    delete_group(&db, &w.admin, id).await.unwrap();
    assert_eq!(
        list_groups(&db, &w.admin)
            .await
            .unwrap()
            .iter()
            .filter(|g| !g.built_in)
            .count(),
        0
    );
    let mut c = db.conn().await.unwrap();
    let actions: Vec<(String,)> = store::fetch_all!(
        &mut c,
        (String,),
        "select action from audit_log where tenant_id = $1 and entity = 'search_synonym_group' order by created_at, id",
        w.tenant
    )
    .unwrap();
    let actions: Vec<String> = actions.into_iter().map(|(a,)| a).collect();
    assert_eq!(
        actions,
        [
            "search.synonyms.create",
            "search.synonyms.update",
            "search.synonyms.update",
            "search.synonyms.delete"
        ]
    );

    // Operators only; someone else's or a missing group is not found.
    for v in [&w.staff1, &w.driver1, &w.consumer] {
        let e = save_group(&db, v, None, &["a1".into(), "b1".into()])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "FORBIDDEN");
        assert_eq!(list_groups(&db, v).await.unwrap_err().code(), "FORBIDDEN");
    }
    let g = save_group(&db, &w.admin, None, &["磕碰".into(), "顶到".into()])
        .await
        .unwrap();
    let id: Id = g.id.unwrap().parse().unwrap();
    let e = save_group(&db, &w.other_admin, Some(id), &["x1".into(), "y1".into()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    assert_eq!(
        delete_group(&db, &w.other_admin, id)
            .await
            .unwrap_err()
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(ids(&db, &w.admin, "磕碰").await, set(&[bumped]));
}
store::on_both_backends!(
    synonyms_expand_queries_and_an_operators_group_takes_effect,
    synonyms_expand_queries_and_an_operators_group_takes_effect
);

async fn hits_carry_highlighted_snippets_and_all_words_rank_first(db: Db) {
    let w = world(db.clone()).await;
    let doc = |body, minute| NewDoc {
        kind: SearchKind::Maintenance,
        branch: Some(w.b1),
        owner: Some(&w.driver1),
        title: "粤B·66K88 保养",
        body,
        minute,
    };
    let both = put(
        &w,
        w.tenant,
        doc("<小保养> 换了机油和机滤，刹车有异响也看了一下", 1),
    )
    .await;
    let one = put(&w, w.tenant, doc("刹车片换了，花了380元", 2)).await;
    let none = put(&w, w.tenant, doc("洗车", 3)).await;
    let r = find(&db, &w.admin, &args("刹车 怪声", 10)).await.unwrap();
    let got: Vec<Id> = r.hits.iter().map(|h| h.id.parse().unwrap()).collect();
    // 怪声 is a synonym of 异响: the first report has both words, the second only 刹车.
    assert_eq!(got, vec![both, one]);
    assert!(!got.contains(&none));
    assert!(
        r.hits[0].rank >= 1.0 && r.hits[1].rank < 1.0,
        "{:?}",
        r.hits
    );
    assert_eq!(r.hits[0].kind, SearchKind::Maintenance);
    assert_eq!(r.hits[0].title, "粤B·66K88 保养");
    assert_eq!(
        r.hits[0].snippet,
        "<小保养> 换了机油和机滤，刹车有异响也看了一下"
    );
    assert_eq!(
        r.hits[0].highlighted_snippet,
        "&lt;小保养&gt; 换了机油和机滤，<em>刹车</em>有<em>异响</em>也看了一下"
    );
    assert_eq!(r.hits[0].created_at, at(1));
    // The plate, however it is typed, finds the title.
    for plate in ["粤B66K88", "粤b·66k88", "B66K88", "66K88"] {
        assert_eq!(
            ids(&db, &w.admin, plate).await,
            set(&[both, one, none]),
            "{plate}"
        );
    }
}
store::on_both_backends!(
    hits_carry_highlighted_snippets_and_all_words_rank_first,
    hits_carry_highlighted_snippets_and_all_words_rank_first
);

async fn pages_follow_each_other_without_gaps_or_repeats(db: Db) {
    let w = world(db.clone()).await;
    let mut all = BTreeSet::new();
    for minute in 0..23 {
        all.insert(
            put(
                &w,
                w.tenant,
                NewDoc {
                    kind: SearchKind::Accident,
                    branch: Some(w.b1),
                    owner: Some(&w.driver1),
                    title: "事故",
                    body: if minute % 2 == 0 {
                        "左前门剐蹭"
                    } else {
                        "右后门被电动车剐蹭，对方跑了"
                    },
                    minute,
                },
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let r = find(
            &db,
            &w.staff1,
            &SearchArgs {
                after: after.as_deref(),
                ..args("剐蹭", 10)
            },
        )
        .await
        .unwrap();
        pages += 1;
        seen.extend(r.hits.iter().map(|h| h.id.parse::<Id>().unwrap()));
        if !r.has_next_page {
            break;
        }
        after = r.end_cursor;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), all);

    // A cursor belongs to its query and kinds.
    let r = find(&db, &w.staff1, &args("剐蹭", 10)).await.unwrap();
    let cursor = r.end_cursor.unwrap();
    for (query, kinds) in [("追尾", None), ("剐蹭", Some(&[SearchKind::Notice][..]))] {
        let e = find(
            &db,
            &w.staff1,
            &SearchArgs {
                query,
                kinds,
                first: Some(10),
                after: Some(&cursor),
            },
        )
        .await
        .unwrap_err();
        assert_eq!((e.code(), e.field()), ("INVALID_INPUT", Some("after")));
    }
}
store::on_both_backends!(
    pages_follow_each_other_without_gaps_or_repeats,
    pages_follow_each_other_without_gaps_or_repeats
);

async fn bad_input_is_refused_with_the_field_named(db: Db) {
    let w = world(db.clone()).await;
    let long = "追".repeat(101);
    for (query, first, after, field) in [
        ("", None, None, "query"),
        ("  \u{3000} ", None, None, "query"),
        (long.as_str(), None, None, "query"),
        ("追尾", Some(0), None, "first"),
        ("追尾", Some(51), None, "first"),
        ("追尾", None, Some("not a cursor"), "after"),
        (
            "追尾",
            None,
            Some("czE6MTA6MDAwMDAwMDAwMDAwMDAwMA"),
            "after",
        ),
    ] {
        let e = find(
            &db,
            &w.admin,
            &SearchArgs {
                query,
                kinds: None,
                first,
                after,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("INVALID_INPUT", Some(field)),
            "{query} {first:?} {after:?}"
        );
    }
    // The edges are fine, and a query of stop words alone finds nothing rather than failing.
    assert!(
        find(&db, &w.admin, &args(&"追".repeat(100), 50))
            .await
            .is_ok()
    );
    assert!(
        find(&db, &w.admin, &args("的了", 1))
            .await
            .unwrap()
            .hits
            .is_empty()
    );
    // Characters that mean something to either query language are only text.
    for q in [
        "\"",
        "'",
        "a & b",
        "x OR y",
        "NOT",
        "(",
        "tokens:追尾",
        "*",
        "\\",
    ] {
        assert!(find(&db, &w.admin, &args(q, 10)).await.is_ok(), "{q}");
    }
}
store::on_both_backends!(
    bad_input_is_refused_with_the_field_named,
    bad_input_is_refused_with_the_field_named
);

async fn indexing_an_edited_record_replaces_it_and_removing_it_hides_it(db: Db) {
    let w = world(db.clone()).await;
    let id = Id::new();
    let doc = |body| Doc {
        id,
        tenant_id: w.tenant,
        kind: SearchKind::Accident,
        branch_id: Some(w.b1),
        owner_id: Some(w.driver1.user_id),
        title: "事故",
        body,
        created_at: at(0),
    };
    let mut tx = db.begin().await.unwrap();
    index(&mut tx, &doc("前保险杠剐蹭")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&db, &w.admin, "剐蹭").await, set(&[id]));
    let mut tx = db.begin().await.unwrap();
    index(&mut tx, &doc("后视镜撞碎了")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(ids(&db, &w.admin, "剐蹭").await.is_empty());
    assert_eq!(ids(&db, &w.admin, "后视镜").await, set(&[id]));
    let r = find(&db, &w.admin, &args("后视镜", 10)).await.unwrap();
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.hits[0].snippet, "后视镜撞碎了");

    // A record rolled back with its transaction was never indexed.
    let mut tx = db.begin().await.unwrap();
    index(
        &mut tx,
        &Doc {
            id: Id::new(),
            ..doc("雨刮坏了")
        },
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(ids(&db, &w.admin, "雨刮").await.is_empty());

    // Another company cannot take over the id.
    let mut tx = db.begin().await.unwrap();
    let e = index(
        &mut tx,
        &Doc {
            tenant_id: w.other_admin.tenant_id,
            ..doc("剐蹭")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "INTERNAL");
    drop(tx);

    let mut tx = db.begin().await.unwrap();
    remove(&mut tx, w.other_admin.tenant_id, id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(&db, &w.admin, "后视镜").await, set(&[id]));
    let mut tx = db.begin().await.unwrap();
    remove(&mut tx, w.tenant, id).await.unwrap();
    tx.commit().await.unwrap();
    assert!(ids(&db, &w.admin, "后视镜").await.is_empty());
    let mut c = db.conn().await.unwrap();
    let left: i64 = store::fetch_scalar!(&mut c, i64, "select count(*) from search_doc").unwrap();
    assert_eq!(left, 0);
    if c.backend() == Backend::Sqlite {
        // The full-text index followed the table.
        let fts: i64 = store::fetch_scalar!(
            &mut c,
            i64,
            "select count(*) from search_doc_fts where search_doc_fts match '后视镜'"
        )
        .unwrap();
        assert_eq!(fts, 0);
    }
}
store::on_both_backends!(
    indexing_an_edited_record_replaces_it_and_removing_it_hides_it,
    indexing_an_edited_record_replaces_it_and_removing_it_hides_it
);

/// With limits small enough that a handful of records needs every step (the newest rows, the
/// records addressed by name, then months further and further back), each viewer finds what
/// reading everything finds, and a small cap keeps the newest matches.
async fn the_newest_rows_then_earlier_months_find_what_reading_everything_finds(db: Db) {
    let w = world(db.clone()).await;
    use SearchKind::*;
    let month = |m: i64| at(m * 31 * 24 * 60);
    let mut n = 0;
    for m in 0..14 {
        for (kind, branch, owner) in [
            (Accident, Some(w.b1), Some(&w.driver1)),
            (Maintenance, Some(w.b2), Some(&w.driver2)),
            (FollowUp, Some(w.b1), Some(&w.staff1)),
            (Notice, None, Some(&w.admin)),
            (Notice, Some(w.b2), Some(&w.admin)),
        ] {
            // Every third month has no match at all, and one record a month is about something else.
            let body = match (m % 3, n % 5) {
                (2, _) => "洗车",
                (_, 4) => "换了雨刮",
                _ => "早高峰被后车追尾，保险杠裂了",
            };
            put(
                &w,
                w.tenant,
                NewDoc {
                    kind,
                    branch,
                    owner,
                    title: "记录",
                    body,
                    minute: 0,
                },
            )
            .await;
            let mut c = db.conn().await.unwrap();
            store::execute!(
                &mut c,
                "update search_doc set created_at = $1 where id = (select id from search_doc order by updated_at desc, id desc limit 1)",
                month(m) + Duration::minutes(n)
            )
            .unwrap();
            n += 1;
        }
    }
    // Addressed to staff of branch 2 by name, long ago.
    let mut tx = db.begin().await.unwrap();
    let addressed = Id::new();
    index_for_readers(
        &mut tx,
        &Doc {
            id: addressed,
            tenant_id: w.tenant,
            kind: Notice,
            branch_id: None,
            owner_id: Some(w.admin.user_id),
            title: "通知",
            body: "追尾的车辆请到门店",
            created_at: month(0),
        },
        &[w.staff2.user_id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let steps = |probe| db::Steps {
        recent: 2,
        probe,
        months: 24,
    };
    let tight = Limits {
        candidates: 200,
        steps: steps(3),
    };
    let probe_all = Limits {
        candidates: 200,
        steps: steps(1000),
    };
    for v in [
        &w.admin,
        &w.staff1,
        &w.staff2,
        &w.driver1,
        &w.driver2,
        &w.consumer,
    ] {
        for (query, kinds) in [
            ("追尾", None),
            ("后车撞", None),
            ("追尾 雨刮", None),
            ("追尾", Some(&[Notice][..])),
        ] {
            let a = SearchArgs {
                query,
                kinds,
                first: Some(50),
                after: None,
            };
            let all: Vec<String> = find(&db, v, &a)
                .await
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.id.0)
                .collect();
            assert!(
                !all.is_empty() || v.role == Role::Consumer,
                "{:?} {query}",
                v.role
            );
            for limits in [tight, probe_all] {
                let stepwise: Vec<String> = find_with(&db, v, &a, limits)
                    .await
                    .unwrap()
                    .hits
                    .into_iter()
                    .map(|h| h.id.0)
                    .collect();
                assert_eq!(stepwise, all, "{:?} {query} {kinds:?} {limits:?}", v.role);
            }
        }
    }
    assert!(ids(&db, &w.staff2, "追尾").await.contains(&addressed));
    assert!(!ids(&db, &w.staff1, "追尾").await.contains(&addressed));

    // A cap of 3: the three newest matches, whatever step found them.
    let newest: Vec<DateTime<Utc>> = {
        let mut c = db.conn().await.unwrap();
        let rows: Vec<(DateTime<Utc>,)> = store::fetch_all!(
            &mut c,
            (DateTime<Utc>,),
            "select created_at from search_doc where tenant_id = $1 and body like '%追尾%' order by created_at desc limit 3",
            w.tenant
        )
        .unwrap();
        rows.into_iter().map(|(t,)| t).collect()
    };
    let r = find_with(
        &db,
        &w.admin,
        &args("追尾", 50),
        Limits {
            candidates: 3,
            steps: steps(3),
        },
    )
    .await
    .unwrap();
    let mut got: Vec<DateTime<Utc>> = r.hits.iter().map(|h| h.created_at).collect();
    got.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, newest);
}
store::on_both_backends!(
    the_newest_rows_then_earlier_months_find_what_reading_everything_finds,
    the_newest_rows_then_earlier_months_find_what_reading_everything_finds
);
