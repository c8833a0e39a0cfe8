//! What the payment fakes share: binding a local port, Beijing time, ids, the lock, and the
//! retrying delivery of callbacks that the simulator pages start.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, Response, Server};

/// UTC+8: both providers write times in Beijing time.
pub(crate) const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// How long the simulator waits before each delivery attempt of a callback, and so how many
/// attempts it makes. The providers really retry over a day (WeChat 15s, 15s, 30s, 3m, …;
/// Alipay 4m, 10m, 10m, 1h, …); a developer trying the flow should not wait that long.
pub(crate) const DELIVERY_DELAYS: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(30),
    Duration::from_secs(30),
];

pub(crate) fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has already failed; keep serving the others.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bound local port, not yet served.
pub(crate) struct LocalListener {
    acceptor: TcpAcceptor,
    /// `http://127.0.0.1:PORT`
    pub(crate) base_url: String,
}

/// Binds 127.0.0.1 on a free port.
pub(crate) async fn bind_local(name: &str) -> LocalListener {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap_or_else(|e| panic!("{name} could not bind a local port: {e}"));
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or_else(|| panic!("{name} is not listening on a socket address"));
    LocalListener {
        acceptor,
        base_url: format!("http://{addr}"),
    }
}

impl LocalListener {
    /// Serves `endpoint` in a background task, which the caller aborts when done.
    pub(crate) fn serve<E>(self, endpoint: E) -> tokio::task::JoinHandle<()>
    where
        E: Endpoint<Output = Response> + 'static,
    {
        let acceptor = self.acceptor;
        tokio::spawn(async move {
            // Only ends when aborted, or if accepting fails, which the client then sees.
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        })
    }
}

pub(crate) fn now_beijing() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&BEIJING)
}

/// RFC 3339 with the +08:00 offset, as WeChat Pay writes times.
pub(crate) fn rfc3339(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// `yyyy-MM-dd HH:mm:ss`, as Alipay writes times (always Beijing time).
pub(crate) fn alipay_time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(crate) fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// 32 random hex characters.
pub(crate) fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `n` random decimal digits.
pub(crate) fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let v = uuid::Uuid::new_v4().as_u128();
        out.push_str(&format!("{:038}", v % 10u128.pow(38)));
    }
    out.truncate(n);
    out
}

/// The client the simulator and `notify` use to reach our callback routes: local, so never
/// through a proxy configured in the environment.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("the fake's HTTP client cannot be built: {e}"))
}

/// A callback delivery: the request to repeat and what counts as accepted.
pub(crate) struct Delivery {
    pub(crate) url: String,
    pub(crate) body: String,
    /// Builds the headers of each attempt (WeChat signs every attempt afresh).
    pub(crate) headers: Box<dyn Fn() -> Vec<(String, String)> + Send>,
    pub(crate) accepted: fn(u16, &str) -> bool,
}

/// One attempt: our status and body, or the transport error.
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = http.post(url).body(body.to_owned());
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((status, text))
}

/// Posts until accepted or out of attempts; `attempted` is told of each attempt's outcome.
pub(crate) async fn deliver_with_retries(
    http: reqwest::Client,
    delivery: Delivery,
    attempted: impl Fn(Option<(u16, String)>) + Send,
) {
    for delay in DELIVERY_DELAYS {
        tokio::time::sleep(delay).await;
        let headers = (delivery.headers)();
        let outcome = post(&http, &delivery.url, &headers, &delivery.body)
            .await
            .ok();
        let done = outcome
            .as_ref()
            .is_some_and(|(status, body)| (delivery.accepted)(*status, body));
        attempted(outcome);
        if done {
            return;
        }
    }
}

/// A small HTML page for the developer who opened the QR link.
pub(crate) fn simulator_page(
    status: StatusCode,
    title: &str,
    out_trade_no: &str,
    message: &str,
) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body><h1>{message}</h1><p>out_trade_no: <code>{no}</code></p>\
         <p>Development simulator: no money moves.</p></body></html>",
        no = escape_html(out_trade_no),
    );
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

fn escape_html(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Where a request to an OAuth-protected push API goes: its token endpoint, or a send for the
/// project or app named in `{prefix}{id}/messages:send` (FCM and Huawei both look like this).
pub(crate) enum PushRoute {
    Token,
    Send {
        id: String,
        authorization: Option<String>,
    },
}

/// Routes `req` by `token_path` and `send_prefix`; anything else is to be answered 404, a
/// method other than POST 405.
pub(crate) fn push_route(
    req: &poem::Request,
    token_path: &str,
    send_prefix: &str,
) -> Result<PushRoute, StatusCode> {
    let path = req.uri().path();
    let id = path
        .strip_prefix(send_prefix)
        .and_then(|rest| rest.strip_suffix("/messages:send"))
        .filter(|id| !id.is_empty() && !id.contains('/'));
    if path != token_path && id.is_none() {
        return Err(StatusCode::NOT_FOUND);
    }
    if req.method() != poem::http::Method::POST {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    Ok(match id {
        None => PushRoute::Token,
        Some(id) => PushRoute::Send {
            id: id.to_owned(),
            authorization: req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
    })
}
