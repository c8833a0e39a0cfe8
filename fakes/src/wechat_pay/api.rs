//! The HTTP side: routing, the checks WeChat Pay makes on every request, the order routes and
//! the platform certificate list. The refund routes are in [`refunds`], the bill routes in
//! [`bills`].
//!
//! Errors follow WeChat Pay's rules: a 4xx/5xx status with `{"code", "message"}` (and
//! `detail` for PARAM_ERROR). Only requests whose signature verified get signed answers: the
//! docs say WeChat Pay signs "对于签名验证成功的请求", so header and signature refusals come
//! unsigned.

mod bills;
mod refunds;

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{Method, StatusCode, Uri, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Value, json};

use super::{FakeOrder, Inner, Signer, State, TradeState, WechatPayRoute, notify};
use crate::support::{self, lock};

/// How far the Authorization timestamp may be from now.
const WINDOW_SECS: i64 = 5 * 60;
const AUTH_SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";

pub(super) struct WechatPayEndpoint {
    pub(super) inner: Arc<Inner>,
}

impl Endpoint for WechatPayEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let (route, path_id) = match parse_route(req.method(), req.uri().path()) {
            Ok(found) => found,
            Err(status) => return Ok(status.into_response()),
        };
        if route == WechatPayRoute::PayPage {
            *lock(&self.inner.state).calls.entry(route).or_default() += 1;
            return Ok(notify::pay_page(&self.inner, &path_id));
        }
        let mut state = lock(&self.inner.state);
        *state.calls.entry(route).or_default() += 1;
        let call = Call {
            req: &req,
            route,
            path_id: &path_id,
            body: &body,
            public_base: &self.inner.public_base,
        };
        let answer = call.answer(&mut state);
        drop(state);
        Ok(answer.into_response())
    }
}

/// The route, and the `out_trade_no` or `out_refund_no` in its path (empty for the routes
/// without one).
fn parse_route(method: &Method, path: &str) -> Result<(WechatPayRoute, String), StatusCode> {
    let (route, path_id, expected) = match path {
        "/v3/pay/transactions/jsapi" => (WechatPayRoute::Jsapi, String::new(), Method::POST),
        "/v3/pay/transactions/native" => (WechatPayRoute::Native, String::new(), Method::POST),
        "/v3/certificates" => (WechatPayRoute::Certificates, String::new(), Method::GET),
        "/v3/refund/domestic/refunds" => (WechatPayRoute::Refund, String::new(), Method::POST),
        "/v3/bill/tradebill" => (WechatPayRoute::TradeBill, String::new(), Method::GET),
        "/v3/billdownload/file" => (WechatPayRoute::BillDownload, String::new(), Method::GET),
        _ => {
            if let Some(no) = path
                .strip_prefix("/v3/refund/domestic/refunds/")
                .filter(|n| !n.is_empty() && !n.contains('/'))
            {
                (WechatPayRoute::RefundQuery, percent_decode(no), Method::GET)
            } else if let Some(rest) = path.strip_prefix("/v3/pay/transactions/out-trade-no/") {
                match rest.strip_suffix("/close") {
                    Some(no) if !no.contains('/') => {
                        (WechatPayRoute::Close, percent_decode(no), Method::POST)
                    }
                    None if !rest.contains('/') => {
                        (WechatPayRoute::Query, percent_decode(rest), Method::GET)
                    }
                    _ => return Err(StatusCode::NOT_FOUND),
                }
            } else if let Some(no) = path.strip_prefix("/pay/").filter(|n| !n.contains('/')) {
                (WechatPayRoute::PayPage, percent_decode(no), Method::GET)
            } else {
                return Err(StatusCode::NOT_FOUND);
            }
        }
    };
    if *method != expected {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    Ok((route, path_id))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A refusal in WeChat Pay's shape.
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
    detail: Option<Value>,
}

impl Refusal {
    fn new(status: u16, code: &str, message: &str) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_owned(),
            message: message.to_owned(),
            detail: None,
        }
    }

    /// What [`super::FakeWechatPay::fail_next`] makes the next call answer, with WeChat's
    /// message for the codes it documents.
    fn injected(status: u16, code: &str) -> Refusal {
        let message = match code {
            "SYSTEM_ERROR" => "系统错误",
            "FREQUENCY_LIMITED" => "频率超限",
            "NOT_ENOUGH" => "基本账户余额不足，请充值后重新发起",
            _ => "模拟的错误 (injected)",
        };
        Refusal::new(status, code, message)
    }

    fn sign_error(message: &str) -> Refusal {
        Refusal::new(401, "SIGN_ERROR", message)
    }

    fn invalid_request(message: &str) -> Refusal {
        Refusal::new(400, "INVALID_REQUEST", message)
    }

    /// PARAM_ERROR pointing at the field (a JSON pointer in the body, or a query name).
    fn param(location: &str, field: &str, message: &str) -> Refusal {
        Refusal {
            detail: Some(json!({ "location": location, "field": field })),
            ..Refusal::new(400, "PARAM_ERROR", message)
        }
    }

    fn missing(field: &str) -> Refusal {
        Refusal::param(
            "body",
            field,
            &format!("输入源“/body{field}”映射到字段必填性规则校验失败，此字段为必填项"),
        )
    }

    fn invalid(field: &str, issue: &str) -> Refusal {
        Refusal::param(
            "body",
            field,
            &format!("输入源“/body{field}”映射到字段校验失败：{issue}"),
        )
    }

    fn body(&self) -> Value {
        let mut v = json!({ "code": self.code, "message": self.message });
        if let (Some(detail), Some(obj)) = (&self.detail, v.as_object_mut()) {
            obj.insert("detail".to_owned(), detail.clone());
        }
        v
    }
}

/// What a route answers when it does not refuse: JSON (or nothing), or a file.
enum Reply {
    Json(StatusCode, Option<Value>),
    /// Raw bytes, `application/octet-stream`, never signed (the bill download).
    File(Vec<u8>),
}

/// An answer ready to be written: signed when the request's signature verified.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    signer: Option<Signer>,
    tamper: bool,
    file: Option<Vec<u8>>,
}

impl Answer {
    fn unsigned(r: &Refusal) -> Answer {
        Answer {
            status: r.status,
            body: Some(r.body()),
            signer: None,
            tamper: false,
            file: None,
        }
    }

    fn file(bytes: Vec<u8>) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: None,
            signer: None,
            tamper: false,
            file: Some(bytes),
        }
    }

    fn into_response(self) -> Response {
        if let Some(bytes) = self.file {
            return Response::builder()
                .status(self.status)
                .header("Request-ID", request_id())
                .content_type("application/octet-stream")
                .body(bytes);
        }
        let text = self.body.map(|v| v.to_string()).unwrap_or_default();
        let mut builder = Response::builder()
            .status(self.status)
            .header("Request-ID", request_id());
        if let Some(signer) = &self.signer {
            for (name, value) in notify::signature_headers(signer, &text, self.tamper) {
                builder = builder.header(name, value);
            }
        }
        if text.is_empty() {
            builder.finish()
        } else {
            builder
                .content_type("application/json; charset=utf-8")
                .body(text)
        }
    }
}

fn request_id() -> String {
    format!("{}-0", support::random_hex().to_uppercase())
}

/// One API request being answered.
struct Call<'a> {
    req: &'a Request,
    route: WechatPayRoute,
    /// The `out_trade_no` or `out_refund_no` in the path, or empty.
    path_id: &'a str,
    body: &'a [u8],
    public_base: &'a str,
}

impl Call<'_> {
    fn answer(&self, state: &mut State) -> Answer {
        if let Err(r) = self.check_headers() {
            return Answer::unsigned(&r);
        }
        let mchid = match self.authenticate(state) {
            Ok(mchid) => mchid,
            Err(r) => return Answer::unsigned(&r),
        };
        let result = match state.fail_next.take() {
            Some((status, code)) => Err(Refusal::injected(status, &code)),
            None => self.dispatch(state, &mchid),
        };
        let (status, body) = match result {
            Ok(Reply::Json(status, body)) => (status, body),
            Ok(Reply::File(bytes)) => return Answer::file(bytes),
            Err(r) if r.status == StatusCode::UNAUTHORIZED => return Answer::unsigned(&r),
            Err(r) => (r.status, Some(r.body())),
        };
        Answer {
            status,
            body,
            signer: state.merchants.get(&mchid).map(|m| m.signer.clone()),
            tamper: std::mem::take(&mut state.tamper_next),
            file: None,
        }
    }

    /// The HTTP rules: a User-Agent, JSON accepted (or a file, on the bill download), JSON
    /// sent.
    fn check_headers(&self) -> Result<(), Refusal> {
        let headers = self.req.headers();
        let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if value(header::USER_AGENT).is_none_or(|ua| ua.trim().is_empty()) {
            return Err(Refusal::invalid_request("Http头缺少Accept或User-Agent"));
        }
        if let Some(accept) = value(header::ACCEPT) {
            let download = self.route == WechatPayRoute::BillDownload;
            let ok = accept.split(',').any(|part| {
                let media = part.split(';').next().unwrap_or("").trim();
                matches!(media, "application/json" | "application/*" | "*/*")
                    || (download && media == "application/octet-stream")
            });
            if !ok {
                return Err(Refusal::invalid_request(
                    "Http头Accept值必须为application/json",
                ));
            }
        }
        if *self.req.method() == Method::POST {
            let json = value(header::CONTENT_TYPE).is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
            if !json {
                return Err(Refusal::invalid_request(
                    "Http头Content-Type值必须为application/json",
                ));
            }
        }
        Ok(())
    }

    /// Checks Authorization and returns the merchant it names.
    fn authenticate(&self, state: &State) -> Result<String, Refusal> {
        let header = self
            .req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Refusal::sign_error("Http头缺少Authorization"))?;
        let params = parse_authorization(header)
            .ok_or_else(|| Refusal::sign_error("Authorization的认证类型或格式错误"))?;
        let get = |key: &str| {
            params
                .get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Refusal::sign_error(&format!("Authorization缺少{key}")))
        };
        let (mchid, nonce, signature, timestamp, serial) = (
            get("mchid")?,
            get("nonce_str")?,
            get("signature")?,
            get("timestamp")?,
            get("serial_no")?,
        );
        let merchant = state
            .merchants
            .get(mchid)
            .ok_or_else(|| Refusal::sign_error("商户号不存在"))?;
        if serial != merchant.serial {
            return Err(Refusal::sign_error("商户证书序列号有误"));
        }
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| Refusal::sign_error("Authorization的timestamp不是整数"))?;
        if (support::unix_now() - ts).abs() > WINDOW_SECS {
            return Err(Refusal::sign_error("Authorization的timestamp已过期"));
        }
        let verifies = |url: &str| {
            let mut message =
                format!("{}\n{url}\n{timestamp}\n{nonce}\n", self.req.method()).into_bytes();
            message.extend_from_slice(self.body);
            message.push(b'\n');
            merchant.verifier.verify(&message, signature)
        };
        // The client signs the path it requested; behind a nest (the gateway's simulator)
        // that includes the prefix, which poem strips from `uri()`.
        let requested = path_and_query(self.req.original_uri());
        let local = path_and_query(self.req.uri());
        if verifies(&requested) || (local != requested && verifies(&local)) {
            Ok(mchid.to_owned())
        } else {
            Err(Refusal::sign_error("签名错误，请检查签名"))
        }
    }

    fn dispatch(&self, state: &mut State, mchid: &str) -> Result<Reply, Refusal> {
        let json = match self.route {
            WechatPayRoute::Jsapi | WechatPayRoute::Native => self.create(state, mchid),
            WechatPayRoute::Query => self.query(state, mchid),
            WechatPayRoute::Close => self.close(state, mchid),
            WechatPayRoute::Certificates => certificates(state, mchid),
            WechatPayRoute::Refund => refunds::create(self, state, mchid),
            WechatPayRoute::RefundQuery => refunds::query(self, state, mchid),
            WechatPayRoute::TradeBill => bills::trade_bill(self, state, mchid),
            WechatPayRoute::BillDownload => {
                return bills::download(self, state, mchid).map(Reply::File);
            }
            WechatPayRoute::PayPage => Err(Refusal::new(404, "NOT_FOUND", "Not Found")),
        };
        json.map(|(status, body)| Reply::Json(status, body))
    }

    /// The query string's value for `name`, if present and not empty.
    fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }

    fn json_body(&self) -> Result<Value, Refusal> {
        serde_json::from_slice(self.body)
            .map_err(|_| Refusal::param("body", "", "请求体不是合法的JSON"))
    }

    fn create(
        &self,
        state: &mut State,
        mchid: &str,
    ) -> Result<(StatusCode, Option<Value>), Refusal> {
        let jsapi = self.route == WechatPayRoute::Jsapi;
        let order = parse_order(&self.json_body()?, jsapi, mchid)?;
        let merchant = state
            .merchants
            .get(mchid)
            .ok_or_else(|| Refusal::new(400, "MCH_NOT_EXISTS", "商户号不存在"))?;
        if !merchant.app_ids.contains(&order.appid) {
            return Err(Refusal::new(
                400,
                "APPID_MCHID_NOT_MATCH",
                "AppID和mch_id不匹配",
            ));
        }
        let key = (mchid.to_owned(), order.out_trade_no.clone());
        if let Some(existing) = state.orders.get_mut(&key) {
            match existing.state {
                TradeState::Success => return Err(Refusal::new(400, "ORDERPAID", "该订单已支付")),
                TradeState::Closed => {
                    return Err(Refusal::new(400, "ORDER_CLOSED", "订单已关闭"));
                }
                TradeState::NotPay => {}
            }
            if !same_order(existing, &order) {
                return Err(Refusal::new(403, "OUT_TRADE_NO_USED", "商户订单号重复"));
            }
            existing.times_created += 1;
            return Ok((StatusCode::OK, Some(created_answer(existing))));
        }
        let now = support::now_beijing();
        let mut order = order;
        if jsapi {
            order.prepay_id = Some(format!(
                "wx{}{}",
                now.format("%Y%m%d%H%M%S"),
                &support::random_hex()[..20]
            ));
        } else {
            order.code_url = Some(format!("{}/pay/{}", self.public_base, order.out_trade_no));
        }
        order.times_created = 1;
        let answer = created_answer(&order);
        state.orders.insert(key, order);
        Ok((StatusCode::OK, Some(answer)))
    }

    fn query(&self, state: &State, mchid: &str) -> Result<(StatusCode, Option<Value>), Refusal> {
        let query_mchid = self.query_param("mchid").ok_or_else(|| {
            Refusal::param(
                "query",
                "mchid",
                "输入源“/query/mchid”映射到字段“直连商户号”必填性规则校验失败，此字段为必填项",
            )
        })?;
        if query_mchid != mchid {
            return Err(Refusal::sign_error(
                "Authorization中的mchid与请求的mchid不一致",
            ));
        }
        let order = state
            .orders
            .get(&(mchid.to_owned(), self.path_id.to_owned()))
            .ok_or_else(|| Refusal::new(404, "ORDER_NOT_EXIST", "订单不存在"))?;
        Ok((StatusCode::OK, Some(notify::transaction_json(order))))
    }

    fn close(
        &self,
        state: &mut State,
        mchid: &str,
    ) -> Result<(StatusCode, Option<Value>), Refusal> {
        let body = self.json_body()?;
        let body_mchid = body
            .get("mchid")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Refusal::missing("/mchid"))?;
        if body_mchid != mchid {
            return Err(Refusal::sign_error(
                "Authorization中的mchid与请求的mchid不一致",
            ));
        }
        let order = state
            .orders
            .get_mut(&(mchid.to_owned(), self.path_id.to_owned()))
            .ok_or_else(|| Refusal::new(404, "ORDER_NOT_EXIST", "订单不存在"))?;
        if order.state == TradeState::Success {
            return Err(Refusal::new(400, "ORDERPAID", "该订单已支付"));
        }
        order.state = TradeState::Closed;
        order.times_closed += 1;
        Ok((StatusCode::NO_CONTENT, None))
    }
}

/// `GET /v3/certificates`: the merchant's published platform certificates, each PEM encrypted
/// with the APIv3 key (a fresh nonce each time, `associated_data` fixed to `certificate`). The
/// merchant is the one Authorization names: the route has no other parameter. (The optional
/// `algorithm_type` query is ignored: every certificate here is RSA.)
fn certificates(state: &State, mchid: &str) -> Result<(StatusCode, Option<Value>), Refusal> {
    let merchant = state
        .merchants
        .get(mchid)
        .ok_or_else(|| Refusal::new(400, "MCH_NOT_EXISTS", "商户号不存在"))?;
    let associated_data = "certificate";
    let data: Vec<Value> = state
        .certificates
        .get(mchid)
        .into_iter()
        .flatten()
        .map(|c| {
            let nonce = support::random_hex()[..12].to_owned();
            let ciphertext =
                notify::encrypt(&merchant.apiv3_key, &nonce, associated_data, c.pem.clone());
            json!({
                "serial_no": c.serial,
                "effective_time": c.effective_time,
                "expire_time": c.expire_time,
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": associated_data,
                    "ciphertext": ciphertext,
                },
            })
        })
        .collect();
    Ok((StatusCode::OK, Some(json!({ "data": data }))))
}

/// `WECHATPAY2-SHA256-RSA2048 k="v",k="v"` → the parameters, in any order.
fn parse_authorization(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.trim().strip_prefix(AUTH_SCHEMA)?;
    if !rest.starts_with(' ') {
        return None;
    }
    rest.split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned())
}

/// An order from a create request, checked field by field as WeChat Pay does.
fn parse_order(v: &Value, jsapi: bool, mchid: &str) -> Result<FakeOrder, Refusal> {
    let text = |ptr: &str| {
        v.pointer(ptr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let required = |ptr: &str| text(ptr).ok_or_else(|| Refusal::missing(ptr));
    let appid = required("/appid")?;
    let body_mchid = required("/mchid")?;
    if body_mchid != mchid {
        return Err(Refusal::sign_error(
            "Authorization中的mchid与请求的mchid不一致",
        ));
    }
    let description = required("/description")?;
    if description.chars().count() > 127 {
        return Err(Refusal::invalid("/description", "长度超过127"));
    }
    let out_trade_no = required("/out_trade_no")?;
    if !valid_out_trade_no(out_trade_no) {
        return Err(Refusal::invalid(
            "/out_trade_no",
            "要求6-32个字符，只能是数字、大小写字母_-|*",
        ));
    }
    let notify_url = required("/notify_url")?;
    if !(notify_url.starts_with("https://") || notify_url.starts_with("http://"))
        || notify_url.len() > 255
    {
        return Err(Refusal::invalid("/notify_url", "不是合法的URL"));
    }
    let time_expire = text("/time_expire");
    if time_expire.is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_err()) {
        return Err(Refusal::invalid("/time_expire", "不符合rfc3339标准格式"));
    }
    let total = v
        .pointer("/amount/total")
        .ok_or_else(|| Refusal::missing("/amount/total"))?
        .as_i64()
        .filter(|t| *t > 0)
        .ok_or_else(|| Refusal::invalid("/amount/total", "必须是大于0的整数"))?;
    if let Some(currency) = v.pointer("/amount/currency")
        && currency.as_str() != Some("CNY")
    {
        return Err(Refusal::invalid(
            "/amount/currency",
            "Currency code is invalid",
        ));
    }
    let payer_openid = if jsapi {
        Some(required("/payer/openid")?.to_owned())
    } else {
        None
    };
    Ok(FakeOrder {
        mch_id: mchid.to_owned(),
        appid: appid.to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        trade_type: if jsapi { "JSAPI" } else { "NATIVE" }.to_owned(),
        description: description.to_owned(),
        notify_url: notify_url.to_owned(),
        time_expire: time_expire.map(str::to_owned),
        total,
        paid_total: None,
        state: TradeState::NotPay,
        payer_openid,
        transaction_id: None,
        success_time: None,
        prepay_id: None,
        code_url: None,
        times_created: 0,
        times_closed: 0,
        notifications_sent: 0,
    })
}

/// 6 to 32 characters of digits, letters and `_-|*`, as the order APIs document.
fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

/// Whether a repeated create request carries the same order (WeChat refuses a changed one).
fn same_order(existing: &FakeOrder, new: &FakeOrder) -> bool {
    existing.trade_type == new.trade_type
        && existing.appid == new.appid
        && existing.description == new.description
        && existing.notify_url == new.notify_url
        && existing.time_expire == new.time_expire
        && existing.total == new.total
        && (new.trade_type != "JSAPI" || existing.payer_openid == new.payer_openid)
}

fn created_answer(order: &FakeOrder) -> Value {
    match (&order.prepay_id, &order.code_url) {
        (Some(prepay_id), _) => json!({ "prepay_id": prepay_id }),
        (None, Some(code_url)) => json!({ "code_url": code_url }),
        (None, None) => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parameters_come_in_any_order() {
        let h = r#"WECHATPAY2-SHA256-RSA2048 serial_no="ABC",mchid="1900",nonce_str="n",timestamp="1",signature="s=""#;
        let p = parse_authorization(h).unwrap_or_default();
        assert_eq!(p.get("mchid").map(String::as_str), Some("1900"));
        assert_eq!(p.get("signature").map(String::as_str), Some("s="));
        assert!(parse_authorization(r#"Bearer mchid="1""#).is_none());
        assert!(parse_authorization(r#"WECHATPAY2-SHA256-RSA2048mchid="1""#).is_none());
    }

    #[test]
    fn out_trade_no_rules_follow_the_docs() {
        assert!(valid_out_trade_no("abc_12-3"));
        assert!(valid_out_trade_no("a|b*c1"));
        assert!(!valid_out_trade_no("short"));
        assert!(!valid_out_trade_no(&"x".repeat(33)));
        assert!(!valid_out_trade_no("has space1"));
    }

    #[test]
    fn routes_are_matched_with_their_methods() {
        let q = parse_route(&Method::GET, "/v3/pay/transactions/out-trade-no/A%7CB123");
        assert_eq!(q.ok(), Some((WechatPayRoute::Query, "A|B123".to_owned())));
        let c = parse_route(
            &Method::POST,
            "/v3/pay/transactions/out-trade-no/AB1234/close",
        );
        assert_eq!(c.ok(), Some((WechatPayRoute::Close, "AB1234".to_owned())));
        assert_eq!(
            parse_route(&Method::GET, "/v3/certificates").ok(),
            Some((WechatPayRoute::Certificates, String::new()))
        );
        assert_eq!(
            parse_route(&Method::GET, "/v3/refund/domestic/refunds/R%40001").ok(),
            Some((WechatPayRoute::RefundQuery, "R@001".to_owned()))
        );
        assert_eq!(
            parse_route(&Method::POST, "/v3/refund/domestic/refunds").ok(),
            Some((WechatPayRoute::Refund, String::new()))
        );
        assert_eq!(
            parse_route(&Method::GET, "/v3/billdownload/file").ok(),
            Some((WechatPayRoute::BillDownload, String::new()))
        );
        assert_eq!(
            parse_route(&Method::POST, "/v3/bill/tradebill").err(),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            parse_route(&Method::GET, "/v3/pay/transactions/jsapi").err(),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            parse_route(&Method::GET, "/v3/other").err(),
            Some(StatusCode::NOT_FOUND)
        );
    }
}
