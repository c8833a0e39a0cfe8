//! WeChat Pay's daily trade bill: `GET /v3/bill/tradebill` names a download URL and the file's
//! SHA-1; the download itself is signed as a request but its answer is not, so the file is
//! believed only once its digest matches the one the signed answer gave.

use std::io::Write;

use aws_lc_rs::digest;
use chrono::NaiveDate;
use reqwest::Method;
use serde::Deserialize;

use super::client::{WechatPayApi, parse};
use crate::{
    Error, Result, WechatMerchant,
    bill::{check_sha1, download},
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
        let request = self
            .http()
            .request(Method::GET, url)
            .header(reqwest::header::AUTHORIZATION, auth);
        let actual = download(request, out, &digest::SHA1_FOR_LEGACY_USE_ONLY).await?;
        check_sha1(&link.hash_value, &actual)?;
        Ok(actual)
    }
}
