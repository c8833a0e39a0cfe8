//! Scan to pay (DESIGN.md §4): opening provider orders for bills (`createPayment`), the
//! providers' notifications, the active query that closes what nobody paid, and
//! `paymentUpdated` for the counter's phone and the payer. The provider protocols and the order
//! state machine live in `minigate-payments`; this module composes them with authorization and
//! events, each state change and its event in one transaction.

pub mod callback;
mod db;
pub mod merchants;
mod mutation;
mod object;
mod open;
mod qr;
mod query;
pub mod refund;
pub mod refund_callback;
pub(crate) mod settle;
mod subscription;
pub mod sync;

use chrono::Duration;
use minigate_payments::{alipay::client::AlipayApi, wechat::client::WechatPayApi};

pub use merchants::Merchants;
pub use mutation::PaymentMutation;
pub use object::{
    Payment, PaymentChannel, PaymentStatus, PaymentUpdate, Refund, RefundStatus, WxPayParams,
};
pub use query::PaymentQuery;
pub use subscription::PaymentSubscription;

/// The event written whenever an order's state changes; its payload is the order row.
pub const UPDATED: &str = "payment.updated";

/// The topic of one order's events.
pub fn topic(order: minigate_store::Id) -> String {
    format!("payment:{order}")
}

/// The provider endpoints, each tenant's identities, and the timings of orders.
pub struct Payments {
    pub wechat: WechatPayApi,
    pub alipay: AlipayApi,
    pub merchants: Merchants,
    pub settings: PaymentSettings,
}

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// Public base URL of this service as the providers reach it; notifications go to
    /// `{notify_base}/pay/wechat/notify` and `{notify_base}/pay/alipay/notify`.
    pub notify_base: String,
    /// How long a QR (and so an order) stays payable: its `time_expire`.
    pub qr_lifetime: Duration,
    /// How long after its creation an unpaid order is first queried at its provider.
    pub first_query_after: Duration,
    /// The shortest gap between two queries of one order (it doubles, up to 5 minutes).
    pub query_every: Duration,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            notify_base: "http://127.0.0.1:8080".into(),
            qr_lifetime: Duration::minutes(30),
            first_query_after: Duration::minutes(2),
            query_every: Duration::seconds(30),
        }
    }
}
