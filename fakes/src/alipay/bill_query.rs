//! The trade bill's two steps: `alipay.data.dataservice.bill.downloadurl.query`, a signed
//! gateway call that answers a download URL, then a plain `GET /bill/download?token=…` of that
//! URL, unsigned, which answers the zip archive (`bill` writes it).
//!
//! A day's bill exists once the day is over in Beijing (Alipay publishes the bill of day D on
//! D+1), unless a test published or withheld it; asking for one that does not exist is
//! `isp.bill_not_exist`. A bad `bill_type` or `bill_date` is 40004 `isv.invalid-parameter`.
//! The archive is written when it is downloaded, from the trades as they are then, so a
//! pending `BillFault` spoils exactly one download.

use std::sync::Arc;

use chrono::NaiveDate;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::gateway::{Node, text};
use super::{Inner, State, bill};
use crate::support::{self, lock};

/// The only bill type the fake writes: trades and their refunds.
const BILL_TYPE: &str = "trade";

/// `alipay.data.dataservice.bill.downloadurl.query`.
pub(super) fn download_url(
    state: &mut State,
    public_base: &str,
    app_id: &str,
    biz: &Map<String, Value>,
) -> Node {
    if text(biz, "bill_type") != Some(BILL_TYPE) {
        return Node::business("isv.invalid-parameter", "参数无效: bill_type");
    }
    let Some(date) = text(biz, "bill_date").and_then(parse_bill_date) else {
        return Node::business("isv.invalid-parameter", "参数无效: bill_date");
    };
    if !state.bill_ready(date) {
        return Node::business("isp.bill_not_exist", "账单不存在");
    }
    let token = support::random_hex();
    state
        .bill_tokens
        .insert(token.clone(), (app_id.to_owned(), date));
    Node::success(json!({
        "bill_download_url": format!("{public_base}/bill/download?token={token}"),
    }))
}

/// `yyyy-MM-dd` exactly (a monthly `yyyy-MM` is a real Alipay bill the fake does not write).
fn parse_bill_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `GET /bill/download?token=…`: the archive, or 404 for a token the fake never gave.
pub(super) fn download(inner: &Arc<Inner>, query: &str) -> Response {
    let token = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (files, fault) = {
        let mut state = lock(&inner.state);
        *state.calls.entry("/bill/download".to_owned()).or_default() += 1;
        let Some((app_id, date)) = state.bill_tokens.get(&token).cloned() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let fault = state.bill_fault.take();
        (bill::write(&state, &app_id, date, fault), fault)
    };
    // Encoding and compressing happen outside the lock: they are the slow part.
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/octet-stream")
        .body(bill::archive(&files, fault))
}

impl State {
    /// Whether the bill of `date` can be had now.
    fn bill_ready(&self, date: NaiveDate) -> bool {
        self.bill_ready
            .get(&date)
            .copied()
            .unwrap_or_else(|| date < support::now_beijing().date_naive())
    }
}
