//! Daily reconciliation end to end: the providers' trade bills, made by the fakes from what was
//! really paid and refunded there, against our orders and refunds; through the engine, the
//! operators' GraphQL, the `minigate reconcile` command and the daily job. Every payment here is
//! paid "now", so the day reconciled is today in Beijing, whose bill the fakes are told to
//! publish.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use minigate_fakes::{
    alipay::BillFault as AlipayFault,
    wechat_pay::{BillFault as WechatFault, RefundStatus, TradeState, WechatPayRoute},
};
use minigate_payments::notification::Provider;
use minigate_resolvers::reconcile::{self, Stage, db::RunRow, job};
use minigate_store::BEIJING;
use minigate_store::Id;
use serde_json::{Value, json};

use crate::{
    paying::{APP_ID, MCH_ID, Shop, bill, create_payment, payment, scalar, shop},
    support::{JWT_SECRET, Resp, TestApp},
};

const RUN_FIELDS: &str = "id provider billDate status passes errorCode errorDetail paymentCount paymentFen refundCount refundFen feeMillifen differenceCount repairedCount billDigest startedAt finishedAt";
const DIFFERENCE_FIELDS: &str = "id runId kind reference outTradeNo paymentId refundId localFen providerFen localStatus providerStatus detail repaired status resolution note resolvedAt";

/// Today in Beijing: the business day of everything paid in these tests.
fn today() -> NaiveDate {
    Utc::now().with_timezone(&BEIJING).date_naive()
}

/// `hour:minute` Beijing time on `day`.
fn beijing_at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    BEIJING
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

async fn tenant_id(app: &TestApp, slug: &str) -> Id {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(&mut c, Id, "select id from tenant where slug = $1", slug)
        .unwrap()
}

/// A shop taking payments whose providers both publish today's bill.
async fn ready_shop(app: &TestApp, slug: &str) -> (Shop, Id) {
    let shop = shop(app, slug).await;
    app.wxpay.set_bill_ready(today(), true);
    app.alipay.set_bill_ready(today(), true);
    let tenant = tenant_id(app, slug).await;
    (shop, tenant)
}

/// A pass of the engine over `day`.
async fn run_day(app: &TestApp, tenant: Id, provider: Provider, day: NaiveDate) -> RunRow {
    reconcile::reconcile(&app.state.deps, tenant, provider, day, &|_| {})
        .await
        .unwrap()
}

async fn run(app: &TestApp, tenant: Id, provider: Provider) -> RunRow {
    run_day(app, tenant, provider, today()).await
}

/// A new bill of `fen` and its order on `channel`: (payment id, out_trade_no).
async fn open(app: &TestApp, shop: &Shop, fen: i64, channel: &str) -> (String, String) {
    let b = bill(app, shop, fen).await;
    let r = create_payment(app, &shop.staff, &b, channel).await;
    let p = &r.ok()["createPayment"];
    (
        p["id"].as_str().unwrap().to_owned(),
        p["outTradeNo"].as_str().unwrap().to_owned(),
    )
}

/// Paid at WeChat Pay, the notification delivered and credited.
async fn paid_wechat(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let (id, no) = unnotified_wechat(app, shop, fen).await;
    let (status, _) = app.wxpay.notify(&no).await.unwrap();
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(payment(app, &shop.admin, &id).await["status"], "PAID");
    (id, no)
}

/// Paid at WeChat Pay; the notification never reaches us.
async fn unnotified_wechat(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let (id, no) = open(app, shop, fen, "WECHAT_NATIVE").await;
    assert!(app.wxpay.pay(&no, None));
    (id, no)
}

/// Paid at Alipay, the notification delivered and credited.
async fn paid_alipay(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let (id, no) = unnotified_alipay(app, shop, fen).await;
    let (status, body) = app.alipay.notify(&no).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "success"));
    assert_eq!(payment(app, &shop.admin, &id).await["status"], "PAID");
    (id, no)
}

/// Paid at Alipay; the notification never reaches us.
async fn unnotified_alipay(app: &TestApp, shop: &Shop, fen: i64) -> (String, String) {
    let (id, no) = open(app, shop, fen, "ALIPAY_QR").await;
    assert!(app.alipay.pay(&no));
    (id, no)
}

/// What the shop's operator gets back from `refundPayment`.
async fn refund(app: &TestApp, shop: &Shop, payment_id: &str, fen: i64) -> Value {
    let r = app
        .gql(
            &shop.admin,
            "mutation($p: ID!, $a: Int!, $r: String!) { refundPayment(paymentId: $p, amountFen: $a, reason: $r) { id status outRefundNo amountFen } }",
            json!({ "p": payment_id, "a": fen, "r": "deposit returned" }),
        )
        .await;
    r.ok()["refundPayment"].clone()
}

/// Our books with a paid order's status set in SQL although the provider never took the money:
/// what a misapplied or forged callback would leave (the fakes cannot forget a payment).
async fn mark_paid_here(app: &TestApp, id: &str) {
    let mut c = app.db().conn().await.unwrap();
    let n = minigate_store::execute!(
        &mut c,
        "update payment_order set status = 'PAID', paid_fen = amount_fen, paid_at = $2 where id = $1",
        id.parse::<Id>().unwrap(),
        Utc::now()
    )
    .unwrap();
    assert_eq!(n, 1);
}

/// Every figure a pass could wrongly change.
#[derive(Debug, PartialEq, Eq)]
struct Books {
    paid_orders: i64,
    ledger: i64,
    flags: i64,
    refunds_done: i64,
    differences: i64,
}

async fn books(app: &TestApp) -> Books {
    Books {
        paid_orders: app
            .count("select count(*) from payment_order where paid_fen is not null")
            .await,
        ledger: app.count("select count(*) from ledger_entry").await,
        flags: app.count("select count(*) from payment_flag").await,
        refunds_done: app
            .count("select count(*) from payment_refund where status = 'SUCCESS'")
            .await,
        differences: app
            .count("select count(*) from reconciliation_difference")
            .await,
    }
}

async fn runs_resp(app: &TestApp, token: &str, provider: Option<&str>) -> Resp {
    app.gql(
        token,
        &format!(
            "query($p: PaymentProvider) {{ reconciliationRuns(provider: $p) {{ {RUN_FIELDS} }} }}"
        ),
        json!({ "p": provider }),
    )
    .await
}

/// The company's runs as its operator lists them.
async fn listed_runs(app: &TestApp, token: &str, provider: Option<&str>) -> Vec<Value> {
    runs_resp(app, token, provider).await.ok()["reconciliationRuns"]
        .as_array()
        .unwrap()
        .clone()
}

/// The run `id` as the operator lists it.
async fn listed_run(app: &TestApp, token: &str, id: Id) -> Value {
    let runs = listed_runs(app, token, None).await;
    runs.into_iter()
        .find(|r| r["id"] == id.to_string())
        .unwrap_or_else(|| panic!("run {id} not listed"))
}

async fn differences_resp(app: &TestApp, token: &str, run: Id, open_only: bool) -> Resp {
    app.gql(
        token,
        &format!(
            "query($r: ID!, $o: Boolean!) {{ reconciliationDifferences(runId: $r, openOnly: $o) {{ {DIFFERENCE_FIELDS} }} }}"
        ),
        json!({ "r": run.to_string(), "o": open_only }),
    )
    .await
}

async fn differences(app: &TestApp, token: &str, run: Id, open_only: bool) -> Vec<Value> {
    differences_resp(app, token, run, open_only).await.ok()["reconciliationDifferences"]
        .as_array()
        .unwrap()
        .clone()
}

/// The one difference of `kind` about `reference`.
#[track_caller]
fn the<'a>(diffs: &'a [Value], kind: &str, reference: &str) -> &'a Value {
    let found: Vec<&Value> = diffs
        .iter()
        .filter(|d| d["kind"] == kind && d["reference"] == reference)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} of {reference} in {diffs:#?}");
    found[0]
}

async fn resolve(app: &TestApp, token: &str, id: &Value, resolution: &str, note: &str) -> Resp {
    app.gql(
        token,
        "mutation($i: ID!, $r: DifferenceResolution!, $n: String!) { resolveDifference(id: $i, resolution: $r, note: $n) { id kind status resolution note resolvedAt repaired } }",
        json!({ "i": id, "r": resolution, "n": note }),
    )
    .await
}

async fn ledger_by(app: &TestApp, payment_id: &str, source: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(
        &mut c,
        i64,
        "select count(*) from ledger_entry where order_id = $1 and source = $2",
        payment_id.parse::<Id>().unwrap(),
        source
    )
    .unwrap()
}

fn sha1_of(bytes: &[u8]) -> String {
    minigate_payments::bill::sha1_hex(bytes).unwrap()
}

both!(
    a_clean_wechat_day_has_no_differences,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "clean").await;
        paid_wechat(&app, &shop, 1_230).await;
        let (refunded, _) = paid_wechat(&app, &shop, 2_500).await;
        paid_wechat(&app, &shop, 9_900).await;
        let r = refund(&app, &shop, &refunded, 500).await;
        assert_eq!(r["status"], "PROCESSING");
        let no = r["outRefundNo"].as_str().unwrap();
        assert!(app.wxpay.finish_refund(no, RefundStatus::Success));
        let (status, _) = app.wxpay.notify_refund(no).await.unwrap();
        assert!((200..300).contains(&status), "{status}");
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_refund where id = $1 and status = 'SUCCESS'",
                r["id"].as_str().unwrap()
            )
            .await,
            1
        );
        let before = books(&app).await;

        let first = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(first.status, "DONE", "{first:?}");
        assert_eq!(first.provider, "wechat");
        assert_eq!(first.bill_date, today());
        assert_eq!(first.passes, 1);
        assert_eq!((first.payment_count, first.payment_fen), (3, 13_630));
        assert_eq!((first.refund_count, first.refund_fen), (1, 500));
        // 0.60 %: 7 + 15 + 59 fen charged, 3 fen given back with the refund.
        assert_eq!(first.fee_millifen, 78_000);
        assert_eq!((first.difference_count, first.repaired_count), (0, 0));
        assert_eq!(first.error_code, None);
        assert_eq!(first.next_attempt_at, None);
        assert!(first.finished_at.is_some());
        // The digest is the SHA-1 of the file WeChat Pay serves for the day.
        let file = app.wxpay.trade_bill(MCH_ID, today());
        assert_eq!(first.bill_digest.as_deref(), Some(sha1_of(&file).as_str()));
        assert_eq!(books(&app).await, before);

        let listed = listed_runs(&app, &shop.admin, Some("WECHAT")).await;
        assert_eq!(listed.len(), 1, "{listed:#?}");
        let l = &listed[0];
        assert_eq!(l["id"], first.id.to_string());
        assert_eq!(l["provider"], "wechat");
        assert_eq!(l["billDate"], today().to_string());
        assert_eq!(l["status"], "DONE");
        assert_eq!(
            (
                &l["paymentCount"],
                &l["paymentFen"],
                &l["refundCount"],
                &l["refundFen"]
            ),
            (&json!(3), &json!(13_630), &json!(1), &json!(500))
        );
        assert_eq!(l["feeMillifen"], 78_000);
        assert_eq!(l["differenceCount"], 0);
        assert!(l["errorCode"].is_null());
        assert!(
            listed_runs(&app, &shop.admin, Some("ALIPAY"))
                .await
                .is_empty()
        );
        assert!(
            differences(&app, &shop.admin, first.id, false)
                .await
                .is_empty()
        );

        let again = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(again.id, first.id);
        assert_eq!((again.status.as_str(), again.passes), ("DONE", 2));
        assert_eq!((again.payment_count, again.refund_count), (3, 1));
        assert_eq!((again.difference_count, again.repaired_count), (0, 0));
        assert_eq!(books(&app).await, before);
        assert_eq!(listed_runs(&app, &shop.admin, None).await.len(), 1);

        // Yesterday's bill (published, empty) is a run of its own, listed after today's.
        let yesterday = today().pred_opt().unwrap();
        let y = run_day(&app, tenant, Provider::Wechat, yesterday).await;
        assert_eq!((y.status.as_str(), y.payment_count), ("DONE", 0));
        let days: Vec<Value> = listed_runs(&app, &shop.admin, None)
            .await
            .iter()
            .map(|r| r["billDate"].clone())
            .collect();
        assert_eq!(
            days,
            [json!(today().to_string()), json!(yesterday.to_string())]
        );
        let newest = app
            .gql(
                &shop.admin,
                "{ reconciliationRuns(first: 1) { billDate } }",
                json!({}),
            )
            .await;
        assert_eq!(
            newest.ok()["reconciliationRuns"],
            json!([{ "billDate": today().to_string() }])
        );
    }
);

both!(
    a_bill_longer_than_a_batch_is_matched_whole,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "long").await;
        let (first_id, first_no) = paid_wechat(&app, &shop, 1_230).await;
        // A thousand payments we know nothing of, after it in the bill (`z` sorts after hex).
        let at = Utc::now();
        for i in 0..1_000 {
            app.wxpay
                .seed_paid_order(MCH_ID, APP_ID, &format!("zBULK{i:04}"), 100, at);
        }
        tokio::time::sleep(StdDuration::from_millis(1_100)).await;
        // Ours again, in a later batch of rows.
        let (_, last_no) = paid_wechat(&app, &shop, 2_000).await;
        let (missed, missed_no) = unnotified_wechat(&app, &shop, 3_000).await;
        let (phantom, phantom_no) = open(&app, &shop, 4_000, "WECHAT_NATIVE").await;
        mark_paid_here(&app, &phantom).await;
        let stages = std::sync::Mutex::new(Vec::new());

        let r = reconcile::reconcile(&app.state.deps, tenant, Provider::Wechat, today(), &|s| {
            stages.lock().unwrap().push(s);
        })
        .await
        .unwrap();
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!(
            (r.payment_count, r.payment_fen),
            (1_003, 1_230 + 100_000 + 5_000)
        );
        assert_eq!((r.difference_count, r.repaired_count), (1_001, 1));
        assert_eq!(
            stages.into_inner().unwrap(),
            [
                Stage::Downloading,
                Stage::Checked { rows: 1_003 },
                // Batches of 250 rows.
                Stage::Matching { done: 250 },
                Stage::Matching { done: 500 },
                Stage::Matching { done: 750 },
                Stage::Matching { done: 1_000 },
                Stage::Matching { done: 1_003 },
                Stage::Finishing,
            ]
        );
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 1_002);
        let bulk = all
            .iter()
            .filter(|d| d["kind"] == "MISSING_LOCALLY" && d["status"] == "OPEN")
            .count();
        assert_eq!(bulk, 1_000);
        assert_eq!(the(&all, "MISSING_LOCALLY", &missed_no)["repaired"], true);
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");
        assert_eq!(
            the(&all, "MISSING_AT_PROVIDER", &phantom_no)["paymentId"],
            phantom.as_str()
        );
        // Ours in either batch were seen.
        for no in [&first_no, &last_no] {
            assert!(all.iter().all(|d| d["reference"] != no.as_str()), "{no}");
        }
        assert_eq!(ledger_by(&app, &first_id, "CALLBACK").await, 1);
    }
);

both!(
    a_missed_wechat_callback_is_repaired_once_the_query_confirms_it,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "missed").await;
        paid_wechat(&app, &shop, 1_230).await;
        let (id, no) = unnotified_wechat(&app, &shop, 4_000).await;
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "CREATED");
        let queries = app.wxpay.calls(WechatPayRoute::Query);

        let first = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(first.status, "DONE", "{first:?}");
        assert_eq!((first.payment_count, first.payment_fen), (2, 5_230));
        assert_eq!((first.difference_count, first.repaired_count), (0, 1));
        // Credited only after WeChat Pay's own answer to a query said so.
        assert_eq!(app.wxpay.calls(WechatPayRoute::Query), queries + 1);
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "PAID");
        assert_eq!(ledger_by(&app, &id, "RECONCILIATION").await, 1);
        assert_eq!(
            app.count("select count(*) from bill where status = 'PAID'")
                .await,
            2
        );

        let all = differences(&app, &shop.admin, first.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let d = the(&all, "MISSING_LOCALLY", &no);
        assert_eq!(d["repaired"], true);
        assert_eq!(d["status"], "RESOLVED");
        assert_eq!(d["resolution"], "REPAIRED");
        assert!(d["resolvedAt"].is_string());
        assert_eq!(d["paymentId"], id.as_str());
        assert_eq!(d["outTradeNo"], no.as_str());
        assert_eq!(d["providerFen"], 4_000);
        assert_eq!(d["localFen"], 4_000);
        assert_eq!(d["localStatus"], "PAID");
        assert_eq!(d["runId"], first.id.to_string());
        assert!(
            differences(&app, &shop.admin, first.id, true)
                .await
                .is_empty()
        );
        let l = listed_run(&app, &shop.admin, first.id).await;
        assert_eq!(
            (&l["differenceCount"], &l["repairedCount"]),
            (&json!(0), &json!(1))
        );
        // A repair is not for people to resolve.
        let r = resolve(&app, &shop.admin, &d["id"], "ACCEPTED", "looked at it").await;
        assert_eq!(r.code(), Some("DIFFERENCE_RESOLVED"), "{:?}", r.json);

        // The callback arrives late: nothing is credited twice.
        let (status, _) = app.wxpay.notify(&no).await.unwrap();
        assert!((200..300).contains(&status), "{status}");
        let again = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((again.status.as_str(), again.passes), ("DONE", 2));
        assert_eq!((again.difference_count, again.repaired_count), (0, 1));
        assert_eq!(
            app.count("select count(*) from ledger_entry").await,
            2,
            "one entry per payment"
        );
        let all = differences(&app, &shop.admin, first.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(the(&all, "MISSING_LOCALLY", &no)["status"], "RESOLVED");
    }
);

both!(
    a_payment_repaired_on_a_later_pass_is_marked_repaired,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "later").await;
        let (id, no) = unnotified_wechat(&app, &shop, 4_000).await;
        // The bill comes through, but WeChat Pay fails the query of this pass.
        let wxpay = &app.wxpay;
        let first = reconcile::reconcile(
            &app.state.deps,
            tenant,
            Provider::Wechat,
            today(),
            &|stage| {
                if matches!(stage, Stage::Checked { .. }) {
                    wxpay.fail_next(500, "SYSTEM_ERROR");
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(first.status, "DONE", "{first:?}");
        assert_eq!((first.difference_count, first.repaired_count), (1, 0));
        // Not credited on the bill's word alone.
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "CREATED");
        let all = differences(&app, &shop.admin, first.id, false).await;
        let d = the(&all, "MISSING_LOCALLY", &no);
        assert_eq!(
            (&d["status"], &d["repaired"]),
            (&json!("OPEN"), &json!(false))
        );

        // The next pass can ask: the order is credited, and the difference is a repair now.
        let second = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "PAID");
        assert_eq!(ledger_by(&app, &id, "RECONCILIATION").await, 1);
        let all = differences(&app, &shop.admin, first.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let d = the(&all, "MISSING_LOCALLY", &no);
        assert_eq!(d["repaired"], true, "{d:#}");
        assert_eq!(d["status"], "RESOLVED", "{d:#}");
        assert_eq!(d["resolution"], "REPAIRED", "{d:#}");
        assert_eq!(
            (second.difference_count, second.repaired_count),
            (0, 1),
            "{second:?}"
        );
    }
);

both!(
    an_unknown_payment_and_refund_are_missing_locally_and_credit_nothing,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "unknown").await;
        paid_wechat(&app, &shop, 1_230).await;
        // Paid to our merchant under a number we never gave out, then partly refunded.
        app.wxpay
            .seed_paid_order(MCH_ID, APP_ID, "STRANGER0001", 4_321, Utc::now());
        assert!(app.wxpay.seed_refund(
            MCH_ID,
            "STRANGER0001",
            "STRANGER0001R1",
            1_000,
            Utc::now(),
            RefundStatus::Success
        ));
        let before = books(&app).await;

        let r = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!((r.payment_count, r.payment_fen), (2, 5_551));
        assert_eq!((r.refund_count, r.refund_fen), (1, 1_000));
        assert_eq!((r.difference_count, r.repaired_count), (2, 0));
        let all = differences(&app, &shop.admin, r.id, true).await;
        assert_eq!(all.len(), 2, "{all:#?}");
        let paid = the(&all, "MISSING_LOCALLY", "STRANGER0001");
        assert_eq!(paid["providerFen"], 4_321);
        assert_eq!(paid["providerStatus"], "PAID");
        assert_eq!(paid["outTradeNo"], "STRANGER0001");
        assert!(paid["paymentId"].is_null());
        assert!(paid["localFen"].is_null());
        assert_eq!(
            (&paid["status"], &paid["repaired"]),
            (&json!("OPEN"), &json!(false))
        );
        let refunded = the(&all, "MISSING_LOCALLY", "STRANGER0001R1");
        assert_eq!(refunded["providerFen"], 1_000);
        assert_eq!(refunded["providerStatus"], "SUCCESS");
        assert_eq!(refunded["outTradeNo"], "STRANGER0001");
        assert!(refunded["refundId"].is_null());
        // Nothing was credited, opened or refunded anywhere.
        assert_eq!(
            books(&app).await,
            Books {
                differences: before.differences + 2,
                ..before
            }
        );
        assert_eq!(
            app.count("select count(*) from payment_order where out_trade_no = 'STRANGER0001'")
                .await,
            0
        );
    }
);

both!(
    a_payment_the_provider_never_took_is_missing_at_provider,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "phantom").await;
        let (refunded, _) = paid_wechat(&app, &shop, 1_230).await;
        let (id, no) = open(&app, &shop, 7_700, "WECHAT_NATIVE").await;
        mark_paid_here(&app, &id).await;
        // A refund WeChat Pay holds under another number than ours (simulated in SQL): ours is
        // missing there, theirs is missing here.
        let f = refund(&app, &shop, &refunded, 300).await;
        let theirs = f["outRefundNo"].as_str().unwrap().to_owned();
        {
            let mut c = app.db().conn().await.unwrap();
            minigate_store::execute!(
                &mut c,
                "update payment_refund set out_refund_no = 'OURS0001' where id = $1",
                f["id"].as_str().unwrap().parse::<Id>().unwrap()
            )
            .unwrap();
        }
        let before = books(&app).await;

        let r = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!(r.payment_count, 1);
        assert_eq!(r.refund_count, 1);
        assert_eq!(r.difference_count, 3);
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 3, "{all:#?}");
        let ours = the(&all, "MISSING_AT_PROVIDER", "OURS0001");
        assert_eq!(ours["refundId"], f["id"]);
        assert_eq!(ours["paymentId"], refunded.as_str());
        assert_eq!(ours["localFen"], 300);
        assert_eq!(ours["localStatus"], "PROCESSING");
        let unknown = the(&all, "MISSING_LOCALLY", &theirs);
        assert_eq!(unknown["providerFen"], 300);
        assert!(unknown["refundId"].is_null());
        let d = the(&all, "MISSING_AT_PROVIDER", &no);
        assert_eq!(d["paymentId"], id.as_str());
        assert_eq!(d["localFen"], 7_700);
        assert_eq!(d["localStatus"], "PAID");
        assert!(d["providerFen"].is_null());
        assert_eq!(
            (&d["status"], &d["repaired"]),
            (&json!("OPEN"), &json!(false))
        );
        // Reported, not undone: a person decides.
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "PAID");
        assert_eq!(
            books(&app).await,
            Books {
                differences: before.differences + 3,
                ..before
            }
        );
        // No WeChat Pay order was closed or queried on the strength of it.
        assert_eq!(app.wxpay.order(&no).unwrap().state, TradeState::NotPay);
    }
);

both!(
    fee_and_amount_mismatches_are_reported_with_both_figures,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "mismatch").await;
        // Charged 9 fen on 12.30 yuan where 0.60 % make 7.
        let (fee_id, fee_no) = paid_wechat(&app, &shop, 1_230).await;
        app.wxpay.set_fee_override(&fee_no, 9_000);
        // Credited at 20.00 yuan; WeChat Pay's books say 19.90.
        let (short_id, short_no) = paid_wechat(&app, &shop, 2_000).await;
        assert!(app.wxpay.set_paid_total(&short_no, 1_990));
        // Paid 29.90 yuan for a 30.00 order: the callback is flagged, never credited.
        let (odd_id, odd_no) = open(&app, &shop, 3_000, "WECHAT_NATIVE").await;
        assert!(app.wxpay.set_paid_total(&odd_no, 2_990));
        assert!(app.wxpay.pay(&odd_no, None));
        app.wxpay.notify(&odd_no).await.unwrap();
        assert_eq!(
            payment(&app, &shop.admin, &odd_id).await["status"],
            "CREATED"
        );
        let ledger = app.count("select count(*) from ledger_entry").await;

        let r = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!((r.payment_count, r.payment_fen), (3, 1_230 + 1_990 + 2_990));
        assert_eq!((r.difference_count, r.repaired_count), (3, 0));
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 3, "{all:#?}");
        let fee = the(&all, "FEE_MISMATCH", &fee_no);
        assert_eq!(
            (&fee["localFen"], &fee["providerFen"]),
            (&json!(7), &json!(9))
        );
        assert_eq!(fee["paymentId"], fee_id.as_str());
        assert_eq!(fee["status"], "OPEN");
        let short = the(&all, "AMOUNT_MISMATCH", &short_no);
        assert_eq!(
            (&short["localFen"], &short["providerFen"]),
            (&json!(2_000), &json!(1_990))
        );
        assert_eq!(short["paymentId"], short_id.as_str());
        let odd = the(&all, "AMOUNT_MISMATCH", &odd_no);
        assert_eq!(
            (&odd["localFen"], &odd["providerFen"]),
            (&json!(3_000), &json!(2_990))
        );
        assert_eq!(odd["paymentId"], odd_id.as_str());
        assert_eq!(
            (&odd["status"], &odd["repaired"]),
            (&json!("OPEN"), &json!(false))
        );
        // Still not credited, whatever the bill says.
        assert_eq!(
            payment(&app, &shop.admin, &odd_id).await["status"],
            "CREATED"
        );
        assert_eq!(app.count("select count(*) from ledger_entry").await, ledger);

        // A second pass finds the same three and credits nothing.
        let again = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((again.passes, again.difference_count), (2, 3));
        assert_eq!(differences(&app, &shop.admin, r.id, true).await.len(), 3);
        assert_eq!(app.count("select count(*) from ledger_entry").await, ledger);
    }
);

both!(
    a_mismatched_payment_is_flagged_once_however_often_it_is_reconciled,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "flagonce").await;
        let (odd_id, odd_no) = open(&app, &shop, 3_000, "WECHAT_NATIVE").await;
        assert!(app.wxpay.set_paid_total(&odd_no, 2_990));
        assert!(app.wxpay.pay(&odd_no, None));
        app.wxpay.notify(&odd_no).await.unwrap();
        let flags =
            "select count(*) from payment_flag where order_id = $1 and kind = 'AMOUNT_MISMATCH'";
        // The callback flagged it for a person.
        assert_eq!(scalar(&app, flags, &odd_id).await, 1);
        for pass in 1..=3 {
            let r = run(&app, tenant, Provider::Wechat).await;
            assert_eq!((r.passes, r.difference_count), (pass, 1));
            assert_eq!(
                scalar(&app, flags, &odd_id).await,
                1,
                "pass {pass} flagged the same mismatch again"
            );
        }
    }
);

both!(
    money_paid_to_a_closed_order_is_paid_after_close,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "late").await;
        let b = bill(&app, &shop, 5_000).await;
        let a = create_payment(&app, &shop.staff, &b, "WECHAT_NATIVE").await;
        let id = a.ok()["createPayment"]["id"].as_str().unwrap().to_owned();
        let no = a.ok()["createPayment"]["outTradeNo"]
            .as_str()
            .unwrap()
            .to_owned();
        // The payer switches to Alipay: the WeChat order is closed there and here.
        create_payment(&app, &shop.staff, &b, "ALIPAY_QR")
            .await
            .ok();
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "CLOSED");
        assert_eq!(app.wxpay.order(&no).unwrap().state, TradeState::Closed);
        // A payment that raced the close went through at WeChat Pay anyway; no callback came.
        app.wxpay
            .seed_paid_order(MCH_ID, APP_ID, &no, 5_000, Utc::now());

        let r = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!((r.difference_count, r.repaired_count), (1, 0));
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let d = the(&all, "PAID_AFTER_CLOSE", &no);
        assert_eq!(d["paymentId"], id.as_str());
        assert_eq!(
            (&d["localFen"], &d["providerFen"]),
            (&json!(5_000), &json!(5_000))
        );
        assert_eq!(
            (&d["status"], &d["repaired"]),
            (&json!("OPEN"), &json!(false))
        );
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_flag where order_id = $1 and kind = 'PAID_AFTER_CLOSE'",
                &id
            )
            .await,
            1
        );
        // The money is on the books, the order stays closed.
        assert_eq!(ledger_by(&app, &id, "RECONCILIATION").await, 1);
        assert_eq!(payment(&app, &shop.admin, &id).await["status"], "CLOSED");

        let again = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((again.passes, again.difference_count), (2, 1));
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let kept = the(&all, "PAID_AFTER_CLOSE", &no);
        assert_eq!(kept["id"], d["id"]);
        assert_eq!(kept["localFen"], 5_000);
        assert_eq!(ledger_by(&app, &id, "RECONCILIATION").await, 1);
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_flag where order_id = $1",
                &id
            )
            .await,
            1
        );
    }
);

both!(
    a_refund_done_without_notification_is_repaired,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "refundfix").await;
        let (id, _) = paid_wechat(&app, &shop, 3_000).await;
        let done = refund(&app, &shop, &id, 1_000).await;
        let under_way = refund(&app, &shop, &id, 400).await;
        assert_eq!(done["status"], "PROCESSING");
        let done_no = done["outRefundNo"].as_str().unwrap();
        // WeChat Pay finished the first; its notification never came.
        assert!(app.wxpay.finish_refund(done_no, RefundStatus::Success));

        let r = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!((r.refund_count, r.refund_fen), (2, 1_400));
        assert_eq!((r.difference_count, r.repaired_count), (0, 1));
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_refund where id = $1 and status = 'SUCCESS'",
                done["id"].as_str().unwrap()
            )
            .await,
            1
        );
        assert_eq!(
            scalar(
                &app,
                "select count(*) from payment_refund where id = $1 and status = 'PROCESSING'",
                under_way["id"].as_str().unwrap()
            )
            .await,
            1
        );
        let p = app
            .gql(
                &shop.admin,
                "query($id: ID!) { payment(id: $id) { refundedFen refunds { outRefundNo status } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(p.ok()["payment"]["refundedFen"], 1_000);
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let d = the(&all, "STATUS_MISMATCH", done_no);
        assert_eq!(d["refundId"], done["id"]);
        assert_eq!(d["paymentId"], id.as_str());
        assert_eq!(
            (&d["repaired"], &d["status"]),
            (&json!(true), &json!("RESOLVED"))
        );
        assert_eq!(d["resolution"], "REPAIRED");
        assert_eq!(d["providerStatus"], "SUCCESS");
        assert_eq!(d["localFen"], 1_000);
    }
);

both!(
    alipay_fee_and_amount_mismatches_are_reported,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "alimis").await;
        // Alipay takes 9 fen of 12.30 yuan where 0.60 % make 7.
        let (fee_id, fee_no) = paid_alipay(&app, &shop, 1_230).await;
        app.alipay.set_fee_override(&fee_no, -9);
        // Credited at 20.00 yuan; Alipay's books say 19.90.
        let (short_id, short_no) = paid_alipay(&app, &shop, 2_000).await;
        assert!(app.alipay.set_paid_total(&short_no, 1_990));

        let r = run(&app, tenant, Provider::Alipay).await;
        assert_eq!(r.status, "DONE", "{r:?}");
        assert_eq!((r.payment_count, r.payment_fen), (2, 1_230 + 1_990));
        assert_eq!(r.difference_count, 2);
        let all = differences(&app, &shop.admin, r.id, false).await;
        assert_eq!(all.len(), 2, "{all:#?}");
        let fee = the(&all, "FEE_MISMATCH", &fee_no);
        assert_eq!(
            (&fee["localFen"], &fee["providerFen"]),
            (&json!(7), &json!(9))
        );
        assert_eq!(fee["paymentId"], fee_id.as_str());
        let short = the(&all, "AMOUNT_MISMATCH", &short_no);
        assert_eq!(
            (&short["localFen"], &short["providerFen"]),
            (&json!(2_000), &json!(1_990))
        );
        assert_eq!(short["paymentId"], short_id.as_str());
    }
);

both!(
    a_bad_wechat_bill_changes_nothing,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "badwx").await;
        paid_wechat(&app, &shop, 1_230).await;
        let (missed, _) = unnotified_wechat(&app, &shop, 4_000).await;
        let before = books(&app).await;
        let faults = [
            (WechatFault::WrongHash, "BILL_HASH_MISMATCH"),
            (WechatFault::WrongTotals, "BILL_TOTALS_MISMATCH"),
            (WechatFault::UnknownRow, "BILL_ROW_UNKNOWN"),
            (WechatFault::MalformedAmount, "BILL_AMOUNT_MALFORMED"),
            (WechatFault::ExtraColumn, "BILL_COLUMNS_UNEXPECTED"),
            (WechatFault::MissingSummary, "BILL_MALFORMED"),
        ];
        let mut id = None;
        for (fault, code) in faults {
            app.wxpay.corrupt_next_bill(fault);
            let r = run(&app, tenant, Provider::Wechat).await;
            assert_eq!(r.status, "FAILED", "{fault:?}: {r:?}");
            assert_eq!(r.error_code.as_deref(), Some(code), "{fault:?}: {r:?}");
            assert!(r.error_detail.is_some());
            assert!(
                r.next_attempt_at.is_some_and(|t| t > Utc::now()),
                "{fault:?}: {r:?}"
            );
            assert_eq!(r.payment_count, 0, "{fault:?}");
            assert_eq!(books(&app).await, before, "{fault:?}");
            // The missed callback in that bill is not repaired on its word.
            assert_eq!(
                payment(&app, &shop.admin, &missed).await["status"],
                "CREATED",
                "{fault:?}"
            );
            id = Some(r.id);
        }
        let id = id.unwrap();
        let l = listed_run(&app, &shop.admin, id).await;
        assert_eq!(l["status"], "FAILED");
        assert_eq!(l["errorCode"], "BILL_MALFORMED");
        assert_eq!(l["passes"], 6);
        assert!(differences(&app, &shop.admin, id, false).await.is_empty());

        // The next sound bill is reconciled, and the missed callback repaired.
        let good = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((good.status.as_str(), good.passes), ("DONE", 7));
        assert_eq!(good.error_code, None);
        assert_eq!((good.difference_count, good.repaired_count), (0, 1));
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");
    }
);

both!(
    a_bad_alipay_bill_changes_nothing,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "badali").await;
        paid_alipay(&app, &shop, 1_230).await;
        let (missed, _) = unnotified_alipay(&app, &shop, 4_000).await;
        let before = books(&app).await;
        let faults = [
            (AlipayFault::TruncatedZip, "BILL_ARCHIVE_CORRUPT"),
            (AlipayFault::MissingDetail, "BILL_ARCHIVE_CORRUPT"),
            (AlipayFault::WrongTotals, "BILL_TOTALS_MISMATCH"),
            (AlipayFault::UnknownRow, "BILL_ROW_UNKNOWN"),
            (AlipayFault::MalformedAmount, "BILL_AMOUNT_MALFORMED"),
            (AlipayFault::ExtraColumn, "BILL_COLUMNS_UNEXPECTED"),
        ];
        for (fault, code) in faults {
            app.alipay.corrupt_next_bill(fault);
            let r = run(&app, tenant, Provider::Alipay).await;
            assert_eq!(r.status, "FAILED", "{fault:?}: {r:?}");
            assert_eq!(r.error_code.as_deref(), Some(code), "{fault:?}: {r:?}");
            assert!(r.next_attempt_at.is_some(), "{fault:?}");
            assert_eq!(books(&app).await, before, "{fault:?}");
            assert_eq!(
                payment(&app, &shop.admin, &missed).await["status"],
                "CREATED",
                "{fault:?}"
            );
        }
        let good = run(&app, tenant, Provider::Alipay).await;
        assert_eq!((good.status.as_str(), good.passes), ("DONE", 7));
        assert_eq!((good.difference_count, good.repaired_count), (0, 1));
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");
    }
);

both!(
    a_bill_not_published_yet_is_waited_for,
    |app: TestApp| async move {
        let shop = shop(&app, "waiting").await;
        let tenant = tenant_id(&app, "waiting").await;
        let day = today();
        app.wxpay.set_bill_ready(day, false);
        app.alipay.set_bill_ready(day, false);
        paid_wechat(&app, &shop, 1_230).await;
        paid_alipay(&app, &shop, 2_000).await;

        let started = Utc::now();
        let w = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(w.status, "WAITING", "{w:?}");
        assert_eq!(w.error_code.as_deref(), Some("BILL_NOT_READY"));
        let next = w.next_attempt_at.expect("a time to try again");
        assert!(
            next >= started + Duration::minutes(25) && next <= Utc::now() + Duration::minutes(35),
            "{next}"
        );
        assert_eq!(w.payment_count, 0);
        let l = listed_run(&app, &shop.admin, w.id).await;
        assert_eq!(
            (&l["status"], &l["errorCode"]),
            (&json!("WAITING"), &json!("BILL_NOT_READY"))
        );
        // Still being made: waited for too.
        app.wxpay.set_statement_creating(day, true);
        let w = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(
            (w.status.as_str(), w.error_code.as_deref()),
            ("WAITING", Some("BILL_NOT_READY"))
        );
        let a = run(&app, tenant, Provider::Alipay).await;
        assert_eq!(
            (a.status.as_str(), a.error_code.as_deref()),
            ("WAITING", Some("BILL_NOT_READY")),
            "{a:?}"
        );
        assert_eq!(
            app.count("select count(*) from reconciliation_difference")
                .await,
            0
        );

        app.wxpay.set_statement_creating(day, false);
        app.wxpay.set_bill_ready(day, true);
        app.alipay.set_bill_ready(day, true);
        let w = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((w.status.as_str(), w.passes), ("DONE", 3), "{w:?}");
        assert_eq!((w.error_code, w.next_attempt_at), (None, None));
        assert_eq!(w.payment_count, 1);
        let a = run(&app, tenant, Provider::Alipay).await;
        assert_eq!((a.status.as_str(), a.passes), ("DONE", 2), "{a:?}");
        assert_eq!((a.payment_count, a.payment_fen), (1, 2_000));
    }
);

both!(
    an_alipay_day_is_reconciled_and_a_missed_notify_repaired,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "ali").await;
        paid_alipay(&app, &shop, 1_230).await;
        let (refunded, _) = paid_alipay(&app, &shop, 2_500).await;
        let r = refund(&app, &shop, &refunded, 500).await;
        assert_eq!(r["status"], "SUCCESS");
        let (missed, missed_no) = unnotified_alipay(&app, &shop, 4_000).await;
        assert_eq!(
            payment(&app, &shop.admin, &missed).await["status"],
            "CREATED"
        );

        let first = run(&app, tenant, Provider::Alipay).await;
        assert_eq!(first.status, "DONE", "{first:?}");
        assert_eq!(first.provider, "alipay");
        assert_eq!((first.payment_count, first.payment_fen), (3, 7_730));
        assert_eq!((first.refund_count, first.refund_fen), (1, 500));
        // 7 + 15 + 24 fen charged, 3 given back.
        assert_eq!(first.fee_millifen, 43_000);
        assert_eq!((first.difference_count, first.repaired_count), (0, 1));
        assert_eq!(first.bill_digest.as_deref().map(str::len), Some(64));
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");
        assert_eq!(ledger_by(&app, &missed, "RECONCILIATION").await, 1);
        let all = differences(&app, &shop.admin, first.id, false).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let d = the(&all, "MISSING_LOCALLY", &missed_no);
        assert_eq!(
            (&d["repaired"], &d["status"]),
            (&json!(true), &json!("RESOLVED"))
        );
        assert_eq!(d["resolution"], "REPAIRED");
        assert_eq!(d["paymentId"], missed.as_str());

        let again = run(&app, tenant, Provider::Alipay).await;
        assert_eq!((again.status.as_str(), again.passes), ("DONE", 2));
        assert_eq!((again.difference_count, again.repaired_count), (0, 1));
        assert_eq!(
            app.count("select count(*) from ledger_entry where kind = 'PAYMENT'")
                .await,
            3
        );

        // WeChat Pay's run of the day is its own, and empty.
        let wx = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((wx.status.as_str(), wx.payment_count), ("DONE", 0));
        assert_ne!(wx.id, first.id);
        assert_eq!(listed_runs(&app, &shop.admin, None).await.len(), 2);
        let ali = listed_runs(&app, &shop.admin, Some("ALIPAY")).await;
        assert_eq!(ali.len(), 1);
        assert_eq!(ali[0]["id"], first.id.to_string());
        assert_eq!(ali[0]["repairedCount"], 1);
    }
);

both!(
    operators_resolve_differences_and_re_runs_keep_their_word,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "resolve").await;
        let (_, fee_no) = paid_wechat(&app, &shop, 1_230).await;
        app.wxpay.set_fee_override(&fee_no, 9_000);
        app.wxpay
            .seed_paid_order(MCH_ID, APP_ID, "STRANGER0002", 800, Utc::now());
        let (phantom_id, phantom_no) = open(&app, &shop, 5_000, "WECHAT_NATIVE").await;
        mark_paid_here(&app, &phantom_id).await;

        let first = run(&app, tenant, Provider::Wechat).await;
        assert_eq!(first.difference_count, 3, "{first:?}");
        let all = differences(&app, &shop.admin, first.id, false).await;
        let fee = the(&all, "FEE_MISMATCH", &fee_no).clone();
        let lost = the(&all, "MISSING_LOCALLY", "STRANGER0002").clone();
        the(&all, "MISSING_AT_PROVIDER", &phantom_no);

        // Staff see and resolve nothing; other companies find nothing.
        let r = resolve(&app, &shop.staff, &fee["id"], "ACCEPTED", "ok").await;
        assert_eq!(r.code(), Some("FORBIDDEN"), "{:?}", r.json);
        assert_eq!(
            runs_resp(&app, &shop.staff, None).await.code(),
            Some("FORBIDDEN")
        );
        assert_eq!(
            differences_resp(&app, &shop.staff, first.id, false)
                .await
                .code(),
            Some("FORBIDDEN")
        );
        let (_, other) = app.admin("elsewhere").await;
        let r = resolve(&app, &other, &fee["id"], "ACCEPTED", "ok").await;
        assert_eq!(r.code(), Some("NOT_FOUND"), "{:?}", r.json);
        assert_eq!(
            differences_resp(&app, &other, first.id, false).await.code(),
            Some("NOT_FOUND")
        );
        assert!(listed_runs(&app, &other, None).await.is_empty());
        // A note is required.
        let r = resolve(&app, &shop.admin, &fee["id"], "ACCEPTED", "   ").await;
        assert_eq!(r.code(), Some("INVALID_INPUT"), "{:?}", r.json);
        let r = resolve(&app, &shop.admin, &fee["id"], "ACCEPTED", &"长".repeat(501)).await;
        assert_eq!(r.code(), Some("INVALID_INPUT"), "{:?}", r.json);
        assert_eq!(
            differences(&app, &shop.admin, first.id, true).await.len(),
            3
        );

        let note = "9 fen agreed with WeChat Pay for this order";
        let r = resolve(&app, &shop.admin, &fee["id"], "ACCEPTED", note).await;
        let done = r.ok()["resolveDifference"].clone();
        assert_eq!(done["status"], "RESOLVED");
        assert_eq!(done["resolution"], "ACCEPTED");
        assert_eq!(done["note"], note);
        assert!(done["resolvedAt"].is_string());
        // The same answer again is the same; another one is refused.
        let r = resolve(&app, &shop.admin, &fee["id"], "ACCEPTED", note).await;
        assert_eq!(r.ok()["resolveDifference"], done);
        let r = resolve(
            &app,
            &shop.admin,
            &fee["id"],
            "WRITTEN_OFF",
            "changed my mind",
        )
        .await;
        assert_eq!(r.code(), Some("DIFFERENCE_RESOLVED"), "{:?}", r.json);
        let open_now = differences(&app, &shop.admin, first.id, true).await;
        assert_eq!(open_now.len(), 2, "{open_now:#?}");
        assert!(open_now.iter().all(|d| d["id"] != fee["id"]));

        // WeChat Pay takes the payment it lacked; the fee stays off.
        assert!(app.wxpay.pay(&phantom_no, None));
        let second = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((second.status.as_str(), second.passes), ("DONE", 2));
        let all = differences(&app, &shop.admin, first.id, false).await;
        assert_eq!(all.len(), 2, "{all:#?}");
        let kept = the(&all, "FEE_MISMATCH", &fee_no);
        assert_eq!(kept["id"], fee["id"]);
        assert_eq!(kept["status"], "RESOLVED");
        assert_eq!(kept["resolution"], "ACCEPTED");
        assert_eq!(kept["note"], note);
        let still = the(&all, "MISSING_LOCALLY", "STRANGER0002");
        assert_eq!(
            (&still["id"], &still["status"]),
            (&lost["id"], &json!("OPEN"))
        );
        assert!(
            all.iter().all(|d| d["kind"] != "MISSING_AT_PROVIDER"),
            "{all:#?}"
        );
        assert_eq!(second.difference_count, 2);
    }
);

/// `minigate …` against this app's database and fake providers.
async fn minigate(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minigate"));
    cmd.args(args)
        .current_dir(&app.dir)
        .env_remove("MINIGATE_CONFIG")
        .env("DATABASE_URL", app.test_db.url())
        .env("MINIGATE_DATA_DIR", app.dir.join("cli"))
        .env("MINIGATE_JWT_SECRET", JWT_SECRET)
        .env("MINIGATE_PAYMENTS__WECHAT_BASE", &app.wxpay.base_url)
        .env(
            "MINIGATE_PAYMENTS__ALIPAY_GATEWAY",
            format!("{}/gateway.do", app.alipay.base_url),
        )
        .env("MINIGATE_PAYMENTS__TIMEOUT_MS", "3000");
    match std::env::var("REDIS_URL") {
        Ok(redis) if app.servers => {
            cmd.env("REDIS_URL", redis).env(
                "MINIGATE_REDIS_PREFIX",
                format!("cli:{}:", uuid::Uuid::new_v4().simple()),
            );
        }
        _ => {
            cmd.env_remove("REDIS_URL");
        }
    }
    tokio::time::timeout(StdDuration::from_secs(60), cmd.output())
        .await
        .expect("minigate reconcile in time")
        .unwrap()
}

both!(
    the_reconcile_command_reconciles_a_day,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "cli").await;
        paid_wechat(&app, &shop, 1_230).await;
        let (missed, _) = unnotified_wechat(&app, &shop, 4_000).await;
        let day = today().to_string();
        let args = [
            "reconcile",
            "--provider",
            "wechat",
            "--tenant",
            "cli",
            "--date",
            &day,
        ];
        let out = minigate(&app, &args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(stdout.contains("DONE"), "{stdout}");
        assert!(stdout.contains("2 payments (5230 fen)"), "{stdout}");
        assert!(stdout.contains("0 differences, 1 repaired"), "{stdout}");
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");
        assert_eq!(ledger_by(&app, &missed, "RECONCILIATION").await, 1);
        let listed = listed_runs(&app, &shop.admin, Some("WECHAT")).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (&listed[0]["status"], &listed[0]["passes"]),
            (&json!("DONE"), &json!(1))
        );

        // A refused bill exits 1 with its code.
        app.wxpay.corrupt_next_bill(WechatFault::WrongHash);
        let out = minigate(&app, &args).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("BILL_HASH_MISMATCH"), "{stdout}");
        // A bill not published yet exits 3.
        app.alipay.set_bill_ready(today(), false);
        let out = minigate(
            &app,
            &[
                "reconcile",
                "--provider",
                "alipay",
                "--tenant",
                "cli",
                "--date",
                &day,
            ],
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let runs = listed_runs(&app, &shop.admin, None).await;
        assert_eq!(runs.len(), 2, "{runs:#?}");
        let w = run(&app, tenant, Provider::Wechat).await;
        assert_eq!((w.status.as_str(), w.passes), ("DONE", 3));
        // An unknown company is an error, not a run.
        let out = minigate(
            &app,
            &[
                "reconcile",
                "--provider",
                "wechat",
                "--tenant",
                "nobody",
                "--date",
                &day,
            ],
        )
        .await;
        assert!(!out.status.success());
        assert_eq!(
            app.count("select count(*) from reconciliation_run").await,
            2
        );
    }
);

both!(
    the_daily_job_reconciles_yesterday_after_ten,
    |app: TestApp| async move {
        let (shop, _) = ready_shop(&app, "job").await;
        let day = today();
        let (missed, _) = unnotified_wechat(&app, &shop, 4_000).await;
        paid_alipay(&app, &shop, 1_230).await;
        let deps = &app.state.deps;
        let next_day = day.succ_opt().unwrap();

        // Before 10:00 the next morning nothing starts.
        let n = job::run_due(deps, beijing_at(next_day, 9, 59))
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            app.count("select count(*) from reconciliation_run").await,
            0
        );

        let at = beijing_at(next_day, 10, 30);
        let n = job::run_due(deps, at).await.unwrap();
        assert_eq!(n, 2);
        let runs = listed_runs(&app, &shop.admin, None).await;
        assert_eq!(runs.len(), 2, "{runs:#?}");
        for r in &runs {
            assert_eq!(r["billDate"], day.to_string());
            assert_eq!(
                (&r["status"], &r["passes"]),
                (&json!("DONE"), &json!(1)),
                "{r:#}"
            );
            assert_eq!(r["paymentCount"], 1, "{r:#}");
        }
        let wx = runs.iter().find(|r| r["provider"] == "wechat").unwrap();
        assert_eq!(wx["repairedCount"], 1);
        assert_eq!(payment(&app, &shop.admin, &missed).await["status"], "PAID");

        // Nothing is due any more.
        let n = job::run_due(deps, at + Duration::minutes(1)).await.unwrap();
        assert_eq!(n, 0);
        let runs = listed_runs(&app, &shop.admin, None).await;
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r["passes"] == 1), "{runs:#?}");
    }
);

both!(
    the_daily_job_runs_the_day_it_creates_in_the_same_tick,
    |app: TestApp| async move {
        let shop = shop(&app, "jobpast").await;
        // Two days ago, whose bills the fakes publish by default; the job's clock says 10:30
        // the morning after, as if it were catching up.
        let day = today() - Duration::days(2);
        let at = beijing_at(day + Duration::days(1), 10, 30);
        let n = job::run_due(&app.state.deps, at).await.unwrap();
        let runs = listed_runs(&app, &shop.admin, None).await;
        assert_eq!(runs.len(), 2, "{runs:#?}");
        assert!(runs.iter().all(|r| r["billDate"] == day.to_string()));
        assert_eq!(n, 2, "created but not run: {runs:#?}");
        assert!(runs.iter().all(|r| r["status"] == "DONE"), "{runs:#?}");
    }
);

both!(
    a_day_is_reconciled_by_one_pass_at_a_time,
    |app: TestApp| async move {
        let (shop, tenant) = ready_shop(&app, "lock").await;
        paid_wechat(&app, &shop, 1_230).await;
        let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        let state = app.state.clone();
        // The first pass stops once it started, until released.
        let first = tokio::spawn(async move {
            reconcile::reconcile(
                &state.deps,
                tenant,
                Provider::Wechat,
                today(),
                &move |stage| {
                    if stage == Stage::Downloading {
                        tokio::task::block_in_place(|| {
                            entered_tx.send(()).unwrap();
                            release_rx.lock().unwrap().recv().unwrap();
                        });
                    }
                },
            )
            .await
        });
        tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
            .await
            .unwrap();
        let second =
            reconcile::reconcile(&app.state.deps, tenant, Provider::Wechat, today(), &|_| {}).await;
        release_tx.send(()).unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status, "DONE", "{first:?}");
        // The run row is claimed with a conditional update, so this holds on SQLite too (a
        // `minigate reconcile` next to the service's job on one file).
        match second {
            Err(e) => assert_eq!(e.code(), "RECONCILIATION_RUNNING"),
            Ok(r) => panic!("a second pass ran alongside the first: {r:?}"),
        }
        assert_eq!(first.passes, 1);
        // Once the first ended, the day can be run again.
        let again =
            reconcile::reconcile(&app.state.deps, tenant, Provider::Wechat, today(), &|_| {})
                .await
                .unwrap();
        assert_eq!((again.status.as_str(), again.passes), ("DONE", 2));
    }
);
