//! Bills: what drivers and consumers owe (rent, deposit, fine, purchase), in fen, due on a
//! calendar day in Asia/Shanghai. Operators create them through GraphQL, the CLI and CSV
//! imports; drivers list their own; anyone of the company may read a consumer's bill (the
//! consumer scanned its QR code). A payment order pays a bill and sets it PAID.

pub mod db;
pub mod import;
mod input;
mod mutation;
mod object;
mod query;

use chrono::{DateTime, NaiveDate, Utc};

pub use import::BillLine;
pub use input::{BillDraft, Payer};
pub use mutation::{BillingMutation, create_bill, create_from_line};
pub use object::{Bill, BillKind, BillStatus};
pub use query::{BillConnection, BillingQuery, may_read};

/// Business dates are Asia/Shanghai.
pub use minigate_store::BEIJING as SHANGHAI;

/// The calendar day in Asia/Shanghai at `at`.
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&SHANGHAI).date_naive()
}

/// Today in Asia/Shanghai.
pub fn today() -> NaiveDate {
    business_date(Utc::now())
}

/// Whether an OPEN bill due on `due_date` is late on `today`: the due day itself is not.
pub fn is_overdue(status: &str, due_date: NaiveDate, today: NaiveDate) -> bool {
    status == db::OPEN && due_date < today
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_dates_turn_at_midnight_in_shanghai_not_utc() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(business_date(at("2026-03-01T15:59:59Z")), d("2026-03-01"));
        assert_eq!(business_date(at("2026-03-01T16:00:00Z")), d("2026-03-02"));
        assert!(!is_overdue("OPEN", d("2026-03-01"), d("2026-03-01")));
        assert!(is_overdue("OPEN", d("2026-03-01"), d("2026-03-02")));
        assert!(!is_overdue("PAID", d("2026-03-01"), d("2026-03-02")));
    }
}
