//! The delivery engine on SQLite and PostgreSQL: enqueueing with the change that causes a
//! message, what each channel outcome leads to (sent, fall-through, retry with backoff, dead
//! letter), workers sharing one queue and taking back what a dead worker held, quiet hours and
//! the daily cap, and the ledger of subscribe consents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration as StdDuration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use minigate_push::{
    delivery::{
        self, Channel, Class, Delivery, NewDelivery, Sender, Worker, WorkerSettings, consent,
        db::{self, Filter},
    },
    outcome::SendOutcome,
};
use minigate_store::{self as store, Backend, Db, Id};
use serde_json::json;
use tokio::sync::Notify;

use minigate_store::on_both_backends as on_both;

// ---------------------------------------------------------------------------------------------
// Clock: every pass runs at a chosen instant, on a day that is not today, so that nothing
// depends on when the suite runs.

/// Beijing wall-clock time on 2026-03-10 (`day` 0), 2026-03-11 (`day` 1) …
fn bj(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 3, 10 + day, h, m, s)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// Daytime on day 0: outside the default quiet hours.
fn noon() -> DateTime<Utc> {
    bj(0, 10, 0, 0)
}

// ---------------------------------------------------------------------------------------------
// Rows the deliveries need: a tenant and its people.

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

async fn user(db: &Db, tenant: Id) -> Id {
    let id = Id::new();
    let mut c = db.conn().await.unwrap();
    store::execute!(
        &mut c,
        "insert into app_user (id, tenant_id, role, display_name) values ($1, $2, 'driver', 'D')",
        id,
        tenant
    )
    .unwrap();
    id
}

/// `n` people in one statement.
async fn users(db: &Db, tenant: Id, n: usize) -> Vec<Id> {
    let ids: Vec<Id> = (0..n).map(|_| Id::new()).collect();
    let list = serde_json::to_string(&ids).unwrap();
    let mut c = db.conn().await.unwrap();
    let written = match db.backend() {
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
    assert_eq!(written, u64::try_from(n).unwrap());
    ids
}

// ---------------------------------------------------------------------------------------------
// A scripted channel.

/// What the scripted channel does with one message.
enum Step {
    Answer(SendOutcome),
    /// Never answers: the worker is killed while sending.
    Hang,
    /// Answers once `release` is notified: a worker that hung, then came back.
    After(Arc<Notify>, SendOutcome),
}

/// Answers per channel from a queue (then `Sent` with id `<name>:<delivery id>`), counts calls
/// per delivery and per person, and can take its time.
struct Script {
    name: &'static str,
    delay: StdDuration,
    queues: Mutex<HashMap<String, VecDeque<Step>>>,
    calls: Mutex<HashMap<Id, usize>>,
    per_user: Mutex<HashMap<Id, usize>>,
}

impl Script {
    fn new(name: &'static str) -> Arc<Self> {
        Self::slow(name, StdDuration::ZERO)
    }

    fn slow(name: &'static str, delay: StdDuration) -> Arc<Self> {
        Arc::new(Script {
            name,
            delay,
            queues: Mutex::default(),
            calls: Mutex::default(),
            per_user: Mutex::default(),
        })
    }

    fn then(&self, channel: Channel, step: Step) {
        self.queues
            .lock()
            .unwrap()
            .entry(channel.as_str().to_owned())
            .or_default()
            .push_back(step);
    }

    fn answer(&self, channel: Channel, outcome: SendOutcome) {
        self.then(channel, Step::Answer(outcome));
    }

    fn calls(&self, id: Id) -> usize {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    fn per_user(&self) -> HashMap<Id, usize> {
        self.per_user.lock().unwrap().clone()
    }

    fn msg_id(&self, id: Id) -> String {
        format!("{}:{id}", self.name)
    }

    /// Waits (at most 10 s) until the sender was called `n` times in all.
    async fn wait_calls(&self, n: usize) {
        let deadline = Instant::now() + StdDuration::from_secs(10);
        while self.total() < n {
            assert!(Instant::now() < deadline, "the sender was not called");
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    }
}

#[async_trait]
impl Sender for Script {
    async fn send(&self, d: &Delivery) -> SendOutcome {
        *self.calls.lock().unwrap().entry(d.id).or_default() += 1;
        *self.per_user.lock().unwrap().entry(d.user_id).or_default() += 1;
        let step = self
            .queues
            .lock()
            .unwrap()
            .get_mut(&d.channel)
            .and_then(VecDeque::pop_front);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match step {
            None => SendOutcome::Sent {
                provider_msg_id: Some(self.msg_id(d.id)),
            },
            Some(Step::Answer(o)) => o,
            Some(Step::Hang) => std::future::pending().await,
            Some(Step::After(release, o)) => {
                release.notified().await;
                o
            }
        }
    }
}

fn permanent(code: &str) -> SendOutcome {
    SendOutcome::Permanent {
        code: code.to_owned(),
        detail: format!("{code} detail"),
    }
}

fn transient(code: &str, retry_after: Option<StdDuration>) -> SendOutcome {
    SendOutcome::Transient {
        code: code.to_owned(),
        detail: format!("{code} detail"),
        retry_after,
    }
}

fn credential(code: &str) -> SendOutcome {
    SendOutcome::Credential {
        code: code.to_owned(),
        detail: format!("{code} detail"),
    }
}

fn worker(db: &Db, id: &str, sender: &Arc<Script>, settings: WorkerSettings) -> Worker {
    let sender: Arc<dyn Sender> = sender.clone();
    Worker::new(db.clone(), id, sender, settings)
}

// ---------------------------------------------------------------------------------------------
// Messages and what became of them.

struct Msg<'a> {
    tenant: Id,
    user: Id,
    kind: &'a str,
    class: Class,
    source: Id,
    channels: &'a [Channel],
    not_before: DateTime<Utc>,
}

impl<'a> Msg<'a> {
    fn new(tenant: Id, user: Id, class: Class, channels: &'a [Channel]) -> Self {
        Msg {
            tenant,
            user,
            kind: "NOTICE",
            class,
            source: Id::new(),
            channels,
            not_before: noon(),
        }
    }

    fn at(mut self, not_before: DateTime<Utc>) -> Self {
        self.not_before = not_before;
        self
    }

    fn new_delivery(&self, payload: &'a serde_json::Value) -> NewDelivery<'a> {
        NewDelivery {
            tenant_id: self.tenant,
            user_id: self.user,
            kind: self.kind,
            class: self.class,
            source_id: self.source,
            channels: self.channels,
            payload,
            not_before: self.not_before,
        }
    }
}

fn payload() -> serde_json::Value {
    json!({ "title": "停车场维护通知", "n": 1 })
}

/// Enqueues in a transaction of its own; the new row's id.
async fn enqueue(db: &Db, m: &Msg<'_>) -> Id {
    let p = payload();
    let mut tx = db.begin().await.unwrap();
    let id = delivery::enqueue(&mut tx, &m.new_delivery(&p))
        .await
        .unwrap()
        .expect("a new row");
    tx.commit().await.unwrap();
    id
}

async fn get(db: &Db, id: Id) -> Delivery {
    let mut c = db.conn().await.unwrap();
    db::get(&mut c, id).await.unwrap()
}

type AttemptRow = (i32, String, Option<String>, String);

async fn attempts(db: &Db, id: Id) -> Vec<AttemptRow> {
    let mut c = db.conn().await.unwrap();
    db::attempts(&mut c, id).await.unwrap()
}

fn attempt(n: i32, outcome: &str, code: Option<&str>, worker: &str) -> AttemptRow {
    (
        n,
        outcome.to_owned(),
        code.map(str::to_owned),
        worker.to_owned(),
    )
}

/// The rows of one message (all its channels), oldest first.
async fn rows_of(db: &Db, tenant: Id, source: Id) -> Vec<Delivery> {
    let mut c = db.conn().await.unwrap();
    let filter = Filter {
        source_id: Some(source),
        ..Filter::default()
    };
    let mut rows = db::list(&mut c, tenant, &filter, 100).await.unwrap();
    rows.reverse();
    rows
}

async fn count(db: &Db, status: &str) -> i64 {
    let mut c = db.conn().await.unwrap();
    store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from push_delivery where status = $1",
        status
    )
    .unwrap()
}

async fn count_source(db: &Db, source: Id) -> i64 {
    let mut c = db.conn().await.unwrap();
    store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from push_delivery where source_id = $1",
        source
    )
    .unwrap()
}

/// Runs every worker's passes at `now`, concurrently, until each finds nothing to claim; how
/// many rows each claimed.
async fn drain(workers: Vec<Arc<Worker>>, now: DateTime<Utc>) -> Vec<usize> {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| {
            tokio::spawn(async move {
                let mut claimed = 0;
                loop {
                    let pass = w.run_once(now).await.unwrap();
                    if pass.claimed == 0 {
                        return claimed;
                    }
                    claimed += pass.claimed;
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn quick() -> WorkerSettings {
    WorkerSettings {
        idle: StdDuration::from_millis(10),
        ..WorkerSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Enqueueing.

on_both!(
    enqueue_writes_with_the_transaction_and_once_per_kind_source_and_person,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let channels = [Channel::Subscribe, Channel::Template, Channel::InApp];
        let m = Msg::new(t, u, Class::Reminder, &channels);
        let p = payload();

        // Not visible before commit, visible after.
        let mut tx = db.begin().await.unwrap();
        let id = delivery::enqueue(&mut tx, &m.new_delivery(&p))
            .await
            .unwrap()
            .expect("written");
        assert_eq!(count_source(&db, m.source).await, 0, "seen before commit");
        tx.commit().await.unwrap();
        assert_eq!(count_source(&db, m.source).await, 1);

        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.channel, "SUBSCRIBE");
        assert_eq!(row.fallback, "TEMPLATE,IN_APP");
        assert_eq!(row.class, "REMINDER");
        assert_eq!(row.kind, "NOTICE");
        assert_eq!((row.tenant_id, row.user_id), (t, u));
        assert_eq!(row.payload.0, p);
        assert_eq!(row.attempts, 0);
        assert_eq!(row.next_attempt_at, noon());
        assert_eq!(row.claimed_by, None);

        // A rolled-back change leaves nothing.
        let gone = Msg::new(t, u, Class::Reminder, &channels);
        let mut tx = db.begin().await.unwrap();
        assert!(
            delivery::enqueue(&mut tx, &gone.new_delivery(&p))
                .await
                .unwrap()
                .is_some()
        );
        tx.rollback().await.unwrap();
        assert_eq!(count_source(&db, gone.source).await, 0);

        // The same (kind, source, person) again, in a later transaction and twice in one: one row.
        let mut tx = db.begin().await.unwrap();
        assert_eq!(
            delivery::enqueue(&mut tx, &m.new_delivery(&p))
                .await
                .unwrap(),
            None
        );
        tx.commit().await.unwrap();
        let twice = Msg::new(t, u, Class::Reminder, &channels);
        let mut tx = db.begin().await.unwrap();
        assert!(
            delivery::enqueue(&mut tx, &twice.new_delivery(&p))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            delivery::enqueue(&mut tx, &twice.new_delivery(&p))
                .await
                .unwrap(),
            None
        );
        tx.commit().await.unwrap();
        assert_eq!(count_source(&db, m.source).await, 1);
        assert_eq!(count_source(&db, twice.source).await, 1);

        // Another person, or another kind, of the same source is another message.
        let other = user(&db, t).await;
        let mut tx = db.begin().await.unwrap();
        let for_other = Msg {
            user: other,
            source: m.source,
            ..Msg::new(t, u, Class::Reminder, &channels)
        };
        assert!(
            delivery::enqueue(&mut tx, &for_other.new_delivery(&p))
                .await
                .unwrap()
                .is_some()
        );
        let other_kind = Msg {
            kind: "RENT_DUE",
            source: m.source,
            ..Msg::new(t, u, Class::Reminder, &channels)
        };
        assert!(
            delivery::enqueue(&mut tx, &other_kind.new_delivery(&p))
                .await
                .unwrap()
                .is_some()
        );
        tx.commit().await.unwrap();
        assert_eq!(count_source(&db, m.source).await, 3);
    }
);

// ---------------------------------------------------------------------------------------------
// 2. Sent.

on_both!(
    a_sent_message_records_its_id_and_one_attempt,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let id = enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await;
        let script = Script::new("s");
        let w = worker(&db, "w1", &script, quick());

        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.sent), (1, 1));

        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::SENT);
        assert_eq!(row.sent_at, Some(noon()), "sent at the pass's time");
        assert_eq!(
            row.provider_msg_id.as_deref(),
            Some(script.msg_id(id).as_str())
        );
        assert_eq!(row.attempts, 1);
        assert_eq!((row.claimed_by, row.lease_until), (None, None));
        assert_eq!(
            attempts(&db, id).await,
            vec![attempt(1, "SENT", None, "w1")]
        );
        assert_eq!(script.calls(id), 1);

        // Nothing is sent twice.
        let pass = w.run_once(noon() + Duration::hours(1)).await.unwrap();
        assert_eq!(pass.claimed, 0);
        assert_eq!(script.calls(id), 1);
    }
);

// ---------------------------------------------------------------------------------------------
// 3. Fall-through.

on_both!(
    a_permanent_refusal_falls_through_to_the_next_channel,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let order = [Channel::Subscribe, Channel::Template, Channel::InApp];
        let m = Msg::new(t, u, Class::Reminder, &order);
        let first = enqueue(&db, &m).await;
        let script = Script::new("s");
        script.answer(Channel::Subscribe, permanent("WECHAT_43101"));
        script.answer(Channel::Template, permanent("WECHAT_43004"));
        let w = worker(&db, "w1", &script, quick());

        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.fell_through), (1, 1));
        let rows = rows_of(&db, t, m.source).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, first);
        assert_eq!(rows[0].status, delivery::FELL_THROUGH);
        assert_eq!(rows[0].last_code.as_deref(), Some("WECHAT_43101"));
        assert_eq!(rows[0].last_detail.as_deref(), Some("WECHAT_43101 detail"));
        let template = &rows[1];
        assert_eq!(template.channel, "TEMPLATE");
        assert_eq!(template.fallback, "IN_APP");
        assert_eq!(template.status, delivery::PENDING);
        assert_eq!(template.next_attempt_at, noon(), "due now");
        assert_eq!(template.attempts, 0);
        assert_eq!(
            (
                template.kind.as_str(),
                template.class.as_str(),
                template.user_id
            ),
            ("NOTICE", "REMINDER", u)
        );
        assert_eq!(template.payload.0, payload());

        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.fell_through), (1, 1));
        let rows = rows_of(&db, t, m.source).await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].status, delivery::FELL_THROUGH);
        let in_app = &rows[2];
        assert_eq!(
            (in_app.channel.as_str(), in_app.fallback.as_str()),
            ("IN_APP", "")
        );
        assert_eq!(in_app.next_attempt_at, noon());

        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.sent), (1, 1));
        let in_app = get(&db, in_app.id).await;
        assert_eq!(in_app.status, delivery::SENT);
        assert_eq!(
            script.calls(in_app.id),
            0,
            "in-app is not sent through a channel"
        );
        assert_eq!(script.total(), 2);

        assert_eq!(
            attempts(&db, rows[0].id).await,
            vec![attempt(1, "PERMANENT", Some("WECHAT_43101"), "w1")]
        );
        assert_eq!(
            attempts(&db, rows[1].id).await,
            vec![attempt(1, "PERMANENT", Some("WECHAT_43004"), "w1")]
        );
        assert_eq!(
            attempts(&db, in_app.id).await,
            vec![attempt(1, "SENT", None, "w1")]
        );
        assert_eq!(w.run_once(noon()).await.unwrap().claimed, 0);
        assert_eq!(count_source(&db, m.source).await, 3);

        // The last channel refused: nothing follows.
        let alone = Msg::new(t, u, Class::Essential, &[Channel::Template]);
        let id = enqueue(&db, &alone).await;
        script.answer(Channel::Template, permanent("WECHAT_40003"));
        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.fell_through), (1, 1));
        assert_eq!(get(&db, id).await.status, delivery::FELL_THROUGH);
        assert_eq!(count_source(&db, alone.source).await, 1);
    }
);

// ---------------------------------------------------------------------------------------------
// 4. Transient failures, backoff, dead letters.

/// Runs a pass at `now`, checking that the row is not due a moment before.
async fn pass_at(w: &Worker, now: DateTime<Utc>) -> usize {
    let early = w.run_once(now - Duration::milliseconds(1)).await.unwrap();
    assert_eq!(early.claimed, 0, "claimed before it was due");
    w.run_once(now).await.unwrap().claimed
}

on_both!(
    transient_failures_back_off_then_dead_letter_and_an_operator_can_retry,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let settings = WorkerSettings {
            max_attempts: 3,
            base_backoff: Duration::seconds(10),
            ..quick()
        };
        let id = enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await;
        let script = Script::new("s");
        script.answer(Channel::Template, transient("HTTP_503", None));
        script.answer(
            Channel::Template,
            transient("HTTP_429", Some(StdDuration::from_secs(120))),
        );
        script.answer(Channel::Template, transient("WECHAT_-1", None));
        let w = worker(&db, "w1", &script, settings);

        // 1st attempt: 10 s ± 50 %.
        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.retried), (1, 1));
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_code.as_deref(), Some("HTTP_503"));
        let wait = row.next_attempt_at - noon();
        assert!(
            wait >= Duration::seconds(5) && wait < Duration::seconds(15),
            "{wait}"
        );

        // 2nd: the provider's Retry-After.
        let second = row.next_attempt_at;
        assert_eq!(pass_at(&w, second).await, 1);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.next_attempt_at, second + Duration::seconds(120));

        // 3rd and last: a dead letter with what went wrong.
        let third = row.next_attempt_at;
        assert_eq!(pass_at(&w, third).await, 1);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::DEAD);
        assert_eq!(row.attempts, 3);
        assert_eq!(row.last_code.as_deref(), Some("WECHAT_-1"));
        assert_eq!(row.last_detail.as_deref(), Some("WECHAT_-1 detail"));
        assert_eq!((row.claimed_by, row.lease_until), (None, None));
        assert_eq!(
            attempts(&db, id).await,
            vec![
                attempt(1, "TRANSIENT", Some("HTTP_503"), "w1"),
                attempt(2, "TRANSIENT", Some("HTTP_429"), "w1"),
                attempt(3, "TRANSIENT", Some("WECHAT_-1"), "w1"),
            ]
        );
        assert_eq!(
            w.run_once(third + Duration::days(30))
                .await
                .unwrap()
                .claimed,
            0
        );
        assert_eq!(script.calls(id), 3);

        // An operator sends it again: only a dead letter, only of their tenant.
        let later = third + Duration::hours(2);
        let sent = enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await;
        w.run_once(noon()).await.unwrap();
        assert_eq!(get(&db, sent).await.status, delivery::SENT);
        let other = tenant(&db).await;
        let mut c = db.conn().await.unwrap();
        assert!(!db::retry_dead(&mut c, other, id, later).await.unwrap());
        assert!(!db::retry_dead(&mut c, t, sent, later).await.unwrap());
        assert!(!db::retry_dead(&mut c, t, Id::new(), later).await.unwrap());
        assert_eq!(get(&db, id).await.status, delivery::DEAD);
        assert!(db::retry_dead(&mut c, t, id, later).await.unwrap());
        drop(c);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.attempts, 0);
        assert_eq!(row.next_attempt_at, later);
        let pass = w.run_once(later).await.unwrap();
        assert_eq!((pass.claimed, pass.sent), (1, 1));
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::SENT);
        assert_eq!(row.attempts, 1);
        assert_eq!(script.calls(id), 4);
        let mut c = db.conn().await.unwrap();
        assert!(!db::retry_dead(&mut c, t, id, later).await.unwrap());
    }
);

on_both!(
    backoff_doubles_per_attempt_with_jitter_and_waits_at_least_a_second,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        const N: usize = 20;
        let script = Script::new("s");
        for _ in 0..3 * N {
            script.answer(Channel::Template, transient("HTTP_503", None));
        }
        let mut ids = Vec::new();
        for _ in 0..N {
            ids.push(enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await);
        }
        let w = worker(
            &db,
            "w1",
            &script,
            WorkerSettings {
                max_attempts: 10,
                base_backoff: Duration::seconds(10),
                max_backoff: Duration::seconds(30),
                ..quick()
            },
        );
        // Attempts 1, 2, 3: 10 s, 20 s, then 40 s capped to 30 s; each ± 50 %.
        let mut now = noon();
        for (n, base_ms) in [(1, 10_000), (2, 20_000), (3, 30_000)] {
            assert_eq!(w.run_once(now).await.unwrap().retried, N);
            let mut waits = Vec::new();
            for id in &ids {
                let row = get(&db, *id).await;
                assert_eq!(row.attempts, n);
                waits.push((row.next_attempt_at - now).num_milliseconds());
            }
            for ms in &waits {
                assert!(
                    *ms >= base_ms / 2 && *ms < base_ms * 3 / 2,
                    "attempt {n}: {ms} ms, base {base_ms} ms"
                );
            }
            waits.sort_unstable();
            waits.dedup();
            assert!(waits.len() > N / 2, "no jitter: {waits:?}");
            now += Duration::seconds(45);
        }

        // A base under a second: never sooner than a second. (An hour before the rows above
        // are due, so that this pass claims only the new ones.)
        let now = noon() - Duration::hours(1);
        let script = Script::new("s");
        let mut ids = Vec::new();
        for _ in 0..N {
            script.answer(Channel::Template, transient("HTTP_503", None));
            ids.push(
                enqueue(
                    &db,
                    &Msg::new(t, u, Class::Essential, &[Channel::Template]).at(now),
                )
                .await,
            );
        }
        let w = worker(
            &db,
            "w2",
            &script,
            WorkerSettings {
                base_backoff: Duration::milliseconds(800),
                ..quick()
            },
        );
        assert_eq!(w.run_once(now).await.unwrap().retried, N);
        for id in &ids {
            let wait = (get(&db, *id).await.next_attempt_at - now).num_milliseconds();
            assert!((1000..1200).contains(&wait), "{wait} ms");
        }

        // A Retry-After under a second too.
        let now = now + Duration::minutes(30);
        let id = enqueue(
            &db,
            &Msg::new(t, u, Class::Essential, &[Channel::Subscribe]).at(now),
        )
        .await;
        script.answer(
            Channel::Subscribe,
            transient("HTTP_429", Some(StdDuration::ZERO)),
        );
        w.run_once(now).await.unwrap();
        assert_eq!(
            get(&db, id).await.next_attempt_at,
            now + Duration::seconds(1)
        );
    }
);

// ---------------------------------------------------------------------------------------------
// 5. Credential failures.

on_both!(
    a_credential_failure_waits_the_credential_backoff,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let id = enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await;
        let script = Script::new("s");
        script.answer(Channel::Template, credential("WECHAT_40164"));
        script.answer(Channel::Template, credential("WECHAT_40164"));
        let settings = WorkerSettings {
            max_attempts: 2,
            credential_backoff: Duration::minutes(30),
            ..quick()
        };
        let w = worker(&db, "w1", &script, settings);

        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.retried), (1, 1));
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.next_attempt_at, noon() + Duration::minutes(30));
        assert_eq!(row.last_code.as_deref(), Some("WECHAT_40164"));
        assert_eq!(
            attempts(&db, id).await,
            vec![attempt(1, "CREDENTIAL", Some("WECHAT_40164"), "w1")]
        );

        // Counted like any failed attempt: the last one is a dead letter.
        assert_eq!(pass_at(&w, noon() + Duration::minutes(30)).await, 1);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::DEAD);
        assert_eq!(row.attempts, 2);
        assert_eq!(script.calls(id), 2);
    }
);

// ---------------------------------------------------------------------------------------------
// 6. Workers sharing one queue.

on_both!(
    two_workers_send_each_message_exactly_once,
    |db: Db| async move {
        let t = tenant(&db).await;
        let people = users(&db, t, 5).await;
        let mut ids = Vec::new();
        let p = payload();
        let mut tx = db.begin().await.unwrap();
        for i in 0..500 {
            let m = Msg::new(t, people[i % 5], Class::Essential, &[Channel::Template]);
            ids.push(
                delivery::enqueue(&mut tx, &m.new_delivery(&p))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();

        let script = Script::new("s");
        let settings = WorkerSettings {
            batch: 5,
            ..quick()
        };
        let a = Arc::new(worker(&db, "worker-a", &script, settings.clone()));
        let b = Arc::new(worker(&db, "worker-b", &script, settings));
        let claimed = drain(vec![a, b], noon()).await;

        assert_eq!(claimed.iter().sum::<usize>(), 500, "{claimed:?}");
        assert!(claimed.iter().all(|c| *c > 0), "both worked: {claimed:?}");
        for id in &ids {
            assert_eq!(script.calls(*id), 1, "{id}");
        }
        assert_eq!(script.total(), 500);
        assert_eq!(count(&db, delivery::SENT).await, 500);
        let mut c = db.conn().await.unwrap();
        let attempt_rows =
            store::fetch_scalar!(&mut c, i64, "select count(*) from push_attempt").unwrap();
        assert_eq!(attempt_rows, 500);
        drop(c);

        // Slow sends: one worker claims while the other is sending.
        let later = noon() + Duration::hours(1);
        let mut tx = db.begin().await.unwrap();
        let mut more = Vec::new();
        for i in 0..100 {
            let m = Msg::new(t, people[i % 5], Class::Essential, &[Channel::Template]).at(later);
            more.push(
                delivery::enqueue(&mut tx, &m.new_delivery(&p))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
        let slow = Script::slow("slow", StdDuration::from_millis(2));
        let settings = WorkerSettings {
            batch: 10,
            ..quick()
        };
        let a = Arc::new(worker(&db, "worker-a", &slow, settings.clone()));
        let b = Arc::new(worker(&db, "worker-b", &slow, settings));
        let claimed = drain(vec![a, b], later).await;
        assert_eq!(claimed.iter().sum::<usize>(), 100, "{claimed:?}");
        for id in &more {
            assert_eq!(slow.calls(*id), 1, "{id}");
        }
        assert_eq!(count(&db, delivery::SENT).await, 600);
    }
);

// ---------------------------------------------------------------------------------------------
// 7. Workers that die or hang.

/// One send at a time, so that a test knows which rows a hung worker has not reached.
fn leased() -> WorkerSettings {
    WorkerSettings {
        batch: 5,
        concurrency: 1,
        lease: Duration::seconds(60),
        ..quick()
    }
}

on_both!(
    a_killed_workers_rows_are_taken_back_once_its_lease_ends,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await);
        }
        let script_a = Script::new("A");
        script_a.then(Channel::Template, Step::Hang);
        let a = Arc::new(worker(&db, "A", &script_a, leased()));
        let task = tokio::spawn({
            let a = a.clone();
            async move { a.run_once(noon()).await }
        });
        script_a.wait_calls(1).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        for id in &ids {
            let row = get(&db, *id).await;
            assert_eq!(row.status, delivery::SENDING);
            assert_eq!(row.claimed_by.as_deref(), Some("A"));
            assert_eq!(row.lease_until, Some(noon() + Duration::seconds(60)));
        }

        let script_b = Script::new("B");
        let b = worker(&db, "B", &script_b, leased());
        let pass = b.run_once(noon() + Duration::seconds(59)).await.unwrap();
        assert_eq!(
            (pass.reclaimed, pass.claimed),
            (0, 0),
            "taken during A's lease"
        );
        for id in &ids {
            assert_eq!(get(&db, *id).await.claimed_by.as_deref(), Some("A"));
        }

        let pass = b.run_once(noon() + Duration::seconds(61)).await.unwrap();
        assert_eq!((pass.reclaimed, pass.claimed, pass.sent), (5, 5, 5));
        for id in &ids {
            let row = get(&db, *id).await;
            assert_eq!(row.status, delivery::SENT);
            assert_eq!(
                row.provider_msg_id.as_deref(),
                Some(script_b.msg_id(*id).as_str())
            );
            assert_eq!(script_b.calls(*id), 1);
            assert_eq!(
                attempts(&db, *id).await,
                vec![
                    attempt(1, "RECLAIMED", Some("LEASE_EXPIRED"), "B"),
                    attempt(2, "SENT", None, "B"),
                ]
            );
        }
        assert_eq!(script_a.total(), 1);
        assert_eq!(count(&db, delivery::SENT).await, 5);
    }
);

on_both!(
    a_worker_killed_with_sends_in_flight_loses_nothing_and_repeats_only_those,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await);
        }
        // Four sends at a time; the first and third calls never answer, the rest do.
        let script_a = Script::new("A");
        script_a.then(Channel::Template, Step::Hang);
        script_a.answer(
            Channel::Template,
            SendOutcome::Sent {
                provider_msg_id: Some("A-second".to_owned()),
            },
        );
        script_a.then(Channel::Template, Step::Hang);
        let settings = WorkerSettings {
            batch: 8,
            concurrency: 4,
            ..leased()
        };
        let a = Arc::new(worker(&db, "A", &script_a, settings.clone()));
        let task = tokio::spawn({
            let a = a.clone();
            async move { a.run_once(noon()).await }
        });
        script_a.wait_calls(8).await;
        let deadline = Instant::now() + StdDuration::from_secs(10);
        while count(&db, delivery::SENT).await < 6 {
            assert!(
                Instant::now() < deadline,
                "A settled fewer than 6 answered sends"
            );
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let hung: Vec<Id> = {
            let mut hung = Vec::new();
            for id in &ids {
                if get(&db, *id).await.status == delivery::SENDING {
                    hung.push(*id);
                }
            }
            hung
        };
        assert_eq!(hung.len(), 2, "the two sends without an answer stay A's");

        let script_b = Script::new("B");
        let b = worker(&db, "B", &script_b, settings);
        let pass = b.run_once(noon() + Duration::seconds(61)).await.unwrap();
        assert_eq!((pass.reclaimed, pass.claimed, pass.sent), (2, 2, 2));
        assert_eq!(count(&db, delivery::SENT).await, 8, "nothing lost");
        for id in &ids {
            assert_eq!(script_a.calls(*id), 1);
            let expected_b = usize::from(hung.contains(id));
            assert_eq!(
                script_b.calls(*id),
                expected_b,
                "only unanswered sends repeat"
            );
            let who = attempts(&db, *id).await.last().map(|a| a.3.clone());
            assert_eq!(
                who.as_deref(),
                Some(if hung.contains(id) { "B" } else { "A" })
            );
        }
    }
);

on_both!(
    a_late_settle_of_a_row_taken_back_is_ignored,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let settings = WorkerSettings {
            batch: 1,
            ..leased()
        };
        let order = [Channel::Template, Channel::InApp];

        // A hangs, B takes the row back and sends it, then A answers "refused for good".
        let m = Msg::new(t, u, Class::Essential, &order);
        let id = enqueue(&db, &m).await;
        let release_a = Arc::new(Notify::new());
        let script_a = Script::new("A");
        script_a.then(
            Channel::Template,
            Step::After(release_a.clone(), permanent("WECHAT_43004")),
        );
        let a = Arc::new(worker(&db, "A", &script_a, settings.clone()));
        let late_a = tokio::spawn({
            let a = a.clone();
            async move { a.run_once(noon()).await }
        });
        script_a.wait_calls(1).await;
        let script_b = Script::new("B");
        let b = Arc::new(worker(&db, "B", &script_b, settings.clone()));
        let pass = b.run_once(noon() + Duration::seconds(61)).await.unwrap();
        assert_eq!((pass.reclaimed, pass.sent), (1, 1));
        release_a.notify_one();
        let pass_a = late_a.await.unwrap().unwrap();
        assert_eq!((pass_a.fell_through, pass_a.sent), (0, 0));
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::SENT);
        assert_eq!(
            row.provider_msg_id.as_deref(),
            Some(script_b.msg_id(id).as_str())
        );
        assert_eq!(row.last_code, None);
        assert_eq!(
            count_source(&db, m.source).await,
            1,
            "A's refusal fell through"
        );
        assert_eq!(
            attempts(&db, id).await,
            vec![
                attempt(1, "RECLAIMED", Some("LEASE_EXPIRED"), "B"),
                attempt(2, "SENT", None, "B"),
            ]
        );

        // A answers while B is still sending: the row is B's.
        let m = Msg::new(t, u, Class::Essential, &order).at(noon() + Duration::minutes(10));
        let id = enqueue(&db, &m).await;
        let now = noon() + Duration::minutes(10);
        let release_a = Arc::new(Notify::new());
        script_a.then(
            Channel::Template,
            Step::After(release_a.clone(), permanent("WECHAT_43004")),
        );
        let late_a = tokio::spawn({
            let a = a.clone();
            async move { a.run_once(now).await }
        });
        script_a.wait_calls(2).await;
        let release_b = Arc::new(Notify::new());
        script_b.then(
            Channel::Template,
            Step::After(
                release_b.clone(),
                SendOutcome::Sent {
                    provider_msg_id: Some("B-late".to_owned()),
                },
            ),
        );
        let slow_b = tokio::spawn({
            let b = b.clone();
            async move { b.run_once(now + Duration::seconds(61)).await }
        });
        script_b.wait_calls(2).await;
        release_a.notify_one();
        let pass_a = late_a.await.unwrap().unwrap();
        assert_eq!(pass_a.fell_through, 0);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::SENDING);
        assert_eq!(row.claimed_by.as_deref(), Some("B"));
        release_b.notify_one();
        let pass_b = slow_b.await.unwrap().unwrap();
        assert_eq!(pass_b.sent, 1);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::SENT);
        assert_eq!(row.provider_msg_id.as_deref(), Some("B-late"));
        assert_eq!(count_source(&db, m.source).await, 1);
    }
);

on_both!(
    a_worker_that_hung_does_not_send_the_rest_of_its_batch_again,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await);
        }
        let release_a = Arc::new(Notify::new());
        let script_a = Script::new("A");
        script_a.then(
            Channel::Template,
            Step::After(
                release_a.clone(),
                SendOutcome::Sent {
                    provider_msg_id: None,
                },
            ),
        );
        let a = Arc::new(worker(&db, "A", &script_a, leased()));
        let late_a = tokio::spawn({
            let a = a.clone();
            async move { a.run_once(noon()).await }
        });
        script_a.wait_calls(1).await;
        let script_b = Script::new("B");
        let b = worker(&db, "B", &script_b, leased());
        let pass = b.run_once(noon() + Duration::seconds(61)).await.unwrap();
        assert_eq!((pass.reclaimed, pass.sent), (3, 3));
        release_a.notify_one();
        late_a.await.unwrap().unwrap();

        for id in &ids {
            let row = get(&db, *id).await;
            assert_eq!(row.status, delivery::SENT);
            assert_eq!(
                row.provider_msg_id.as_deref(),
                Some(script_b.msg_id(*id).as_str())
            );
        }
        // The row A was sending when it hung went out twice (that cannot be helped); A must not
        // go on to send the others, which B took back and sent.
        let twice: Vec<_> = ids
            .iter()
            .filter(|id| script_a.calls(**id) + script_b.calls(**id) > 1)
            .collect();
        assert_eq!(
            twice.len(),
            1,
            "sent by both A and B: {twice:?} (A called {} times)",
            script_a.total()
        );
    }
);

on_both!(
    a_message_that_keeps_killing_its_worker_is_dead_lettered_after_the_last_attempt,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let id = enqueue(&db, &Msg::new(t, u, Class::Essential, &[Channel::Template])).await;
        let settings = WorkerSettings {
            max_attempts: 2,
            ..leased()
        };
        let script = Script::new("s");
        for _ in 0..3 {
            script.then(Channel::Template, Step::Hang);
        }
        // Two workers in turn die while sending it.
        let mut now = noon();
        for n in 1..=2 {
            let w = Arc::new(worker(&db, &format!("w{n}"), &script, settings.clone()));
            let task = tokio::spawn({
                let w = w.clone();
                async move { w.run_once(now).await }
            });
            script.wait_calls(n).await;
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
            now += Duration::seconds(61);
        }
        assert_eq!(get(&db, id).await.attempts, 2);

        // Both attempts are used up: the next worker must not try a third time.
        let w = worker(&db, "w3", &script, settings);
        let pass = tokio::time::timeout(StdDuration::from_secs(5), w.run_once(now))
            .await
            .expect("a third attempt was made (and hung)")
            .unwrap();
        assert_eq!((pass.reclaimed, pass.claimed), (1, 0));
        assert_eq!(script.total(), 2);
        let row = get(&db, id).await;
        assert_eq!(row.status, delivery::DEAD);
        assert_eq!(row.attempts, 2);
    }
);

// ---------------------------------------------------------------------------------------------
// 8. Quiet hours and the daily cap.

on_both!(
    quiet_hours_and_the_cap_defer_reminders_but_not_essential_messages,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let script = Script::new("s");
        let w = worker(&db, "w1", &script, quick());
        let late = bj(0, 23, 0, 0);
        let eight = bj(1, 8, 0, 0);

        // 23:00 Beijing: the reminder waits for 08:00, the essential message goes.
        let reminder = enqueue(
            &db,
            &Msg::new(t, u, Class::Reminder, &[Channel::Template]).at(late),
        )
        .await;
        let marketing = enqueue(
            &db,
            &Msg::new(t, u, Class::Marketing, &[Channel::Template]).at(late),
        )
        .await;
        let essential = enqueue(
            &db,
            &Msg::new(t, u, Class::Essential, &[Channel::Template]).at(late),
        )
        .await;
        let pass = w.run_once(late).await.unwrap();
        assert_eq!((pass.claimed, pass.deferred, pass.sent), (3, 2, 1));
        assert_eq!(get(&db, essential).await.status, delivery::SENT);
        for id in [reminder, marketing] {
            let row = get(&db, id).await;
            assert_eq!(row.status, delivery::PENDING);
            assert_eq!(row.attempts, 0, "a deferral is not an attempt");
            assert_eq!(row.next_attempt_at, eight);
            assert_eq!((row.claimed_by, row.lease_until), (None, None));
            assert_eq!(
                attempts(&db, id).await,
                vec![attempt(1, "DEFERRED", Some("QUIET_HOURS_OR_CAP"), "w1")]
            );
            assert_eq!(script.calls(id), 0);
        }
        assert_eq!(w.run_once(bj(1, 7, 59, 59)).await.unwrap().claimed, 0);
        let pass = w.run_once(eight).await.unwrap();
        assert_eq!(pass.sent, 2);
        let row = get(&db, reminder).await;
        assert_eq!((row.status.as_str(), row.attempts), ("SENT", 1));
        assert_eq!(
            attempts(&db, reminder).await,
            vec![
                attempt(1, "DEFERRED", Some("QUIET_HOURS_OR_CAP"), "w1"),
                attempt(1, "SENT", None, "w1"),
            ]
        );

        // Three capped messages a day: the fourth waits for tomorrow 08:00; essential ones go.
        let v = user(&db, t).await;
        let day = bj(2, 10, 0, 0);
        for _ in 0..3 {
            enqueue(
                &db,
                &Msg::new(t, v, Class::Reminder, &[Channel::Template]).at(day),
            )
            .await;
        }
        assert_eq!(w.run_once(day).await.unwrap().sent, 3);
        let fourth = enqueue(
            &db,
            &Msg::new(t, v, Class::Reminder, &[Channel::Template]).at(day),
        )
        .await;
        let urgent = enqueue(
            &db,
            &Msg::new(t, v, Class::Essential, &[Channel::Template]).at(day),
        )
        .await;
        let pass = w.run_once(day).await.unwrap();
        assert_eq!((pass.deferred, pass.sent), (1, 1));
        assert_eq!(get(&db, urgent).await.status, delivery::SENT);
        let row = get(&db, fourth).await;
        assert_eq!(row.status, delivery::PENDING);
        assert_eq!(row.next_attempt_at, bj(3, 8, 0, 0));
        assert_eq!(row.attempts, 0);
        // Another person is not capped by v's messages.
        let other = user(&db, t).await;
        let theirs = enqueue(
            &db,
            &Msg::new(t, other, Class::Reminder, &[Channel::Template]).at(day),
        )
        .await;
        assert_eq!(w.run_once(day).await.unwrap().sent, 1);
        assert_eq!(get(&db, theirs).await.status, delivery::SENT);
        // The next day counts afresh.
        let pass = w.run_once(bj(3, 8, 0, 0)).await.unwrap();
        assert_eq!((pass.sent, pass.deferred), (1, 0));
        assert_eq!(get(&db, fourth).await.status, delivery::SENT);
    }
);

on_both!(
    a_tenants_policy_overrides_the_defaults,
    |db: Db| async move {
        let t = tenant(&db).await;
        let mut c = db.conn().await.unwrap();
        // Quiet from 12:00 to 14:00, one message a day.
        store::execute!(
            &mut c,
            "insert into push_policy (tenant_id, quiet_start_minute, quiet_end_minute, daily_cap)
         values ($1, 720, 840, 1)",
            t
        )
        .unwrap();
        drop(c);
        let script = Script::new("s");
        let w = worker(&db, "w1", &script, quick());

        let u = user(&db, t).await;
        let lunch = enqueue(
            &db,
            &Msg::new(t, u, Class::Reminder, &[Channel::Template]).at(bj(0, 13, 0, 0)),
        )
        .await;
        assert_eq!(w.run_once(bj(0, 13, 0, 0)).await.unwrap().deferred, 1);
        assert_eq!(get(&db, lunch).await.next_attempt_at, bj(0, 14, 0, 0));
        assert_eq!(w.run_once(bj(0, 14, 0, 0)).await.unwrap().sent, 1);

        let v = user(&db, t).await;
        let late = bj(0, 23, 0, 0);
        let first = enqueue(
            &db,
            &Msg::new(t, v, Class::Reminder, &[Channel::Template]).at(late),
        )
        .await;
        assert_eq!(
            w.run_once(late).await.unwrap().sent,
            1,
            "23:00 is not quiet here"
        );
        assert_eq!(get(&db, first).await.status, delivery::SENT);
        let second = enqueue(
            &db,
            &Msg::new(t, v, Class::Reminder, &[Channel::Template]).at(late),
        )
        .await;
        assert_eq!(w.run_once(late).await.unwrap().deferred, 1, "a cap of one");
        // Midnight is not quiet for this tenant: tomorrow starts at 00:00.
        assert_eq!(get(&db, second).await.next_attempt_at, bj(1, 0, 0, 0));

        // Another tenant keeps the defaults.
        let t2 = tenant(&db).await;
        let x = user(&db, t2).await;
        let at_23 = enqueue(
            &db,
            &Msg::new(t2, x, Class::Reminder, &[Channel::Template]).at(late),
        )
        .await;
        assert_eq!(w.run_once(late).await.unwrap().deferred, 1);
        assert_eq!(get(&db, at_23).await.next_attempt_at, bj(1, 8, 0, 0));
    }
);

// ---------------------------------------------------------------------------------------------
// 9. The consent ledger.

const APP: &str = "wx_drivers_app";
const TPL: &str = "tmpl-pickup";

async fn unused(db: &Db, u: Id) -> Vec<(String, String, i64)> {
    let mut c = db.conn().await.unwrap();
    consent::unused(&mut c, u).await.unwrap()
}

async fn take(db: &Db, u: Id, template: &str, delivery: Id) -> bool {
    let mut tx = db.begin().await.unwrap();
    let took = consent::take(&mut tx, u, APP, template, delivery, noon())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    took
}

on_both!(
    each_consent_allows_exactly_one_message,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let mut tx = db.begin().await.unwrap();
        assert_eq!(
            consent::record(&mut tx, t, u, APP, &[TPL, TPL, "tmpl-other"])
                .await
                .unwrap(),
            3
        );
        tx.commit().await.unwrap();
        assert_eq!(
            unused(&db, u).await,
            vec![
                (APP.to_owned(), "tmpl-other".to_owned(), 1),
                (APP.to_owned(), TPL.to_owned(), 2),
            ]
        );

        let (d1, d2, d3) = (Id::new(), Id::new(), Id::new());
        assert!(take(&db, u, TPL, d1).await);
        assert!(take(&db, u, TPL, d2).await);
        assert!(
            !take(&db, u, TPL, d3).await,
            "a third message without consent"
        );
        let mut c = db.conn().await.unwrap();
        let oldest_first = store::fetch_all!(
            &mut c,
            (Option<Id>,),
            "select delivery_id from subscribe_consent where user_id = $1 and template_id = $2
         order by granted_at, id",
            u,
            TPL
        )
        .unwrap();
        assert_eq!(oldest_first, vec![(Some(d1),), (Some(d2),)]);
        drop(c);
        assert_eq!(
            unused(&db, u).await,
            vec![(APP.to_owned(), "tmpl-other".to_owned(), 1)]
        );
        // Another person's or another app's consents are not taken.
        let v = user(&db, t).await;
        let mut tx = db.begin().await.unwrap();
        assert!(
            !consent::take(&mut tx, v, APP, "tmpl-other", d3, noon())
                .await
                .unwrap()
        );
        assert!(
            !consent::take(&mut tx, u, "wx_other_app", "tmpl-other", d3, noon())
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();

        // A message not sent gives its consent back.
        let mut tx = db.begin().await.unwrap();
        consent::give_back(&mut tx, d1).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            unused(&db, u).await,
            vec![
                (APP.to_owned(), "tmpl-other".to_owned(), 1),
                (APP.to_owned(), TPL.to_owned(), 1),
            ]
        );
        assert!(take(&db, u, TPL, d3).await);
        assert!(!take(&db, u, TPL, Id::new()).await);

        // A take rolled back takes nothing.
        let mut tx = db.begin().await.unwrap();
        assert!(
            consent::take(&mut tx, u, APP, "tmpl-other", Id::new(), noon())
                .await
                .unwrap()
        );
        tx.rollback().await.unwrap();
        assert_eq!(
            unused(&db, u).await,
            vec![(APP.to_owned(), "tmpl-other".to_owned(), 1)]
        );
    }
);

on_both!(
    concurrent_takers_never_share_a_consent,
    |db: Db| async move {
        let t = tenant(&db).await;
        let u = user(&db, t).await;
        let mut tx = db.begin().await.unwrap();
        consent::record(&mut tx, t, u, APP, &[TPL, TPL, TPL])
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let start = Arc::new(tokio::sync::Barrier::new(10));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (db, start) = (db.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let delivery = Id::new();
                    let mut tx = db.begin().await.unwrap();
                    let took = consent::take(&mut tx, u, APP, TPL, delivery, noon())
                        .await
                        .unwrap();
                    // Hold the consent a moment, so that the others run meanwhile.
                    tokio::time::sleep(StdDuration::from_millis(50)).await;
                    tx.commit().await.unwrap();
                    took.then_some(delivery)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(d) = task.await.unwrap() {
                winners.push(d);
            }
        }
        assert_eq!(winners.len(), 3, "{winners:?}");
        assert_eq!(unused(&db, u).await, vec![]);
        let mut c = db.conn().await.unwrap();
        for d in winners {
            let n = store::fetch_scalar!(
            &mut c,
            i64,
            "select count(*) from subscribe_consent where delivery_id = $1 and used_at is not null",
            d
        )
        .unwrap();
            assert_eq!(n, 1, "{d}");
        }
    }
);

// ---------------------------------------------------------------------------------------------
// 10. Fan-out.

on_both!(
    a_notice_to_ten_thousand_people_reaches_each_once,
    |db: Db| async move {
        const N: usize = 10_000;
        let t = tenant(&db).await;
        let people = users(&db, t, N).await;
        let notice = Id::new();
        let p = json!({ "title": "春节放假通知" });
        let started = Instant::now();
        let mut tx = db.begin().await.unwrap();
        for u in &people {
            let m = NewDelivery {
                tenant_id: t,
                user_id: *u,
                kind: "NOTICE",
                class: Class::Reminder,
                source_id: notice,
                channels: &[Channel::Template],
                payload: &p,
                not_before: noon(),
            };
            assert!(delivery::enqueue(&mut tx, &m).await.unwrap().is_some());
        }
        tx.commit().await.unwrap();
        let enqueued = started.elapsed();
        assert_eq!(count_source(&db, notice).await, i64::try_from(N).unwrap());

        let script = Script::new("s");
        let settings = WorkerSettings {
            batch: 500,
            ..quick()
        };
        let a = Arc::new(worker(&db, "worker-a", &script, settings.clone()));
        let b = Arc::new(worker(&db, "worker-b", &script, settings));
        let started = Instant::now();
        let claimed = drain(vec![a, b], noon()).await;
        eprintln!(
            "{:?}: enqueued {N} in {enqueued:?}, sent in {:?} {claimed:?}",
            db.backend(),
            started.elapsed()
        );

        assert_eq!(claimed.iter().sum::<usize>(), N);
        assert_eq!(count(&db, delivery::SENT).await, i64::try_from(N).unwrap());
        let per_user = script.per_user();
        assert_eq!(per_user.len(), N);
        for u in &people {
            assert_eq!(per_user.get(u), Some(&1), "{u}");
        }
    }
);

/// A channel that, like a subscribe message spending a consent, writes in a transaction of its
/// own before it answers.
struct Writes(Db);

#[async_trait]
impl Sender for Writes {
    async fn send(&self, d: &Delivery) -> SendOutcome {
        let mut tx = self.0.begin().await.unwrap();
        store::execute!(
            &mut tx,
            "update push_delivery set updated_at = updated_at where id = $1",
            d.id
        )
        .unwrap();
        // The answer takes a moment, as a provider's does, while the turn is held.
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        tx.commit().await.unwrap();
        SendOutcome::Sent {
            provider_msg_id: None,
        }
    }
}

on_both!(
    sends_that_write_never_hold_up_the_settling_of_what_was_sent,
    |db: Db| async move {
        let t = tenant(&db).await;
        let people = users(&db, t, 300).await;
        // Mostly in-app messages, whose outcomes come at once, with a message that writes
        // every 30th: the settling of the in-app ones needs the turn the writer holds.
        for (i, u) in people.iter().enumerate() {
            let channel = if i % 30 == 0 {
                Channel::Subscribe
            } else {
                Channel::InApp
            };
            enqueue(&db, &Msg::new(t, *u, Class::Essential, &[channel])).await;
        }
        // A short lease: a settle stuck behind the sends' writes would outlast it, and its rows
        // would be left to be taken back and sent again.
        let w = Worker::new(
            db.clone(),
            "writer",
            Arc::new(Writes(db.clone())),
            WorkerSettings {
                batch: 300,
                concurrency: 2,
                lease: Duration::seconds(8),
                ..quick()
            },
        );
        let pass = w.run_once(noon()).await.unwrap();
        assert_eq!((pass.claimed, pass.sent), (300, 300));
        assert_eq!(count(&db, "SENT").await, 300);
    }
);
