//! The same behaviour on both backends: each test runs on SQLite, and on PostgreSQL when
//! `DATABASE_URL` names a server (an unreachable one fails the test).

// A failed unwrap is a failed test; the workspace ban on it is for production code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use minigate_store::{Backend, Db, DbOptions, Id, List, Unique};

use minigate_store::on_both_backends;

async fn insert_tenant(db: &Db, slug: &str) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    minigate_store::execute!(
        &mut c,
        "insert into tenant (id, slug, name) values ($1, $2, $3)",
        id,
        slug,
        format!("Tenant {slug}")
    )
    .unwrap();
    id
}

on_both_backends!(migrations_are_idempotent, |db: Db| async move {
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
});

on_both_backends!(
    ids_round_trip_and_list_parameters_select_exactly_the_listed_rows,
    |db: Db| async move {
        let a = insert_tenant(&db, "a").await;
        let _b = insert_tenant(&db, "b").await;
        let c = insert_tenant(&db, "c").await;
        let mut conn = db.conn().await.unwrap();
        let mut found: Vec<(Id, String)> = minigate_store::fetch_all!(
            &mut conn,
            (Id, String),
            "select id, slug from tenant where id = any($1) order by slug",
            List(vec![a, c, Id::new()])
        )
        .unwrap();
        found.sort_by(|x, y| x.1.cmp(&y.1));
        assert_eq!(found, vec![(a, "a".to_owned()), (c, "c".to_owned())]);
        let none: Vec<(Id, String)> = minigate_store::fetch_all!(
            &mut conn,
            (Id, String),
            "select id, slug from tenant where id = any($1)",
            List(Vec::<Id>::new())
        )
        .unwrap();
        assert!(none.is_empty());
    }
);

const BRANCH_CODE: Unique = Unique {
    name: "branch_tenant_code_key",
    table: "branch",
    columns: &["tenant_id", "code"],
};
const TENANT_SLUG: Unique = Unique {
    name: "tenant_slug_key",
    table: "tenant",
    columns: &["slug"],
};

on_both_backends!(
    unique_violations_are_named_the_same_way_on_both,
    |db: Db| async move {
        let t = insert_tenant(&db, "t").await;
        let mut c = db.conn().await.unwrap();
        let insert = |code: &'static str| {
            let id = Id::new();
            (id, code)
        };
        let (id1, code) = insert("SZ");
        minigate_store::execute!(
            &mut c,
            "insert into branch (id, tenant_id, code, name) values ($1, $2, $3, 'Shenzhen')",
            id1,
            t,
            code
        )
        .unwrap();
        let err = minigate_store::execute!(
            &mut c,
            "insert into branch (id, tenant_id, code, name) values ($1, $2, $3, 'again')",
            Id::new(),
            t,
            code
        )
        .unwrap_err();
        assert!(err.is_unique(&BRANCH_CODE), "{err:?}");
        assert!(!err.is_unique(&TENANT_SLUG));
        assert_eq!(err.code(), "INTERNAL");
        // The first row is untouched.
        let names: Vec<String> = minigate_store::fetch_all!(
            &mut c,
            (String,),
            "select name from branch where tenant_id = $1",
            t
        )
        .unwrap()
        .into_iter()
        .map(|(n,)| n)
        .collect();
        assert_eq!(names, vec!["Shenzhen".to_owned()]);
    }
);

on_both_backends!(now_compares_with_bound_timestamps, |db: Db| async move {
    let t = insert_tenant(&db, "now").await;
    let mut c = db.conn().await.unwrap();
    let before = Utc::now() - chrono::Duration::seconds(60);
    let after = Utc::now() + chrono::Duration::seconds(60);
    let n: i64 = minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from tenant where id = $1 and created_at > $2 and created_at < $3 and now() > $2",
        t,
        before,
        after
    )
    .unwrap();
    assert_eq!(n, 1);
    let created: DateTime<Utc> = minigate_store::fetch_scalar!(
        &mut c,
        DateTime<Utc>,
        "select created_at from tenant where id = $1",
        t
    )
    .unwrap();
    assert!(created > before && created < after);
});

on_both_backends!(
    claiming_with_row_locks_never_hands_a_row_to_two_workers,
    |db: Db| async move {
        let mut c = db.conn().await.unwrap();
        minigate_store::execute!(
            &mut c,
            "create table claim_test (n bigint primary key, claimed_by text)"
        )
        .unwrap();
        for n in 0..20_i64 {
            minigate_store::execute!(&mut c, "insert into claim_test (n) values ($1)", n).unwrap();
        }
        drop(c);
        let worker = |name: &'static str, db: Db| async move {
            let mut mine = Vec::new();
            for _ in 0..2 {
                let mut tx = db.begin().await.unwrap();
                let rows: Vec<(i64,)> = minigate_store::fetch_all!(
                &mut tx,
                (i64,),
                "select n from claim_test where claimed_by is null order by n limit 3 for update skip locked"
            )
            .unwrap();
                // Hold the claim while the other worker tries.
                tokio::time::sleep(Duration::from_millis(50)).await;
                for (n,) in &rows {
                    minigate_store::execute!(
                        &mut tx,
                        "update claim_test set claimed_by = $1 where n = $2",
                        name,
                        *n
                    )
                    .unwrap();
                    mine.push(*n);
                }
                tx.commit().await.unwrap();
            }
            mine
        };
        let (a, b) = tokio::join!(
            tokio::spawn(worker("a", db.clone())),
            tokio::spawn(worker("b", db.clone()))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 12);
        assert!(a.iter().all(|n| !b.contains(n)), "{a:?} {b:?}");
        let mut c = db.conn().await.unwrap();
        let claimed: i64 = minigate_store::fetch_scalar!(
            &mut c,
            i64,
            "select count(*) from claim_test where claimed_by is not null"
        )
        .unwrap();
        assert_eq!(claimed, 12);
    }
);

on_both_backends!(
    a_rolled_back_transaction_leaves_nothing,
    |db: Db| async move {
        let mut tx = db.begin().await.unwrap();
        minigate_store::execute!(
            &mut tx,
            "insert into tenant (id, slug, name) values ($1, 'gone', 'Gone')",
            Id::new()
        )
        .unwrap();
        tx.rollback().await.unwrap();
        let mut c = db.conn().await.unwrap();
        let n: i64 =
            minigate_store::fetch_scalar!(&mut c, i64, "select count(*) from tenant").unwrap();
        assert_eq!(n, 0);
    }
);

on_both_backends!(
    writers_queued_behind_a_long_transaction_all_get_their_turn_and_readers_are_not_starved,
    |db: Db| async move {
        let first = insert_tenant(&db, "first").await;
        // A transaction that holds on for longer than a request waits for a connection (3 s).
        let mut long = db.begin().await.unwrap();
        minigate_store::execute!(
            &mut long,
            "update tenant set name = 'Held' where id = $1",
            first
        )
        .unwrap();
        // Three times as many writers as SQLite's pool has connections.
        let writers: Vec<_> = (0..24)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin().await?;
                    minigate_store::execute!(
                        &mut tx,
                        "insert into tenant (id, slug, name) values ($1, $2, 'Writer')",
                        Id::new(),
                        format!("writer-{i}")
                    )?;
                    tx.commit().await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Writers waiting their turn hold no connection: a reader gets one and sees only what
        // is committed.
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = db.conn().await?;
            minigate_store::fetch_scalar!(&mut c, i64, "select count(*) from tenant")
        })
        .await
        .expect("a reader waited for a connection behind queued writers")
        .unwrap();
        if db.backend() == Backend::Sqlite {
            assert_eq!(read, 1, "SQLite writers wait for the long transaction");
        }
        tokio::time::sleep(Duration::from_millis(3_700)).await;
        long.commit().await.unwrap();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        let mut c = db.conn().await.unwrap();
        let (n, name): (i64, String) = (
            minigate_store::fetch_scalar!(&mut c, i64, "select count(*) from tenant").unwrap(),
            minigate_store::fetch_scalar!(
                &mut c,
                String,
                "select name from tenant where id = $1",
                first
            )
            .unwrap(),
        );
        assert_eq!((n, name.as_str()), (25, "Held"));
    }
);

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_with_database_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = Db::connect_lazy(
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
        &DbOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = db.ping().await.unwrap_err();
    assert_eq!(err.code(), "DATABASE_UNAVAILABLE", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_unknown_url_scheme_is_refused() {
    let err = Db::connect_lazy("mysql://x", &DbOptions::default()).unwrap_err();
    assert!(matches!(err, minigate_store::Error::UnsupportedUrl));
}

on_both_backends!(
    commit_hooks_run_after_commit_and_never_after_rollback,
    |db: Db| async move {
        use std::sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        };
        let fired = Arc::new(AtomicU32::new(0));
        let mut tx = db.begin().await.unwrap();
        let f = fired.clone();
        tx.on_commit(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        tx.commit().await.unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let mut tx = db.begin().await.unwrap();
        let f = fired.clone();
        tx.on_commit(move || {
            f.fetch_add(10, Ordering::SeqCst);
        });
        tx.rollback().await.unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let mut plain = db.conn().await.unwrap();
        let f = fired.clone();
        plain.on_commit(move || {
            f.fetch_add(100, Ordering::SeqCst);
        });
        assert_eq!(fired.load(Ordering::SeqCst), 101);
    }
);

on_both_backends!(
    a_job_lock_is_held_by_one_transaction_at_a_time,
    |db: Db| async move {
        let mut a = db.begin().await.unwrap();
        assert!(a.try_job_lock(42).await.unwrap());
        if db.backend() == Backend::Postgres {
            // A second replica's transaction does not get it while the first holds it...
            let mut b = db.begin().await.unwrap();
            assert!(!b.try_job_lock(42).await.unwrap());
            assert!(b.try_job_lock(43).await.unwrap());
            b.rollback().await.unwrap();
        }
        a.commit().await.unwrap();
        // ...and gets it once the first has committed.
        let mut c = db.begin().await.unwrap();
        assert!(c.try_job_lock(42).await.unwrap());
        c.commit().await.unwrap();
    }
);

on_both_backends!(
    a_job_guard_is_held_by_one_replica_and_leaves_writes_free,
    |db: Db| async move {
        let guard = db.try_job(7).await.unwrap().expect("free job lock");
        if db.backend() == Backend::Postgres {
            assert!(db.try_job(7).await.unwrap().is_none(), "taken twice");
            assert!(db.try_job(8).await.unwrap().is_some());
        }
        // The job's own writes are not blocked by its guard (SQLite has one writer).
        let mut w = db.begin().await.unwrap();
        minigate_store::execute!(
            &mut w,
            "insert into tenant (id, slug, name) values ($1, $2, 'Job')",
            Id::new(),
            &format!("job-{}", Id::new().to_string().get(..8).unwrap_or("x"))
        )
        .unwrap();
        w.commit().await.unwrap();
        guard.release().await.unwrap();
        assert!(db.try_job(7).await.unwrap().is_some(), "released");
    }
);

on_both_backends!(
    notifications_arrive_only_after_commit,
    |db: Db| async move {
        let Some(mut listener) = db.listen("minigate_test").await.unwrap() else {
            assert_eq!(db.backend(), Backend::Sqlite);
            return;
        };
        let mut tx = db.begin().await.unwrap();
        tx.notify("minigate_test", "hello").await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), listener.recv()).await;
        assert!(early.is_err(), "delivered before commit");
        tx.commit().await.unwrap();
        let payload = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payload, "hello");
    }
);

/// A connection cut during its handshake (seen through a proxy in front of a PostgreSQL that went
/// away): sqlx reads a zero byte where the answer to its SSLRequest should be and reports a
/// protocol error. To a client that is still "the database is unavailable".
#[tokio::test]
async fn a_connection_dropped_during_the_handshake_is_database_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            let _ = socket.read_exact(&mut request).await;
            let _ = socket.write_all(&[0]).await;
            drop(socket);
        }
    });
    let db = Db::connect_lazy(
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
        &DbOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(800),
        },
    )
    .unwrap();
    assert_eq!(db.conn().await.unwrap_err().code(), "DATABASE_UNAVAILABLE");
    assert_eq!(db.begin().await.unwrap_err().code(), "DATABASE_UNAVAILABLE");
    assert_eq!(db.ping().await.unwrap_err().code(), "DATABASE_UNAVAILABLE");
}
