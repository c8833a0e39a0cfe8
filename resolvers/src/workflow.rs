//! Forward-only workflows of records (an accident, a plate registration): which status may follow
//! which, each step recorded with who and when, and the timeline read back for many records.
//!
//! A step is one row per (record, status): a status is reached at most once, so two people
//! pressing the same button at once move the record once, and the second is told the step is out
//! of order. The record's own `status` column is moved in the same transaction by its caller,
//! with [`Flow::guard`] checked against the status it read *for update*.

use std::collections::HashMap;

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::{Error, Result};

/// One workflow: its statuses' allowed moves.
pub struct Flow {
    /// Every (from, to) move allowed.
    pub moves: &'static [(&'static str, &'static str)],
}

impl Flow {
    /// Whether `to` may follow `from`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.moves.iter().any(|(f, t)| *f == from && *t == to)
    }

    /// `WORKFLOW_STEP_OUT_OF_ORDER` unless `to` may follow `from`.
    pub fn guard(&self, from: &str, to: &str) -> Result<()> {
        if self.allows(from, to) {
            Ok(())
        } else {
            Err(Error::StepOutOfOrder {
                from: from.to_owned(),
                to: to.to_owned(),
            })
        }
    }

    /// Whether nothing may follow `status`.
    pub fn is_final(&self, status: &str) -> bool {
        !self.moves.iter().any(|(f, _)| *f == status)
    }
}

fn step_taken() -> store::Unique {
    store::Unique {
        name: "workflow_step_pkey",
        table: "workflow_step",
        columns: &["record_id", "status"],
    }
}

/// Records that `actor` moved `record_id` to `status` (with an optional note), in the caller's
/// transaction. A status already reached is `WORKFLOW_STEP_OUT_OF_ORDER`.
pub async fn record_step(
    tx: &mut Conn,
    record_id: Id,
    from: &str,
    status: &str,
    actor: Id,
    note: Option<&str>,
) -> Result<()> {
    let r = store::execute!(
        tx,
        "insert into workflow_step (record_id, status, actor_id, note) values ($1, $2, $3, $4)",
        record_id,
        status,
        actor,
        note
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique(&step_taken()) => Err(Error::StepOutOfOrder {
            from: from.to_owned(),
            to: status.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// One step of a record's timeline.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StepRow {
    pub record_id: Id,
    pub status: String,
    pub actor_id: Id,
    pub actor_name: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// The steps of each of `records`, oldest first.
pub async fn timelines(c: &mut Conn, records: Vec<Id>) -> Result<HashMap<Id, Vec<StepRow>>> {
    let rows = store::fetch_all!(
        c,
        StepRow,
        "select s.record_id, s.status, s.actor_id, u.display_name as actor_name, s.note, s.at
         from workflow_step s join app_user u on u.id = s.actor_id
         where s.record_id = any($1) order by s.record_id, s.at, s.status",
        store::List(records)
    )?;
    let mut out: HashMap<Id, Vec<StepRow>> = HashMap::new();
    for r in rows {
        out.entry(r.record_id).or_default().push(r);
    }
    Ok(out)
}

/// A step as clients see it on a timeline.
#[derive(SimpleObject, Debug, Clone)]
pub struct WorkflowStep {
    /// The status the record moved to.
    pub status: String,
    /// Who moved it.
    pub actor_id: ID,
    /// Their display name at the time of reading.
    pub actor_name: String,
    /// What they wrote with the step (a rejection's reason, a shop's name).
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<StepRow> for WorkflowStep {
    fn from(r: StepRow) -> Self {
        WorkflowStep {
            status: r.status,
            actor_id: ID(r.actor_id.to_string()),
            actor_name: r.actor_name,
            note: r.note,
            at: r.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: Flow = Flow {
        moves: &[("A", "B"), ("B", "C"), ("A", "X"), ("B", "X")],
    };

    #[test]
    fn only_listed_moves_are_allowed_and_ends_have_none() {
        assert!(FLOW.allows("A", "B"));
        assert!(!FLOW.allows("A", "C"));
        assert!(!FLOW.allows("B", "A"));
        assert!(!FLOW.allows("C", "C"));
        assert!(FLOW.guard("B", "X").is_ok());
        assert!(matches!(
            FLOW.guard("C", "X"),
            Err(Error::StepOutOfOrder { .. })
        ));
        assert!(FLOW.is_final("C"));
        assert!(FLOW.is_final("X"));
        assert!(!FLOW.is_final("A"));
    }
}
