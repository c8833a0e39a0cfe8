//! The kinds of message minigate sends, how much each may wait, which payload fields it
//! carries, and the order of channels it tries: built in per kind, overridden per tenant by a
//! `push_route` row (DESIGN.md §5: subscribe message → template message → app push → in-app).

use async_graphql::Enum;
use minigate_push::delivery::{Channel, Class};
use minigate_store::{self as store, Conn, Id};

use crate::Result;

/// What a message is about; names its templates and its channel order.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[graphql(name = "PushKind")]
pub enum Kind {
    /// An operator published a notice.
    Notice,
    /// An accident's handling moved on.
    Accident,
    /// A payment was received.
    Payment,
    /// Rent is due tomorrow.
    RentDue,
    /// A traffic violation was recorded against the driver's vehicle.
    Violation,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Notice,
        Kind::Accident,
        Kind::Payment,
        Kind::RentDue,
        Kind::Violation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Notice => "NOTICE",
            Kind::Accident => "ACCIDENT",
            Kind::Payment => "PAYMENT",
            Kind::RentDue => "RENT_DUE",
            Kind::Violation => "VIOLATION",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Payments and accidents are never deferred by quiet hours or the daily cap.
    pub fn class(self) -> Class {
        match self {
            Kind::Payment | Kind::Accident => Class::Essential,
            Kind::Notice | Kind::RentDue | Kind::Violation => Class::Reminder,
        }
    }

    /// The order used when the tenant set none (DESIGN.md §5: subscribe message, template
    /// message, app push, in-app). A violation goes to the official account first: it is not
    /// something a driver asked to be told about, so there is rarely a subscribe consent for it.
    pub fn default_channels(self) -> &'static [Channel] {
        match self {
            Kind::Violation => &[
                Channel::Template,
                Channel::Subscribe,
                Channel::App,
                Channel::InApp,
            ],
            Kind::Notice | Kind::Accident | Kind::Payment | Kind::RentDue => &[
                Channel::Subscribe,
                Channel::Template,
                Channel::App,
                Channel::InApp,
            ],
        }
    }

    /// The payload fields a message of this kind carries, which a template's keywords may name.
    pub fn payload_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Notice => &["title", "excerpt", "at", "noticeId", "link"],
            Kind::Accident => &["accidentId", "status", "plate", "at", "note"],
            Kind::Payment => &["amount", "title", "at", "billId", "orderId"],
            Kind::RentDue => &["title", "amount", "dueDate", "billId"],
            Kind::Violation => &[
                "plate",
                "at",
                "place",
                "description",
                "fine",
                "points",
                "reference",
                "violationId",
            ],
        }
    }
}

/// Why a channel order cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    Empty,
    Unknown,
    Repeated,
    /// `IN_APP` sends nothing, so nothing after it would ever be tried.
    InAppNotLast,
}

impl RouteError {
    pub fn message(self) -> &'static str {
        match self {
            RouteError::Empty => "at least one channel",
            RouteError::Unknown => "channels are SUBSCRIBE, TEMPLATE, APP and IN_APP",
            RouteError::Repeated => "each channel at most once",
            RouteError::InAppNotLast => "IN_APP can only be the last channel",
        }
    }
}

/// Checks a channel order.
pub fn check(channels: &[Channel]) -> Result<(), RouteError> {
    if channels.is_empty() {
        return Err(RouteError::Empty);
    }
    if channels
        .iter()
        .enumerate()
        .any(|(i, c)| channels[..i].contains(c))
    {
        return Err(RouteError::Repeated);
    }
    if channels
        .iter()
        .position(|c| *c == Channel::InApp)
        .is_some_and(|i| i + 1 != channels.len())
    {
        return Err(RouteError::InAppNotLast);
    }
    Ok(())
}

/// Reads a stored order (`SUBSCRIBE,TEMPLATE,IN_APP`).
pub fn parse(text: &str) -> Result<Vec<Channel>, RouteError> {
    let channels = text
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| Channel::parse(c).ok_or(RouteError::Unknown))
        .collect::<Result<Vec<_>, _>>()?;
    check(&channels)?;
    Ok(channels)
}

/// Writes an order as stored.
pub fn format(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The order the tenant set for `kind`, if any.
pub async fn find(c: &mut Conn, tenant: Id, kind: Kind) -> Result<Option<Vec<Channel>>> {
    let stored: Option<String> = store::fetch_scalar_optional!(
        c,
        String,
        "select channels from push_route where tenant_id = $1 and kind = $2",
        tenant,
        kind.as_str()
    )?;
    Ok(stored.and_then(|s| match parse(&s) {
        Ok(channels) => Some(channels),
        Err(e) => {
            // Only `setPushRoute` writes the table, and it checks; a row edited by hand that
            // makes no sense must not stop messages.
            tracing::warn!(%tenant, kind = kind.as_str(), stored = %s, why = e.message(), "push route unusable; the built-in order applies");
            None
        }
    }))
}

/// The order new messages of `kind` take for `tenant`.
pub async fn channels(c: &mut Conn, tenant: Id, kind: Kind) -> Result<Vec<Channel>> {
    Ok(find(c, tenant, kind)
        .await?
        .unwrap_or_else(|| kind.default_channels().to_vec()))
}

/// Sets the tenant's order for `kind` (checked by the caller).
pub async fn set(c: &mut Conn, tenant: Id, kind: Kind, channels: &[Channel]) -> Result<()> {
    store::execute!(
        c,
        "insert into push_route (tenant_id, kind, channels) values ($1, $2, $3)
         on conflict (tenant_id, kind) do update set channels = excluded.channels, updated_at = now()",
        tenant,
        kind.as_str(),
        format(channels)
    )?;
    Ok(())
}

/// Goes back to the built-in order; whether the tenant had set one.
pub async fn reset(c: &mut Conn, tenant: Id, kind: Kind) -> Result<bool> {
    let n = store::execute!(
        c,
        "delete from push_route where tenant_id = $1 and kind = $2",
        tenant,
        kind.as_str()
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Channel::{App, InApp, Subscribe, Template};

    #[test]
    fn every_built_in_order_is_valid_and_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(check(k.default_channels()), Ok(()), "{k:?}");
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!(!k.payload_fields().is_empty());
        }
        assert_eq!(Kind::parse("nope"), None);
        assert_eq!(Kind::Payment.class(), Class::Essential);
        assert_eq!(Kind::Accident.class(), Class::Essential);
        assert_eq!(Kind::RentDue.class(), Class::Reminder);
        assert_eq!(Kind::Violation.default_channels()[0], Template);
    }

    #[test]
    fn orders_are_non_empty_without_repeats_and_in_app_last() {
        assert_eq!(check(&[]), Err(RouteError::Empty));
        assert_eq!(
            check(&[Template, Subscribe, Template]),
            Err(RouteError::Repeated)
        );
        assert_eq!(check(&[InApp, Template]), Err(RouteError::InAppNotLast));
        assert_eq!(check(&[InApp, InApp]), Err(RouteError::Repeated));
        assert_eq!(check(&[Template]), Ok(()));
        assert_eq!(check(&[App, Subscribe, InApp]), Ok(()));
        assert_eq!(check(&[InApp]), Ok(()));
    }

    #[test]
    fn stored_orders_parse_back() {
        let order = [Template, App, InApp];
        assert_eq!(parse(&format(&order)), Ok(order.to_vec()));
        assert_eq!(parse("TEMPLATE, IN_APP"), Ok(vec![Template, InApp]));
        assert_eq!(parse("TEMPLATE,SMS"), Err(RouteError::Unknown));
        assert_eq!(parse(""), Err(RouteError::Empty));
        assert_eq!(parse("IN_APP,TEMPLATE"), Err(RouteError::InAppNotLast));
    }
}
