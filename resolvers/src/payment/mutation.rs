use async_graphql::{Context, ID, Object};

use super::{Payment, PaymentChannel, Refund, open, refund};
use crate::{
    Result,
    registry::input::parse_id,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct PaymentMutation;

#[Object]
impl PaymentMutation {
    /// The bill's open payment on `channel`: a QR to show (`WECHAT_NATIVE`, `ALIPAY_QR`) or the
    /// `wx.requestPayment` parameters (`WECHAT_JSAPI`, paid by the signed-in WeChat user).
    /// Asking again returns the same order while it stays payable; another channel closes the
    /// previous order at its provider first, and returns it instead if it turns out paid.
    async fn create_payment(
        &self,
        ctx: &Context<'_>,
        bill_id: ID,
        channel: PaymentChannel,
    ) -> Result<Payment> {
        let v = viewer(ctx)?;
        let d = deps(ctx)?;
        let bill = parse_id("billId", &bill_id)?;
        open::create_payment(d, v, bill, channel.into())
            .await
            .map(Payment)
    }

    /// Refunds `amountFen` of a paid payment, for operators: partial refunds may follow one
    /// another up to what was paid (`REFUND_EXCEEDS_PAID` beyond it). The refund comes back
    /// `PROCESSING` (WeChat Pay confirms later, by notification) or `SUCCESS` (Alipay refunds at
    /// once); a refusal by the provider comes back `CLOSED` with its code in `failure`. A retry
    /// with the same `idempotencyKey` returns the same refund and never refunds twice.
    async fn refund_payment(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
        amount_fen: i64,
        reason: String,
        idempotency_key: Option<String>,
    ) -> Result<Refund> {
        let v = viewer(ctx)?;
        let d = deps(ctx)?;
        let id = parse_id("paymentId", &payment_id)?;
        refund::refund_payment(d, v, id, amount_fen, &reason, idempotency_key.as_deref())
            .await
            .map(Refund)
    }
}
