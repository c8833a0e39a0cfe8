//! One message for a whole audience, written in the caller's transaction by a single
//! `insert … select` from `app_user`: a notice to 100,000 people is one statement, not 100,000
//! round trips. Each person gets the message's first channel now (the rest are its fallback),
//! exactly as [`super::enqueue`] writes one; the same (kind, source, person, channel) again
//! writes nothing, so an event handled twice sends once.
//!
//! Row ids are made by the database: PostgreSQL's `gen_random_uuid()`; on SQLite a random
//! version-4 UUID spelt as the lowercase hyphenated text [`minigate_store::Id`] stores there.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Backend, Conn, Id, List};
use sqlx::types::Json;

use super::{Channel, Class};
use crate::Result;

/// Who gets the message: active (not disabled) people of the message's tenant.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// Everyone with one of these roles (`driver`, `staff`, `consumer`, `admin`).
    Roles(&'a [&'a str]),
    /// Everyone of a branch: a driver by their driver record's branch, anyone else by their own
    /// (as the notice list decides who sees a branch notice).
    Branch(Id),
    /// These people; ids of other tenants, unknown or disabled people are skipped.
    Users(&'a [Id]),
}

/// A message for an audience.
#[derive(Debug, Clone)]
pub struct Fanout<'a> {
    pub tenant_id: Id,
    pub audience: Audience<'a>,
    pub kind: &'a str,
    pub class: Class,
    pub source_id: Id,
    /// The channel order, first first; none writes nothing.
    pub channels: &'a [Channel],
    pub payload: &'a serde_json::Value,
    pub not_before: DateTime<Utc>,
}

/// A random UUID v4 in SQLite: 32 random hex digits in 8-4-4-4-12 groups, with the version
/// nibble `4` and the variant nibble one of `8`, `9`, `a`, `b` (`random() & 3` picks it; `&`
/// of a negative number still lands in 0..=3).
macro_rules! sqlite_uuid {
    () => {
        "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (random() & 3), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))"
    };
}

macro_rules! postgres_uuid {
    () => {
        "gen_random_uuid()"
    };
}

/// Whether the channel in parameter `$p` can reach person `u` now: an unused consent to the
/// kind's subscribe template, a follow of the account of its template message, a registered
/// device; the app's own list always.
macro_rules! reachable {
    ($p:literal) => {
        concat!(
            "(", $p, " = 'IN_APP'
              or (", $p, " = 'APP' and exists (select 1 from push_device pd where pd.user_id = u.id))
              or (", $p, " = 'TEMPLATE' and exists (
                     select 1 from push_template pt join wechat_follower wf on wf.app_id = pt.app_id
                     where pt.tenant_id = $1 and pt.kind = $2 and pt.channel = 'TEMPLATE'
                       and wf.tenant_id = $1 and wf.unionid = u.wx_unionid and wf.subscribed))
              or (", $p, " = 'SUBSCRIBE' and exists (
                     select 1 from push_template pt join subscribe_consent sc
                       on sc.app_id = pt.app_id and sc.template_id = pt.template_id
                     where pt.tenant_id = $1 and pt.kind = $2 and pt.channel = 'SUBSCRIBE'
                       and sc.user_id = u.id and sc.used_at is null)))"
        )
    };
}

/// The statement for one id expression and one audience clause. `$1` tenant, `$2` kind, `$3`
/// class, `$4` source, `$5` payload, `$6` due, `$7` the audience's parameter, `$8`–`$11` the
/// channel order (null past its end) and `$12`–`$15` what is left of it after each.
///
/// Each person starts at the first channel that can reach them (when none can, at the first),
/// so that a notice to people who never signed in with WeChat does not spend a send attempt and
/// a fall-through per channel finding that out. `$guard` is empty, or for a message written
/// before, `already_have!`.
macro_rules! fanout_sql {
    ($id:expr, $audience:expr, $guard:expr) => {
        concat!(
            "insert into push_delivery (id, tenant_id, user_id, kind, class, source_id, channel, fallback, payload, next_attempt_at)
             select ",
            $id,
            ", r.tenant_id, r.id, $2, $3, $4,
                 case r.pick when 2 then $9 when 3 then $10 when 4 then $11 else $8 end,
                 case r.pick when 2 then $13 when 3 then $14 when 4 then $15 else $12 end,
                 $5, $6
             from (select u.tenant_id, u.id,
                     case when ",
            reachable!("$8"),
            " then 1 when ",
            reachable!("$9"),
            " then 2 when ",
            reachable!("$10"),
            " then 3 when ",
            reachable!("$11"),
            " then 4 else 1 end as pick ",
            $audience,
            $guard,
            ") r
             where true
             on conflict (kind, source_id, user_id, channel) do nothing"
        )
    };
}

/// Skips whoever already has the message, on any channel: what reaches them may have changed
/// since. Only added when the message was written before, so that a first fan-out (every
/// notice's) never asks the planner to anti-join a table whose statistics may not yet know how
/// big it is: PostgreSQL has then chosen a nested loop over a sequential scan per person.
macro_rules! already_have {
    () => {
        " and not exists (select 1 from push_delivery x
                          where x.kind = $2 and x.source_id = $4 and x.user_id = u.id)"
    };
}

// Each audience's `from … where`; always with a `where`, which SQLite needs to tell an upsert's
// `on conflict` from a join's `on`.
macro_rules! by_roles {
    () => {
        "from app_user u where u.tenant_id = $1 and u.disabled_at is null and u.role = any($7)"
    };
}
macro_rules! by_branch {
    () => {
        "from app_user u left join driver d on d.id = u.driver_id
         where u.tenant_id = $1 and u.disabled_at is null and coalesce(d.branch_id, u.branch_id) = $7"
    };
}
macro_rules! by_users {
    () => {
        "from app_user u where u.tenant_id = $1 and u.disabled_at is null and u.id = any($7)"
    };
}

/// The longest channel order a fan-out takes (every channel once).
pub const MAX_CHANNELS: usize = 4;

/// Writes the message's row for every person of the audience who does not have it yet, at the
/// first channel of the order that can reach them, in `tx`. Returns how many rows were written.
pub async fn enqueue_all(tx: &mut Conn, f: &Fanout<'_>) -> Result<u64> {
    if f.channels.is_empty() {
        return Ok(0);
    }
    if f.channels.len() > MAX_CHANNELS {
        return Err(crate::Error::Setup {
            reason: format!("a channel order of {} channels", f.channels.len()),
            source: None,
        });
    }
    // Slot i: the i-th channel and the rest of the order after it (for falling through).
    let slot = |i: usize| -> (Option<&str>, Option<String>) {
        match f.channels.get(i) {
            Some(c) => (
                Some(c.as_str()),
                Some(
                    f.channels[i + 1..]
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
            None => (None, None),
        }
    };
    let [(c1, f1), (c2, f2), (c3, f3), (c4, f4)] = [slot(0), slot(1), slot(2), slot(3)];
    let backend = tx.backend();
    macro_rules! run {
        ($sql:expr, $audience:expr) => {
            store::execute!(
                tx,
                $sql,
                f.tenant_id,
                f.kind,
                f.class.as_str(),
                f.source_id,
                Json(f.payload),
                f.not_before,
                $audience,
                c1,
                c2,
                c3,
                c4,
                &f1,
                &f2,
                &f3,
                &f4
            )
        };
    }
    let again = store::fetch_optional!(
        tx,
        (i32,),
        "select 1 from push_delivery where kind = $1 and source_id = $2 limit 1",
        f.kind,
        f.source_id
    )?
    .is_some();
    macro_rules! to_audience {
        ($id:expr, $guard:expr) => {
            match f.audience {
                Audience::Roles([]) | Audience::Users([]) => 0,
                Audience::Roles(roles) => {
                    run!(fanout_sql!($id, by_roles!(), $guard), List(roles.to_vec()))?
                }
                Audience::Branch(b) => run!(fanout_sql!($id, by_branch!(), $guard), b)?,
                Audience::Users(ids) => {
                    run!(fanout_sql!($id, by_users!(), $guard), List(ids.to_vec()))?
                }
            }
        };
    }
    let written = match (backend, again) {
        (Backend::Postgres, false) => to_audience!(postgres_uuid!(), ""),
        (Backend::Postgres, true) => to_audience!(postgres_uuid!(), already_have!()),
        (Backend::Sqlite, false) => to_audience!(sqlite_uuid!(), ""),
        (Backend::Sqlite, true) => to_audience!(sqlite_uuid!(), already_have!()),
    };
    Ok(written)
}
