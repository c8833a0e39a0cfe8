//! Quiet hours and the daily cap: when a reminder or a marketing message may go out. Pure, so
//! that every edge (a window across midnight, the cap reached, an essential message at 3 a.m.) is
//! tested without a clock.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};

use minigate_store::BEIJING;

use super::Class;

/// A tenant's rules, in Asia/Shanghai time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Quiet hours as minutes after midnight: from `quiet_start` up to `quiet_end`, which may be
    /// earlier (the window wraps midnight). Equal means no quiet hours.
    pub quiet_start: u32,
    pub quiet_end: u32,
    /// Reminders and marketing messages one person gets a day.
    pub daily_cap: u32,
}

impl Default for Policy {
    /// 22:00 to 08:00, three a day.
    fn default() -> Self {
        Policy {
            quiet_start: 22 * 60,
            quiet_end: 8 * 60,
            daily_cap: 3,
        }
    }
}

/// What the rules say of a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Not before this instant.
    DeferUntil(DateTime<Utc>),
}

/// Whether a message of `class` may go now, given how many capped messages the person was sent
/// since local midnight.
pub fn decide(policy: &Policy, class: Class, now: DateTime<Utc>, sent_today: u32) -> Verdict {
    if class == Class::Essential {
        return Verdict::Send;
    }
    let local = now.with_timezone(&BEIJING);
    let minute = local.hour() * 60 + local.minute();
    if in_quiet_hours(policy, minute) {
        return Verdict::DeferUntil(next_local_minute(now, policy.quiet_end));
    }
    if sent_today >= policy.daily_cap {
        // Tomorrow, but not inside the quiet hours.
        let midnight = next_local_minute(now, 0);
        let after = if in_quiet_hours(policy, 0) {
            next_local_minute(midnight, policy.quiet_end)
        } else {
            midnight
        };
        return Verdict::DeferUntil(after);
    }
    Verdict::Send
}

fn in_quiet_hours(p: &Policy, minute: u32) -> bool {
    match p.quiet_start.cmp(&p.quiet_end) {
        std::cmp::Ordering::Equal => false,
        std::cmp::Ordering::Less => minute >= p.quiet_start && minute < p.quiet_end,
        std::cmp::Ordering::Greater => minute >= p.quiet_start || minute < p.quiet_end,
    }
}

/// The next instant strictly after `now` at which Beijing's clock shows `minute` after midnight.
fn next_local_minute(now: DateTime<Utc>, minute: u32) -> DateTime<Utc> {
    let tz = BEIJING;
    let local = now.with_timezone(&tz);
    let at = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or(NaiveTime::MIN);
    let today = local.date_naive().and_time(at);
    let candidate = tz
        .from_local_datetime(&today)
        .single()
        .map_or(now, |d| d.with_timezone(&Utc));
    if candidate > now {
        candidate
    } else {
        candidate + Duration::days(1)
    }
}

/// Local midnight (Asia/Shanghai) of the day `now` is in, for counting today's messages.
pub fn local_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    next_local_minute(now, 0) - Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // Beijing 2026-11-21 h:m
        BEIJING
            .with_ymd_and_hms(2026, 11, 21, h, m, 0)
            .single()
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn essential_messages_go_at_any_hour_and_past_any_cap() {
        let p = Policy::default();
        assert_eq!(decide(&p, Class::Essential, at(3, 0), 99), Verdict::Send);
    }

    #[test]
    fn quiet_hours_across_midnight_defer_to_their_end() {
        let p = Policy::default();
        let morning = BEIJING
            .with_ymd_and_hms(2026, 11, 22, 8, 0, 0)
            .single()
            .map(|d| d.with_timezone(&Utc));
        assert_eq!(
            Some(decide(&p, Class::Reminder, at(23, 30), 0)),
            morning.map(Verdict::DeferUntil)
        );
        assert_eq!(
            decide(&p, Class::Marketing, at(7, 59), 0),
            Verdict::DeferUntil(at(8, 0))
        );
        assert_eq!(decide(&p, Class::Reminder, at(8, 0), 0), Verdict::Send);
        assert_eq!(decide(&p, Class::Reminder, at(21, 59), 0), Verdict::Send);
        let none = Policy {
            quiet_start: 0,
            quiet_end: 0,
            daily_cap: 3,
        };
        assert_eq!(decide(&none, Class::Reminder, at(3, 0), 0), Verdict::Send);
        let day = Policy {
            quiet_start: 12 * 60,
            quiet_end: 14 * 60,
            daily_cap: 3,
        };
        assert_eq!(
            decide(&day, Class::Reminder, at(13, 0), 0),
            Verdict::DeferUntil(at(14, 0))
        );
    }

    #[test]
    fn the_cap_defers_to_the_first_minute_after_tomorrows_quiet_hours() {
        let p = Policy::default();
        let tomorrow_eight = BEIJING
            .with_ymd_and_hms(2026, 11, 22, 8, 0, 0)
            .single()
            .map(|d| d.with_timezone(&Utc));
        assert_eq!(decide(&p, Class::Reminder, at(10, 0), 2), Verdict::Send);
        assert_eq!(
            Some(decide(&p, Class::Reminder, at(10, 0), 3)),
            tomorrow_eight.map(Verdict::DeferUntil)
        );
        assert_eq!(local_midnight(at(10, 0)), at(0, 0));
    }
}
