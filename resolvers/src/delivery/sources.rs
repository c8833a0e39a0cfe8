//! The events that send a message outside the app, one function per kind. Each writes its
//! deliveries in the caller's transaction, the one that makes the change (DESIGN.md §5: the
//! outbox row commits or rolls back with its cause), takes the kind's channel order from
//! [`super::route`], and keys the message by its cause, so that handling an event twice sends
//! once.
//!
//! | kind | cause (`source_id`) | to |
//! |---|---|---|
//! | `NOTICE` | the notice | its audience, by one fan-out statement |
//! | `PAYMENT` | the order that became `PAID` | the bill's driver |
//! | `RENT_DUE` | the bill, due tomorrow | the bill's driver |
//! | `VIOLATION` | the violation | the vehicle's driver then |
//! | `ACCIDENT` | the accident and its new status | the accident's driver |

use std::future::Future;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use minigate_payments::{money::format_yuan, orders::OrderRow};
use minigate_push::delivery::fanout::{self, Audience, Fanout};
use minigate_store::{self as store, BEIJING, Conn, Db, Id};
use serde_json::{Value, json};

use super::route::{self, Kind};
use crate::{Result, notice::db::NoticeRow, violation::db::ViolationRow};

/// Beijing wall-clock time as messages show it (`2026-11-21 10:00`).
pub fn beijing_text(at: DateTime<Utc>) -> String {
    at.with_timezone(&BEIJING)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// Yuan as messages show it (`1280.00元`).
pub fn yuan_text(fen: i64) -> String {
    format!("{}元", format_yuan(fen))
}

/// Characters of a notice's body a message shows: WeChat's `thing` keywords take 20.
const EXCERPT_CHARS: usize = 20;

fn excerpt(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let mut cut: String = flat.chars().take(EXCERPT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The active `app_user` of a driver record, the person a driver's messages go to.
async fn driver_user(tx: &mut Conn, driver: Id) -> Result<Option<Id>> {
    Ok(store::fetch_scalar_optional!(
        tx,
        Id,
        "select id from app_user where driver_id = $1 and disabled_at is null",
        driver
    )?)
}

/// A message of `kind` to one person, in the tenant's channel order, starting at the first
/// channel that can reach them (as a notice's fan-out does). Whether a row was written.
async fn one(
    tx: &mut Conn,
    tenant: Id,
    user: Id,
    kind: Kind,
    source: Id,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<bool> {
    let channels = route::channels(tx, tenant, kind).await?;
    let written = fanout::enqueue_all(
        tx,
        &Fanout {
            tenant_id: tenant,
            audience: Audience::Users(&[user]),
            kind: kind.as_str(),
            class: kind.class(),
            source_id: source,
            channels: &channels,
            payload,
            not_before: now,
        },
    )
    .await?;
    Ok(written > 0)
}

// ---- NOTICE ----

pub fn notice_payload(n: &NoticeRow) -> Value {
    json!({
        "title": n.title,
        "excerpt": excerpt(&n.body),
        "at": beijing_text(n.created_at),
        "noticeId": n.id.to_string(),
        "link": n.link.clone().unwrap_or_default(),
    })
}

/// A notice was published: everyone in its audience (the company, a branch, or its recipients,
/// already written to `notice_recipient`) gets it, by one statement however many they are.
/// Returns how many people were written.
pub async fn notice_published(tx: &mut Conn, n: &NoticeRow) -> Result<u64> {
    const EVERYONE: [&str; 4] = ["driver", "staff", "consumer", "admin"];
    let listed: Vec<Id>;
    let audience = match (n.audience.as_str(), n.branch_id) {
        ("branch", Some(b)) => Audience::Branch(b),
        ("users", _) => {
            listed = store::fetch_all!(
                tx,
                (Id,),
                "select user_id from notice_recipient where notice_id = $1",
                n.id
            )?
            .into_iter()
            .map(|(u,)| u)
            .collect();
            Audience::Users(&listed)
        }
        _ => Audience::Roles(&EVERYONE),
    };
    let channels = route::channels(tx, n.tenant_id, Kind::Notice).await?;
    let payload = notice_payload(n);
    Ok(fanout::enqueue_all(
        tx,
        &Fanout {
            tenant_id: n.tenant_id,
            audience,
            kind: Kind::Notice.as_str(),
            class: Kind::Notice.class(),
            source_id: n.id,
            channels: &channels,
            payload: &payload,
            not_before: n.created_at,
        },
    )
    .await?)
}

// ---- PAYMENT ----

pub fn payment_payload(order: &OrderRow, bill_title: &str, now: DateTime<Utc>) -> Value {
    json!({
        "amount": yuan_text(order.paid_fen.unwrap_or(order.amount_fen)),
        "title": bill_title,
        "at": beijing_text(order.paid_at.unwrap_or(now)),
        "billId": order.bill_id.to_string(),
        "orderId": order.id.to_string(),
    })
}

/// An order became `PAID` (call it in the transaction that wrote its ledger entry): its bill's
/// driver, if the bill has one with a user, is told. Whether a message was written.
pub async fn payment_received(tx: &mut Conn, order: &OrderRow) -> Result<bool> {
    let payer: Option<(String, Option<Id>)> = store::fetch_optional!(
        tx,
        (String, Option<Id>),
        "select b.title, u.id from bill b
         left join app_user u on u.driver_id = b.driver_id and u.tenant_id = b.tenant_id and u.disabled_at is null
         where b.id = $1",
        order.bill_id
    )?;
    let Some((title, Some(user))) = payer else {
        return Ok(false);
    };
    let now = Utc::now();
    let payload = payment_payload(order, &title, now);
    one(
        tx,
        order.tenant_id,
        user,
        Kind::Payment,
        order.id,
        &payload,
        now,
    )
    .await
}

// ---- RENT_DUE ----

/// Rent reminders go out from 09:00 Beijing time, for bills due the next day.
const RENT_DUE_FROM: Option<NaiveTime> = NaiveTime::from_hms_opt(9, 0, 0);

/// The job lock of the rent reminders ("mgrentdu").
const RENT_DUE_LOCK: i64 = 0x6d67_7265_6e74_6475;

#[derive(sqlx::FromRow)]
struct DueBill {
    id: Id,
    title: String,
    amount_fen: i64,
    due_date: NaiveDate,
    user_id: Id,
}

pub fn rent_due_payload(title: &str, amount_fen: i64, due: NaiveDate, bill: Id) -> Value {
    json!({
        "title": title,
        "amount": yuan_text(amount_fen),
        "dueDate": due.format("%Y-%m-%d").to_string(),
        "billId": bill.to_string(),
    })
}

/// Tells the driver of every `OPEN` rent bill due on `day` that has not been told yet, in
/// every company. Returns how many were told now.
pub async fn rent_due(tx: &mut Conn, day: NaiveDate, now: DateTime<Utc>) -> Result<usize> {
    let tenants: Vec<(Id,)> = store::fetch_all!(tx, (Id,), "select id from tenant order by id")?;
    let mut told = 0;
    for (tenant,) in tenants {
        // Bills already told are left out here rather than by the key, so that passes through
        // the day stay cheap; bills added (or drivers bound) since the last pass are caught.
        let due: Vec<DueBill> = store::fetch_all!(
            tx,
            DueBill,
            "select b.id, b.title, b.amount_fen, b.due_date, u.id as user_id
             from bill b join app_user u on u.driver_id = b.driver_id and u.tenant_id = b.tenant_id
             where b.tenant_id = $1 and b.due_date = $2 and b.kind = 'rent' and b.status = 'OPEN'
               and u.disabled_at is null
               and not exists (select 1 from push_delivery p
                               where p.kind = 'RENT_DUE' and p.source_id = b.id and p.user_id = u.id)
             order by b.id",
            tenant,
            day
        )?;
        if due.is_empty() {
            continue;
        }
        let channels = route::channels(tx, tenant, Kind::RentDue).await?;
        for b in due {
            let payload = rent_due_payload(&b.title, b.amount_fen, b.due_date, b.id);
            let written = fanout::enqueue_all(
                tx,
                &Fanout {
                    tenant_id: tenant,
                    audience: Audience::Users(&[b.user_id]),
                    kind: Kind::RentDue.as_str(),
                    class: Kind::RentDue.class(),
                    source_id: b.id,
                    channels: &channels,
                    payload: &payload,
                    not_before: now,
                },
            )
            .await?;
            told += usize::from(written > 0);
        }
    }
    Ok(told)
}

/// One pass of the daily rent reminders at `now`: from 09:00 Beijing time, tomorrow's rent
/// bills. One replica at a time (a job lock); any number of passes a day send each reminder
/// once. Returns how many were enqueued.
pub async fn run_rent_due(db: &Db, now: DateTime<Utc>) -> Result<usize> {
    let local = now.with_timezone(&BEIJING);
    if RENT_DUE_FROM.is_none_or(|from| local.time() < from) {
        return Ok(0);
    }
    let tomorrow = local.date_naive() + Duration::days(1);
    let mut tx = db.begin().await?;
    if !tx.try_job_lock(RENT_DUE_LOCK).await? {
        tx.rollback().await?;
        return Ok(0);
    }
    let n = rent_due(&mut tx, tomorrow, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Runs [`run_rent_due`] every `every` until `stop` resolves.
pub async fn rent_due_loop(db: Db, every: std::time::Duration, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match run_rent_due(&db, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reminders = n, "rent due reminders"),
            Err(e) => tracing::warn!(code = e.code(), error = %e, "rent due reminders failed"),
        }
    }
}

// ---- VIOLATION ----

pub fn violation_payload(v: &ViolationRow) -> Value {
    json!({
        "plate": v.plate,
        "at": beijing_text(v.occurred_at),
        "place": v.place,
        "description": v.description,
        "fine": yuan_text(v.fine_fen),
        "points": v.points.to_string(),
        "reference": v.reference,
        "violationId": v.id.to_string(),
    })
}

/// A violation was recorded (call it in the transaction that inserted it): the driver it names
/// is told. Whether a message was written.
pub async fn violation_recorded(tx: &mut Conn, v: &ViolationRow) -> Result<bool> {
    let Some(driver) = v.driver_id else {
        return Ok(false);
    };
    let Some(user) = driver_user(tx, driver).await? else {
        return Ok(false);
    };
    let payload = violation_payload(v);
    one(
        tx,
        v.tenant_id,
        user,
        Kind::Violation,
        v.id,
        &payload,
        Utc::now(),
    )
    .await
}

// ---- ACCIDENT ----

/// An accident's status changed: what its message says.
#[derive(Debug, Clone)]
pub struct AccidentChange<'a> {
    pub tenant_id: Id,
    pub accident_id: Id,
    /// The driver record the accident is about; the message goes to its user.
    pub driver_id: Id,
    /// The new status, as people read it.
    pub status: &'a str,
    pub plate: &'a str,
    pub at: DateTime<Utc>,
    pub note: &'a str,
}

impl AccidentChange<'_> {
    /// The message's cause: the accident *in this status*, so each new status is told once
    /// (the same status again, or the same change handled twice, is not told again).
    pub fn source_id(&self) -> Id {
        let mut seed = self.accident_id.0.as_bytes().to_vec();
        seed.extend_from_slice(self.status.as_bytes());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &seed);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        Id(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    pub fn payload(&self) -> Value {
        json!({
            "accidentId": self.accident_id.to_string(),
            "status": self.status,
            "plate": self.plate,
            "at": beijing_text(self.at),
            "note": self.note,
        })
    }
}

/// An accident's status changed. Accidents themselves come with a later issue; this is ready
/// for it: call it in the transaction that changes the status. The message is essential (never
/// held by quiet hours or the cap). Whether a message was written (not when the driver has no
/// user, or this status was told before).
pub async fn accident_status_changed(tx: &mut Conn, change: &AccidentChange<'_>) -> Result<bool> {
    let Some(user) = driver_user(tx, change.driver_id).await? else {
        return Ok(false);
    };
    one(
        tx,
        change.tenant_id,
        user,
        Kind::Accident,
        change.source_id(),
        &change.payload(),
        Utc::now(),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;

    use minigate_store::{Backend, testing::TestDb};

    use super::*;

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn fields(k: Kind) -> BTreeSet<String> {
        k.payload_fields().iter().map(|f| (*f).to_owned()).collect()
    }

    fn at() -> DateTime<Utc> {
        "2026-11-21T02:05:00Z".parse().unwrap()
    }

    fn change(accident: Id, driver: Id, tenant: Id, status: &str) -> AccidentChange<'_> {
        AccidentChange {
            tenant_id: tenant,
            accident_id: accident,
            driver_id: driver,
            status,
            plate: "粤B12345",
            at: at(),
            note: "towed to the depot",
        }
    }

    #[test]
    fn every_payload_carries_exactly_the_fields_its_kind_declares() {
        let notice = NoticeRow {
            id: Id::new(),
            tenant_id: Id::new(),
            audience: "tenant".into(),
            branch_id: None,
            title: "Road closed".into(),
            body: "The depot road is closed on Monday for repairs; use the north gate.".into(),
            link: None,
            created_at: at(),
        };
        let p = notice_payload(&notice);
        assert_eq!(keys(&p), fields(Kind::Notice));
        assert_eq!(p["at"], "2026-11-21 10:05");
        assert_eq!(
            p["excerpt"].as_str().unwrap().chars().count(),
            EXCERPT_CHARS
        );
        assert!(p["excerpt"].as_str().unwrap().ends_with('…'));
        let rent = rent_due_payload(
            "Rent, week 47",
            150_000,
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            Id::new(),
        );
        assert_eq!(keys(&rent), fields(Kind::RentDue));
        assert_eq!(rent["amount"], "1500.00元");
        assert_eq!(rent["dueDate"], "2026-11-22");
        let v = ViolationRow {
            id: Id::new(),
            tenant_id: Id::new(),
            vehicle_id: Id::new(),
            plate: "粤B12345".into(),
            driver_id: None,
            occurred_at: at(),
            place: "深南大道".into(),
            description: "闯红灯".into(),
            fine_fen: 20_000,
            points: 6,
            reference: "4403001".into(),
            created_at: at(),
        };
        let p = violation_payload(&v);
        assert_eq!(keys(&p), fields(Kind::Violation));
        assert_eq!(
            (p["fine"].as_str(), p["points"].as_str()),
            (Some("200.00元"), Some("6"))
        );
        let a = change(Id::new(), Id::new(), Id::new(), "CLOSED");
        assert_eq!(keys(&a.payload()), fields(Kind::Accident));
        assert_eq!(
            keys(&json!({ "amount": 1, "title": 1, "at": 1, "billId": 1, "orderId": 1 })),
            fields(Kind::Payment)
        );
    }

    #[test]
    fn short_bodies_are_shown_whole_and_whitespace_folded() {
        assert_eq!(excerpt("  Rent\n is due  "), "Rent is due");
        assert_eq!(excerpt(&"长".repeat(20)), "长".repeat(20));
        assert_eq!(excerpt(&"长".repeat(21)).chars().count(), 20);
    }

    #[test]
    fn each_status_of_an_accident_is_its_own_cause() {
        let (a, d, t) = (Id::new(), Id::new(), Id::new());
        let reported = change(a, d, t, "REPORTED").source_id();
        assert_eq!(reported, change(a, d, t, "REPORTED").source_id());
        assert_ne!(reported, change(a, d, t, "CLOSED").source_id());
        assert_ne!(reported, change(Id::new(), d, t, "REPORTED").source_id());
    }

    async fn accident_on(db: Db) {
        let mut c = db.begin().await.unwrap();
        let (tenant, branch, driver, user) = (Id::new(), Id::new(), Id::new(), Id::new());
        store::execute!(
            &mut c,
            "insert into tenant (id, slug, name) values ($1, $2, 'T')",
            tenant,
            tenant.to_string()
        )
        .unwrap();
        store::execute!(
            &mut c,
            "insert into branch (id, tenant_id, code, name) values ($1, $2, 'B', 'B')",
            branch,
            tenant
        )
        .unwrap();
        store::execute!(
            &mut c,
            "insert into driver (id, tenant_id, branch_id, name, phone, id_number) values ($1, $2, $3, 'D', '13800138000', 'X')",
            driver,
            tenant,
            branch
        )
        .unwrap();
        store::execute!(
            &mut c,
            "insert into app_user (id, tenant_id, role, driver_id) values ($1, $2, 'driver', $3)",
            user,
            tenant,
            driver
        )
        .unwrap();
        // No accident table yet: any id stands for one.
        let accident = Id::new();
        assert!(
            accident_status_changed(&mut c, &change(accident, driver, tenant, "REPORTED"))
                .await
                .unwrap()
        );
        assert!(
            !accident_status_changed(&mut c, &change(accident, driver, tenant, "REPORTED"))
                .await
                .unwrap()
        );
        assert!(
            accident_status_changed(&mut c, &change(accident, driver, tenant, "CLOSED"))
                .await
                .unwrap()
        );
        // A driver nobody signed in as is told nothing.
        assert!(
            !accident_status_changed(&mut c, &change(accident, Id::new(), tenant, "CLOSED"))
                .await
                .unwrap()
        );
        let rows: Vec<(Id, String, String, String, Id)> = store::fetch_all!(
            &mut c,
            (Id, String, String, String, Id),
            "select user_id, kind, class, channel, source_id from push_delivery order by created_at, id"
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        for (u, kind, class, channel, _) in &rows {
            assert_eq!(
                (*u, kind.as_str(), class.as_str(), channel.as_str()),
                // Only the app reaches the driver: no consent, no follow, no device.
                (user, "ACCIDENT", "ESSENTIAL", "IN_APP")
            );
        }
        assert_ne!(rows[0].4, rows[1].4);
        c.commit().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_accident_status_change_tells_its_driver_once_per_status_on_sqlite() {
        let t = TestDb::new(Backend::Sqlite, None).await.unwrap();
        accident_on(t.db.clone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_accident_status_change_tells_its_driver_once_per_status_on_postgres() {
        let Ok(pg) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL not set: skipped");
            return;
        };
        let t = TestDb::new(Backend::Postgres, Some(&pg)).await.unwrap();
        accident_on(t.db.clone()).await;
    }
}
