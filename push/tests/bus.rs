//! The outbox, dispatcher and bus on SQLite (one node) and on PostgreSQL with Redis (replicas).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use minigate_push::{
    bus::{Bus, Subscription},
    dispatch::{Dispatcher, Outcome},
    events::{self, NewEvent, Waker, topic},
};
use minigate_store::{Backend, Db, Id, testing::TestDb};
use serde_json::json;

struct Node {
    db: Db,
    bus: Bus,
    dispatcher: Dispatcher,
    waker: Waker,
}

async fn node(db: &Db, redis: Option<(&str, &str)>) -> Node {
    let bus = match redis {
        None => Bus::local(db.clone()),
        Some((url, prefix)) => {
            let client = redis::Client::open(url).unwrap();
            let conn = redis::aio::ConnectionManager::new(client.clone())
                .await
                .unwrap();
            Bus::redis(db.clone(), client, conn, prefix).await.unwrap()
        }
    };
    let waker = Waker::default();
    Node {
        db: db.clone(),
        dispatcher: Dispatcher::new(db.clone(), bus.clone(), waker.clone()),
        bus,
        waker,
    }
}

macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = TestDb::new(Backend::Sqlite, None).await.unwrap();
                ($body)(t.db.clone(), None).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_and_redis() {
                let (Ok(pg), Ok(redis)) =
                    (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL"))
                else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI must run this: set DATABASE_URL and REDIS_URL"
                    );
                    eprintln!("DATABASE_URL / REDIS_URL not set: skipped");
                    return;
                };
                let t = TestDb::new(Backend::Postgres, Some(&pg)).await.unwrap();
                let prefix = format!("bus-test:{}:", uuid::Uuid::new_v4().simple());
                ($body)(t.db.clone(), Some((redis, prefix))).await;
            }
        }
    };
}

async fn tenant(db: &Db) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    minigate_store::execute!(
        &mut c,
        "insert into tenant (id, slug, name) values ($1, $2, 'T')",
        id,
        id.to_string()
    )
    .unwrap();
    id
}

/// Writes test event `i` on `topic` in the caller's transaction.
async fn enqueue(tx: &mut minigate_store::Conn, n: &Node, tenant: Id, topic: &str, i: i64) {
    let event = NewEvent {
        tenant_id: tenant,
        topic: topic.to_owned(),
        kind: "test",
        payload: json!({ "i": i }),
    };
    events::enqueue(tx, &n.waker, event).await.unwrap();
}

/// One event in a transaction of its own.
async fn emit(n: &Node, tenant: Id, topic: &str, i: i64) {
    let mut tx = n.db.begin().await.unwrap();
    enqueue(&mut tx, n, tenant, topic, i).await;
    tx.commit().await.unwrap();
}

async fn drain(n: &Node) -> usize {
    let mut total = 0;
    loop {
        match n.dispatcher.try_execute_task().await.unwrap() {
            Outcome::Dispatched(k) => total += k,
            Outcome::Idle => return total,
            Outcome::Busy => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn take(sub: &mut Subscription, n: usize) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        out.push((e.seq, e.payload.0["i"].as_i64().unwrap()));
    }
    out
}

async fn nothing_more(sub: &mut Subscription) {
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "unexpected event"
    );
}

on_both!(events_reach_their_topic_in_order_once, |db: Db,
                                                  redis: Option<
    (String, String),
>| async move {
    let n = node(&db, redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))).await;
    let t = tenant(&db).await;
    let (a, b) = (topic::tenant(t), topic::user(Id::new()));
    let mut sa = n.bus.subscribe(vec![a.clone()], None).await.unwrap();
    let mut sb = n.bus.subscribe(vec![b.clone()], None).await.unwrap();
    for i in 0..3 {
        emit(&n, t, &a, i).await;
    }
    emit(&n, t, &b, 99).await;
    assert_eq!(drain(&n).await, 4);
    let got = take(&mut sa, 3).await;
    assert_eq!(got.iter().map(|x| x.1).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    nothing_more(&mut sa).await;
    assert_eq!(take(&mut sb, 1).await[0].1, 99);
    // A second round finds nothing to do: nothing is published twice.
    assert_eq!(drain(&n).await, 0);
    nothing_more(&mut sa).await;
});

on_both!(a_rolled_back_change_publishes_nothing, |db: Db,
                                                  redis: Option<
    (String, String),
>| async move {
    let n = node(&db, redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))).await;
    let t = tenant(&db).await;
    let a = topic::tenant(t);
    let mut s = n.bus.subscribe(vec![a.clone()], None).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    enqueue(&mut tx, &n, t, &a, 1).await;
    tx.rollback().await.unwrap();
    assert_eq!(drain(&n).await, 0);
    nothing_more(&mut s).await;
});

on_both!(
    a_resumed_subscription_gets_what_it_missed_then_live_events,
    |db: Db, redis: Option<(String, String)>| async move {
        let n = node(&db, redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))).await;
        let t = tenant(&db).await;
        let a = topic::tenant(t);
        let mut s = n.bus.subscribe(vec![a.clone()], None).await.unwrap();
        emit(&n, t, &a, 1).await;
        drain(&n).await;
        let first = take(&mut s, 1).await[0];
        drop(s); // the mini-program went to the background
        for i in 2..5 {
            emit(&n, t, &a, i).await;
        }
        drain(&n).await;
        let mut resumed = n
            .bus
            .subscribe(vec![a.clone()], Some(first.0))
            .await
            .unwrap();
        emit(&n, t, &a, 5).await;
        drain(&n).await;
        let got: Vec<i64> = take(&mut resumed, 4)
            .await
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(got, vec![2, 3, 4, 5]);
        nothing_more(&mut resumed).await;
    }
);

on_both!(resuming_beyond_the_window_is_refused, |db: Db,
                                                 redis: Option<(
    String,
    String
)>| async move {
    let n = node(&db, redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))).await;
    let t = tenant(&db).await;
    let a = topic::tenant(t);
    for i in 0..5 {
        emit(&n, t, &a, i).await;
    }
    drain(&n).await;
    let mut c = db.conn().await.unwrap();
    minigate_store::execute!(&mut c, "delete from outbox_event where seq <= 3").unwrap();
    let err = n
        .bus
        .subscribe(vec![a.clone()], Some(1))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "RESUME_WINDOW_EXPIRED");
    let err = n
        .bus
        .subscribe(vec![a.clone()], Some(1_000))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "RESUME_WINDOW_EXPIRED");
    // Right at the edge is fine.
    let mut s = n.bus.subscribe(vec![a], Some(3)).await.unwrap();
    assert_eq!(
        take(&mut s, 2)
            .await
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
});

on_both!(
    a_subscriber_that_falls_behind_catches_up_from_the_outbox,
    |db: Db, redis: Option<(String, String)>| async move {
        let n = node(&db, redis.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))).await;
        let t = tenant(&db).await;
        let a = topic::tenant(t);
        let mut s = n.bus.subscribe(vec![a.clone()], None).await.unwrap();
        // Far more than the subscription's queue holds, before it reads anything.
        let mut tx = db.begin().await.unwrap();
        for i in 0..700 {
            enqueue(&mut tx, &n, t, &a, i).await;
        }
        tx.commit().await.unwrap();
        drain(&n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got: Vec<i64> = take(&mut s, 700).await.into_iter().map(|x| x.1).collect();
        assert_eq!(got, (0..700).collect::<Vec<_>>());
        nothing_more(&mut s).await;
    }
);

/// Two replicas sharing PostgreSQL and Redis: an event dispatched by one reaches a subscriber of
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_dispatched_on_one_replica_reaches_the_other() {
    let (Ok(pg), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this");
        return;
    };
    let t = TestDb::new(Backend::Postgres, Some(&pg)).await.unwrap();
    let prefix = format!("bus-test:{}:", uuid::Uuid::new_v4().simple());
    let one = node(&t.db, Some((&redis, &prefix))).await;
    let two = node(&t.db, Some((&redis, &prefix))).await;
    let ten = tenant(&t.db).await;
    let a = topic::tenant(ten);
    let mut on_two = two.bus.subscribe(vec![a.clone()], None).await.unwrap();
    emit(&one, ten, &a, 7).await;
    drain(&one).await;
    assert_eq!(take(&mut on_two, 1).await[0].1, 7);
    // The second replica's dispatcher finds nothing left to publish.
    assert_eq!(drain(&two).await, 0);
    nothing_more(&mut on_two).await;
}

/// A node's dispatcher loop, running until stopped.
struct Running(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

impl Running {
    fn start(n: &Node) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(n.dispatcher.clone().run(async {
            let _ = stopped.await;
        }));
        Running(stop, task)
    }

    async fn stop(self) {
        let _ = self.0.send(());
        self.1.await.unwrap();
    }
}

/// Writers' transactions send no `NOTIFY`. A replica whose own commit finds the dispatch lock
/// held elsewhere wakes the others after that commit; a replica woken by another runs a round at
/// once rather than at its 5-second safety timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_finds_the_lock_held_wakes_the_others() {
    let (Ok(pg), Ok(redis)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this");
        return;
    };
    let t = TestDb::new(Backend::Postgres, Some(&pg)).await.unwrap();
    let prefix = format!("bus-test:{}:", uuid::Uuid::new_v4().simple());
    let one = node(&t.db, Some((&redis, &prefix))).await;
    let two = node(&t.db, Some((&redis, &prefix))).await;
    let ten = tenant(&t.db).await;
    let a = topic::tenant(ten);
    let mut heard = t.db.listen(events::WAKE_CHANNEL).await.unwrap().unwrap();

    // The writer's own commit notifies nobody.
    emit(&two, ten, &a, 1).await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), heard.recv()).await;
    assert!(quiet.is_err(), "a writer's transaction sent a NOTIFY");

    // Replica two runs its loop; its commit finds the lock held, so it wakes the others.
    let mut holder = t.db.begin().await.unwrap();
    assert!(
        holder
            .try_job_lock(minigate_push::dispatch::LOCK)
            .await
            .unwrap()
    );
    let two_running = Running::start(&two);
    emit(&two, ten, &a, 2).await;
    let from = tokio::time::timeout(Duration::from_secs(3), heard.recv())
        .await
        .expect("the busy replica woke the others")
        .unwrap();
    assert!(!from.is_empty());
    holder.rollback().await.unwrap();
    two_running.stop().await;
    drain(&two).await;

    // Replica one, woken by another replica's NOTIFY, publishes what is waiting at once.
    let mut on_one = one.bus.subscribe(vec![a.clone()], None).await.unwrap();
    let one_running = Running::start(&one);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Written without waking anyone (as by a replica whose dispatcher is stuck), then a wake-up.
    let mut tx = t.db.begin().await.unwrap();
    enqueue(&mut tx, &node(&t.db, None).await, ten, &a, 3).await;
    tx.commit().await.unwrap();
    let mut w = t.db.begin().await.unwrap();
    w.notify(events::WAKE_CHANNEL, "another replica")
        .await
        .unwrap();
    w.commit().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), on_one.next())
        .await
        .expect("replica one was woken, not left to its safety timer")
        .unwrap()
        .unwrap();
    assert_eq!(got.payload.0["i"], 3);
    one_running.stop().await;
}

/// A Redis of our own, restarted mid-stream (it keeps nothing on disk, like production's cache):
/// subscribers receive everything once it is back, with no loss and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_lose_nothing_when_redis_restarts() {
    let Ok(pg) = std::env::var("DATABASE_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this");
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server")
    };
    let wait_up = || async {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis did not start");
    };
    let mut server = start_redis();
    wait_up().await;
    let url = format!("redis://127.0.0.1:{port}");
    let t = TestDb::new(Backend::Postgres, Some(&pg)).await.unwrap();
    let n = node(&t.db, Some((&url, "restart:"))).await;
    let ten = tenant(&t.db).await;
    let a = topic::tenant(ten);
    let mut s = n.bus.subscribe(vec![a.clone()], None).await.unwrap();
    emit(&n, ten, &a, 1).await;
    drain(&n).await;
    assert_eq!(take(&mut s, 1).await[0].1, 1);

    server.kill().unwrap();
    server.wait().unwrap();
    emit(&n, ten, &a, 2).await;
    // Publishing fails while Redis is down; the event waits in the outbox.
    assert!(n.dispatcher.try_execute_task().await.is_err());
    server = start_redis();
    wait_up().await;
    let mut published = 0;
    for _ in 0..50 {
        match n.dispatcher.try_execute_task().await {
            Ok(Outcome::Dispatched(k)) => published += k,
            Ok(_) if published > 0 => break,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(published, 1);
    emit(&n, ten, &a, 3).await;
    drain(&n).await;
    let got: Vec<i64> = take(&mut s, 2).await.into_iter().map(|x| x.1).collect();
    assert_eq!(got, vec![2, 3]);
    nothing_more(&mut s).await;
    server.kill().unwrap();
    let _ = server.wait();
}
