//! A small memo of what a sender looks up for every message but rarely changes (a tenant's
//! templates, an app's credentials): each entry is kept for a short while, so that a change an
//! operator makes takes effect within that while, and a notice to 100,000 people does not read
//! the same row 100,000 times.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(super) struct Memo<K, V> {
    ttl: Duration,
    entries: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, (Instant, V)>,
    /// The size at which stale entries are swept next: twice what the last sweep left, so that
    /// sweeping costs O(1) per entry however many are fresh.
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 4096;

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    pub(super) fn new(ttl: Duration) -> Self {
        Memo {
            ttl,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// The kept value of `key`, if it is younger than the memo's time to live.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    pub(super) fn put(&self, key: K, value: V) {
        self.put_at(key, value, Instant::now());
    }

    fn get_at(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put_at(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.map.len() >= entries.sweep_at {
            let ttl = self.ttl;
            entries
                .map
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            entries.sweep_at = entries.map.len().saturating_mul(2).max(FIRST_SWEEP);
        }
        entries.map.insert(key, (now, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_for_its_time_to_live_only() {
        let memo = Memo::new(Duration::from_secs(30));
        let t0 = Instant::now();
        memo.put_at("a", 1, t0);
        assert_eq!(memo.get_at(&"a", t0 + Duration::from_secs(29)), Some(1));
        assert_eq!(memo.get_at(&"a", t0 + Duration::from_secs(30)), None);
        assert_eq!(memo.get_at(&"b", t0), None);
        memo.put_at("a", 2, t0 + Duration::from_secs(31));
        assert_eq!(memo.get_at(&"a", t0 + Duration::from_secs(32)), Some(2));
    }

    #[test]
    fn stale_entries_are_swept_and_fresh_ones_kept() {
        let memo = Memo::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..FIRST_SWEEP {
            memo.put_at(i, i, t0);
        }
        // The next insert sweeps: all stale by then.
        memo.put_at(usize::MAX, 0, t0 + Duration::from_secs(11));
        let entries = memo.entries.lock().unwrap();
        assert_eq!(entries.map.len(), 1);
        assert_eq!(entries.sweep_at, FIRST_SWEEP);
        drop(entries);
        // Fresh ones survive a sweep, and the next sweep waits for twice as many.
        let memo = Memo::new(Duration::from_secs(10));
        for i in 0..=FIRST_SWEEP {
            memo.put_at(i, i, t0);
        }
        let entries = memo.entries.lock().unwrap();
        assert_eq!(entries.map.len(), FIRST_SWEEP + 1);
        assert_eq!(entries.sweep_at, FIRST_SWEEP * 2);
    }
}
