//! Calls to WeChat Pay API v3: open a JSAPI or Native order, query it, close it. Every request
//! is signed with the merchant key; every answer's signature is checked before it is read.

use chrono::{DateTime, SecondsFormat, Utc};
use minigate_store::BEIJING;
use reqwest::{Method, header};
use serde::Deserialize;
use serde_json::json;

use super::verify::Signed;
use crate::{
    Error, Result, WechatMerchant,
    http::unreachable,
    trade::{Closed, NewOrder, Trade, TradeState},
};

/// The production API host.
pub const DEFAULT_BASE: &str = "https://api.mch.weixin.qq.com";

/// What opening an order returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Native: the `code_url` the QR shows.
    CodeUrl(String),
    /// JSAPI: the prepay id `wx.requestPayment` needs.
    PrepayId(String),
}

/// A WeChat Pay API v3 endpoint (production, or a local fake in tests and development).
#[derive(Clone)]
pub struct WechatPayApi {
    http: reqwest::Client,
    base: String,
}

/// A verified answer.
pub(super) struct Answer {
    status: u16,
    pub(super) body: Vec<u8>,
}

impl WechatPayApi {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Opens a Native order (no payer) or a JSAPI order (with the payer's openid).
    pub async fn open(&self, m: &WechatMerchant, order: &NewOrder<'_>) -> Result<Opened> {
        let mut body = json!({
            "appid": m.app_id,
            "mchid": m.mch_id,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "time_expire": rfc3339_beijing(order.expires_at),
            "notify_url": order.notify_url,
            "amount": { "total": order.amount_fen, "currency": "CNY" },
        });
        let path = match order.payer_openid {
            Some(openid) => {
                body["payer"] = json!({ "openid": openid });
                "/v3/pay/transactions/jsapi"
            }
            None => "/v3/pay/transactions/native",
        };
        let a = self.call(m, Method::POST, path, Some(&body)).await?;
        let v: serde_json::Value = parse(&a.body)?;
        let field = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
        match order.payer_openid {
            Some(_) => field("prepay_id").map(Opened::PrepayId),
            None => field("code_url").map(Opened::CodeUrl),
        }
        .ok_or_else(|| Error::Malformed("order answer without prepay_id or code_url".into()))
    }

    /// Queries an order by our `out_trade_no`.
    pub async fn query(&self, m: &WechatMerchant, out_trade_no: &str) -> Result<Trade> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={}",
            m.mch_id
        );
        match self.call(m, Method::GET, &path, None).await {
            Ok(a) => transaction(&a.body)?.into_trade(),
            Err(e) if e.is_refusal("ORDER_NOT_EXIST") => Ok(Trade::not_found(out_trade_no)),
            Err(e) => Err(e),
        }
    }

    /// Closes an unpaid order. An order that was paid meanwhile answers `AlreadyPaid`.
    pub async fn close(&self, m: &WechatMerchant, out_trade_no: &str) -> Result<Closed> {
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}/close");
        let body = json!({ "mchid": m.mch_id });
        match self.call(m, Method::POST, &path, Some(&body)).await {
            Ok(_) => Ok(Closed::Closed),
            Err(e) if e.is_refusal("ORDERPAID") => Ok(Closed::AlreadyPaid),
            Err(e) if e.is_refusal("ORDER_NOT_EXIST") || e.is_refusal("ORDER_CLOSED") => {
                Ok(Closed::Closed)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) async fn call(
        &self,
        m: &WechatMerchant,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let raw = self.send(m, method, path_and_query, body).await?;
        raw.verify(&m.verifier)?;
        raw.into_answer()
    }

    /// Sends a signed request; the answer is not verified yet.
    async fn send(
        &self,
        m: &WechatMerchant,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Raw> {
        let url = format!("{}{path_and_query}", self.base);
        // The signature covers the URL's path and query as the server sees them.
        let signed_path = reqwest::Url::parse(&url)
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            })
            .map_err(|_| Error::Malformed("invalid WeChat Pay base URL".into()))?;
        let body_text = body.map(serde_json::Value::to_string).unwrap_or_default();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let auth = m.key.authorization(
            method.as_str(),
            &signed_path,
            Utc::now().timestamp(),
            &nonce,
            &body_text,
        )?;
        let mut req = self
            .http
            .request(method, &url)
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(body_text);
        }
        let res = req.send().await.map_err(|e| unreachable(&e))?;
        let status = res.status().as_u16();
        let h = res.headers().clone();
        let bytes = res.bytes().await.map_err(|e| unreachable(&e))?;
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        Ok(Raw {
            status,
            timestamp: get("wechatpay-timestamp"),
            nonce: get("wechatpay-nonce"),
            signature: get("wechatpay-signature"),
            serial: get("wechatpay-serial"),
            body: bytes.to_vec(),
        })
    }

    /// Downloads the merchant's platform certificates (`GET /v3/certificates`), for merchants
    /// verified with certificates: WeChat Pay rotates them and may sign with a new one before the
    /// merchant knows it. Each certificate arrives encrypted with the APIv3 key (its AES-GCM tag
    /// proves it came from WeChat Pay); the answer's signature is then checked with the known
    /// keys plus the downloaded certificates. Returns the certificates as PEM text.
    pub async fn certificates(&self, m: &WechatMerchant) -> Result<Vec<String>> {
        let raw = self.send(m, Method::GET, "/v3/certificates", None).await?;
        if !(200..300).contains(&raw.status) || m.verifier.knows(raw.serial.trim()) {
            raw.verify(&m.verifier)?;
        }
        let a = raw.clone().into_answer()?;
        #[derive(Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            encrypt_certificate: Sealed,
        }
        #[derive(Deserialize)]
        struct Sealed {
            nonce: String,
            #[serde(default)]
            associated_data: String,
            ciphertext: String,
        }
        let list: List = parse(&a.body)?;
        let mut pems = Vec::with_capacity(list.data.len());
        let mut with_new = m.verifier.clone();
        for e in list.data {
            let c = e.encrypt_certificate;
            let plain = super::resource::decrypt(
                m.apiv3_key(),
                &c.nonce,
                &c.associated_data,
                &c.ciphertext,
            )?;
            let pem = String::from_utf8(plain)
                .map_err(|_| Error::Malformed("certificate is not PEM text".into()))?;
            with_new.add_platform_certificates(&pem)?;
            pems.push(pem);
        }
        // Verified in any case: with the keys we had, or with the certificates just decrypted.
        raw.verify(&with_new)?;
        Ok(pems)
    }
}

/// An answer as received, before its signature is checked.
#[derive(Clone)]
struct Raw {
    status: u16,
    timestamp: String,
    nonce: String,
    signature: String,
    serial: String,
    body: Vec<u8>,
}

impl Raw {
    fn verify(&self, verifier: &super::verify::Verifier) -> Result<()> {
        let signed = Signed {
            timestamp: &self.timestamp,
            nonce: &self.nonce,
            signature: &self.signature,
            serial: &self.serial,
            body: &self.body,
        };
        verifier
            .verify(&signed, Utc::now().timestamp())
            .inspect_err(|e| {
                tracing::warn!(
                    status = self.status,
                    code = e.code(),
                    "WeChat Pay answer failed verification"
                );
            })
    }

    /// The answer of a verified success, or the provider's refusal.
    fn into_answer(self) -> Result<Answer> {
        if (200..300).contains(&self.status) {
            return Ok(Answer {
                status: self.status,
                body: self.body,
            });
        }
        #[derive(Deserialize)]
        struct Refusal {
            code: String,
            #[serde(default)]
            message: String,
        }
        let r: Refusal = parse(&self.body)?;
        Err(Error::Refused {
            status: self.status,
            code: r.code,
            message: r.message,
        })
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Answer({}, {} bytes)", self.status, self.body.len())
    }
}

/// `2026-11-21T10:30:00+08:00`, the form WeChat Pay documents.
pub fn rfc3339_beijing(t: DateTime<Utc>) -> String {
    t.with_timezone(&BEIJING)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

pub(super) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Malformed(format!("WeChat Pay JSON: {e}")))
}

/// A transaction as WeChat Pay reports it, in a query answer and in a payment notification.
#[derive(Debug, Deserialize)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub trade_state: String,
    pub success_time: Option<String>,
    pub payer: Option<Payer>,
    pub amount: Option<Amount>,
}

#[derive(Debug, Deserialize)]
pub struct Payer {
    pub openid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Amount {
    pub total: Option<i64>,
}

pub fn transaction(bytes: &[u8]) -> Result<Transaction> {
    parse(bytes)
}

impl Transaction {
    pub fn into_trade(self) -> Result<Trade> {
        let state = match self.trade_state.as_str() {
            "SUCCESS" | "REFUND" => TradeState::Paid,
            "NOTPAY" | "USERPAYING" => TradeState::NotPaid,
            "CLOSED" | "REVOKED" | "PAYERROR" => TradeState::Closed,
            other => {
                return Err(Error::Malformed(format!("unknown trade_state {other}")));
            }
        };
        let paid_at = self
            .success_time
            .as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| Error::Malformed(format!("success_time {t}")))
            })
            .transpose()?;
        Ok(Trade {
            out_trade_no: self.out_trade_no,
            state,
            provider_state: self.trade_state,
            provider_trade_no: self.transaction_id,
            amount_fen: self.amount.and_then(|a| a.total),
            paid_at,
            payer: self.payer.and_then(|p| p.openid),
        })
    }
}
