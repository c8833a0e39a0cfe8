use async_graphql::{Enum, ID, Object};
use chrono::{DateTime, Utc};

use super::db::NoticeRow;

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NoticeAudience {
    /// Everyone in the company.
    Tenant,
    /// Everyone in one branch.
    Branch,
    /// Named users.
    Users,
}

impl NoticeAudience {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeAudience::Tenant => "tenant",
            NoticeAudience::Branch => "branch",
            NoticeAudience::Users => "users",
        }
    }

    pub fn parse(s: &str) -> NoticeAudience {
        match s {
            "branch" => NoticeAudience::Branch,
            "users" => NoticeAudience::Users,
            _ => NoticeAudience::Tenant,
        }
    }
}

pub struct Notice {
    pub row: NoticeRow,
    pub read_at: Option<DateTime<Utc>>,
}

#[Object]
impl Notice {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.row.title
    }
    async fn body(&self) -> &str {
        &self.row.body
    }
    /// A page of the mini-program to open, or an https address.
    async fn link(&self) -> Option<&str> {
        self.row.link.as_deref()
    }
    async fn audience(&self) -> NoticeAudience {
        NoticeAudience::parse(&self.row.audience)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn read(&self) -> bool {
        self.read_at.is_some()
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }
}

/// A notice as it arrives live. Keep `eventId`: pass it as `after` when subscribing again to
/// receive what was missed while the socket was closed.
pub struct NoticeDelivery {
    pub event_id: i64,
    pub notice: NoticeRow,
}

#[Object]
impl NoticeDelivery {
    async fn event_id(&self) -> ID {
        ID(self.event_id.to_string())
    }
    async fn notice(&self) -> Notice {
        Notice {
            row: self.notice.clone(),
            read_at: None,
        }
    }
}
