//! Follow-ups of prospects (意向客户回访): staff (for their branch) and operators (for a branch
//! they name) record whom they spoke to, what was said, the outcome and when to call again;
//! the author or an operator updates it after the next call. The next date is a business date
//! (Asia/Shanghai): open outcomes need one, closed ones have none, so `followUpsDueToday` is
//! what is due today or overdue. Notes are indexed for search in the writing transaction.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Days, NaiveDate, Utc};
use minigate_store::{BEIJING, Id};
use serde::Serialize;

use super::{
    FollowUp,
    follow_up_db::{self, FollowUpFields, FollowUpRow},
};
use crate::{
    Error, Result, Role, Viewer, idempotency,
    registry::{
        db as registry_db,
        input::{parse_id, parse_opt_id},
    },
    search::{self, SearchKind},
    validate,
    viewer::{deps, viewer},
};

/// How the last contact with a prospect went.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FollowUpOutcome {
    /// Wants to go ahead; call again on the next date.
    Interested,
    /// Asked to be called again on the next date.
    CallBack,
    /// Not interested: closed.
    NotInterested,
    /// Signed a contract: closed.
    Signed,
    /// Did not answer; a next date is optional.
    Unreachable,
}

/// Whether an outcome takes a next date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextDate {
    Required,
    Optional,
    Absent,
}

impl FollowUpOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpOutcome::Interested => "INTERESTED",
            FollowUpOutcome::CallBack => "CALL_BACK",
            FollowUpOutcome::NotInterested => "NOT_INTERESTED",
            FollowUpOutcome::Signed => "SIGNED",
            FollowUpOutcome::Unreachable => "UNREACHABLE",
        }
    }

    pub fn parse(s: &str) -> Option<FollowUpOutcome> {
        [
            FollowUpOutcome::Interested,
            FollowUpOutcome::CallBack,
            FollowUpOutcome::NotInterested,
            FollowUpOutcome::Signed,
            FollowUpOutcome::Unreachable,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    fn next_date(self) -> NextDate {
        match self {
            FollowUpOutcome::Interested | FollowUpOutcome::CallBack => NextDate::Required,
            FollowUpOutcome::Unreachable => NextDate::Optional,
            FollowUpOutcome::NotInterested | FollowUpOutcome::Signed => NextDate::Absent,
        }
    }
}

/// Today's business date (Asia/Shanghai) at `now`.
pub fn today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&BEIJING).date_naive()
}

#[derive(InputObject)]
pub struct FollowUpInput {
    /// The branch whose prospect it is: staff may leave it out (their own); operators name it.
    pub branch_id: Option<ID>,
    /// 1 to 50 characters.
    pub prospect_name: String,
    /// A mainland mobile number.
    pub prospect_phone: String,
    /// What was said, 1 to 2,000 characters.
    pub notes: String,
    pub outcome: FollowUpOutcome,
    /// When to call again (Asia/Shanghai), today to a year ahead: required for INTERESTED and
    /// CALL_BACK, optional for UNREACHABLE, absent for SIGNED and NOT_INTERESTED.
    pub next_date: Option<NaiveDate>,
}

/// Fields left out stay as they are. `outcome` and `nextDate` go together: with an outcome,
/// the next date follows `recordFollowUp`'s rule (left out, it is cleared); a next date alone
/// reschedules an open follow-up.
#[derive(InputObject)]
pub struct FollowUpPatch {
    pub prospect_name: Option<String>,
    pub prospect_phone: Option<String>,
    /// Replaces the notes.
    pub notes: Option<String>,
    pub outcome: Option<FollowUpOutcome>,
    pub next_date: Option<NaiveDate>,
}

/// How far ahead a next date may be.
const HORIZON_DAYS: u64 = 366;

fn prospect_name(s: &str) -> Result<String> {
    validate::name("prospectName", s, 50)
}

fn prospect_phone(s: &str) -> Result<String> {
    validate::phone(s).map_err(|_| {
        Error::invalid(
            "prospectPhone",
            format!("'{}' is not a mainland mobile number", s.trim()),
        )
    })
}

/// Notes are prose: line breaks and tabs are fine, other control characters are not.
fn notes(s: &str) -> Result<String> {
    let t = s.trim();
    let prose = t
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    if (1..=2_000).contains(&t.chars().count()) && prose {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(
            "notes",
            "1 to 2,000 characters, no control characters but line breaks and tabs",
        ))
    }
}

/// The next date `outcome` takes, checked against `today`.
fn next_date(
    outcome: FollowUpOutcome,
    date: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<Option<NaiveDate>> {
    match (outcome.next_date(), date) {
        (NextDate::Required, None) => Err(Error::invalid(
            "nextDate",
            format!("{} needs the date to call again", outcome.as_str()),
        )),
        (NextDate::Absent, Some(_)) => Err(Error::invalid(
            "nextDate",
            format!("{} is closed: no date to call again", outcome.as_str()),
        )),
        (_, Some(d)) if d < today => Err(Error::invalid("nextDate", "not before today")),
        (_, Some(d)) if today.checked_add_days(Days::new(HORIZON_DAYS)) < Some(d) => {
            Err(Error::invalid("nextDate", "at most a year ahead"))
        }
        (_, d) => Ok(d),
    }
}

/// A new follow-up as checked without the database: the idempotency fingerprint of its
/// request.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Checked {
    branch_id: Option<Id>,
    fields: FollowUpFields,
}

fn check(input: &FollowUpInput, today: NaiveDate) -> Result<Checked> {
    let branch_id = parse_opt_id("branchId", input.branch_id.as_ref())?;
    Ok(Checked {
        branch_id,
        fields: FollowUpFields {
            prospect_name: prospect_name(&input.prospect_name)?,
            prospect_phone: prospect_phone(&input.prospect_phone)?,
            notes: notes(&input.notes)?,
            outcome: input.outcome.as_str().to_owned(),
            next_date: next_date(input.outcome, input.next_date, today)?,
        },
    })
}

/// `current` with `patch` applied, checked against `today`.
fn patched(
    current: &FollowUpFields,
    patch: &FollowUpPatch,
    today: NaiveDate,
) -> Result<FollowUpFields> {
    let (outcome, next) = match (patch.outcome, patch.next_date) {
        (Some(o), date) => (o.as_str().to_owned(), next_date(o, date, today)?),
        (None, Some(date)) => {
            let o = FollowUpOutcome::parse(&current.outcome)
                .ok_or_else(|| Error::Internal(format!("follow-up outcome {}", current.outcome)))?;
            (current.outcome.clone(), next_date(o, Some(date), today)?)
        }
        (None, None) => (current.outcome.clone(), current.next_date),
    };
    Ok(FollowUpFields {
        prospect_name: match &patch.prospect_name {
            Some(n) => prospect_name(n)?,
            None => current.prospect_name.clone(),
        },
        prospect_phone: match &patch.prospect_phone {
            Some(p) => prospect_phone(p)?,
            None => current.prospect_phone.clone(),
        },
        notes: match &patch.notes {
            Some(n) => notes(n)?,
            None => current.notes.clone(),
        },
        outcome,
        next_date: next,
    })
}

/// The branch a new follow-up belongs to: staff their own (naming another is `FORBIDDEN`),
/// operators the branch they name.
fn filing_branch(v: &Viewer, requested: Option<Id>) -> Result<Option<Id>> {
    match (v.registry_scope()?, requested) {
        (Some(own), None) => Ok(Some(own)),
        (Some(own), Some(r)) if r == own => Ok(Some(own)),
        (Some(_), Some(_)) => Err(Error::Forbidden),
        // An operator's branch is checked against the tenant by the caller.
        (None, Some(r)) => Ok(Some(r)),
        (None, None) => Err(Error::invalid("branchId", "operators name the branch")),
    }
}

/// Whether `v` may change `row`: its author (staff of its branch) or an operator. Another
/// branch's follow-up, or a colleague's, is `FORBIDDEN`.
fn may_edit(v: &Viewer, row: &FollowUpRow) -> Result<()> {
    match v.role {
        Role::Admin => Ok(()),
        Role::Staff if v.branch_id == Some(row.branch_id) && v.user_id == row.author_id => Ok(()),
        _ => Err(Error::Forbidden),
    }
}

fn fields_of(row: &FollowUpRow) -> FollowUpFields {
    FollowUpFields {
        prospect_name: row.prospect_name.clone(),
        prospect_phone: row.prospect_phone.clone(),
        notes: row.notes.clone(),
        outcome: row.outcome.clone(),
        next_date: row.next_date,
    }
}

/// The search entry of a follow-up: its notes, under the prospect's name (never the phone).
fn search_doc(row: &FollowUpRow) -> search::Doc<'_> {
    search::Doc {
        id: row.id,
        tenant_id: row.tenant_id,
        kind: SearchKind::FollowUp,
        branch_id: Some(row.branch_id),
        owner_id: Some(row.author_id),
        title: &row.prospect_name,
        body: &row.notes,
        created_at: row.created_at,
    }
}

#[derive(Default)]
pub struct FollowUpMutation;

#[Object]
impl FollowUpMutation {
    /// Records a follow-up of a prospect (staff for their branch, operators for the branch they
    /// name). A branch of another company is `INVALID_INPUT` on `branchId`.
    async fn record_follow_up(
        &self,
        ctx: &Context<'_>,
        input: FollowUpInput,
        idempotency_key: Option<String>,
    ) -> Result<FollowUp> {
        let v = viewer(ctx)?;
        let c = check(&input, today(Utc::now()))?;
        let branch = filing_branch(v, c.branch_id)?;
        let d = deps(ctx)?;
        let id = idempotency::once_for(
            &d.db,
            v.user_id,
            idempotency_key.as_deref(),
            "recordFollowUp",
            &c,
            async |tx| {
                let Some(branch) = branch else {
                    return Err(Error::invalid("branchId", "operators name the branch"));
                };
                match registry_db::get_branch(tx, v.tenant_id, branch).await {
                    Ok(_) => {}
                    Err(Error::NotFound(_)) => {
                        return Err(Error::invalid("branchId", "no such branch in this company"));
                    }
                    Err(e) => return Err(e),
                }
                let id = Id::new();
                follow_up_db::insert(tx, id, v.tenant_id, branch, v.user_id, &c.fields).await?;
                let row = follow_up_db::get(tx, v.tenant_id, id).await?;
                search::index(tx, &search_doc(&row)).await?;
                Ok(id)
            },
        )
        .await?;
        let mut conn = d.db.conn().await?;
        Ok(FollowUp(
            follow_up_db::get(&mut conn, v.tenant_id, id).await?,
        ))
    }

    /// Updates a follow-up after the next contact (its author, or an operator). A colleague's
    /// or another branch's follow-up is `FORBIDDEN`, another company's `NOT_FOUND`.
    async fn update_follow_up(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: FollowUpPatch,
    ) -> Result<FollowUp> {
        let v = viewer(ctx)?;
        v.registry_scope()?;
        let id = parse_id("id", &id)?;
        let d = deps(ctx)?;
        let mut tx = d.db.begin().await?;
        follow_up_db::lock(&mut tx, v.tenant_id, id).await?;
        let row = follow_up_db::get(&mut tx, v.tenant_id, id).await?;
        may_edit(v, &row)?;
        let fields = patched(&fields_of(&row), &input, today(Utc::now()))?;
        follow_up_db::update(&mut tx, id, &fields).await?;
        let row = follow_up_db::get(&mut tx, v.tenant_id, id).await?;
        search::index(&mut tx, &search_doc(&row)).await?;
        tx.commit().await?;
        Ok(FollowUp(row))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn input() -> FollowUpInput {
        FollowUpInput {
            branch_id: None,
            prospect_name: " 王先生 ".into(),
            prospect_phone: "+86 139-0000-1234".into(),
            notes: "想了解以租代购方案，\n周末再联系".into(),
            outcome: FollowUpOutcome::CallBack,
            next_date: Some(day("2026-11-23")),
        }
    }

    fn field<T>(r: Result<T>) -> Option<String> {
        match r {
            Err(Error::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn today_is_the_date_in_shanghai() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(today(at("2026-11-20T15:59:59Z")), day("2026-11-20"));
        assert_eq!(today(at("2026-11-20T16:00:00Z")), day("2026-11-21"));
    }

    #[test]
    fn a_follow_up_is_trimmed_and_each_bad_field_is_named() {
        let today = day("2026-11-21");
        let c = check(&input(), today).unwrap();
        assert_eq!(c.fields.prospect_name, "王先生");
        assert_eq!(c.fields.prospect_phone, "13900001234");
        assert!(c.fields.notes.contains('\n'));
        assert_eq!(c.fields.next_date, Some(day("2026-11-23")));
        type Change = Box<dyn Fn(&mut FollowUpInput)>;
        let cases: Vec<(&str, Change)> = vec![
            ("branchId", Box::new(|i| i.branch_id = Some(ID("b".into())))),
            ("prospectName", Box::new(|i| i.prospect_name = " ".into())),
            (
                "prospectName",
                Box::new(|i| i.prospect_name = "王".repeat(51)),
            ),
            (
                "prospectPhone",
                Box::new(|i| i.prospect_phone = "12345".into()),
            ),
            ("notes", Box::new(|i| i.notes = "\n ".into())),
            ("notes", Box::new(|i| i.notes = "a\u{7}b".into())),
            ("notes", Box::new(|i| i.notes = "话".repeat(2_001))),
            ("nextDate", Box::new(|i| i.next_date = None)),
            (
                "nextDate",
                Box::new(|i| i.next_date = Some(day("2026-11-20"))),
            ),
            (
                "nextDate",
                Box::new(|i| i.next_date = Some(day("2027-11-23"))),
            ),
            (
                "nextDate",
                Box::new(|i| {
                    i.outcome = FollowUpOutcome::Signed;
                    i.next_date = Some(day("2026-11-23"));
                }),
            ),
        ];
        for (name, change) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(field(check(&i, today)).as_deref(), Some(name), "{name}");
        }
        // Today is fine; UNREACHABLE may go without a date; closed outcomes have none.
        for (outcome, date) in [
            (FollowUpOutcome::Interested, Some(today)),
            (FollowUpOutcome::Unreachable, None),
            (FollowUpOutcome::Unreachable, Some(today)),
            (FollowUpOutcome::NotInterested, None),
            (FollowUpOutcome::Signed, None),
        ] {
            let mut i = input();
            i.outcome = outcome;
            i.next_date = date;
            assert_eq!(check(&i, today).unwrap().fields.next_date, date);
        }
    }

    #[test]
    fn a_patch_keeps_what_it_leaves_out_and_moves_outcome_and_date_together() {
        let today = day("2026-11-21");
        let current = check(&input(), today).unwrap().fields;
        let none = FollowUpPatch {
            prospect_name: None,
            prospect_phone: None,
            notes: None,
            outcome: None,
            next_date: None,
        };
        assert_eq!(patched(&current, &none, today).unwrap(), current);
        // Signed: the date goes.
        let signed = FollowUpPatch {
            outcome: Some(FollowUpOutcome::Signed),
            notes: Some("已签约".into()),
            ..none_patch()
        };
        let p = patched(&current, &signed, today).unwrap();
        assert_eq!((p.outcome.as_str(), p.next_date), ("SIGNED", None));
        assert_eq!(p.notes, "已签约");
        assert_eq!(p.prospect_phone, current.prospect_phone);
        // A date alone reschedules an open follow-up, never a closed one.
        let later = FollowUpPatch {
            next_date: Some(day("2026-12-01")),
            ..none_patch()
        };
        assert_eq!(
            patched(&current, &later, today).unwrap().next_date,
            Some(day("2026-12-01"))
        );
        assert_eq!(
            field(patched(&p, &later, today)).as_deref(),
            Some("nextDate")
        );
        // An open outcome needs its date; a bad field is named.
        let reopened = FollowUpPatch {
            outcome: Some(FollowUpOutcome::Interested),
            ..none_patch()
        };
        assert_eq!(
            field(patched(&p, &reopened, today)).as_deref(),
            Some("nextDate")
        );
        let bad_phone = FollowUpPatch {
            prospect_phone: Some("0755-1234".into()),
            ..none_patch()
        };
        assert_eq!(
            field(patched(&current, &bad_phone, today)).as_deref(),
            Some("prospectPhone")
        );
    }

    fn none_patch() -> FollowUpPatch {
        FollowUpPatch {
            prospect_name: None,
            prospect_phone: None,
            notes: None,
            outcome: None,
            next_date: None,
        }
    }

    #[test]
    fn staff_file_for_their_branch_and_edit_only_their_own() {
        let own = Id::new();
        let staff = Viewer {
            user_id: Id::new(),
            tenant_id: Id::new(),
            role: Role::Staff,
            branch_id: Some(own),
            driver_id: None,
            session_id: Id::new(),
        };
        assert_eq!(filing_branch(&staff, None).unwrap(), Some(own));
        assert!(matches!(
            filing_branch(&staff, Some(Id::new())),
            Err(Error::Forbidden)
        ));
        let admin = Viewer {
            role: Role::Admin,
            branch_id: None,
            ..staff.clone()
        };
        assert_eq!(
            field(filing_branch(&admin, None)).as_deref(),
            Some("branchId")
        );
        let driver = Viewer {
            role: Role::Driver,
            ..staff.clone()
        };
        assert!(matches!(
            filing_branch(&driver, None),
            Err(Error::Forbidden)
        ));

        let row = FollowUpRow {
            id: Id::new(),
            tenant_id: staff.tenant_id,
            branch_id: own,
            author_id: staff.user_id,
            author_name: "someone".into(),
            prospect_name: "王先生".into(),
            prospect_phone: "13900001234".into(),
            notes: "n".into(),
            outcome: "CALL_BACK".into(),
            next_date: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert!(may_edit(&staff, &row).is_ok());
        assert!(may_edit(&admin, &row).is_ok());
        let colleague = Viewer {
            user_id: Id::new(),
            ..staff.clone()
        };
        assert!(may_edit(&colleague, &row).is_err());
        assert!(may_edit(&driver, &row).is_err());
    }
}
