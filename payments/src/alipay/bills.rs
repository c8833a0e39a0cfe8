//! Alipay's daily trade bill: `alipay.data.dataservice.bill.downloadurl.query` names a URL; the
//! zip behind it is fetched with a plain GET. Nothing signs the file: the signed answer vouches
//! for the URL, and a truncated archive shows when it is read.

use std::io::Write;

use aws_lc_rs::digest;
use chrono::NaiveDate;
use serde_json::json;

use super::client::{AlipayApi, str_field};
use crate::{AlipayMerchant, Error, Result, bill::download};

impl AlipayApi {
    /// The download URL of the `trade` bill of `date`; [`Error::BillNotReady`] while Alipay has
    /// none.
    pub async fn bill_url(&self, m: &AlipayMerchant, date: NaiveDate) -> Result<String> {
        let biz = json!({ "bill_type": "trade", "bill_date": date.to_string() });
        match self
            .call(
                m,
                "alipay.data.dataservice.bill.downloadurl.query",
                &biz,
                None,
            )
            .await
        {
            Ok(node) => str_field(&node, "bill_download_url")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| Error::Malformed("bill answer without bill_download_url".into())),
            Err(e) if e.is_refusal("isp.bill_not_exist") => {
                Err(Error::BillNotReady(format!("Alipay bill of {date}: {e}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Downloads the archive at `url` into `out`, a chunk at a time. Returns its SHA-256, kept
    /// with the run so that the file reconciled can be named later.
    pub async fn download_bill(&self, url: &str, out: &mut impl Write) -> Result<String> {
        download(self.http().get(url), out, &digest::SHA256).await
    }
}
