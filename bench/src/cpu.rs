//! CPU time of the process and of the load generator's threads, from `/proc` (Linux only; elsewhere
//! every reading is `None` and the report leaves the column empty).
//!
//! Client and servers share the machine's cores, so requests per second partly measure the load
//! generator. The CPU the servers spent per request (the process minus the client's threads) does
//! not depend on how fast the client is, which makes it the steadier comparison on a small
//! machine. It covers everything in this process except the client: poem, GraphQL, sqlx and, on
//! SQLite, the database itself; a PostgreSQL server's own processes are not counted.

use std::sync::{Arc, Mutex};

/// Kernel clock ticks per second of `utime`/`stime` (`USER_HZ`), 100 on every Linux architecture
/// in use.
const TICKS_PER_SECOND: u64 = 100;

/// The id of the calling thread.
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// User plus system time, in ticks, of a `/proc/…/stat` file.
fn ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may contain spaces; the fields after it start with
    // field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The threads that belong to the load generator.
#[derive(Clone, Default)]
pub struct ClientThreads(Arc<Mutex<Vec<u32>>>);

impl ClientThreads {
    /// Adds the calling thread.
    pub fn register_current(&self) {
        if let (Some(tid), Ok(mut v)) = (current_tid(), self.0.lock()) {
            v.push(tid);
        }
    }

    fn ticks(&self) -> Option<u64> {
        let tids = self.0.lock().ok()?.clone();
        // A thread that has ended no longer has a file; it counts for nothing from then on.
        Some(
            tids.iter()
                .filter_map(|t| ticks(&format!("/proc/self/task/{t}/stat")))
                .sum(),
        )
    }

    /// A reading of the process and the client's threads.
    pub fn sample(&self) -> Option<Sample> {
        Some(Sample {
            process: ticks("/proc/self/stat")?,
            client: self.ticks()?,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    process: u64,
    client: u64,
}

impl Sample {
    /// Microseconds of CPU spent outside the client between `self` and `later`.
    pub fn server_micros_until(self, later: Sample) -> u64 {
        let process = later.process.saturating_sub(self.process);
        let client = later.client.saturating_sub(self.client);
        process.saturating_sub(client) * (1_000_000 / TICKS_PER_SECOND)
    }

    /// Microseconds of CPU the client spent between `self` and `later`.
    pub fn client_micros_until(self, later: Sample) -> u64 {
        later.client.saturating_sub(self.client) * (1_000_000 / TICKS_PER_SECOND)
    }
}

/// Resident memory of the process in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    vm_rss("/proc/self/status")
}

/// Resident memory in KiB from a process's `status` file (`/proc/<pid>/status`).
pub fn vm_rss(path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The processor's name, from `/proc/cpuinfo`.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_is_read() {
        let dir = std::env::temp_dir().join(format!("minigate-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("stat");
        std::fs::write(
            &f,
            "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 0 0\n",
        )
        .unwrap();
        assert_eq!(ticks(f.to_str().unwrap()), Some(10));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
