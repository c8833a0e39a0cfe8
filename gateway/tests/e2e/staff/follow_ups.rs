//! Follow-ups of prospects (意向客户回访): what is due today in Shanghai, who may edit and see
//! what, bad input, retries.

use chrono::{Days, NaiveDate, Utc};
use minigate_store::{BEIJING, Id};
use serde_json::{Value, json};

use super::{count_of, crew, field, ids};
use crate::support::{Resp, TestApp};

const RECORD: &str = "mutation($i: FollowUpInput!, $k: String) {
    recordFollowUp(input: $i, idempotencyKey: $k) {
        id prospectName prospectPhone notes outcome nextDate due branch { code } authorId } }";

const UPDATE: &str = "mutation($id: ID!, $i: FollowUpPatch!) {
    updateFollowUp(id: $id, input: $i) { id notes outcome nextDate due prospectPhone } }";

const DUE: &str = "query($b: ID) { followUpsDueToday(branchId: $b) { id nextDate prospectName } }";

const ONE: &str =
    "query($id: ID!) { followUp(id: $id) { id prospectPhone notes outcome nextDate } }";

const SEARCH: &str = "query($q: String!) {
    search(query: $q, kinds: [FOLLOW_UP]) { hits { id kind title } } }";

async fn found(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    let r = app.gql(token, SEARCH, json!({ "q": q })).await;
    ids(&r.ok()["search"]["hits"])
}

const PAGE: &str = "query($b: ID, $f: Int!, $a: String) {
    followUps(branchId: $b, first: $f, after: $a) { items { id } nextCursor } }";

fn today() -> NaiveDate {
    Utc::now().with_timezone(&BEIJING).date_naive()
}

fn day(offset: i64) -> String {
    let t = today();
    let d = if offset >= 0 {
        t.checked_add_days(Days::new(offset.unsigned_abs()))
    } else {
        t.checked_sub_days(Days::new(offset.unsigned_abs()))
    };
    d.unwrap().to_string()
}

fn input(name: &str, outcome: &str, next: Option<String>) -> Value {
    json!({ "prospectName": name, "prospectPhone": "+86 139 0000 1234",
            "notes": "想了解以租代购方案，\n周末再联系", "outcome": outcome, "nextDate": next })
}

async fn record(app: &TestApp, token: &str, i: Value) -> Resp {
    app.gql(token, RECORD, json!({ "i": i })).await
}

async fn recorded(app: &TestApp, token: &str, i: Value) -> String {
    let r = record(app, token, i).await;
    r.ok()["recordFollowUp"]["id"].as_str().unwrap().to_owned()
}

both!(
    follow_ups_fall_due_on_their_shanghai_date_and_closed_ones_never,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let r = record(
            &app,
            &crew.sz_staff,
            input(" 王先生 ", "CALL_BACK", Some(day(0))),
        )
        .await;
        let call = r.ok()["recordFollowUp"].clone();
        assert_eq!(call["prospectName"], "王先生");
        assert_eq!(call["prospectPhone"], "13900001234");
        assert_eq!(call["nextDate"], day(0));
        assert_eq!(call["due"], true);
        assert_eq!(call["branch"]["code"], "SZ");
        let call = call["id"].as_str().unwrap().to_owned();
        let later = recorded(
            &app,
            &crew.sz_staff,
            input("李女士", "INTERESTED", Some(day(1))),
        )
        .await;
        let overdue = recorded(
            &app,
            &crew.sz_colleague,
            input("赵先生", "CALL_BACK", Some(day(2))),
        )
        .await;
        recorded(&app, &crew.sz_staff, input("钱先生", "UNREACHABLE", None)).await;
        recorded(&app, &crew.sz_staff, input("孙女士", "SIGNED", None)).await;
        let mut gz_input = input("周先生", "CALL_BACK", Some(day(0)));
        gz_input["branchId"] = json!(crew.gz.to_string());
        let gz = recorded(&app, &crew.admin, gz_input).await;
        // Two days pass for one of them.
        let mut c = app.db().conn().await.unwrap();
        let yesterday: NaiveDate = day(-1).parse().unwrap();
        let overdue_id: Id = overdue.parse().unwrap();
        minigate_store::execute!(
            &mut c,
            "update follow_up set next_date = $1 where id = $2",
            yesterday,
            overdue_id
        )
        .unwrap();
        drop(c);

        let due = app.gql(&crew.sz_staff, DUE, json!({})).await;
        assert_eq!(
            ids(&due.ok()["followUpsDueToday"]),
            [overdue.clone(), call.clone()]
        );
        let due = app.gql(&crew.gz_staff, DUE, json!({})).await;
        assert_eq!(ids(&due.ok()["followUpsDueToday"]), [gz.as_str()]);
        let due = app.gql(&crew.admin, DUE, json!({})).await;
        assert_eq!(ids(&due.ok()["followUpsDueToday"]).len(), 3);
        let due = app
            .gql(&crew.admin, DUE, json!({ "b": crew.gz.to_string() }))
            .await;
        assert_eq!(ids(&due.ok()["followUpsDueToday"]), [gz.as_str()]);
        let far = app
            .gql(&crew.gz_staff, DUE, json!({ "b": crew.sz.to_string() }))
            .await;
        assert_eq!(far.code(), Some("FORBIDDEN"));
        let driver = app.gql(&crew.driver, DUE, json!({})).await;
        assert_eq!(driver.code(), Some("FORBIDDEN"));

        // The call was made: signed. It is no longer due, and has no next date.
        let signed = app
            .gql(
                &crew.sz_staff,
                UPDATE,
                json!({ "id": call, "i": { "outcome": "SIGNED", "notes": "已签约，下周提车" } }),
            )
            .await;
        let s = signed.ok()["updateFollowUp"].clone();
        assert_eq!(
            (
                s["outcome"].as_str(),
                s["nextDate"].clone(),
                s["due"].as_bool()
            ),
            (Some("SIGNED"), Value::Null, Some(false))
        );
        assert_eq!(s["notes"], "已签约，下周提车");
        // Its notes are searchable as they are now, by the author and operators, not GZ.
        assert_eq!(found(&app, &crew.sz_staff, "提车").await, [call.as_str()]);
        assert_eq!(found(&app, &crew.admin, "提车").await, [call.as_str()]);
        assert!(found(&app, &crew.gz_staff, "提车").await.is_empty());
        assert!(!found(&app, &crew.sz_staff, "周末").await.contains(&call));
        assert!(found(&app, &crew.sz_staff, "周末").await.contains(&later));
        // Rescheduled: the interested one is now due today.
        let moved = app
            .gql(
                &crew.admin,
                UPDATE,
                json!({ "id": later, "i": { "nextDate": day(0) } }),
            )
            .await;
        assert_eq!(moved.ok()["updateFollowUp"]["due"], true);
        let due = app.gql(&crew.sz_staff, DUE, json!({})).await;
        assert_eq!(
            ids(&due.ok()["followUpsDueToday"]),
            [overdue.clone(), later.clone()]
        );

        // The phone: in full for the author and operators, masked for colleagues.
        let mine = app.gql(&crew.sz_staff, ONE, json!({ "id": later })).await;
        assert_eq!(mine.ok()["followUp"]["prospectPhone"], "13900001234");
        let theirs = app
            .gql(&crew.sz_colleague, ONE, json!({ "id": later }))
            .await;
        assert_eq!(theirs.ok()["followUp"]["prospectPhone"], "139****1234");
        let op = app.gql(&crew.admin, ONE, json!({ "id": later })).await;
        assert_eq!(op.ok()["followUp"]["prospectPhone"], "13900001234");
        let far = app.gql(&crew.gz_staff, ONE, json!({ "id": later })).await;
        assert_eq!(far.code(), Some("NOT_FOUND"));

        // Only the author or an operator edits; nothing changes otherwise.
        for (token, code) in [
            (&crew.sz_colleague, "FORBIDDEN"),
            (&crew.gz_staff, "FORBIDDEN"),
            (&crew.driver, "FORBIDDEN"),
            (&crew.stranger, "NOT_FOUND"),
        ] {
            let r = app
                .gql(
                    token,
                    UPDATE,
                    json!({ "id": later, "i": { "notes": "改了" } }),
                )
                .await;
            assert_eq!(r.code(), Some(code));
        }
        let unchanged = app.gql(&crew.sz_staff, ONE, json!({ "id": later })).await;
        assert_eq!(
            unchanged.ok()["followUp"]["notes"],
            "想了解以租代购方案，\n周末再联系"
        );

        // Pages, newest first.
        let p1 = app.gql(&crew.sz_staff, PAGE, json!({ "f": 3 })).await;
        let page = p1.ok()["followUps"].clone();
        assert_eq!(page["items"].as_array().unwrap().len(), 3);
        let p2 = app
            .gql(
                &crew.sz_staff,
                PAGE,
                json!({ "f": 3, "a": page["nextCursor"] }),
            )
            .await;
        let rest = p2.ok()["followUps"].clone();
        assert_eq!(rest["nextCursor"], Value::Null);
        let mut all = ids(&page["items"]);
        all.extend(ids(&rest["items"]));
        assert_eq!(all.len(), 5);
        assert_eq!(all[4], call);
        assert!(!all.contains(&gz));
    }
);

both!(
    bad_follow_ups_are_refused_and_change_nothing,
    |app: TestApp| async move {
        let crew = crew(&app).await;
        let hq = app.branch(crew.other_tenant, "HQ").await;
        let mut admin_no_branch = input("王先生", "CALL_BACK", Some(day(1)));
        admin_no_branch["branchId"] = Value::Null;
        let mut admin_foreign = input("王先生", "CALL_BACK", Some(day(1)));
        admin_foreign["branchId"] = json!(hq.to_string());
        let mut staff_far = input("王先生", "CALL_BACK", Some(day(1)));
        staff_far["branchId"] = json!(crew.gz.to_string());
        let mut bad_phone = input("王先生", "CALL_BACK", Some(day(1)));
        bad_phone["prospectPhone"] = json!("0755-8888");
        let mut no_notes = input("王先生", "CALL_BACK", Some(day(1)));
        no_notes["notes"] = json!("  ");
        let cases: Vec<(&String, Value, &str, Option<&str>)> = vec![
            (
                &crew.sz_staff,
                input("王先生", "CALL_BACK", None),
                "INVALID_INPUT",
                Some("nextDate"),
            ),
            (
                &crew.sz_staff,
                input("王先生", "INTERESTED", None),
                "INVALID_INPUT",
                Some("nextDate"),
            ),
            (
                &crew.sz_staff,
                input("王先生", "SIGNED", Some(day(1))),
                "INVALID_INPUT",
                Some("nextDate"),
            ),
            (
                &crew.sz_staff,
                input("王先生", "CALL_BACK", Some(day(-1))),
                "INVALID_INPUT",
                Some("nextDate"),
            ),
            (
                &crew.sz_staff,
                input("王先生", "CALL_BACK", Some(day(400))),
                "INVALID_INPUT",
                Some("nextDate"),
            ),
            (
                &crew.sz_staff,
                input(" ", "CALL_BACK", Some(day(1))),
                "INVALID_INPUT",
                Some("prospectName"),
            ),
            (
                &crew.sz_staff,
                bad_phone,
                "INVALID_INPUT",
                Some("prospectPhone"),
            ),
            (&crew.sz_staff, no_notes, "INVALID_INPUT", Some("notes")),
            (
                &crew.admin,
                admin_no_branch,
                "INVALID_INPUT",
                Some("branchId"),
            ),
            (
                &crew.admin,
                admin_foreign,
                "INVALID_INPUT",
                Some("branchId"),
            ),
            (&crew.sz_staff, staff_far, "FORBIDDEN", None),
            (
                &crew.driver,
                input("王先生", "CALL_BACK", Some(day(1))),
                "FORBIDDEN",
                None,
            ),
        ];
        for (token, i, code, f) in cases {
            let r = record(&app, token, i.clone()).await;
            assert_eq!((r.code(), field(&r)), (Some(code), f), "{i}");
        }
        assert_eq!(app.count("select count(*) from follow_up").await, 0);

        // A retry files once; the same key with other input is refused.
        let vars =
            json!({ "i": input("王先生", "CALL_BACK", Some(day(1))), "k": "follow-retry-0001" });
        let (one, two) = tokio::join!(
            app.gql(&crew.sz_staff, RECORD, vars.clone()),
            app.gql(&crew.sz_staff, RECORD, vars.clone())
        );
        let id = one.ok()["recordFollowUp"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(two.ok()["recordFollowUp"]["id"], id.as_str());
        // The same input spelled differently is the same request.
        let respelled = app
            .gql(
                &crew.sz_staff,
                RECORD,
                json!({ "i": input(" 王先生 ", "CALL_BACK", Some(day(1))), "k": "follow-retry-0001" }),
            )
            .await;
        assert_eq!(respelled.ok()["recordFollowUp"]["id"], id.as_str());
        let other = app
            .gql(
                &crew.sz_staff,
                RECORD,
                json!({ "i": input("王先生", "CALL_BACK", Some(day(2))), "k": "follow-retry-0001" }),
            )
            .await;
        assert_eq!(other.code(), Some("IDEMPOTENCY_KEY_REUSED"));
        assert_eq!(app.count("select count(*) from follow_up").await, 1);

        // Bad updates change nothing.
        let signed = app
            .gql(
                &crew.sz_staff,
                UPDATE,
                json!({ "id": id, "i": { "outcome": "SIGNED" } }),
            )
            .await;
        signed.ok();
        for (patch, f) in [
            (json!({ "nextDate": day(3) }), "nextDate"),
            (json!({ "outcome": "CALL_BACK" }), "nextDate"),
            (
                json!({ "outcome": "CALL_BACK", "nextDate": day(-2) }),
                "nextDate",
            ),
            (json!({ "prospectPhone": "12" }), "prospectPhone"),
            (json!({ "notes": "" }), "notes"),
        ] {
            let r = app
                .gql(&crew.sz_staff, UPDATE, json!({ "id": id, "i": patch }))
                .await;
            assert_eq!(
                (r.code(), field(&r)),
                (Some("INVALID_INPUT"), Some(f)),
                "{patch}"
            );
        }
        let nowhere = app
            .gql(
                &crew.sz_staff,
                UPDATE,
                json!({ "id": Id::new().to_string(), "i": { "notes": "x" } }),
            )
            .await;
        assert_eq!(nowhere.code(), Some("NOT_FOUND"));
        let read = app.gql(&crew.sz_staff, ONE, json!({ "id": id })).await;
        let f = read.ok()["followUp"].clone();
        assert_eq!(
            (f["outcome"].as_str(), f["nextDate"].clone()),
            (Some("SIGNED"), Value::Null)
        );
        assert_eq!(f["prospectPhone"], "13900001234");
        assert_eq!(
            count_of(
                &app,
                "select count(*) from follow_up where id = $1 and next_date is null",
                &id
            )
            .await,
            1
        );
    }
);
