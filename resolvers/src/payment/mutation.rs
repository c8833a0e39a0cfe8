use async_graphql::{Context, ID, Object};

use super::{Payment, PaymentChannel, open};
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
}
