//! The Markdown report: the conditions of the run and one table.

use std::fmt::Write as _;

use crate::{
    Args, Group, Results, cpu,
    stats::{median, percentile},
};

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "–".to_owned(),
        |u| format!("{:.2}", f64::from(u) / 1000.0),
    )
}

fn whole(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

pub fn render(args: &Args, cores: usize, r: &Results, problems: &[String]) -> String {
    let mut s = String::new();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let model = cpu::cpu_model().map_or_else(String::new, |m| format!(", {m}"));
    let _ = writeln!(s, "### {}\n", r.backend);
    let _ = writeln!(
        s,
        "{date}; {} {}, {cores} logical cores{model}; {} server worker threads; {} keep-alive \
         connections, {} s per scenario, {} rounds (interleaved), {} s warm-up per scenario.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        args.server_threads.unwrap_or(cores),
        args.connections,
        args.seconds,
        args.rounds,
        args.warmup,
    );
    let _ = writeln!(
        s,
        "| request | server | req/s (median) | ÷ bare req/s, median of rounds (each round) | p50 ms | p99 ms | server CPU µs/req | client CPU µs/req |"
    );
    let _ = writeln!(s, "|---|---|--:|---|--:|--:|--:|--:|");
    for group in [Group::Me, Group::Vehicles] {
        let in_group = || r.scenarios.iter().filter(move |x| x.group == group);
        let Some(bare) = in_group().find(|x| x.bare) else {
            continue;
        };
        let bare_rates = bare.per_second();
        for sc in in_group() {
            let rates = sc.per_second();
            let versus = if sc.bare {
                "1".to_owned()
            } else {
                // Each round's pair ran seconds apart; the median of those ratios is steadier
                // than the ratio of two medians when the machine's load changes between rounds.
                let ratios: Vec<f64> = rates.iter().zip(&bare_rates).map(|(m, b)| m / b).collect();
                let each: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
                format!("**{:.2}** ({})", median(&ratios), each.join(", "))
            };
            let lat = sc.latencies();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {versus} | {} | {} | {} | {} |",
                group.label(),
                sc.label,
                median(&rates),
                ms(percentile(&lat, 500)),
                ms(percentile(&lat, 990)),
                whole(sc.cpu_per_request(sc.server_cpu_us)),
                whole(sc.cpu_per_request(sc.client_cpu_us)),
            );
        }
    }
    let rounds: Vec<String> = r
        .scenarios
        .iter()
        .map(|sc| {
            let v: Vec<String> = sc.per_second().iter().map(|x| format!("{x:.0}")).collect();
            format!("{}: {}", sc.name(), v.join(", "))
        })
        .collect();
    let _ = writeln!(s, "\nreq/s per round — {}.", rounds.join("; "));
    if let (Some(a), Some(b)) = (r.rss_before_kib, r.rss_after_kib) {
        let _ = writeln!(
            s,
            "Process memory (RSS): {} MiB after warm-up, {} MiB at the end.",
            a / 1024,
            b / 1024
        );
    }
    for p in problems {
        let _ = writeln!(s, "Shutdown: {p}.");
    }
    s
}
