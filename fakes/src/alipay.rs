//! A fake of the Alipay open-platform gateway (`/gateway.do`) for face-to-face QR payments:
//! `alipay.trade.precreate`, `alipay.trade.query`, `alipay.trade.close`, and the asynchronous
//! notification. It checks the common parameters and the RSA2 `sign` the way the gateway does,
//! and signs its answers (over the raw text of the `…_response` node) and notifications (over
//! the sorted parameters) with the app's Alipay key.
//!
//! As at Alipay, a precreated trade exists only once a buyer scanned its QR code: until then
//! query and close answer `ACQ.TRADE_NOT_EXIST`, and the code can still be paid later.
//!
//! Also the payment simulator: `qr_code` points at `GET /pay/{out_trade_no}` on this fake,
//! which pays the trade and delivers the notification until our route answers `success`.
//!
//! After the payment: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query` (refunds
//! complete at once, reported on the trade's notify), and the daily trade bill
//! (`alipay.data.dataservice.bill.downloadurl.query`, then a plain `GET /bill/download` of a zip
//! of GBK CSV files written from the fake's trades). Tests can seed paid trades and refunds
//! directly, set service-fee rates, publish or withhold a day's bill, and corrupt the next
//! bill download in the ways a client must notice.

mod bill;
mod bill_query;
mod gateway;
mod money;
mod notify;
mod refund;

pub use money::{format_yuan, parse_yuan};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, NaiveDate, Utc};
use poem::{Endpoint, Response};

use crate::keys::{RsaSigner, RsaVerifier};
use crate::support::{self, lock};

/// An app the fake knows.
#[derive(Clone)]
pub struct AlipayApp {
    pub app_id: String,
    /// The app's public key (`BEGIN PUBLIC KEY`), which checks our `sign`.
    pub app_public_pem: String,
    /// Alipay's private key for this app: signs answers and notifications. Its public half is
    /// the "Alipay public key" the app is configured with.
    pub alipay_private_pem: String,
}

/// `trade_status` of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeStatus {
    WaitBuyerPay,
    TradeSuccess,
    TradeClosed,
}

impl TradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
        }
    }
}

/// A precreated order as the fake holds it.
#[derive(Clone, Debug)]
pub struct FakeOrder {
    pub app_id: String,
    pub out_trade_no: String,
    pub subject: String,
    /// Ordered amount in fen.
    pub total: i64,
    /// What the buyer paid, when a test made it differ from `total` (see `set_paid_total`).
    pub paid_total: Option<i64>,
    /// As sent (`yyyy-MM-dd HH:mm:ss`), if it was.
    pub time_expire: Option<String>,
    pub notify_url: Option<String>,
    pub qr_code: String,
    /// Whether a buyer scanned the code, which is when Alipay creates the trade.
    pub scanned: bool,
    pub status: TradeStatus,
    pub trade_no: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub seller_id: String,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing time.
    pub gmt_create: Option<String>,
    pub gmt_payment: Option<String>,
    pub gmt_close: Option<String>,
    /// Precreate calls that returned this order (1 for a new one, more for identical repeats).
    pub times_created: usize,
    /// Close calls that closed it.
    pub times_closed: usize,
    /// Notification deliveries attempted (by `notify`, `notify_refund` or the simulator).
    pub notifications_sent: usize,
    /// Refunded so far in fen, all refunds of the trade together.
    pub refunded_fen: i64,
}

impl FakeOrder {
    /// What Alipay reports as paid: `paid_total` when a test set it, else `total`.
    pub fn reported_total(&self) -> i64 {
        self.paid_total.unwrap_or(self.total)
    }

    /// Whether the buyer paid, even if the trade was closed later by a full refund.
    pub fn was_paid(&self) -> bool {
        self.gmt_payment.is_some()
    }

    /// What can still be refunded, in fen.
    pub fn refundable(&self) -> i64 {
        self.reported_total() - self.refunded_fen
    }
}

/// A refund as the fake holds it. Alipay refunds complete at once, so every refund here has
/// succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRefund {
    pub app_id: String,
    pub out_trade_no: String,
    pub trade_no: String,
    pub out_request_no: String,
    pub amount_fen: i64,
    pub reason: Option<String>,
    /// When the money went back, `yyyy-MM-dd HH:mm:ss`, Beijing time.
    pub gmt_refund_pay: String,
    /// The same moment with milliseconds (`yyyy-MM-dd HH:mm:ss.SSS`), as the notify writes it.
    pub gmt_refund: String,
}

/// One way to spoil the next bill download (see [`FakeAlipay::corrupt_next_bill`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillFault {
    /// The detail file's `#交易合计` line claims 0.01 more 商家实收 than the rows hold.
    WrongTotals,
    /// One more detail row, after the others, whose 业务类型 is `其他`; no total counts it.
    UnknownRow,
    /// The first detail row's 商家实收 reads `12.3x`.
    MalformedAmount,
    /// The first detail row has one field more than the header.
    ExtraColumn,
    /// The archive is cut after half its bytes.
    TruncatedZip,
    /// The archive holds the summary file only.
    MissingDetail,
}

/// The fake; when started with [`FakeAlipay::start`] it stops serving when dropped.
pub struct FakeAlipay {
    /// Where the fake is reachable, without a trailing slash; the gateway URL is
    /// `{base_url}/gateway.do`.
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
    apps: HashMap<String, App>,
    /// (app_id, out_trade_no) → order
    orders: HashMap<(String, String), FakeOrder>,
    /// (code, sub_code)
    fail_next: Option<(String, String)>,
    tamper_next: bool,
    /// method name (`""` when missing, `"/pay"` for the simulator page, `"/bill/download"` for
    /// bill downloads) → requests
    calls: HashMap<String, usize>,
    /// Every refund, in the order made (or seeded).
    refunds: Vec<FakeRefund>,
    /// (app_id, out_trade_no, out_request_no) → index in `refunds`
    refund_index: HashMap<(String, String, String), usize>,
    /// Days whose bill a test published or withheld; other days follow the calendar.
    bill_ready: HashMap<NaiveDate, bool>,
    /// app_id → service fee in basis points, when not the default.
    fee_rate_bp: HashMap<String, u32>,
    /// out_trade_no → the 服务费 its payment row prints, in (signed) fen.
    fee_override: HashMap<String, i64>,
    /// Spoils the next bill download, then clears.
    bill_fault: Option<BillFault>,
    /// download token → (app_id, bill date)
    bill_tokens: HashMap<String, (String, NaiveDate)>,
}

struct App {
    verifier: RsaVerifier,
    signer: RsaSigner,
    seller_id: String,
}

impl FakeAlipay {
    /// A fake that is not listening: mount [`FakeAlipay::endpoint`] somewhere reachable at
    /// `public_base` (used to build `qr_code`).
    pub fn new(public_base: &str) -> FakeAlipay {
        let public_base = public_base.trim_end_matches('/').to_owned();
        FakeAlipay {
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
    pub async fn start() -> FakeAlipay {
        let listener = support::bind_local("fake Alipay").await;
        let mut fake = FakeAlipay::new(&listener.base_url);
        fake.server = Some(listener.serve(fake.endpoint()));
        fake
    }

    /// The fake's routes, to serve or nest (`Route::nest("/simulator/alipay", …)`).
    pub fn endpoint(&self) -> impl Endpoint<Output = Response> + 'static {
        gateway::AlipayEndpoint {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Registers an app (adding it again replaces its keys, orders kept). Panics on keys that
    /// do not parse. Its merchant's partner id (`seller_id`, the bill's 账号) is
    /// [`partner_id`] of the app id.
    pub fn add_app(&self, app: AlipayApp) {
        let verifier = RsaVerifier::from_pem(&app.app_public_pem);
        let signer = RsaSigner::from_pem(&app.alipay_private_pem);
        let mut state = self.state();
        let seller_id = partner_id(&app.app_id);
        state.apps.insert(
            app.app_id,
            App {
                verifier,
                signer,
                seller_id,
            },
        );
    }

    /// A buyer scans the QR code: Alipay creates the trade (WAIT_BUYER_PAY, with a trade_no),
    /// which query and close can see from now on. False if there is no such order, it was
    /// scanned already, it is not waiting, or its `time_expire` has passed.
    pub fn scan(&self, out_trade_no: &str) -> bool {
        self.state().scan(out_trade_no)
    }

    /// The buyer pays (scanning first if nobody did): WAIT_BUYER_PAY → TRADE_SUCCESS. False
    /// if there is no such order, it is not waiting, or its `time_expire` has passed.
    pub fn pay(&self, out_trade_no: &str) -> bool {
        self.state().pay(out_trade_no)
    }

    /// Makes the trade report (query answers, notifications) `fen` as paid instead of the
    /// ordered total: a payment that does not match the order.
    pub fn set_paid_total(&self, out_trade_no: &str, fen: i64) -> bool {
        match self.state().order_mut(out_trade_no) {
            Some(order) => {
                order.paid_total = Some(fen);
                true
            }
            None => false,
        }
    }

    /// The form parameters of the asynchronous notification Alipay would send now for this
    /// trade (TRADE_SUCCESS once paid, TRADE_CLOSED once a scanned trade was closed), sorted
    /// by name and signed; each call has a new `notify_id`. None if there is nothing to notify.
    pub fn notification(&self, out_trade_no: &str) -> Option<Vec<(String, String)>> {
        let state = self.state();
        notify::notification(&state, state.order(out_trade_no)?)
    }

    /// Builds the notification and POSTs it form-encoded to the order's `notify_url`; returns
    /// our status and body (Alipay wants the body `success`). None if there is nothing to
    /// notify or no `notify_url`. Panics if the URL cannot be reached.
    pub async fn notify(&self, out_trade_no: &str) -> Option<(u16, String)> {
        let (url, body) = {
            let mut state = self.state();
            let params = notify::notification(&state, state.order(out_trade_no)?)?;
            let order = state.order_mut(out_trade_no)?;
            let url = order.notify_url.clone()?;
            order.notifications_sent += 1;
            (url, notify::form_body(&params))
        };
        let answer = support::post(self.inner.http(), &url, &notify::form_headers(), &body)
            .await
            .unwrap_or_else(|e| panic!("fake Alipay could not reach {url}: {e}"));
        Some(answer)
    }

    /// The refund `out_request_no` of the trade `out_trade_no` (in any app).
    pub fn refund(&self, out_trade_no: &str, out_request_no: &str) -> Option<FakeRefund> {
        self.state()
            .refund_of(out_trade_no, out_request_no)
            .cloned()
    }

    /// The refunds of the trade `out_trade_no` (in any app), oldest first.
    pub fn refunds(&self, out_trade_no: &str) -> Vec<FakeRefund> {
        self.state()
            .refunds
            .iter()
            .filter(|r| r.out_trade_no == out_trade_no)
            .cloned()
            .collect()
    }

    /// The form parameters of the trade notification that reports this refund: the payment's
    /// fields plus `refund_fee` (refunded on the trade up to and including this refund),
    /// `gmt_refund` and `out_biz_no`; `trade_status` TRADE_CLOSED once that is everything paid.
    /// Sorted by name and signed, with a new `notify_id` each call. None if there is no such
    /// refund.
    pub fn refund_notification(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
    ) -> Option<Vec<(String, String)>> {
        let state = self.state();
        notify::refund_notification(&state, state.refund_of(out_trade_no, out_request_no)?)
    }

    /// Builds the refund's notification and POSTs it form-encoded to the trade's `notify_url`;
    /// returns our status and body. None if there is no such refund or no `notify_url`. Panics
    /// if the URL cannot be reached.
    pub async fn notify_refund(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
    ) -> Option<(u16, String)> {
        let (url, body) = {
            let mut state = self.state();
            let refund = state.refund_of(out_trade_no, out_request_no)?;
            let params = notify::refund_notification(&state, refund)?;
            let key = (refund.app_id.clone(), refund.out_trade_no.clone());
            let order = state.orders.get_mut(&key)?;
            let url = order.notify_url.clone()?;
            order.notifications_sent += 1;
            (url, notify::form_body(&params))
        };
        let answer = support::post(self.inner.http(), &url, &notify::form_headers(), &body)
            .await
            .unwrap_or_else(|e| panic!("fake Alipay could not reach {url}: {e}"));
        Some(answer)
    }

    /// Publishes (`true`) or withholds (`false`) the bill of `date`. Without this a day's bill
    /// exists once the day is over in Beijing: every date before today, none for today or later.
    pub fn set_bill_ready(&self, date: NaiveDate, ready: bool) {
        self.state().bill_ready.insert(date, ready);
    }

    /// The service fee Alipay charges this app, in basis points of each payment (default 60,
    /// i.e. 0.60%); a refund gives back the same rate of what it refunds.
    pub fn set_fee_rate_bp(&self, app_id: &str, bp: u32) {
        self.state().fee_rate_bp.insert(app_id.to_owned(), bp);
    }

    /// Makes the payment row of `out_trade_no` print exactly `fen` as its 服务费, sign
    /// included (`-5` prints `-0.05`), whatever the rate says; the totals add what is printed.
    pub fn set_fee_override(&self, out_trade_no: &str, fen: i64) {
        self.state()
            .fee_override
            .insert(out_trade_no.to_owned(), fen);
    }

    /// Spoils the next bill download (only that one) in the way `fault` says.
    pub fn corrupt_next_bill(&self, fault: BillFault) {
        self.state().bill_fault = Some(fault);
    }

    /// The trade bill archive of `app_id` for `date` as a download would serve it now, but
    /// without a pending fault and without counting a download, whether or not the day is
    /// ready.
    pub fn trade_bill(&self, app_id: &str, date: NaiveDate) -> Vec<u8> {
        let files = bill::write(&self.state(), app_id, date, None);
        bill::archive(&files, None)
    }

    /// Puts a trade paid at `paid_at` straight into the fake, as if precreated, scanned and
    /// paid then (for bills with many rows); replaces an order with the same number.
    pub fn seed_paid_order(
        &self,
        app_id: &str,
        out_trade_no: &str,
        total_fen: i64,
        paid_at: DateTime<Utc>,
    ) {
        let order = seeded_order(
            &self.inner.public_base,
            app_id,
            out_trade_no,
            total_fen,
            paid_at,
        );
        self.state()
            .orders
            .insert((app_id.to_owned(), out_trade_no.to_owned()), order);
    }

    /// Records a refund of a paid trade made at `at`, as `alipay.trade.refund` would (the
    /// trade closes once everything is refunded) but without checking the amount. False if
    /// the trade is not there or was never paid, or `out_request_no` is taken.
    pub fn seed_refund(
        &self,
        app_id: &str,
        out_trade_no: &str,
        out_request_no: &str,
        amount_fen: i64,
        at: DateTime<Utc>,
    ) -> bool {
        let mut state = self.state();
        let key = (app_id.to_owned(), out_trade_no.to_owned());
        let paid = state.orders.get(&key).is_some_and(FakeOrder::was_paid);
        if !paid
            || state
                .refund_at(app_id, out_trade_no, out_request_no)
                .is_some()
        {
            return false;
        }
        let at = at.with_timezone(&support::BEIJING);
        state
            .add_refund(&key, out_request_no, amount_fen, None, at)
            .is_some()
    }

    /// The next request that passes the signature check answers this error, signed: e.g.
    /// (`"20000"`, `"isp.unknow-error"`) or (`"40004"`, `"ACQ.SYSTEM_ERROR"`).
    pub fn fail_next(&self, code: &str, sub_code: &str) {
        self.state().fail_next = Some((code.to_owned(), sub_code.to_owned()));
    }

    /// The next signed answer carries a `sign` that does not verify.
    pub fn tamper_next_answer(&self) {
        self.state().tamper_next = true;
    }

    /// How many requests named this `method` (e.g. `"alipay.trade.query"`), refused ones
    /// included; `""` counts requests without one, `"/pay"` the simulator page,
    /// `"/bill/download"` bill downloads (unknown tokens included).
    pub fn calls(&self, method: &str) -> usize {
        self.state().calls.get(method).copied().unwrap_or(0)
    }

    /// The order with this `out_trade_no` (in any app).
    pub fn order(&self, out_trade_no: &str) -> Option<FakeOrder> {
        self.state().order(out_trade_no).cloned()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}

impl Drop for FakeAlipay {
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

/// The merchant's 16-digit partner id (`2088…`) the fake gives an app: `2088` and the last 12
/// decimal digits of the 64-bit FNV-1a hash of the app id's bytes, so the same app id always
/// gets the same one.
pub fn partner_id(app_id: &str) -> String {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = app_id.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    format!("2088{:012}", hash % 1_000_000_000_000)
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

    fn scan(&mut self, out_trade_no: &str) -> bool {
        let Some(order) = self.order_mut(out_trade_no) else {
            return false;
        };
        if order.scanned
            || order.status != TradeStatus::WaitBuyerPay
            || expired(order.time_expire.as_deref())
        {
            return false;
        }
        let now = support::now_beijing();
        order.scanned = true;
        order.trade_no = Some(format!(
            "{}22001{}",
            now.format("%Y%m%d"),
            support::random_digits(15)
        ));
        order.buyer_id = Some(format!("2088{}", support::random_digits(12)));
        order.buyer_logon_id = Some(format!("159****{}", support::random_digits(4)));
        order.gmt_create = Some(support::alipay_time(now));
        true
    }

    fn pay(&mut self, out_trade_no: &str) -> bool {
        let scanned = self.order(out_trade_no).is_some_and(|o| o.scanned);
        if !scanned && !self.scan(out_trade_no) {
            return false;
        }
        let Some(order) = self.order_mut(out_trade_no) else {
            return false;
        };
        if order.status != TradeStatus::WaitBuyerPay || expired(order.time_expire.as_deref()) {
            return false;
        }
        order.status = TradeStatus::TradeSuccess;
        order.gmt_payment = Some(support::alipay_time(support::now_beijing()));
        true
    }
}

/// A trade as precreate, scan and pay would have left it, paid at `paid_at`.
fn seeded_order(
    public_base: &str,
    app_id: &str,
    out_trade_no: &str,
    total: i64,
    paid_at: DateTime<Utc>,
) -> FakeOrder {
    let paid_at = paid_at.with_timezone(&support::BEIJING);
    let paid_text = support::alipay_time(paid_at);
    FakeOrder {
        app_id: app_id.to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        subject: "账单测试订单".to_owned(),
        total,
        paid_total: None,
        time_expire: None,
        notify_url: None,
        qr_code: format!("{public_base}/pay/{out_trade_no}"),
        scanned: true,
        status: TradeStatus::TradeSuccess,
        trade_no: Some(format!(
            "{}22001{}",
            paid_at.format("%Y%m%d"),
            support::random_digits(15)
        )),
        buyer_id: Some(format!("2088{}", support::random_digits(12))),
        buyer_logon_id: Some(format!("159****{}", support::random_digits(4))),
        seller_id: partner_id(app_id),
        gmt_create: Some(paid_text.clone()),
        gmt_payment: Some(paid_text),
        gmt_close: None,
        times_created: 1,
        times_closed: 0,
        notifications_sent: 0,
        refunded_fen: 0,
    }
}

/// Whether a `yyyy-MM-dd HH:mm:ss` Beijing time has passed.
fn expired(time_expire: Option<&str>) -> bool {
    time_expire
        .and_then(gateway::parse_alipay_time)
        .is_some_and(|t| t < support::now_beijing())
}
