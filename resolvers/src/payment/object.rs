use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_payments::{
    money,
    orders::{Channel, OrderRow},
    refunds::{self, RefundRow},
};

use super::qr;
use crate::{
    Error, Result,
    viewer::{deps, viewer},
};

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaymentChannel {
    /// A WeChat Pay QR shown at the counter (Native).
    WechatNative,
    /// `wx.requestPayment` in the mini-program (JSAPI), paid by the signed-in WeChat user.
    WechatJsapi,
    /// An Alipay QR shown at the counter.
    AlipayQr,
}

impl From<PaymentChannel> for Channel {
    fn from(c: PaymentChannel) -> Self {
        match c {
            PaymentChannel::WechatNative => Channel::WechatNative,
            PaymentChannel::WechatJsapi => Channel::WechatJsapi,
            PaymentChannel::AlipayQr => Channel::AlipayQr,
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PaymentStatus {
    /// Waiting for the payer.
    Created,
    Paid,
    /// Closed unpaid (expired, or replaced by another channel).
    Closed,
    Refunding,
    Refunded,
    PartiallyRefunded,
}

impl PaymentStatus {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "CREATED" => PaymentStatus::Created,
            "PAID" => PaymentStatus::Paid,
            "CLOSED" => PaymentStatus::Closed,
            "REFUNDING" => PaymentStatus::Refunding,
            "REFUNDED" => PaymentStatus::Refunded,
            "PARTIALLY_REFUNDED" => PaymentStatus::PartiallyRefunded,
            other => return Err(Error::Internal(format!("order status {other}"))),
        })
    }
}

/// A payment order of a bill at WeChat Pay or Alipay.
pub struct Payment(pub OrderRow);

#[Object]
impl Payment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn bill_id(&self) -> ID {
        ID(self.0.bill_id.to_string())
    }
    async fn channel(&self) -> Result<PaymentChannel> {
        match Channel::parse(&self.0.channel) {
            Some(Channel::WechatNative) => Ok(PaymentChannel::WechatNative),
            Some(Channel::WechatJsapi) => Ok(PaymentChannel::WechatJsapi),
            Some(Channel::AlipayQr) => Ok(PaymentChannel::AlipayQr),
            None => Err(Error::Internal(format!("channel {}", self.0.channel))),
        }
    }
    async fn status(&self) -> Result<PaymentStatus> {
        PaymentStatus::parse(&self.0.status)
    }
    async fn amount_fen(&self) -> i64 {
        self.0.amount_fen
    }
    async fn amount_yuan(&self) -> String {
        money::format_yuan(self.0.amount_fen)
    }
    /// Our order number at the provider (32 characters).
    async fn out_trade_no(&self) -> &str {
        &self.0.out_trade_no
    }
    /// Until when the QR (or the mini-program payment) can be paid.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    /// What the payer paid, once paid.
    async fn paid_fen(&self) -> Option<i64> {
        self.0.paid_fen
    }
    /// What successful refunds gave back.
    async fn refunded_fen(&self) -> i64 {
        self.0.refunded_fen
    }
    /// The refunds of this payment, oldest first: operators only (others see an empty list).
    async fn refunds(&self, ctx: &Context<'_>) -> Result<Vec<Refund>> {
        if viewer(ctx)?.require_admin().is_err() {
            return Ok(Vec::new());
        }
        let mut c = deps(ctx)?.db.conn().await?;
        let rows = refunds::db::list_for_order(&mut c, self.0.id).await?;
        Ok(rows.into_iter().map(Refund).collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// What the QR encodes (WeChat `code_url`, Alipay `qr_code`), for QR channels once the
    /// provider accepted the order.
    async fn code_url(&self) -> Option<&str> {
        self.open_qr()
    }
    /// The QR as a `data:image/png;base64,…` URL, while the order is open.
    async fn qr_png(&self) -> Result<Option<String>> {
        self.open_qr().map(qr::png_data_url).transpose()
    }
    /// The parameters of `wx.requestPayment`, signed with the merchant key: JSAPI orders only,
    /// for their payer, while open.
    async fn wx_pay_params(&self, ctx: &Context<'_>) -> Result<Option<WxPayParams>> {
        let (Some(prepay), "CREATED") = (&self.0.prepay_id, self.0.status.as_str()) else {
            return Ok(None);
        };
        if self.0.created_by != Some(viewer(ctx)?.user_id) {
            return Ok(None);
        }
        let m = deps(ctx)?
            .payments
            .merchants
            .wechat(self.0.tenant_id)
            .await?;
        let ts = Utc::now().timestamp();
        let nonce_str = uuid::Uuid::new_v4().simple().to_string();
        let package = format!("prepay_id={prepay}");
        let pay_sign = m.key.pay_sign(&self.0.app_id, ts, &nonce_str, &package);
        Ok(Some(WxPayParams {
            app_id: self.0.app_id.clone(),
            time_stamp: ts.to_string(),
            nonce_str,
            package,
            sign_type: "RSA".into(),
            pay_sign: pay_sign?,
        }))
    }
}

impl Payment {
    fn open_qr(&self) -> Option<&str> {
        if self.0.status == "CREATED" && self.0.channel != "WECHAT_JSAPI" {
            self.0.code_url.as_deref()
        } else {
            None
        }
    }
}

/// Pass these fields unchanged to `wx.requestPayment`.
#[derive(SimpleObject, Debug, Clone)]
pub struct WxPayParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// A payment's state as it changes; `eventId` resumes the subscription after a reconnect.
pub struct PaymentUpdate {
    pub event_id: Option<i64>,
    pub payment: Payment,
}

#[Object]
impl PaymentUpdate {
    /// Null for the first message, which is the state when subscribing.
    async fn event_id(&self) -> Option<ID> {
        self.event_id.map(|s| ID(s.to_string()))
    }
    async fn payment(&self) -> &Payment {
        &self.payment
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefundStatus {
    /// Accepted by the provider, the money is on its way back.
    Processing,
    /// The money is back with the payer.
    Success,
    /// Stuck at the provider (the payer's account closed, …): needs a person.
    Abnormal,
    /// Will not happen; `failure` says why.
    Closed,
}

/// One refund of a payment.
pub struct Refund(pub RefundRow);

#[Object]
impl Refund {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn payment_id(&self) -> ID {
        ID(self.0.order_id.to_string())
    }
    async fn amount_fen(&self) -> i64 {
        self.0.amount_fen
    }
    async fn amount_yuan(&self) -> String {
        money::format_yuan(self.0.amount_fen)
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn status(&self) -> Result<RefundStatus> {
        Ok(match self.0.status.as_str() {
            "PROCESSING" => RefundStatus::Processing,
            "SUCCESS" => RefundStatus::Success,
            "ABNORMAL" => RefundStatus::Abnormal,
            "CLOSED" => RefundStatus::Closed,
            other => return Err(Error::Internal(format!("refund status {other}"))),
        })
    }
    /// The provider's code when it refused or gave up (`NOT_ENOUGH`, `ACQ.TRADE_STATUS_ERROR`, …).
    async fn failure(&self) -> Option<&str> {
        self.0.failure.as_deref()
    }
    /// Our refund number at the provider.
    async fn out_refund_no(&self) -> &str {
        &self.0.out_refund_no
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn succeeded_at(&self) -> Option<DateTime<Utc>> {
        self.0.succeeded_at
    }
}
