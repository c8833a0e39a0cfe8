//! One pass of reconciliation: download the day's bill to a temporary file (its digest checked
//! or kept), read it once to check it whole (rows, columns, amounts, stated totals), then read it
//! again a batch of rows at a time and match each batch against our orders and refunds. What a
//! missed callback left behind is repaired only after the provider's answer to a query confirms
//! it. Finally the orders and refunds of the day that the bill did not hold are found in the
//! database (the pass marks what it saw there), so memory stays that of a batch however long
//! the bill.

use std::{collections::HashMap, io::Seek};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use minigate_payments::{
    Error as PayError,
    bill::{AlipayBill, BillRow, BillTotals, RowKind, TradeBill, WechatBill},
    notification::Provider,
    orders::{self, Applied, OrderRow, Source},
    refund::{RefundState, SUCCESS},
    refunds::{self, RefundRow},
    trade::TradeState,
};
use minigate_store::{BEIJING, Conn, Id};
use tokio::sync::mpsc;

use crate::payment::{refund as refunding, settle::settle, sync::query_provider};
use crate::{Deps, Error, Result};
use minigate_payments::reconcile::compare::{self, Verdict};
use minigate_payments::reconcile::db::{self, Finished, NewDifference, RunRow};

/// Rows matched per round trip to the database. Small enough that each batch's statements (its
/// trade numbers, then the ids it found) fit one TLS record: sqlx leaves Nagle's algorithm on,
/// and a statement written as several records waited for the server's delayed ACK, about 40 ms
/// per statement (`bench/RESULTS.md` §5).
const BATCH: usize = 250;

/// How long to wait for a bill that is not there yet, and after a failed pass.
const WAIT_FOR_BILL: i64 = 30;
const WAIT_AFTER_FAILURE: i64 = 60;

/// Where a pass is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Downloading,
    /// The bill was read whole and its totals hold: `rows` to match.
    Checked {
        rows: u64,
    },
    /// Rows matched so far.
    Matching {
        done: u64,
    },
    Finishing,
}

/// The job lock of one (tenant, provider, day), so two replicas or a CLI and the job never run
/// the same day at once.
fn job_key(tenant: Id, provider: Provider, day: NaiveDate) -> i64 {
    let mut h: i64 = 0x6d67_7263_0000_0000; // "mgrc"
    for b in tenant
        .to_string()
        .bytes()
        .chain(provider.as_str().bytes())
        .chain(day.to_string().bytes())
    {
        h = h.wrapping_mul(31).wrapping_add(i64::from(b));
    }
    h
}

/// The business day `day` (Asia/Shanghai) as a UTC interval.
pub fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day
        .and_hms_opt(0, 0, 0)
        .and_then(|n| BEIJING.from_local_datetime(&n).single())
        .map_or_else(Utc::now, |d| d.with_timezone(&Utc));
    (start, start + Duration::days(1))
}

/// Reconciles `provider`'s bill of `day` for `tenant`: a new pass of that day's run. Returns
/// the run as the pass left it: `DONE`, `WAITING` for the bill, or `FAILED` with its code.
pub async fn reconcile(
    d: &Deps,
    tenant: Id,
    provider: Provider,
    day: NaiveDate,
    progress: &(dyn Fn(Stage) + Send + Sync),
) -> Result<RunRow> {
    let Some(guard) = d.db.try_job(job_key(tenant, provider, day)).await? else {
        return Err(Error::ReconciliationRunning);
    };
    let claimed = {
        let mut c = d.db.conn().await?;
        db::start_run(&mut c, tenant, provider.as_str(), day, Utc::now()).await?
    };
    let Some(run) = claimed else {
        guard.release().await?;
        return Err(Error::ReconciliationRunning);
    };
    let result = pass(d, &run, provider, progress).await;
    let mut c = d.db.conn().await?;
    let now = Utc::now();
    let ended = match result {
        Ok(done) => Ok(done),
        Err(Error::Payment(e @ PayError::BillNotReady(_))) => {
            db::end_run_unfinished(
                &mut c,
                run.id,
                "WAITING",
                e.code(),
                &e.to_string(),
                Some(now + Duration::minutes(WAIT_FOR_BILL)),
            )
            .await
        }
        Err(e) => {
            tracing::error!(run = %run.id, code = e.code(), error = %e, "reconciliation pass failed");
            db::end_run_unfinished(
                &mut c,
                run.id,
                "FAILED",
                e.code(),
                &e.to_string(),
                Some(now + Duration::minutes(WAIT_AFTER_FAILURE)),
            )
            .await
        }
    };
    drop(c);
    guard.release().await?;
    Ok(ended?)
}

async fn pass(
    d: &Deps,
    run: &RunRow,
    provider: Provider,
    progress: &(dyn Fn(Stage) + Send + Sync),
) -> Result<RunRow> {
    progress(Stage::Downloading);
    let (file, digest) = download(d, run, provider).await?;
    let totals = {
        let file = reopen(&file)?;
        tokio::task::spawn_blocking(move || check_whole(provider, file))
            .await
            .map_err(|e| Error::Internal(format!("bill check: {e}")))??
    };
    progress(Stage::Checked {
        rows: totals.payments + totals.refunds,
    });
    let rate = {
        let mut c = d.db.conn().await?;
        db::fee_rate_bp(&mut c, run.tenant_id, &run.provider).await?
    };
    let (tx, mut rx) = mpsc::channel::<std::result::Result<Vec<BillRow>, PayError>>(2);
    let reader = reopen(&file)?;
    let producer = tokio::task::spawn_blocking(move || send_batches(provider, reader, &tx));
    let mut done: u64 = 0;
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        match_batch(d, run, &batch, rate).await?;
        done += u64::try_from(batch.len()).unwrap_or(0);
        progress(Stage::Matching { done });
    }
    producer
        .await
        .map_err(|e| Error::Internal(format!("bill reader: {e}")))?;
    progress(Stage::Finishing);
    missing_at_provider(d, run).await?;
    let mut c = d.db.conn().await?;
    Ok(db::finish_run(
        &mut c,
        run,
        &Finished {
            digest: &digest,
            payment_count: i64::try_from(totals.payments).unwrap_or(i64::MAX),
            payment_fen: totals.payment_fen,
            refund_count: i64::try_from(totals.refunds).unwrap_or(i64::MAX),
            refund_fen: totals.refund_fen,
            fee_millifen: totals.fee_millifen,
        },
    )
    .await?)
}

/// Downloads the bill into an unnamed temporary file; returns it with the file's digest.
async fn download(d: &Deps, run: &RunRow, provider: Provider) -> Result<(std::fs::File, String)> {
    let p = &d.payments;
    let mut file =
        tempfile::tempfile().map_err(|e| Error::Internal(format!("temporary file: {e}")))?;
    let digest = match provider {
        Provider::Wechat => {
            let m = p.merchants.wechat(run.tenant_id).await?;
            let link = p.wechat.trade_bill(&m, run.bill_date).await?;
            p.wechat.download_bill(&m, &link, &mut file).await?
        }
        Provider::Alipay => {
            let m = p.merchants.alipay(run.tenant_id).await?;
            let url = p.alipay.bill_url(&m, run.bill_date).await?;
            p.alipay.download_bill(&url, &mut file).await?
        }
    };
    Ok((file, digest))
}

fn reopen(file: &std::fs::File) -> Result<std::fs::File> {
    let mut f = file
        .try_clone()
        .map_err(|e| Error::Internal(format!("bill file: {e}")))?;
    f.rewind()
        .map_err(|e| Error::Internal(format!("bill file: {e}")))?;
    Ok(f)
}

fn parser(provider: Provider, file: std::fs::File) -> Result<Box<dyn TradeBill + Send>> {
    Ok(match provider {
        Provider::Wechat => Box::new(WechatBill::new(std::io::BufReader::new(file))?),
        Provider::Alipay => Box::new(AlipayBill::open(file)?),
    })
}

/// Reads the whole bill: every row and the stated totals are checked before anything is
/// matched, so a bad bill changes nothing.
fn check_whole(provider: Provider, file: std::fs::File) -> Result<BillTotals> {
    let mut bill = parser(provider, file)?;
    while bill.next_row()?.is_some() {}
    bill.totals()
        .copied()
        .ok_or_else(|| Error::Internal("bill read without totals".into()))
}

fn send_batches(
    provider: Provider,
    file: std::fs::File,
    tx: &mpsc::Sender<std::result::Result<Vec<BillRow>, PayError>>,
) {
    let mut bill = match parser(provider, file) {
        Ok(b) => b,
        Err(Error::Payment(e)) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        Err(_) => return,
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match bill.next_row() {
            Ok(Some(row)) => {
                batch.push(row);
                if batch.len() == BATCH
                    && tx
                        .blocking_send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))))
                        .is_err()
                {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// Records a difference of this pass (see [`db::upsert_difference`]).
async fn record(c: &mut Conn, run: &RunRow, d: &NewDifference, repaired: bool) -> Result<()> {
    Ok(db::upsert_difference(c, run, d, repaired).await?)
}

/// Matches a batch of rows with the orders and refunds they name.
async fn match_batch(d: &Deps, run: &RunRow, rows: &[BillRow], rate: i64) -> Result<()> {
    let mut c = d.db.conn().await?;
    let mine = |tenant: Id, provider: &str| tenant == run.tenant_id && provider == run.provider;
    let trade_nos: Vec<String> = rows
        .iter()
        .filter(|r| r.kind == RowKind::Payment)
        .map(|r| r.out_trade_no.clone())
        .collect();
    let refund_nos: Vec<String> = rows
        .iter()
        .filter_map(|r| r.out_refund_no.clone())
        .collect();
    let orders: HashMap<String, OrderRow> = orders::db::by_out_trade_nos(&mut c, &trade_nos)
        .await?
        .into_iter()
        .filter(|o| mine(o.tenant_id, &o.provider))
        .map(|o| (o.out_trade_no.clone(), o))
        .collect();
    let refunds: HashMap<String, RefundRow> = refunds::db::by_out_refund_nos(&mut c, &refund_nos)
        .await?
        .into_iter()
        .filter(|r| mine(r.tenant_id, &r.provider))
        .map(|r| (r.out_refund_no.clone(), r))
        .collect();
    let seen: Vec<Id> = orders
        .values()
        .map(|o| o.id)
        .chain(refunds.values().map(|r| r.id))
        .collect();
    db::mark_seen(&mut c, run.id, &seen).await?;
    for row in rows {
        let verdicts = match row.kind {
            RowKind::Payment => compare::payment(row, orders.get(&row.out_trade_no), rate),
            RowKind::Refund => compare::refund(
                row,
                row.out_refund_no.as_ref().and_then(|n| refunds.get(n)),
                rate,
            ),
        };
        for v in verdicts {
            match v {
                Verdict::Difference(diff) => record(&mut c, run, &diff, false).await?,
                Verdict::QueryOrder(id) => {
                    if let Some(o) = orders.values().find(|o| o.id == id) {
                        repair_order(d, &mut c, run, row, o).await?;
                    }
                }
                Verdict::QueryRefund(id) => {
                    if let Some(r) = refunds.values().find(|r| r.id == id) {
                        repair_refund(d, &mut c, run, row, r).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn bill_says(row: &BillRow, kind: &'static str, detail: String) -> NewDifference {
    NewDifference {
        kind,
        reference: row
            .out_refund_no
            .clone()
            .filter(|_| row.kind == RowKind::Refund)
            .unwrap_or_else(|| row.out_trade_no.clone()),
        out_trade_no: Some(row.out_trade_no.clone()),
        order_id: None,
        refund_id: None,
        local_fen: None,
        provider_fen: Some(row.amount_fen),
        local_status: None,
        provider_status: None,
        detail,
        repaired: false,
    }
}

/// The bill holds a payment our order lacks: credit it only if the provider's answer to a query
/// says so too.
async fn repair_order(
    d: &Deps,
    c: &mut Conn,
    run: &RunRow,
    row: &BillRow,
    o: &OrderRow,
) -> Result<()> {
    let base = |kind, detail| NewDifference {
        order_id: Some(o.id),
        local_status: Some(o.status.clone()),
        local_fen: o.paid_fen,
        ..bill_says(row, kind, detail)
    };
    let trade = match query_provider(d, o).await {
        Ok(t) => t,
        Err(e) => {
            let detail = format!(
                "line {}: paid at the provider, {} here; the provider could not be asked ({}), the next pass asks again",
                row.line,
                o.status,
                e.code()
            );
            return record(c, run, &base(compare::MISSING_LOCALLY, detail), false).await;
        }
    };
    if trade.state != TradeState::Paid {
        let detail = format!(
            "line {}: in the bill as paid, but the provider's query says {}: not credited",
            row.line, trade.provider_state
        );
        return record(c, run, &base(compare::MISSING_LOCALLY, detail), false).await;
    }
    if trade.amount_fen != Some(o.amount_fen) {
        // Never credited; recorded here rather than through the state machine, which would
        // flag it again on every pass.
        let detail = format!(
            "line {}: the provider reports {} fen for an order of {} fen: not credited",
            row.line,
            trade.amount_fen.unwrap_or(0),
            o.amount_fen
        );
        let diff = NewDifference {
            local_fen: Some(o.amount_fen),
            provider_fen: trade.amount_fen,
            ..base(compare::AMOUNT_MISMATCH, detail)
        };
        return record(c, run, &diff, false).await;
    }
    let (applied, now) = settle(d, o.id, &trade, Source::Reconciliation).await?;
    let (kind, repaired, detail) = match applied {
        Applied::Credited(_) => (
            compare::MISSING_LOCALLY,
            true,
            format!(
                "line {}: the callback never came; the provider's query confirmed the payment and the order was credited",
                row.line
            ),
        ),
        Applied::PaidAfterClose(_) => (
            compare::PAID_AFTER_CLOSE,
            false,
            format!(
                "line {}: paid after the order was closed (confirmed by query): decide on a refund",
                row.line
            ),
        ),
        Applied::AmountMismatch => (
            compare::AMOUNT_MISMATCH,
            false,
            format!(
                "line {}: the provider reports {} fen for an order of {} fen",
                row.line,
                trade.amount_fen.unwrap_or(0),
                o.amount_fen
            ),
        ),
        Applied::AlreadyPaid | Applied::NotPaid => return Ok(()),
    };
    // What the order holds now; for an amount it refused to credit, the amount it expects.
    let local_fen = if kind == compare::AMOUNT_MISMATCH {
        Some(o.amount_fen)
    } else {
        now.as_ref().and_then(|o| o.paid_fen)
    };
    let diff = NewDifference {
        repaired,
        local_fen,
        local_status: now.map(|o| o.status),
        ..base(kind, detail)
    };
    record(c, run, &diff, repaired).await
}

/// The bill holds a refund done that we hold under way: ask the provider, then apply.
async fn repair_refund(
    d: &Deps,
    c: &mut Conn,
    run: &RunRow,
    row: &BillRow,
    r: &RefundRow,
) -> Result<()> {
    let order = orders::db::get_order(c, r.order_id).await?;
    let base = |repaired, detail| NewDifference {
        order_id: Some(r.order_id),
        refund_id: Some(r.id),
        local_fen: Some(r.amount_fen),
        local_status: Some(r.status.clone()),
        provider_status: row.refund_status.clone(),
        repaired,
        ..bill_says(row, compare::STATUS_MISMATCH, detail)
    };
    let report = match refunding::query_refund(d, &order, r).await {
        Ok(rep) if rep.state == RefundState::Success => rep,
        Ok(rep) => {
            let detail = format!(
                "line {}: refund done in the bill, the provider's query says {}",
                row.line, rep.provider_state
            );
            return record(c, run, &base(false, detail), false).await;
        }
        Err(e) => {
            let detail = format!(
                "line {}: refund done in the bill, under way here; the provider could not be asked ({})",
                row.line,
                e.code()
            );
            return record(c, run, &base(false, detail), false).await;
        }
    };
    let now = refunding::apply(d, r.id, &report, Source::Reconciliation).await?;
    let repaired = now.status == SUCCESS;
    let detail = if repaired {
        format!(
            "line {}: the refund notification never came; the provider's query confirmed the refund",
            row.line
        )
    } else {
        format!("line {}: the refund could not be completed here", row.line)
    };
    record(c, run, &base(repaired, detail), repaired).await
}

/// The day's paid orders and accepted refunds that the bill did not hold.
async fn missing_at_provider(d: &Deps, run: &RunRow) -> Result<()> {
    let day = day_bounds(run.bill_date);
    let mut c = d.db.conn().await?;
    let mut after = None;
    loop {
        let page = db::unseen_paid_orders(&mut c, run, day, after).await?;
        for o in &page {
            record(&mut c, run, &compare::order_missing_at_provider(o), false).await?;
        }
        match page.last() {
            Some(o) => after = Some(o.id),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let page = db::unseen_refunds(&mut c, run, day, after).await?;
        let order_ids: Vec<Id> = page.iter().map(|r| r.order_id).collect();
        let trade_nos: HashMap<Id, String> = orders::db::by_ids(&mut c, &order_ids)
            .await?
            .into_iter()
            .map(|o| (o.id, o.out_trade_no))
            .collect();
        for r in &page {
            let no = trade_nos.get(&r.order_id).map_or("", String::as_str);
            record(
                &mut c,
                run,
                &compare::refund_missing_at_provider(r, no),
                false,
            )
            .await?;
        }
        match page.last() {
            Some(r) => after = Some(r.id),
            None => break,
        }
    }
    Ok(())
}
