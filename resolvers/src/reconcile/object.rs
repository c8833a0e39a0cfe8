//! GraphQL for operators: the runs, their differences, and resolving a difference.

use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, NaiveDate, Utc};
use minigate_payments::notification::Provider;

use crate::{
    Error, Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};
use minigate_payments::reconcile::db::{self, DifferenceRow, RunRow};

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaymentProvider {
    Wechat,
    Alipay,
}

impl PaymentProvider {
    fn as_str(self) -> &'static str {
        match self {
            PaymentProvider::Wechat => Provider::Wechat.as_str(),
            PaymentProvider::Alipay => Provider::Alipay.as_str(),
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DifferenceResolution {
    /// The money was refunded to the payer.
    Refunded,
    /// The provider corrected its side.
    ProviderCorrected,
    /// Our records were corrected.
    CorrectedLocally,
    /// The provider's figure is right and accepted as it is.
    Accepted,
    /// Written off after review.
    WrittenOff,
}

impl DifferenceResolution {
    fn as_str(self) -> &'static str {
        match self {
            DifferenceResolution::Refunded => "REFUNDED",
            DifferenceResolution::ProviderCorrected => "PROVIDER_CORRECTED",
            DifferenceResolution::CorrectedLocally => "CORRECTED_LOCALLY",
            DifferenceResolution::Accepted => "ACCEPTED",
            DifferenceResolution::WrittenOff => "WRITTEN_OFF",
        }
    }
}

/// One reconciliation of one provider's bill for one business day.
pub struct ReconciliationRun(RunRow);

#[Object]
impl ReconciliationRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `wechat` or `alipay`.
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    /// The business day (Asia/Shanghai) of the bill.
    async fn bill_date(&self) -> NaiveDate {
        self.0.bill_date
    }
    /// `PENDING`, `RUNNING`, `WAITING` (for the provider's bill), `DONE` or `FAILED`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Passes made; every re-run is one more.
    async fn passes(&self) -> i32 {
        self.0.passes
    }
    /// Why the last pass did not finish (`BILL_NOT_READY`, `BILL_HASH_MISMATCH`, …).
    async fn error_code(&self) -> Option<&str> {
        self.0.error_code.as_deref()
    }
    async fn error_detail(&self) -> Option<&str> {
        self.0.error_detail.as_deref()
    }
    async fn payment_count(&self) -> i64 {
        self.0.payment_count
    }
    async fn payment_fen(&self) -> i64 {
        self.0.payment_fen
    }
    async fn refund_count(&self) -> i64 {
        self.0.refund_count
    }
    async fn refund_fen(&self) -> i64 {
        self.0.refund_fen
    }
    /// The provider's net fee, in thousandths of a fen (WeChat states fees to 0.001 fen).
    async fn fee_millifen(&self) -> i64 {
        self.0.fee_millifen
    }
    /// Differences for people (repairs not counted).
    async fn difference_count(&self) -> i32 {
        self.0.difference_count
    }
    /// Missed callbacks repaired after the provider confirmed them.
    async fn repaired_count(&self) -> i32 {
        self.0.repaired_count
    }
    /// SHA-1 (WeChat, checked against the signed answer) or SHA-256 (Alipay) of the bill.
    async fn bill_digest(&self) -> Option<&str> {
        self.0.bill_digest.as_deref()
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Something a bill and our records do not agree on.
pub struct ReconciliationDifference(DifferenceRow);

#[Object]
impl ReconciliationDifference {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn run_id(&self) -> ID {
        ID(self.0.run_id.to_string())
    }
    /// `MISSING_LOCALLY`, `MISSING_AT_PROVIDER`, `AMOUNT_MISMATCH`, `STATUS_MISMATCH`,
    /// `FEE_MISMATCH` or `PAID_AFTER_CLOSE`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The `out_trade_no`, or the `out_refund_no` of a refund's difference.
    async fn reference(&self) -> &str {
        &self.0.reference
    }
    async fn out_trade_no(&self) -> Option<&str> {
        self.0.out_trade_no.as_deref()
    }
    async fn payment_id(&self) -> Option<ID> {
        self.0.order_id.map(|i| ID(i.to_string()))
    }
    async fn refund_id(&self) -> Option<ID> {
        self.0.refund_id.map(|i| ID(i.to_string()))
    }
    async fn local_fen(&self) -> Option<i64> {
        self.0.local_fen
    }
    async fn provider_fen(&self) -> Option<i64> {
        self.0.provider_fen
    }
    async fn local_status(&self) -> Option<&str> {
        self.0.local_status.as_deref()
    }
    async fn provider_status(&self) -> Option<&str> {
        self.0.provider_status.as_deref()
    }
    async fn detail(&self) -> &str {
        &self.0.detail
    }
    /// A missed callback repaired automatically after the provider confirmed it (resolved as
    /// `REPAIRED`).
    async fn repaired(&self) -> bool {
        self.0.repaired
    }
    /// `OPEN` or `RESOLVED`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn resolution(&self) -> Option<&str> {
        self.0.resolution.as_deref()
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
}

#[derive(Default)]
pub struct ReconciliationQuery;

#[Object]
impl ReconciliationQuery {
    /// The company's reconciliation runs, newest day first (operators).
    async fn reconciliation_runs(
        &self,
        ctx: &Context<'_>,
        provider: Option<PaymentProvider>,
        #[graphql(default = 30)] first: i32,
    ) -> Result<Vec<ReconciliationRun>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = db::list_runs(
            &mut c,
            v.tenant_id,
            provider.map(PaymentProvider::as_str),
            i64::from(first.clamp(1, 366)),
        )
        .await?;
        Ok(rows.into_iter().map(ReconciliationRun).collect())
    }

    /// What a run found (operators); `openOnly` leaves out what was resolved.
    async fn reconciliation_differences(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
        #[graphql(default = false)] open_only: bool,
    ) -> Result<Vec<ReconciliationDifference>> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let run = parse_id("runId", &run_id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        if db::find_run(&mut c, v.tenant_id, run).await?.is_none() {
            return Err(Error::NotFound("reconciliation run"));
        }
        let rows = db::list_differences(&mut c, v.tenant_id, run, open_only).await?;
        Ok(rows.into_iter().map(ReconciliationDifference).collect())
    }
}

#[derive(Default)]
pub struct ReconciliationMutation;

#[Object]
impl ReconciliationMutation {
    /// Records how a difference was resolved, with a note for whoever looks later (operators).
    /// Sending the same resolution and note again (a retry) returns it unchanged; anything else
    /// for a resolved difference is `DIFFERENCE_RESOLVED`.
    async fn resolve_difference(
        &self,
        ctx: &Context<'_>,
        id: ID,
        resolution: DifferenceResolution,
        note: String,
    ) -> Result<ReconciliationDifference> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let note = note.trim();
        if note.is_empty() || note.chars().count() > 500 {
            return Err(Error::invalid("note", "1 to 500 characters"));
        }
        let mut tx = deps(ctx)?.db.begin().await?;
        let Some(before) = db::find_difference(&mut tx, v.tenant_id, id).await? else {
            return Err(Error::NotFound("difference"));
        };
        if before.status != "OPEN" {
            if before.resolution.as_deref() == Some(resolution.as_str())
                && before.note.as_deref() == Some(note)
            {
                return Ok(ReconciliationDifference(before));
            }
            return Err(Error::DifferenceResolved);
        }
        db::resolve_difference(&mut tx, id, v.user_id, resolution.as_str(), note).await?;
        let after = db::find_difference(&mut tx, v.tenant_id, id)
            .await?
            .ok_or(Error::NotFound("difference"))?;
        tx.commit().await?;
        Ok(ReconciliationDifference(after))
    }
}
