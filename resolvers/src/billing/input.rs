use async_graphql::{ID, InputObject};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::NaiveDate;
use minigate_payments::money::{MAX_FEN, parse_yuan};
use minigate_store::Id;

use super::{BillKind, db::BillFields};
use crate::{
    Error, Result,
    registry::{db::DriverRow, input::parse_opt_id},
    validate,
};

#[derive(InputObject)]
pub struct CreateBillInput {
    pub kind: BillKind,
    /// 1 to 60 characters.
    pub title: String,
    /// 1 to 2,147,483,647 fen.
    pub amount_fen: i64,
    /// A calendar day in Asia/Shanghai, `YYYY-MM-DD`.
    pub due_date: String,
    /// The payer when it is a driver of the registry: the bill takes the driver's branch and
    /// name. Give this or `payerName`.
    pub driver_id: Option<ID>,
    /// The payer when it is a consumer without a driver record.
    pub payer_name: Option<String>,
    /// The branch of a consumer's bill (a driver's bill is in the driver's branch).
    pub branch_id: Option<ID>,
    /// The company's own number for the bill, unique in the company: 1 to 40 letters, digits,
    /// `-` or `_`. CSV imports match bills by it.
    pub reference: Option<String>,
}

/// Who pays a bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    /// A driver record of the tenant.
    Driver(Id),
    /// A consumer, by name.
    Consumer(String),
}

/// A bill's values after checking what can be checked without the database.
#[derive(Debug, Clone)]
pub struct BillDraft {
    pub kind: BillKind,
    pub title: String,
    pub amount_fen: i64,
    pub due_date: NaiveDate,
    pub payer: Payer,
    pub branch_id: Option<Id>,
    pub reference: Option<String>,
}

/// The input field names a draft's errors are reported under: GraphQL's arguments or a CSV
/// file's columns.
pub struct Fields {
    pub driver: &'static str,
    pub payer_name: &'static str,
    pub branch: &'static str,
}

pub const GRAPHQL_FIELDS: Fields = Fields {
    driver: "driverId",
    payer_name: "payerName",
    branch: "branchId",
};

pub const CSV_FIELDS: Fields = Fields {
    driver: "driver_phone",
    payer_name: "payer_name",
    branch: "branch_code",
};

impl BillDraft {
    /// The values to store. `driver` is the payer's driver record (already found in the tenant);
    /// a branch given with it must be the driver's.
    pub fn fields<'a>(
        &'a self,
        driver: Option<&'a DriverRow>,
        names: &Fields,
    ) -> Result<BillFields<'a>> {
        let (driver_id, payer_name, branch_id) = match (&self.payer, driver) {
            (Payer::Driver(id), Some(d)) if d.id == *id => {
                if self.branch_id.is_some_and(|b| b != d.branch_id) {
                    return Err(Error::invalid(
                        names.branch,
                        "a driver's bill belongs to the driver's branch",
                    ));
                }
                (Some(d.id), d.name.as_str(), Some(d.branch_id))
            }
            (Payer::Driver(_), _) => return Err(Error::invalid(names.driver, "no such driver")),
            (Payer::Consumer(name), _) => (None, name.as_str(), self.branch_id),
        };
        Ok(BillFields {
            kind: self.kind.as_str(),
            title: &self.title,
            amount_fen: self.amount_fen,
            due_date: self.due_date,
            driver_id,
            payer_name,
            branch_id,
            reference: self.reference.as_deref(),
        })
    }

    /// A digest of the draft, so that an `idempotencyKey` sent again with other values is
    /// refused instead of answered with the first bill.
    pub fn fingerprint(&self) -> String {
        let payer = match &self.payer {
            Payer::Driver(id) => serde_json::json!({ "driver": id }),
            Payer::Consumer(name) => serde_json::json!({ "consumer": name }),
        };
        let canonical = serde_json::json!([
            self.kind.as_str(),
            self.title,
            self.amount_fen,
            self.due_date.to_string(),
            payer,
            self.branch_id,
            self.reference,
        ]);
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

impl CreateBillInput {
    pub fn draft(&self) -> Result<BillDraft> {
        let title = check_title("title", &self.title)?;
        let amount_fen = check_amount("amountFen", self.amount_fen)?;
        let due_date = parse_due_date("dueDate", &self.due_date)?;
        let driver = parse_opt_id("driverId", self.driver_id.as_ref())?;
        let branch_id = parse_opt_id("branchId", self.branch_id.as_ref())?;
        let payer = match (driver, self.payer_name.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "payerName",
                    "give driverId or payerName, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "driverId",
                    "give driverId (a driver) or payerName (a consumer)",
                ));
            }
            (Some(d), None) => Payer::Driver(d),
            (None, Some(name)) => Payer::Consumer(check_payer_name("payerName", name)?),
        };
        let reference = self
            .reference
            .as_deref()
            .map(|r| check_reference("reference", r))
            .transpose()?;
        Ok(BillDraft {
            kind: self.kind,
            title,
            amount_fen,
            due_date,
            payer,
            branch_id,
            reference,
        })
    }
}

pub fn check_title(field: &str, title: &str) -> Result<String> {
    validate::name(field, title, 60)
}

pub fn check_payer_name(field: &str, name: &str) -> Result<String> {
    validate::name(field, name, 50)
}

pub fn check_amount(field: &str, fen: i64) -> Result<i64> {
    if (1..=MAX_FEN).contains(&fen) {
        Ok(fen)
    } else {
        Err(Error::invalid(field, format!("1 to {MAX_FEN} fen")))
    }
}

/// A yuan amount written by a person (`1200`, `1200.5`, `1200.50`), exactly, into fen.
pub fn parse_amount_yuan(field: &str, text: &str) -> Result<i64> {
    let fen = parse_yuan(text.trim()).map_err(|_| {
        Error::invalid(
            field,
            "yuan with at most two decimals, such as 1200 or 1200.50",
        )
    })?;
    check_amount(field, fen).map_err(|_| {
        Error::invalid(
            field,
            format!(
                "0.01 to {} yuan",
                minigate_payments::money::format_yuan(MAX_FEN)
            ),
        )
    })
}

/// A calendar day written `YYYY-MM-DD`, and a real one (no 30 February).
pub fn parse_due_date(field: &str, text: &str) -> Result<NaiveDate> {
    let t = text.trim();
    let shaped = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = shaped
        .then(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
        .flatten();
    date.ok_or_else(|| Error::invalid(field, "a calendar day written YYYY-MM-DD"))
}

/// 1 to 40 letters, digits, `-` or `_`.
pub fn check_reference(field: &str, reference: &str) -> Result<String> {
    let t = reference.trim();
    let ok = (1..=40).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(field, "1 to 40 letters, digits, '-' or '_'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_are_real_days_written_in_full() {
        assert_eq!(
            parse_due_date("d", " 2028-02-29 ").unwrap().to_string(),
            "2028-02-29"
        );
        for bad in [
            "2026-02-30",
            "2026-2-1",
            "2026/02/01",
            "20260201",
            "+2026-02-01",
            "2026-13-01",
            "",
        ] {
            assert!(parse_due_date("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yuan_amounts_are_exact_and_positive() {
        assert_eq!(parse_amount_yuan("a", "12").unwrap(), 1200);
        assert_eq!(parse_amount_yuan("a", "12.3").unwrap(), 1230);
        assert_eq!(parse_amount_yuan("a", "12.30").unwrap(), 1230);
        assert_eq!(parse_amount_yuan("a", "21474836.47").unwrap(), MAX_FEN);
        for bad in ["12.345", "-1", "1e3", "0", "0.00", "21474836.48", "abc"] {
            assert!(parse_amount_yuan("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_are_short_plain_codes() {
        assert_eq!(check_reference("r", " R-2026_01 ").unwrap(), "R-2026_01");
        for bad in ["", "a b", "租金1", &"x".repeat(41)] {
            assert!(check_reference("r", bad).is_err(), "{bad}");
        }
    }
}
