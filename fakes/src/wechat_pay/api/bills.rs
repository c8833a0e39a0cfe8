//! `GET /v3/bill/tradebill` and `GET /v3/billdownload/file`.
//!
//! The first answers, signed, the SHA-1 and the download URL of the merchant's bill of a day
//! (making the file then); the second serves that file's bytes, unsigned, to the merchant the
//! token was issued to. Both are authenticated like every v3 request, the download with the
//! path and query of the URL as the canonical URL.

use chrono::NaiveDate;
use poem::http::StatusCode;
use serde_json::{Value, json};

use super::{Call, Refusal};
use crate::support;
use crate::wechat_pay::State;
use crate::wechat_pay::bill::{self, Availability};

type Handled = Result<(StatusCode, Option<Value>), Refusal>;

pub(super) fn trade_bill(call: &Call<'_>, state: &mut State, mchid: &str) -> Handled {
    let date = bill_date(call)?;
    if call.query_param("bill_type").is_some_and(|t| t != "ALL") {
        return Err(Refusal::param(
            "query",
            "bill_type",
            "输入源“/query/bill_type”映射到字段“账单类型”校验失败：模拟器只提供ALL",
        ));
    }
    if call.query_param("tar_type").is_some() {
        return Err(Refusal::param(
            "query",
            "tar_type",
            "输入源“/query/tar_type”映射到字段“压缩类型”校验失败：模拟器只提供不压缩的账单",
        ));
    }
    let today = support::now_beijing().date_naive();
    match state.bills.availability(date, today) {
        Availability::Ready => {}
        Availability::Creating => {
            return Err(Refusal::new(400, "STATEMENT_CREATING", "账单生成中"));
        }
        Availability::Missing => {
            return Err(Refusal::new(400, "NO_STATEMENT_EXIST", "账单文件不存在"));
        }
        Availability::NotPast => {
            return Err(Refusal::param(
                "query",
                "bill_date",
                "输入源“/query/bill_date”映射到字段“账单日期”校验失败：只能下载今天以前的账单",
            ));
        }
    }
    let issued = bill::issue(state, mchid, date);
    let answer = json!({
        "hash_type": "SHA1",
        "hash_value": issued.hash_value,
        "download_url": format!(
            "{}/v3/billdownload/file?token={}",
            call.public_base, issued.token
        ),
    });
    Ok((StatusCode::OK, Some(answer)))
}

pub(super) fn download(call: &Call<'_>, state: &State, mchid: &str) -> Result<Vec<u8>, Refusal> {
    let token = call.query_param("token").unwrap_or_default();
    state
        .bills
        .file(&token, mchid)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            Refusal::param(
                "query",
                "token",
                "输入源“/query/token”映射到字段“token”校验失败：下载链接无效",
            )
        })
}

/// `bill_date`: exactly `YYYY-MM-DD`.
fn bill_date(call: &Call<'_>) -> Result<NaiveDate, Refusal> {
    let text = call.query_param("bill_date").ok_or_else(|| {
        Refusal::param(
            "query",
            "bill_date",
            "输入源“/query/bill_date”映射到字段“账单日期”必填性规则校验失败，此字段为必填项",
        )
    })?;
    let shaped = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped && text.as_bytes().get(7) == Some(&b'-'))
        .ok_or_else(|| {
            Refusal::param(
                "query",
                "bill_date",
                "输入源“/query/bill_date”映射到字段“账单日期”校验失败：格式须为YYYY-MM-DD",
            )
        })
}
