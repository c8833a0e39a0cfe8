//! WeChat Pay's daily trade bill: `GET /v3/bill/tradebill` names a download URL and the file's
//! SHA-1; the download itself is signed as a request but its answer is not, so the file is
//! believed only once its digest matches the one the signed answer gave.

use std::io::Write;

use chrono::NaiveDate;
use reqwest::Method;
use serde::Deserialize;

use super::client::{WechatPayApi, parse};
use crate::bill::BILL_DOWNLOAD_TIMEOUT;
use crate::{
    Error, Result, WechatMerchant,
    bill::{Sha1Writer, check_sha1},
    http::unreachable,
};

/// Where a day's bill can be downloaded, and its digest.
#[derive(Debug, Clone, Deserialize)]
pub struct BillLink {
    pub hash_type: String,
    pub hash_value: String,
    pub download_url: String,
}

impl WechatPayApi {
    /// The link to the `ALL` trade bill of `date`. A bill WeChat Pay has not made yet (or has
    /// none of) is [`Error::BillNotReady`].
    pub async fn trade_bill(&self, m: &WechatMerchant, date: NaiveDate) -> Result<BillLink> {
        let path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");
        match self.call(m, Method::GET, &path, None).await {
            Ok(a) => {
                let link: BillLink = parse(&a.body)?;
                if !link.hash_type.eq_ignore_ascii_case("SHA1") {
                    return Err(Error::Malformed(format!(
                        "bill hash type {}",
                        link.hash_type
                    )));
                }
                Ok(link)
            }
            Err(e) if e.is_refusal("NO_STATEMENT_EXIST") || e.is_refusal("STATEMENT_CREATING") => {
                Err(Error::BillNotReady(format!(
                    "WeChat Pay bill of {date}: {e}"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Downloads the file behind `link` into `out`, a chunk at a time, and checks its SHA-1.
    /// Returns the digest.
    pub async fn download_bill(
        &self,
        m: &WechatMerchant,
        link: &BillLink,
        out: &mut impl Write,
    ) -> Result<String> {
        let url = reqwest::Url::parse(&link.download_url)
            .map_err(|_| Error::Malformed("bill download_url is not a URL".into()))?;
        let signed_path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let auth = m.key.authorization(
            "GET",
            &signed_path,
            chrono::Utc::now().timestamp(),
            &nonce,
            "",
        )?;
        let mut res = self
            .http()
            .request(Method::GET, url)
            .header(reqwest::header::AUTHORIZATION, auth)
            // A day's bill can be tens of megabytes: more than the API calls' overall timeout
            // allows.
            .timeout(BILL_DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        if !res.status().is_success() {
            return Err(Error::Refused {
                status: res.status().as_u16(),
                code: "DOWNLOAD_FAILED".into(),
                message: "the bill download was refused".into(),
            });
        }
        let mut hashing = Sha1Writer::new(out);
        while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(&e))? {
            hashing
                .write_all(&chunk)
                .map_err(|e| Error::Malformed(format!("bill file: {e}")))?;
        }
        hashing
            .flush()
            .map_err(|e| Error::Malformed(format!("bill file: {e}")))?;
        let (_, actual) = hashing.finish();
        check_sha1(&link.hash_value, &actual)?;
        Ok(actual)
    }
}
