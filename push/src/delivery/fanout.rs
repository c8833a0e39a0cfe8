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

/// The statement for one id expression and one audience clause. `$1` tenant, `$2` kind, `$3`
/// class, `$4` source, `$5` first channel, `$6` fallback, `$7` payload, `$8` due, `$9` the
/// audience's parameter.
macro_rules! fanout_sql {
    ($id:expr, $audience:expr) => {
        concat!(
            "insert into push_delivery (id, tenant_id, user_id, kind, class, source_id, channel, fallback, payload, next_attempt_at)
             select ",
            $id,
            ", u.tenant_id, u.id, $2, $3, $4, $5, $6, $7, $8 ",
            $audience,
            " on conflict (kind, source_id, user_id, channel) do nothing"
        )
    };
}

// Each audience's `from … where`; always with a `where`, which SQLite needs to tell an upsert's
// `on conflict` from a join's `on`.
macro_rules! by_roles {
    () => {
        "from app_user u where u.tenant_id = $1 and u.disabled_at is null and u.role = any($9)"
    };
}
macro_rules! by_branch {
    () => {
        "from app_user u left join driver d on d.id = u.driver_id
         where u.tenant_id = $1 and u.disabled_at is null and coalesce(d.branch_id, u.branch_id) = $9"
    };
}
macro_rules! by_users {
    () => {
        "from app_user u where u.tenant_id = $1 and u.disabled_at is null and u.id = any($9)"
    };
}

/// Writes the message's first row for every person of the audience, in `tx`. Returns how many
/// rows were written (people who already had it are not counted).
pub async fn enqueue_all(tx: &mut Conn, f: &Fanout<'_>) -> Result<u64> {
    let Some((first, rest)) = f.channels.split_first() else {
        return Ok(0);
    };
    let fallback = rest
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
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
                first.as_str(),
                &fallback,
                Json(f.payload),
                f.not_before,
                $audience
            )
        };
    }
    let written = match (backend, f.audience) {
        (_, Audience::Roles([])) | (_, Audience::Users([])) => 0,
        (Backend::Postgres, Audience::Roles(roles)) => run!(
            fanout_sql!(postgres_uuid!(), by_roles!()),
            List(roles.to_vec())
        )?,
        (Backend::Sqlite, Audience::Roles(roles)) => run!(
            fanout_sql!(sqlite_uuid!(), by_roles!()),
            List(roles.to_vec())
        )?,
        (Backend::Postgres, Audience::Branch(b)) => {
            run!(fanout_sql!(postgres_uuid!(), by_branch!()), b)?
        }
        (Backend::Sqlite, Audience::Branch(b)) => {
            run!(fanout_sql!(sqlite_uuid!(), by_branch!()), b)?
        }
        (Backend::Postgres, Audience::Users(ids)) => run!(
            fanout_sql!(postgres_uuid!(), by_users!()),
            List(ids.to_vec())
        )?,
        (Backend::Sqlite, Audience::Users(ids)) => {
            run!(fanout_sql!(sqlite_uuid!(), by_users!()), List(ids.to_vec()))?
        }
    };
    Ok(written)
}
