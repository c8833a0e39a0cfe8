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

mod gateway;
mod money;
mod notify;

pub use money::{format_yuan, parse_yuan};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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
    /// Notification deliveries attempted (by `notify` or the simulator).
    pub notifications_sent: usize,
}

impl FakeOrder {
    /// What Alipay reports as paid: `paid_total` when a test set it, else `total`.
    pub fn reported_total(&self) -> i64 {
        self.paid_total.unwrap_or(self.total)
    }
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
    /// method name (`""` when missing, `"/pay"` for the simulator page) → requests
    calls: HashMap<String, usize>,
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
    /// do not parse.
    pub fn add_app(&self, app: AlipayApp) {
        let verifier = RsaVerifier::from_pem(&app.app_public_pem);
        let signer = RsaSigner::from_pem(&app.alipay_private_pem);
        let mut state = self.state();
        let seller_id = format!("2088{:012}", state.apps.len() + 1);
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
    /// included; `""` counts requests without one, `"/pay"` the simulator page.
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

/// Whether a `yyyy-MM-dd HH:mm:ss` Beijing time has passed.
fn expired(time_expire: Option<&str>) -> bool {
    time_expire
        .and_then(gateway::parse_alipay_time)
        .is_some_and(|t| t < support::now_beijing())
}
