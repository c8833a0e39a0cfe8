//! `/gateway.do`: the common parameters and their signature, then the methods: precreate,
//! query and close here, refunds in `refund`, the bill's download URL in `bill_query`. Also
//! routes the simulator page (`/pay/…`) and the unsigned bill download (`/bill/download`).
//!
//! Answers are `{"<method>_response": {...}, "sign": "..."}` where `sign` is RSA2 over the
//! node's exact text; the body is put together by string concatenation so the signed text
//! is byte for byte what the client receives. A request from an unknown app gets an unsigned
//! answer (there is no key to sign it with); every other answer is signed, gateway errors
//! (40001, 40002) included, as Alipay's invalid-signature answers are.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

use super::money::{format_yuan, parse_yuan};
use super::{FakeOrder, Inner, State, TradeStatus, bill_query, notify, refund};
use crate::keys::{RsaSigner, corrupt_signature};
use crate::support::{self, BEIJING, lock};

/// How far `timestamp` may be from now. Alipay does not document a window; this is generous.
const TIMESTAMP_TOLERANCE_SECS: i64 = 15 * 60;
const METHODS: [&str; 6] = [
    "alipay.trade.precreate",
    "alipay.trade.query",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.data.dataservice.bill.downloadurl.query",
];
/// Amounts Alipay accepts for one trade: 0.01 to 100,000,000.00 yuan.
const MAX_TOTAL_FEN: i64 = 10_000_000_000;

pub(super) struct AlipayEndpoint {
    pub(super) inner: Arc<Inner>,
}

impl Endpoint for AlipayEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let path = req.uri().path().to_owned();
        if let Some(out_trade_no) = path.strip_prefix("/pay/").filter(|n| !n.contains('/')) {
            if req.method() != Method::GET {
                return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
            }
            *lock(&self.inner.state)
                .calls
                .entry("/pay".to_owned())
                .or_default() += 1;
            let out_trade_no = form_urlencoded::parse(format!("n={out_trade_no}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            return Ok(notify::pay_page(&self.inner, &out_trade_no));
        }
        if path == "/bill/download" {
            if req.method() != Method::GET {
                return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
            }
            return Ok(bill_query::download(
                &self.inner,
                req.uri().query().unwrap_or(""),
            ));
        }
        if path != "/gateway.do" {
            return Ok(StatusCode::NOT_FOUND.into_response());
        }
        if req.method() != Method::POST && req.method() != Method::GET {
            return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
        }
        let params = request_params(&req, &body);
        let mut state = lock(&self.inner.state);
        let method = params.get("method").cloned().unwrap_or_default();
        *state.calls.entry(method).or_default() += 1;
        let reply = answer(&mut state, &self.inner.public_base, &params);
        drop(state);
        Ok(Response::builder()
            .status(StatusCode::OK)
            .content_type("text/html;charset=utf-8")
            .body(reply))
    }
}

/// The parameters from the query string and, for a form post, the body (which wins).
fn request_params(req: &Request, body: &[u8]) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if is_form {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    params
}

/// The text Alipay signs: every parameter with a value except those left out, sorted by name,
/// joined `k=v&k=v`.
pub(super) fn signing_content(params: &BTreeMap<String, String>, leave_out: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !leave_out.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub(super) fn parse_alipay_time(text: &str) -> Option<DateTime<FixedOffset>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()?
        .and_local_timezone(BEIJING)
        .single()
}

/// A result node: `code` 10000 with fields, or an error.
pub(super) struct Node {
    fields: Map<String, Value>,
}

impl Node {
    pub(super) fn success(fields: Value) -> Node {
        let mut node = Node::with_code("10000", "Success");
        if let Value::Object(extra) = fields {
            node.fields.extend(extra);
        }
        node
    }

    fn with_code(code: &str, msg: &str) -> Node {
        let mut fields = Map::new();
        fields.insert("code".to_owned(), json!(code));
        fields.insert("msg".to_owned(), json!(msg));
        Node { fields }
    }

    fn error(code: &str, sub_code: &str, sub_msg: &str) -> Node {
        let mut node = Node::with_code(code, code_msg(code));
        node.fields.insert("sub_code".to_owned(), json!(sub_code));
        node.fields.insert("sub_msg".to_owned(), json!(sub_msg));
        node
    }

    fn missing(sub_code: &str, sub_msg: &str) -> Node {
        Node::error("40001", sub_code, sub_msg)
    }

    fn invalid(sub_code: &str, sub_msg: &str) -> Node {
        Node::error("40002", sub_code, sub_msg)
    }

    pub(super) fn business(sub_code: &str, sub_msg: &str) -> Node {
        Node::error("40004", sub_code, sub_msg)
    }

    /// Adds the order's number, as Alipay's business errors about a trade do.
    pub(super) fn about(mut self, out_trade_no: &str) -> Node {
        self.fields
            .insert("out_trade_no".to_owned(), json!(out_trade_no));
        self
    }
}

/// The `msg` Alipay pairs with each gateway `code`.
fn code_msg(code: &str) -> &'static str {
    match code {
        "10000" => "Success",
        "20000" => "Service Currently Unavailable",
        "20001" => "Insufficient Token Permissions",
        "40001" => "Missing Required Arguments",
        "40002" => "Invalid Arguments",
        "40004" => "Business Failed",
        "40006" => "Insufficient Permissions",
        _ => "Unknown Error",
    }
}

/// The whole body: node text, then its signature over exactly that text.
fn envelope(node_name: &str, node: &Node, signer: Option<&RsaSigner>, tamper: bool) -> String {
    let node_text = Value::Object(node.fields.clone()).to_string();
    let name = Value::from(node_name).to_string();
    match signer {
        Some(signer) => {
            let mut sign = signer.sign(node_text.as_bytes());
            if tamper {
                sign = corrupt_signature(&sign);
            }
            format!("{{{name}:{node_text},\"sign\":{}}}", Value::from(sign))
        }
        None => format!("{{{name}:{node_text}}}"),
    }
}

fn answer(state: &mut State, public_base: &str, params: &BTreeMap<String, String>) -> String {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let method = get("method").filter(|m| METHODS.contains(m));
    let node_name = method
        .map(|m| format!("{}_response", m.replace('.', "_")))
        .unwrap_or_else(|| "error_response".to_owned());
    let signer = get("app_id")
        .and_then(|id| state.apps.get(id))
        .map(|app| app.signer.clone());
    let node = match check_common(state, params) {
        Err(node) => node,
        Ok(()) => match state.fail_next.take() {
            Some((code, sub_code)) => Node::error(&code, &sub_code, "模拟的错误 (injected)"),
            None => dispatch(state, public_base, params),
        },
    };
    let tamper = signer.is_some() && std::mem::take(&mut state.tamper_next);
    envelope(&node_name, &node, signer.as_ref(), tamper)
}

/// The common parameters, then the signature.
fn check_common(state: &State, params: &BTreeMap<String, String>) -> Result<(), Node> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let method =
        get("method").ok_or_else(|| Node::missing("isv.missing-method", "缺少方法名参数"))?;
    let app_id =
        get("app_id").ok_or_else(|| Node::missing("isv.missing-app-id", "缺少AppID参数"))?;
    let app = state
        .apps
        .get(app_id)
        .ok_or_else(|| Node::invalid("isv.invalid-app-id", "无效的AppID参数"))?;
    if !METHODS.contains(&method) {
        return Err(Node::invalid("isv.invalid-method", "不存在的方法名"));
    }
    if get("format").is_some_and(|f| !f.eq_ignore_ascii_case("json")) {
        return Err(Node::invalid("isv.invalid-format", "无效的数据格式"));
    }
    if get("charset").is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(Node::invalid("isv.invalid-charset", "字符集错误"));
    }
    let sign_type = get("sign_type")
        .ok_or_else(|| Node::missing("isv.missing-signature-type", "缺少签名类型参数"))?;
    if sign_type != "RSA2" {
        return Err(Node::invalid(
            "isv.invalid-signature-type",
            "无效的签名类型参数",
        ));
    }
    let sign = get("sign").ok_or_else(|| Node::missing("isv.missing-signature", "缺少签名参数"))?;
    let timestamp =
        get("timestamp").ok_or_else(|| Node::missing("isv.missing-timestamp", "缺少时间戳参数"))?;
    let fresh = parse_alipay_time(timestamp).is_some_and(|t| {
        (support::now_beijing() - t).num_seconds().abs() <= TIMESTAMP_TOLERANCE_SECS
    });
    if !fresh {
        return Err(Node::invalid("isv.invalid-timestamp", "非法的时间戳参数"));
    }
    let version =
        get("version").ok_or_else(|| Node::missing("isv.missing-version", "缺少版本参数"))?;
    if version != "1.0" {
        return Err(Node::invalid("isv.invalid-parameter", "参数无效: version"));
    }
    let content = signing_content(params, &["sign"]);
    if !app.verifier.verify(content.as_bytes(), sign) {
        return Err(Node::invalid(
            "isv.invalid-signature",
            &format!(
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"
            ),
        ));
    }
    Ok(())
}

fn dispatch(state: &mut State, public_base: &str, params: &BTreeMap<String, String>) -> Node {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let app_id = get("app_id").unwrap_or_default();
    let Some(Value::Object(biz)) = get("biz_content").and_then(|b| serde_json::from_str(b).ok())
    else {
        return Node::invalid("isv.invalid-parameter", "参数无效: biz_content");
    };
    match get("method").unwrap_or_default() {
        "alipay.trade.precreate" => precreate(state, public_base, app_id, &biz, get("notify_url")),
        "alipay.trade.query" => match find(state, app_id, &biz) {
            Ok(order) => Node::success(query_fields(order)),
            Err(node) => node,
        },
        "alipay.trade.close" => close(state, app_id, &biz),
        "alipay.trade.refund" => refund::refund(state, app_id, &biz),
        "alipay.trade.fastpay.refund.query" => refund::query(state, app_id, &biz),
        "alipay.data.dataservice.bill.downloadurl.query" => {
            bill_query::download_url(state, public_base, app_id, &biz)
        }
        _ => Node::invalid("isv.invalid-method", "不存在的方法名"),
    }
}

pub(super) fn text<'a>(biz: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    biz.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// A yuan amount given as a string or a JSON number, in fen. A JSON number's text is what was
/// written ("12.3"), so it parses exactly too.
pub(super) fn amount(biz: &Map<String, Value>, key: &str) -> Option<i64> {
    match biz.get(key) {
        Some(Value::String(s)) => parse_yuan(s),
        Some(Value::Number(n)) => parse_yuan(&n.to_string()),
        _ => None,
    }
}

pub(super) fn invalid_parameter(what: &str) -> Node {
    Node::business("ACQ.INVALID_PARAMETER", &format!("参数无效: {what}"))
}

fn precreate(
    state: &mut State,
    public_base: &str,
    app_id: &str,
    biz: &Map<String, Value>,
    notify_url: Option<&str>,
) -> Node {
    let Some(out_trade_no) = text(biz, "out_trade_no") else {
        return invalid_parameter("out_trade_no");
    };
    if !valid_out_trade_no(out_trade_no) {
        return invalid_parameter("out_trade_no 64个字符以内，仅支持字母、数字、下划线");
    }
    let Some(total) = amount(biz, "total_amount").filter(|t| *t >= 1) else {
        return invalid_parameter("total_amount");
    };
    if total > MAX_TOTAL_FEN {
        return Node::business("ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额");
    }
    let Some(subject) = text(biz, "subject").filter(|s| s.chars().count() <= 256) else {
        return invalid_parameter("subject");
    };
    let time_expire = text(biz, "time_expire");
    if time_expire.is_some_and(|t| parse_alipay_time(t).is_none()) {
        return invalid_parameter("time_expire");
    }
    let key = (app_id.to_owned(), out_trade_no.to_owned());
    if let Some(existing) = state.orders.get_mut(&key) {
        let node = match existing.status {
            TradeStatus::TradeSuccess => Node::business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
            TradeStatus::TradeClosed => Node::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"),
            TradeStatus::WaitBuyerPay
                if existing.total != total
                    || existing.subject != subject
                    || existing.time_expire.as_deref() != time_expire =>
            {
                Node::business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            }
            TradeStatus::WaitBuyerPay => {
                existing.times_created += 1;
                existing.notify_url = notify_url.map(str::to_owned);
                return Node::success(json!({
                    "out_trade_no": out_trade_no,
                    "qr_code": existing.qr_code,
                }));
            }
        };
        return node.about(out_trade_no);
    }
    let seller_id = state
        .apps
        .get(app_id)
        .map(|a| a.seller_id.clone())
        .unwrap_or_default();
    let qr_code = format!("{public_base}/pay/{out_trade_no}");
    state.orders.insert(
        key,
        FakeOrder {
            app_id: app_id.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            subject: subject.to_owned(),
            total,
            paid_total: None,
            time_expire: time_expire.map(str::to_owned),
            notify_url: notify_url.map(str::to_owned),
            qr_code: qr_code.clone(),
            scanned: false,
            status: TradeStatus::WaitBuyerPay,
            trade_no: None,
            buyer_id: None,
            buyer_logon_id: None,
            seller_id,
            gmt_create: None,
            gmt_payment: None,
            gmt_close: None,
            times_created: 1,
            times_closed: 0,
            notifications_sent: 0,
            refunded_fen: 0,
        },
    );
    Node::success(json!({ "out_trade_no": out_trade_no, "qr_code": qr_code }))
}

/// Up to 64 letters, digits and underscores, as precreate documents.
fn valid_out_trade_no(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The trade named by `trade_no` (preferred, as Alipay does) or `out_trade_no`, once scanned.
pub(super) fn find<'a>(
    state: &'a mut State,
    app_id: &str,
    biz: &Map<String, Value>,
) -> Result<&'a mut FakeOrder, Node> {
    let trade_no = text(biz, "trade_no");
    let out_trade_no = text(biz, "out_trade_no");
    if trade_no.is_none() && out_trade_no.is_none() {
        return Err(invalid_parameter("out_trade_no和trade_no不能同时为空"));
    }
    let not_exist = || {
        let node = Node::business("ACQ.TRADE_NOT_EXIST", "交易不存在");
        match out_trade_no {
            Some(no) => node.about(no),
            None => node,
        }
    };
    state
        .orders
        .values_mut()
        .find(|o| {
            o.app_id == app_id
                && o.scanned
                && match trade_no {
                    Some(t) => o.trade_no.as_deref() == Some(t),
                    None => Some(o.out_trade_no.as_str()) == out_trade_no,
                }
        })
        .ok_or_else(not_exist)
}

/// The trade as `alipay.trade.query` shows it. A trade closed by a full refund still shows
/// what was paid.
pub(super) fn query_fields(order: &FakeOrder) -> Value {
    let paid = order.was_paid();
    let paid_amount = format_yuan(if paid { order.reported_total() } else { 0 });
    let total = if paid {
        order.reported_total()
    } else {
        order.total
    };
    let mut v = json!({
        "trade_no": order.trade_no,
        "out_trade_no": order.out_trade_no,
        "buyer_logon_id": order.buyer_logon_id,
        "buyer_user_id": order.buyer_id,
        "trade_status": order.status.as_str(),
        "total_amount": format_yuan(total),
        "buyer_pay_amount": paid_amount,
        "receipt_amount": paid_amount,
        "invoice_amount": paid_amount,
        "point_amount": "0.00",
    });
    if paid {
        v["send_pay_date"] = json!(order.gmt_payment);
        v["fund_bill_list"] = json!([{ "fund_channel": "ALIPAYACCOUNT", "amount": paid_amount }]);
    }
    v
}

fn close(state: &mut State, app_id: &str, biz: &Map<String, Value>) -> Node {
    let order = match find(state, app_id, biz) {
        Ok(order) => order,
        Err(node) => return node,
    };
    if order.status != TradeStatus::WaitBuyerPay {
        return Node::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            .about(&order.out_trade_no);
    }
    order.status = TradeStatus::TradeClosed;
    order.gmt_close = Some(support::alipay_time(support::now_beijing()));
    order.times_closed += 1;
    Node::success(json!({ "trade_no": order.trade_no, "out_trade_no": order.out_trade_no }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_content_sorts_and_skips_empty_values() {
        let params = BTreeMap::from([
            ("sign".to_owned(), "x".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("empty".to_owned(), String::new()),
            ("sign_type".to_owned(), "RSA2".to_owned()),
        ]);
        assert_eq!(
            signing_content(&params, &["sign"]),
            "a=1&b=2&sign_type=RSA2"
        );
        assert_eq!(signing_content(&params, &["sign", "sign_type"]), "a=1&b=2");
    }

    #[test]
    fn the_signed_node_is_the_exact_text_in_the_body() {
        let node = Node::success(json!({ "qr_code": "https://x/pay/1", "subject": "租车 \"A\"" }));
        let body = envelope("alipay_trade_precreate_response", &node, None, false);
        let text = Value::Object(node.fields.clone()).to_string();
        assert_eq!(
            body,
            format!("{{\"alipay_trade_precreate_response\":{text}}}")
        );
    }
}
