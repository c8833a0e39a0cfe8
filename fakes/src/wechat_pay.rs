//! A fake of WeChat Pay API v3 for direct merchants: JSAPI and Native orders, query by
//! `out_trade_no`, close, and the payment notification. It checks each request the way WeChat
//! Pay does (headers, the `WECHATPAY2-SHA256-RSA2048` Authorization signature with the
//! merchant's key and certificate serial, the 5-minute window, field rules) and signs its
//! answers and callbacks with the merchant's current WeChat Pay key: a WeChat Pay public key
//! (`PUB_KEY_ID_…`) or a platform certificate, switchable mid-test as in a migration.
//! `GET /v3/certificates` lists the platform certificates a test published, encrypted with the
//! APIv3 key, as a client needs them during a certificate rotation.
//!
//! Refunds (`/v3/refund/domestic/refunds`) start PROCESSING and a test finishes them, then
//! takes or posts the signed, encrypted `REFUND.*` notification. The daily trade bill
//! (`/v3/bill/tradebill`, then the unsigned file download) is made from the fake's orders and
//! refunds, with fees, readiness and faults a test can set, and orders and refunds can be
//! seeded straight into the state to make large bills.
//!
//! Also the payment simulator: `code_url` points at `GET /pay/{out_trade_no}` on this fake,
//! which pays the order and delivers the notification with retries.

mod api;
mod bill;
mod notify;
mod refund;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Duration, NaiveDate, TimeZone};
use poem::{Endpoint, Response};

pub use bill::BillFault;
pub use refund::{FakeRefund, RefundMode, RefundStatus};

use crate::keys::{RsaSigner, RsaVerifier, pem_decode};
use crate::support::{self, lock};

/// A merchant the fake knows, with the keys on both sides.
#[derive(Clone)]
pub struct WechatPayMerchant {
    pub mch_id: String,
    /// App ids bound to the merchant (mini-program, official account); others are refused.
    pub app_ids: Vec<String>,
    /// Serial of the merchant's API certificate, sent as `serial_no` in Authorization.
    pub merchant_serial: String,
    /// The merchant's public key (`BEGIN PUBLIC KEY`), which checks our requests.
    pub merchant_public_pem: String,
    /// The APIv3 key: 32 ASCII characters that encrypt notification resources.
    pub apiv3_key: String,
    /// How WeChat Pay signs its answers and callbacks to this merchant.
    pub signer: WechatPaySigner,
}

/// The key WeChat Pay signs with, named by `Wechatpay-Serial`.
#[derive(Clone)]
pub enum WechatPaySigner {
    /// A WeChat Pay public key: `id` is `PUB_KEY_ID_…`.
    PublicKey { id: String, private_pem: String },
    /// A platform certificate: `serial` is its serial number in hex.
    PlatformCertificate { serial: String, private_pem: String },
}

/// The routes, for [`FakeWechatPay::calls`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WechatPayRoute {
    /// `POST /v3/pay/transactions/jsapi`
    Jsapi,
    /// `POST /v3/pay/transactions/native`
    Native,
    /// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}`
    Query,
    /// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close`
    Close,
    /// `GET /v3/certificates`
    Certificates,
    /// `GET /pay/{out_trade_no}`: the simulator's page behind `code_url`.
    PayPage,
    /// `POST /v3/refund/domestic/refunds`
    Refund,
    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`
    RefundQuery,
    /// `GET /v3/bill/tradebill`
    TradeBill,
    /// `GET /v3/billdownload/file`: the bill file behind a `download_url`.
    BillDownload,
}

/// `trade_state` of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeState {
    NotPay,
    Success,
    Closed,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::NotPay => "NOTPAY",
            TradeState::Success => "SUCCESS",
            TradeState::Closed => "CLOSED",
        }
    }

    fn description(self) -> &'static str {
        match self {
            TradeState::NotPay => "订单未支付",
            TradeState::Success => "支付成功",
            TradeState::Closed => "订单已关闭",
        }
    }
}

/// An order as the fake holds it.
#[derive(Clone, Debug)]
pub struct FakeOrder {
    pub mch_id: String,
    pub appid: String,
    pub out_trade_no: String,
    /// `JSAPI` or `NATIVE`.
    pub trade_type: String,
    pub description: String,
    pub notify_url: String,
    /// As sent (RFC 3339), if it was.
    pub time_expire: Option<String>,
    /// Ordered amount in fen.
    pub total: i64,
    /// What the payer paid, when a test made it differ from `total` (see `set_paid_total`).
    pub paid_total: Option<i64>,
    pub state: TradeState,
    /// The JSAPI payer, or whoever paid.
    pub payer_openid: Option<String>,
    pub transaction_id: Option<String>,
    /// RFC 3339, +08:00.
    pub success_time: Option<String>,
    pub prepay_id: Option<String>,
    pub code_url: Option<String>,
    /// Create calls that returned this order (1 for a new one, more for identical repeats).
    pub times_created: usize,
    /// Close calls that answered 204.
    pub times_closed: usize,
    /// Notification deliveries attempted (by `notify` or the simulator).
    pub notifications_sent: usize,
}

impl FakeOrder {
    /// What WeChat reports as paid: `paid_total` when a test set it, else `total`.
    pub fn reported_total(&self) -> i64 {
        self.paid_total.unwrap_or(self.total)
    }
}

/// A callback as WeChat Pay would POST it: headers and the exact body.
#[derive(Clone, Debug)]
pub struct SignedCallback {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SignedCallback {
    /// A header's value; names compare case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The fake; when started with [`FakeWechatPay::start`] it stops serving when dropped.
pub struct FakeWechatPay {
    /// Where the fake is reachable, without a trailing slash (the `public_base` given to
    /// [`FakeWechatPay::new`]).
    pub base_url: String,
    inner: Arc<Inner>,
    server: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    public_base: String,
    state: Mutex<State>,
    http: OnceLock<reqwest::Client>,
}

#[derive(Default)]
struct State {
    merchants: HashMap<String, Merchant>,
    /// (mchid, out_trade_no) → order
    orders: HashMap<(String, String), FakeOrder>,
    /// mchid → the platform certificates `GET /v3/certificates` lists, in publishing order.
    certificates: HashMap<String, Vec<PlatformCertificate>>,
    /// (mchid, out_refund_no) → refund
    refunds: HashMap<(String, String), FakeRefund>,
    /// (mchid, out_trade_no) → the `out_refund_no` of the order's refunds, oldest first.
    order_refunds: HashMap<(String, String), Vec<String>>,
    refund_mode: RefundMode,
    bills: bill::Bills,
    /// Numbers the ids of seeded orders and refunds.
    seeded: u64,
    fail_next: Option<(u16, String)>,
    tamper_next: bool,
    calls: HashMap<WechatPayRoute, usize>,
}

struct Merchant {
    app_ids: Vec<String>,
    serial: String,
    verifier: RsaVerifier,
    apiv3_key: Vec<u8>,
    signer: Signer,
}

/// A published platform certificate; the times are fixed when it is published.
struct PlatformCertificate {
    serial: String,
    pem: String,
    /// RFC 3339, +08:00.
    effective_time: String,
    /// RFC 3339, +08:00.
    expire_time: String,
}

/// WeChat Pay's side of the signature: the key and what `Wechatpay-Serial` says.
#[derive(Clone)]
struct Signer {
    serial: String,
    key: RsaSigner,
}

impl Signer {
    fn from_config(signer: &WechatPaySigner) -> Signer {
        let (serial, pem) = match signer {
            WechatPaySigner::PublicKey { id, private_pem } => (id, private_pem),
            WechatPaySigner::PlatformCertificate {
                serial,
                private_pem,
            } => (serial, private_pem),
        };
        Signer {
            serial: serial.clone(),
            key: RsaSigner::from_pem(pem),
        }
    }
}

impl FakeWechatPay {
    /// A fake that is not listening: mount [`FakeWechatPay::endpoint`] somewhere reachable at
    /// `public_base` (used to build `code_url`).
    pub fn new(public_base: &str) -> FakeWechatPay {
        let public_base = public_base.trim_end_matches('/').to_owned();
        FakeWechatPay {
            base_url: public_base.clone(),
            inner: Arc::new(Inner {
                public_base,
                state: Mutex::new(State::default()),
                http: OnceLock::new(),
            }),
            server: None,
        }
    }

    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start() -> FakeWechatPay {
        let listener = support::bind_local("fake WeChat Pay").await;
        let mut fake = FakeWechatPay::new(&listener.base_url);
        fake.server = Some(listener.serve(fake.endpoint()));
        fake
    }

    /// The fake's routes, to serve or nest (`Route::nest("/simulator/wechatpay", …)`).
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        api::WechatPayEndpoint {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Registers a merchant (adding it again replaces it, orders kept). Panics on keys that
    /// do not parse or an APIv3 key that is not 32 bytes.
    pub fn add_merchant(&self, m: WechatPayMerchant) {
        assert_eq!(
            m.apiv3_key.len(),
            32,
            "an APIv3 key has 32 characters, got {}",
            m.apiv3_key.len()
        );
        let merchant = Merchant {
            app_ids: m.app_ids,
            serial: m.merchant_serial,
            verifier: RsaVerifier::from_pem(&m.merchant_public_pem),
            apiv3_key: m.apiv3_key.into_bytes(),
            signer: Signer::from_config(&m.signer),
        };
        self.state().merchants.insert(m.mch_id, merchant);
    }

    /// Switches the key WeChat Pay signs with for this merchant (certificate → public key).
    pub fn set_signer(&self, mch_id: &str, signer: WechatPaySigner) {
        let signer = Signer::from_config(&signer);
        match self.state().merchants.get_mut(mch_id) {
            Some(m) => m.signer = signer,
            None => panic!("fake WeChat Pay has no merchant {mch_id}"),
        }
    }

    /// Adds a platform certificate to the list `GET /v3/certificates` returns to this merchant,
    /// or replaces the one with the same serial. Its `effective_time` is now and its
    /// `expire_time` five years on (WeChat Pay's dates need not match the PEM's validity). The
    /// list is kept apart from the merchant, so it survives [`FakeWechatPay::add_merchant`].
    /// Panics on text without a `CERTIFICATE` PEM block.
    pub fn publish_certificate(&self, mch_id: &str, serial: &str, certificate_pem: &str) {
        assert!(
            pem_decode(certificate_pem, "CERTIFICATE").is_some(),
            "not a PEM certificate (BEGIN CERTIFICATE)"
        );
        let now = support::now_beijing();
        let certificate = PlatformCertificate {
            serial: serial.to_owned(),
            pem: certificate_pem.to_owned(),
            effective_time: support::rfc3339(now),
            expire_time: support::rfc3339(now + Duration::days(5 * 365)),
        };
        let mut state = self.state();
        let list = state.certificates.entry(mch_id.to_owned()).or_default();
        match list.iter_mut().find(|c| c.serial == serial) {
            Some(existing) => *existing = certificate,
            None => list.push(certificate),
        }
    }

    /// The payer pays: NOTPAY → SUCCESS with a new transaction id and `success_time` now.
    /// False if there is no such order, it is not NOTPAY, or its `time_expire` has passed.
    /// `payer_openid` defaults to the JSAPI payer, or a made-up openid for Native.
    pub fn pay(&self, out_trade_no: &str, payer_openid: Option<&str>) -> bool {
        self.state().pay(out_trade_no, payer_openid)
    }

    /// Makes the order report (in query answers and notifications) `fen` as paid instead of
    /// the ordered total: a payment that does not match the order.
    pub fn set_paid_total(&self, out_trade_no: &str, fen: i64) -> bool {
        match self.state().order_mut(out_trade_no) {
            Some(order) => {
                order.paid_total = Some(fen);
                true
            }
            None => false,
        }
    }

    /// The `TRANSACTION.SUCCESS` notification WeChat Pay would send for a paid order, signed by
    /// the merchant's current signer; each call is a new notification (new id). None if the
    /// order is unknown or not paid.
    pub fn notification(&self, out_trade_no: &str) -> Option<SignedCallback> {
        let state = self.state();
        let order = state.order(out_trade_no)?;
        notify::notification(&state, order)
    }

    /// Builds the notification and POSTs it to the order's `notify_url`; returns our status
    /// and body. None if there is nothing to notify. Panics if the URL cannot be reached.
    pub async fn notify(&self, out_trade_no: &str) -> Option<(u16, String)> {
        let (url, cb) = {
            let mut state = self.state();
            let cb = notify::notification(&state, state.order(out_trade_no)?)?;
            let order = state.order_mut(out_trade_no)?;
            order.notifications_sent += 1;
            (order.notify_url.clone(), cb)
        };
        let answer = support::post(self.inner.http(), &url, &cb.headers, &cb.body)
            .await
            .unwrap_or_else(|e| panic!("fake WeChat Pay could not reach {url}: {e}"));
        Some(answer)
    }

    /// The refund with this `out_refund_no` (at any merchant).
    pub fn refund(&self, out_refund_no: &str) -> Option<FakeRefund> {
        self.state().refund(out_refund_no).cloned()
    }

    /// Whether new refunds start PROCESSING ([`RefundMode::Manual`], the default) or SUCCESS.
    pub fn set_refund_mode(&self, mode: RefundMode) {
        self.state().refund_mode = mode;
    }

    /// Ends a PROCESSING refund as SUCCESS (with `success_time` now), ABNORMAL or CLOSED. False
    /// if the refund is unknown or already ended, or `status` is PROCESSING.
    pub fn finish_refund(&self, out_refund_no: &str, status: RefundStatus) -> bool {
        self.state().finish_refund(out_refund_no, status)
    }

    /// The `REFUND.SUCCESS` / `REFUND.ABNORMAL` / `REFUND.CLOSED` notification for the refund's
    /// current status, signed by the merchant's current signer, its resource encrypted with the
    /// APIv3 key; each call is a new notification (new id). None if the refund is unknown or
    /// still processing.
    pub fn refund_notification(&self, out_refund_no: &str) -> Option<SignedCallback> {
        let state = self.state();
        notify::refund_notification(&state, state.refund(out_refund_no)?)
    }

    /// Builds the refund notification and POSTs it to the refund's `notify_url`; returns our
    /// status and body. None if there is nothing to notify or the refund named no URL. Panics
    /// if the URL cannot be reached.
    pub async fn notify_refund(&self, out_refund_no: &str) -> Option<(u16, String)> {
        let (url, cb) = {
            let mut state = self.state();
            let refund = state.refund(out_refund_no)?;
            let url = refund.notify_url.clone()?;
            let cb = notify::refund_notification(&state, refund)?;
            let key = (refund.mch_id.clone(), refund.out_refund_no.clone());
            if let Some(refund) = state.refunds.get_mut(&key) {
                refund.notifications_sent += 1;
            }
            (url, cb)
        };
        let answer = support::post(self.inner.http(), &url, &cb.headers, &cb.body)
            .await
            .unwrap_or_else(|e| panic!("fake WeChat Pay could not reach {url}: {e}"));
        Some(answer)
    }

    /// Publishes (`true`) or holds back (`false`) the trade bill of `date` for every merchant.
    /// By default each day before today (Beijing) has its bill and today has none; a future
    /// day never has one.
    pub fn set_bill_ready(&self, date: NaiveDate, ready: bool) {
        self.state().bills.ready.insert(date, ready);
    }

    /// While set, asking for the bill of `date` answers `STATEMENT_CREATING`.
    pub fn set_statement_creating(&self, date: NaiveDate, creating: bool) {
        let mut state = self.state();
        if creating {
            state.bills.creating.insert(date);
        } else {
            state.bills.creating.remove(&date);
        }
    }

    /// The merchant's fee rate in basis points (60 = 0.60 %, the default).
    pub fn set_fee_rate_bp(&self, mch_id: &str, bp: u32) {
        self.state().bills.fee_rate_bp.insert(mch_id.to_owned(), bp);
    }

    /// Bills print exactly this fee (millifen, 1/1000 fen; negative for a fee given back) on
    /// the row of this `out_trade_no`'s payment, or of this `out_refund_no`'s refund, instead
    /// of the one computed from the rate. The summary sums what is printed.
    pub fn set_fee_override(&self, out_trade_no: &str, millifen: i64) {
        let mut state = self.state();
        state
            .bills
            .fee_override
            .insert(out_trade_no.to_owned(), millifen);
    }

    /// Puts `fault` into the next bill a `tradebill` answer hands out (the file is made then,
    /// so the download of that answer serves it); later bills are sound again.
    pub fn corrupt_next_bill(&self, fault: BillFault) {
        self.state().bills.next_fault = Some(fault);
    }

    /// The merchant's trade bill of `date` as the download would serve it (without faults),
    /// whatever the day's readiness; for tests and benchmarks that skip HTTP.
    pub fn trade_bill(&self, mch_id: &str, date: NaiveDate) -> Vec<u8> {
        bill::render(&self.state(), mch_id, date, None)
    }

    /// Puts a paid JSAPI order straight into the state (no request, no notification URL), paid
    /// at `success_time`, with made-up transaction id and payer; replaces an order with the
    /// same merchant and `out_trade_no`. For bills with many rows.
    pub fn seed_paid_order<Tz: TimeZone>(
        &self,
        mch_id: &str,
        appid: &str,
        out_trade_no: &str,
        total_fen: i64,
        success_time: DateTime<Tz>,
    ) {
        let at = success_time.with_timezone(&support::BEIJING);
        let mut state = self.state();
        state.seeded += 1;
        let n = state.seeded;
        let order = FakeOrder {
            mch_id: mch_id.to_owned(),
            appid: appid.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            trade_type: "JSAPI".to_owned(),
            description: "租车费用".to_owned(),
            notify_url: String::new(),
            time_expire: None,
            total: total_fen,
            paid_total: None,
            state: TradeState::Success,
            payer_openid: Some(format!("oSEED{n:023}")),
            transaction_id: Some(format!("4200{}{n:016}", at.format("%Y%m%d"))),
            success_time: Some(support::rfc3339(at)),
            prepay_id: None,
            code_url: None,
            times_created: 0,
            times_closed: 0,
            notifications_sent: 0,
        };
        let key = (mch_id.to_owned(), out_trade_no.to_owned());
        state.orders.insert(key, order);
    }

    /// Puts a refund of a paid order straight into the state, accepted at `create_time` (and,
    /// if SUCCESS, done then too), without the over-refund check. False if the merchant has no
    /// such paid order.
    pub fn seed_refund<Tz: TimeZone>(
        &self,
        mch_id: &str,
        out_trade_no: &str,
        out_refund_no: &str,
        amount_fen: i64,
        create_time: DateTime<Tz>,
        status: RefundStatus,
    ) -> bool {
        let at = create_time.with_timezone(&support::BEIJING);
        let mut state = self.state();
        let key = (mch_id.to_owned(), out_trade_no.to_owned());
        let Some(order) = state
            .orders
            .get(&key)
            .filter(|o| o.state == TradeState::Success)
        else {
            return false;
        };
        let (transaction_id, total_fen) = (
            order.transaction_id.clone().unwrap_or_default(),
            order.reported_total(),
        );
        state.seeded += 1;
        let n = state.seeded;
        let time = support::rfc3339(at);
        state.insert_refund(FakeRefund {
            mch_id: mch_id.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            transaction_id,
            out_refund_no: out_refund_no.to_owned(),
            refund_id: refund::refund_id(at, &format!("{n:015}")),
            amount_fen,
            total_fen,
            reason: None,
            notify_url: None,
            status,
            success_time: (status == RefundStatus::Success).then(|| time.clone()),
            create_time: time,
            notifications_sent: 0,
        });
        true
    }

    /// The next API call that passes the signature check answers `status` with this `code`
    /// (e.g. 500 `SYSTEM_ERROR`, or 403 `NOT_ENOUGH` on a refund), signed like any answer.
    pub fn fail_next(&self, status: u16, code: &str) {
        self.state().fail_next = Some((status, code.to_owned()));
    }

    /// The next signed answer carries a signature that does not verify.
    pub fn tamper_next_answer(&self) {
        self.state().tamper_next = true;
    }

    /// How many requests reached a route, refused ones included.
    pub fn calls(&self, route: WechatPayRoute) -> usize {
        self.state().calls.get(&route).copied().unwrap_or(0)
    }

    /// The order with this `out_trade_no` (at any merchant).
    pub fn order(&self, out_trade_no: &str) -> Option<FakeOrder> {
        self.state().order(out_trade_no).cloned()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

impl Drop for FakeWechatPay {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

impl Inner {
    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(support::http_client)
    }
}

impl State {
    fn order(&self, out_trade_no: &str) -> Option<&FakeOrder> {
        self.orders
            .values()
            .find(|o| o.out_trade_no == out_trade_no)
    }

    fn order_mut(&mut self, out_trade_no: &str) -> Option<&mut FakeOrder> {
        self.orders
            .values_mut()
            .find(|o| o.out_trade_no == out_trade_no)
    }

    fn pay(&mut self, out_trade_no: &str, payer_openid: Option<&str>) -> bool {
        let Some(order) = self.order_mut(out_trade_no) else {
            return false;
        };
        if order.state != TradeState::NotPay || expired(order.time_expire.as_deref()) {
            return false;
        }
        let now = support::now_beijing();
        order.state = TradeState::Success;
        order.success_time = Some(support::rfc3339(now));
        order.transaction_id = Some(format!(
            "4200{}{}",
            now.format("%Y%m%d"),
            support::random_digits(16)
        ));
        let payer = payer_openid
            .map(str::to_owned)
            .or_else(|| order.payer_openid.clone())
            .unwrap_or_else(|| format!("oSIM{}", &support::random_hex()[..24]));
        order.payer_openid = Some(payer);
        true
    }
}

fn expired(time_expire: Option<&str>) -> bool {
    time_expire
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t < support::now_beijing())
}
