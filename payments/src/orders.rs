//! The order state machine. One row per `out_trade_no`, moving forward only:
//! `CREATED → PAID | CLOSED` (refunds move `PAID` on, in their own issue). Three signals feed it
//! (the provider's callback, our active query, the daily bill) and they all go through
//! [`apply_trade`], inside the caller's transaction, with the order row locked.

mod apply;
pub mod db;

use serde::{Deserialize, Serialize};

pub use apply::{Applied, Decision, apply_decision, apply_trade, decide};
pub use db::OrderRow;

use crate::notification::Provider;

pub const CREATED: &str = "CREATED";
pub const PAID: &str = "PAID";
pub const CLOSED: &str = "CLOSED";

/// How the payer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Channel {
    /// A WeChat QR the payer scans (`code_url`).
    WechatNative,
    /// `wx.requestPayment` inside the mini-program.
    WechatJsapi,
    /// An Alipay QR (`qr_code`).
    AlipayQr,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WechatNative => "WECHAT_NATIVE",
            Channel::WechatJsapi => "WECHAT_JSAPI",
            Channel::AlipayQr => "ALIPAY_QR",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "WECHAT_NATIVE" => Some(Channel::WechatNative),
            "WECHAT_JSAPI" => Some(Channel::WechatJsapi),
            "ALIPAY_QR" => Some(Channel::AlipayQr),
            _ => None,
        }
    }

    pub fn provider(self) -> Provider {
        match self {
            Channel::WechatNative | Channel::WechatJsapi => Provider::Wechat,
            Channel::AlipayQr => Provider::Alipay,
        }
    }
}

/// What told us an order's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Callback,
    Query,
    Reconciliation,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Callback => "CALLBACK",
            Source::Query => "QUERY",
            Source::Reconciliation => "RECONCILIATION",
        }
    }
}
