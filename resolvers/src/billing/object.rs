use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use minigate_payments::money::format_yuan;

use super::db::{self, BillRow};
use crate::{
    Error, Result,
    registry::{Driver, Loaders},
};

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BillKind {
    Rent,
    Deposit,
    Fine,
    Purchase,
}

impl BillKind {
    /// The stored (and CSV) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BillKind::Rent => "rent",
            BillKind::Deposit => "deposit",
            BillKind::Fine => "fine",
            BillKind::Purchase => "purchase",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rent" => Some(BillKind::Rent),
            "deposit" => Some(BillKind::Deposit),
            "fine" => Some(BillKind::Fine),
            "purchase" => Some(BillKind::Purchase),
            _ => None,
        }
    }
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BillStatus {
    Open,
    Paid,
    Cancelled,
}

impl BillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::Open => db::OPEN,
            BillStatus::Paid => db::PAID,
            BillStatus::Cancelled => db::CANCELLED,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            db::OPEN => Some(BillStatus::Open),
            db::PAID => Some(BillStatus::Paid),
            db::CANCELLED => Some(BillStatus::Cancelled),
            _ => None,
        }
    }
}

/// A bill. A struct rather than a bare row so that edges (its payment orders) can be added
/// beside the row.
pub struct Bill {
    pub row: BillRow,
}

impl From<BillRow> for Bill {
    fn from(row: BillRow) -> Self {
        Bill { row }
    }
}

#[Object]
impl Bill {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn kind(&self) -> Result<BillKind> {
        BillKind::parse(&self.row.kind)
            .ok_or_else(|| Error::Internal(format!("bill kind '{}'", self.row.kind)))
    }
    async fn title(&self) -> &str {
        &self.row.title
    }
    /// The amount in fen (1 yuan = 100 fen).
    async fn amount_fen(&self) -> Result<i32> {
        i32::try_from(self.row.amount_fen)
            .map_err(|_| Error::Internal(format!("bill amount {}", self.row.amount_fen)))
    }
    /// The amount in yuan with two decimals, `"1200.00"`.
    async fn amount_yuan(&self) -> String {
        format_yuan(self.row.amount_fen)
    }
    /// The day the bill is due, `YYYY-MM-DD`, in Asia/Shanghai.
    async fn due_date(&self) -> String {
        self.row.due_date.format("%Y-%m-%d").to_string()
    }
    async fn status(&self) -> Result<BillStatus> {
        BillStatus::parse(&self.row.status)
            .ok_or_else(|| Error::Internal(format!("bill status '{}'", self.row.status)))
    }
    /// OPEN and due before today (Asia/Shanghai); a bill due today is not overdue yet.
    async fn overdue(&self) -> bool {
        super::is_overdue(&self.row.status, self.row.due_date, super::today())
    }
    /// The driver's name for a driver's bill, the consumer's otherwise.
    async fn payer_name(&self) -> &str {
        &self.row.payer_name
    }
    /// The paying driver; null for a consumer's bill. Personal data is masked as the registry
    /// masks it for the viewer.
    async fn driver(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Driver>> {
        let Some(id) = self.row.driver_id else {
            return Ok(None);
        };
        Ok(ctx
            .data::<Loaders>()?
            .drivers
            .load_one(id)
            .await?
            .map(Driver))
    }
    async fn branch_id(&self) -> Option<ID> {
        self.row.branch_id.map(|b| ID(b.to_string()))
    }
    async fn reference(&self) -> Option<&str> {
        self.row.reference.as_deref()
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.row.paid_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// The bill's payment orders, newest first: at most one waits to be paid (CREATED).
    async fn payments(&self, ctx: &Context<'_>) -> Result<Vec<crate::payment::Payment>> {
        let mut c = crate::viewer::deps(ctx)?.db.conn().await?;
        let orders = minigate_payments::orders::db::list_for_bill(&mut c, self.row.id).await?;
        Ok(orders.into_iter().map(crate::payment::Payment).collect())
    }
}
