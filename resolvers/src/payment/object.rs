use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minigate_payments::{
    money,
    orders::{Channel, OrderRow},
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
