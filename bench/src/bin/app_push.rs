//! App push benchmark: messages per second from minigate's FCM, APNs and Huawei Push Kit clients
//! to local fakes of the three providers, in one process.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin app_push --
//!     [--messages 30000] [--concurrency 64] [--rounds 3] [--warmup 2000] [--threads N] [--out FILE]
//! ```
//!
//! The fakes (`minigate_fakes::{fcm, apns, huawei}`, recording off: they check and count every
//! message but keep none) run on a runtime of their own; the clients (`minigate_push::app::AppPush`,
//! with the in-process token store) on another, each with one worker thread per core by default,
//! all in this process on this machine's cores. The fakes check what the real services check:
//! FCM's OAuth access token, APNs' ES256 provider token (verified once, then cached, as Apple
//! does) and HTTP/2, Huawei's access token, the message's shape and that the device is
//! registered. Every message goes to its own registered device.
//!
//! After a warm-up of `--warmup` messages per provider (connections, access and provider tokens),
//! each round sends `--messages` messages to each provider in turn, `--concurrency` sends in
//! flight (`buffer_unordered`, as the delivery worker does), the order of the providers rotated
//! from round to round so that each is measured beside the others under the same machine noise.
//! Every answer must be `SENT` and the fake must have accepted exactly the messages sent;
//! anything else fails the run.
//!
//! Reported per provider: messages per second in every round and their median, the median over
//! rounds of its rate divided by FCM's rate in the same round, the p50/p99 of single sends (from
//! the send's first poll to its answer, over every round), and the CPU time per 1,000 messages of
//! the whole process, split into the clients' threads and the fakes'. The table goes to standard
//! output; `--out` writes every figure as JSON.

#[allow(
    dead_code,
    reason = "shared with the main benchmark; not every helper is used here"
)]
#[path = "../cpu.rs"]
mod cpu;
#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../stats.rs"]
mod stats;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt as _;
use minigate_fakes::{apns::FakeApns, fcm::FakeFcm, huawei::FakeHuawei};
use minigate_push::{
    app::{
        AppMessage, AppPush, AppPushConfig, DeviceAnswer, Environment, Provider, apns::ApnsKey,
        fcm::FcmAccount, huawei::HuaweiApp, system_clock,
    },
    tokens::TokenStore,
};
use secrecy::SecretString;
use serde::Serialize;

use crate::{
    cpu::{ClientThreads, Sample},
    stats::{count_f64, median, percentile, u64_f64},
};

#[derive(Parser, Debug, Serialize)]
#[command(about = "App push: messages per second to fake FCM, APNs and Huawei, one process")]
struct Args {
    /// Messages per provider per round.
    #[arg(long, default_value_t = 30_000)]
    messages: usize,
    /// Sends in flight per provider.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Messages per provider before the first round, not counted.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
    /// Worker threads of the clients' runtime and, as many again, of the fakes' runtime
    /// (default: one per core each).
    #[arg(long)]
    threads: Option<usize>,
    /// Write every figure to this file as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
}

const PROJECT: &str = "bench";
const TEAM: &str = "TEAM4BENCH";
const KEY_ID: &str = "KEY4BENCH1";
const TOPIC: &str = "com.minigate.driver";
const HUAWEI_APP: &str = "10734021";
const HUAWEI_SECRET: &str = "secret";
/// How many failed answers a failed run quotes.
const QUOTED: usize = 5;

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("app push benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn name(p: Provider) -> &'static str {
    match p {
        Provider::Fcm => "FCM",
        Provider::Apns => "APNs",
        Provider::Huawei => "Huawei",
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.messages == 0 || args.rounds == 0 || args.concurrency == 0 {
        bail!("--messages, --rounds and --concurrency must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = args.threads.unwrap_or(cores).max(1);
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bench-fakes")
        .enable_all()
        .build()?;
    let client_threads = ClientThreads::default();
    client_threads.register_current(); // this thread drives the clients' main future
    let registered = client_threads.clone();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bench-clients")
        .on_thread_start(move || registered.register_current())
        .enable_all()
        .build()?;

    let fakes = fake_rt.block_on(Fakes::start());
    let devices = args.messages.max(args.warmup);
    let started = Instant::now();
    let bench = Bench::new(&fakes, devices)?;
    eprintln!(
        "fakes up, {devices} devices registered per provider in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let measured = client_rt.block_on(measure(args, &bench, &client_threads));
    drop(bench);
    drop(client_rt);
    drop(fakes);
    drop(fake_rt);
    let results = measured?;

    let report = render(args, cores, threads, &results);
    out(&report);
    if let Some(path) = &args.out {
        let json = serde_json::to_string_pretty(&Json::new(args, cores, threads, &results))?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

struct Fakes {
    fcm: FakeFcm,
    apns: FakeApns,
    huawei: FakeHuawei,
}

impl Fakes {
    async fn start() -> Fakes {
        let fakes = Fakes {
            fcm: FakeFcm::start().await,
            apns: FakeApns::start().await,
            huawei: FakeHuawei::start().await,
        };
        fakes.fcm.set_recording(false);
        fakes.apns.set_recording(false);
        fakes.huawei.set_recording(false);
        fakes
    }

    /// (messages accepted, requests received) so far.
    fn counts(&self, p: Provider) -> (usize, usize) {
        match p {
            Provider::Fcm => (self.fcm.accepted(), self.fcm.sends()),
            Provider::Apns => (self.apns.accepted(), self.apns.sends()),
            Provider::Huawei => (self.huawei.accepted(), self.huawei.sends()),
        }
    }
}

/// The clients, their credentials and the registered devices.
struct Bench<'f> {
    fakes: &'f Fakes,
    push: AppPush,
    fcm: FcmAccount,
    apns: ApnsKey,
    huawei: HuaweiApp,
    /// Registered device tokens per provider, in `Provider::ALL` order.
    devices: [Vec<String>; 3],
}

impl<'f> Bench<'f> {
    fn new(fakes: &'f Fakes, devices: usize) -> anyhow::Result<Self> {
        let push = AppPush::new(
            &AppPushConfig {
                fcm_api_base: fakes.fcm.base_url.clone(),
                apns_production: fakes.apns.base_url.clone(),
                apns_sandbox: fakes.apns.base_url.clone(),
                huawei_oauth_url: format!("{}/oauth2/v3/token", fakes.huawei.base_url),
                huawei_api_base: fakes.huawei.base_url.clone(),
                timeout: Duration::from_secs(10),
            },
            TokenStore::local(),
            system_clock(),
        )?;
        let fcm = FcmAccount::from_key_file(&fakes.fcm.add_project(PROJECT))?;
        let apns = ApnsKey::new(TEAM, KEY_ID, TOPIC, &fakes.apns.add_key(TEAM, KEY_ID))?;
        fakes.huawei.add_app(HUAWEI_APP, HUAWEI_SECRET);
        let huawei = HuaweiApp::new(HUAWEI_APP, SecretString::from(HUAWEI_SECRET))?;
        // Tokens about as long as the real ones: FCM's about 160 characters, APNs' 64 hex
        // digits, Huawei's about 130.
        let fcm_tokens: Vec<String> = (0..devices)
            .map(|i| format!("f{i:08}:APA91b{}", "Xq7_kR2mZ-".repeat(14)))
            .collect();
        let apns_tokens: Vec<String> = (0..devices)
            .map(|i| format!("{i:016x}").repeat(4))
            .collect();
        let huawei_tokens: Vec<String> = (0..devices)
            .map(|i| format!("IQAAAACy{i:08}{}", "0Fq9TzLw3k".repeat(11)))
            .collect();
        for t in &fcm_tokens {
            fakes.fcm.add_device(PROJECT, t);
        }
        for t in &apns_tokens {
            fakes.apns.add_device(TOPIC, t);
        }
        for t in &huawei_tokens {
            fakes.huawei.add_device(HUAWEI_APP, t);
        }
        Ok(Bench {
            fakes,
            push,
            fcm,
            apns,
            huawei,
            devices: [fcm_tokens, apns_tokens, huawei_tokens],
        })
    }

    fn devices(&self, p: Provider) -> &[String] {
        let i = match p {
            Provider::Fcm => 0,
            Provider::Apns => 1,
            Provider::Huawei => 2,
        };
        &self.devices[i]
    }

    async fn send(&self, p: Provider, device: &str, msg: &AppMessage) -> DeviceAnswer {
        match p {
            Provider::Fcm => self.push.fcm.send(&self.fcm, device, msg).await,
            Provider::Apns => {
                self.push
                    .apns
                    .send(&self.apns, Environment::Production, device, msg)
                    .await
            }
            Provider::Huawei => self.push.huawei.send(&self.huawei, device, msg).await,
        }
    }

    /// Sends `n` messages to `p`, one per device, `concurrency` in flight; fails unless every
    /// answer is `SENT` and the fake accepted exactly `n` more.
    async fn batch(
        &self,
        p: Provider,
        n: usize,
        concurrency: usize,
        threads: &ClientThreads,
    ) -> anyhow::Result<Batch> {
        let devices = self.devices(p);
        // Made before the clock starts: the delivery worker has its messages from the outbox.
        let messages: Vec<AppMessage> = (0..n).map(|_| message()).collect();
        let (accepted_before, requests_before) = self.fakes.counts(p);
        let cpu_before = threads.sample();
        let started = Instant::now();
        let answers: Vec<(u32, Option<String>)> =
            futures_util::stream::iter(messages.iter().zip(devices.iter().cycle()))
                .map(|(msg, device)| async move {
                    let sent = Instant::now();
                    let answer = self.send(p, device, msg).await;
                    let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                    let failed = (answer.outcome.kind() != "SENT").then(|| format!("{answer:?}"));
                    (micros, failed)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let seconds = started.elapsed().as_secs_f64();
        let cpu_after = threads.sample();
        let (accepted_after, requests_after) = self.fakes.counts(p);

        let failed: Vec<&String> = answers.iter().filter_map(|a| a.1.as_ref()).collect();
        if let Some(first) = failed.first() {
            let quoted: Vec<&str> = failed.iter().take(QUOTED).map(|s| s.as_str()).collect();
            bail!(
                "{}: {} of {n} answers were not SENT, the first {first}; quoted: {}",
                name(p),
                failed.len(),
                quoted.join(" | ")
            );
        }
        let accepted = accepted_after - accepted_before;
        if accepted != n {
            bail!(
                "{}: the fake accepted {accepted} messages, {n} were sent",
                name(p)
            );
        }
        let mut latencies: Vec<u32> = answers.into_iter().map(|a| a.0).collect();
        latencies.sort_unstable();
        let cpu = match (cpu_before, cpu_after) {
            (Some(a), Some(b)) => Some(Cpu::between(a, b, n)),
            _ => None,
        };
        Ok(Batch {
            messages: n,
            seconds,
            requests: requests_after - requests_before,
            latencies,
            cpu,
        })
    }
}

/// A notification like the delivery engine's: a payment received, with the bill it links to.
fn message() -> AppMessage {
    AppMessage {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        title: "付款成功".to_owned(),
        body: "3月租金 已收到 1280.00元".to_owned(),
        data: BTreeMap::from([
            ("kind".to_owned(), "PAYMENT".to_owned()),
            (
                "billId".to_owned(),
                "0194f3c2-7b1e-7a44-9c2d-5e8f6a1b3c4d".to_owned(),
            ),
        ]),
        collapse_key: None,
        urgent: true,
    }
}

/// CPU seconds per 1,000 messages: the whole process, the clients' threads, the fakes'.
#[derive(Clone, Copy, Debug, Serialize)]
struct Cpu {
    process: f64,
    clients: f64,
    fakes: f64,
}

impl Cpu {
    fn between(a: Sample, b: Sample, n: usize) -> Cpu {
        // µs per message is ms per 1,000 messages; / 1000 gives seconds per 1,000.
        let per_thousand = |micros: u64| u64_f64(micros) / count_f64(n) / 1000.0;
        let clients = a.client_micros_until(b);
        let fakes = a.server_micros_until(b);
        Cpu {
            process: per_thousand(clients + fakes),
            clients: per_thousand(clients),
            fakes: per_thousand(fakes),
        }
    }
}

/// One provider's share of a round.
struct Batch {
    messages: usize,
    seconds: f64,
    /// Requests the fake received (more than `messages` if a token was refreshed on the way).
    requests: usize,
    /// Single sends' times in µs, sorted.
    latencies: Vec<u32>,
    cpu: Option<Cpu>,
}

impl Batch {
    fn per_second(&self) -> f64 {
        count_f64(self.messages) / self.seconds
    }
}

struct Results {
    started: chrono::DateTime<chrono::Utc>,
    warmup: Vec<(Provider, Batch)>,
    /// Per round, the providers in the order they ran.
    rounds: Vec<Vec<(Provider, Batch)>>,
}

impl Results {
    fn of(&self, p: Provider) -> impl Iterator<Item = &Batch> {
        self.rounds
            .iter()
            .filter_map(move |r| r.iter().find(|(q, _)| *q == p).map(|(_, b)| b))
    }

    fn rates(&self, p: Provider) -> Vec<f64> {
        self.of(p).map(Batch::per_second).collect()
    }

    /// Each round's rate of `p` divided by FCM's in the same round.
    fn ratios(&self, p: Provider) -> Vec<f64> {
        self.rates(p)
            .iter()
            .zip(self.rates(Provider::Fcm))
            .map(|(r, f)| r / f)
            .collect()
    }

    /// Every round's single sends, sorted.
    fn latencies(&self, p: Provider) -> Vec<u32> {
        let mut all: Vec<u32> = self.of(p).flat_map(|b| b.latencies.clone()).collect();
        all.sort_unstable();
        all
    }

    /// Median over rounds of each CPU figure.
    fn cpu(&self, p: Provider) -> Option<Cpu> {
        let cpus: Vec<Cpu> = self.of(p).map(|b| b.cpu).collect::<Option<_>>()?;
        let pick = |f: fn(&Cpu) -> f64| median(&cpus.iter().map(f).collect::<Vec<_>>());
        Some(Cpu {
            process: pick(|c| c.process),
            clients: pick(|c| c.clients),
            fakes: pick(|c| c.fakes),
        })
    }
}

async fn measure(
    args: &Args,
    bench: &Bench<'_>,
    threads: &ClientThreads,
) -> anyhow::Result<Results> {
    let started = chrono::Utc::now();
    let mut warmup = Vec::new();
    for p in Provider::ALL.into_iter().filter(|_| args.warmup > 0) {
        let b = bench
            .batch(p, args.warmup, args.concurrency, threads)
            .await?;
        eprintln!(
            "warm-up {}: {} messages in {:.2} s = {:.0}/s",
            name(p),
            b.messages,
            b.seconds,
            b.per_second()
        );
        warmup.push((p, b));
    }
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let mut order = Provider::ALL;
        order.rotate_left(round % Provider::ALL.len());
        let mut batches = Vec::new();
        for p in order {
            let b = bench
                .batch(p, args.messages, args.concurrency, threads)
                .await?;
            eprintln!(
                "round {} {}: {} messages in {:.2} s = {:.0}/s (p50 {} ms, p99 {} ms, process CPU {} s per 1,000)",
                round + 1,
                name(p),
                b.messages,
                b.seconds,
                b.per_second(),
                ms(percentile(&b.latencies, 500)),
                ms(percentile(&b.latencies, 990)),
                b.cpu
                    .map_or_else(|| "–".to_owned(), |c| format!("{:.3}", c.process)),
            );
            batches.push((p, b));
        }
        rounds.push(batches);
    }
    Ok(Results {
        started,
        warmup,
        rounds,
    })
}

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "–".to_owned(),
        |u| format!("{:.2}", f64::from(u) / 1000.0),
    )
}

fn cpu_cell(c: Option<Cpu>, f: fn(&Cpu) -> f64) -> String {
    c.map_or_else(|| "–".to_owned(), |c| format!("{:.3}", f(&c)))
}

/// Total memory, from `/proc/meminfo`.
fn memory_gib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(u64_f64(kib) / 1024.0 / 1024.0)
}

fn machine(cores: usize) -> String {
    let model = cpu::cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = memory_gib().map_or_else(String::new, |g| format!(", {g:.1} GiB"));
    format!(
        "{} {}, {cores} logical cores, {model}{memory}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn render(args: &Args, cores: usize, threads: usize, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {} — app push to fake FCM, APNs and Huawei, one process\n",
        r.started.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        s,
        "{}; {threads} client and {threads} fake worker threads; {} messages per provider per \
         round, {} sends in flight, {} rounds (providers interleaved, order rotated each round), \
         {} messages of warm-up per provider.\n",
        machine(cores),
        args.messages,
        args.concurrency,
        args.rounds,
        args.warmup,
    );
    let _ = writeln!(
        s,
        "| provider | messages/s per round | median | ÷ FCM, median of rounds (each round) | p50 ms | p99 ms | process CPU s / 1,000 msgs | clients | fakes |"
    );
    let _ = writeln!(s, "|---|---|--:|---|--:|--:|--:|--:|--:|");
    for p in Provider::ALL {
        let rates = r.rates(p);
        let each: Vec<String> = rates.iter().map(|x| format!("{x:.0}")).collect();
        let ratios = r.ratios(p);
        let versus = if p == Provider::Fcm {
            "1".to_owned()
        } else {
            let each: Vec<String> = ratios.iter().map(|x| format!("{x:.2}")).collect();
            format!("**{:.2}** ({})", median(&ratios), each.join(", "))
        };
        let lat = r.latencies(p);
        let cpu = r.cpu(p);
        let _ = writeln!(
            s,
            "| {} | {} | **{:.0}** | {versus} | {} | {} | {} | {} | {} |",
            name(p),
            each.join(", "),
            median(&rates),
            ms(percentile(&lat, 500)),
            ms(percentile(&lat, 990)),
            cpu_cell(cpu, |c| c.process),
            cpu_cell(cpu, |c| c.clients),
            cpu_cell(cpu, |c| c.fakes),
        );
    }
    let warm: Vec<String> = r
        .warmup
        .iter()
        .map(|(p, b)| format!("{} {:.0}", name(*p), b.per_second()))
        .collect();
    if !warm.is_empty() {
        let _ = writeln!(
            s,
            "\nWarm-up messages/s (not counted): {}.",
            warm.join(", ")
        );
    }
    let extra: Vec<String> = r
        .rounds
        .iter()
        .flatten()
        .filter(|(_, b)| b.requests != b.messages)
        .map(|(p, b)| {
            format!(
                "{} {} requests for {} messages",
                name(*p),
                b.requests,
                b.messages
            )
        })
        .collect();
    if !extra.is_empty() {
        let _ = writeln!(s, "Requests beyond one per message: {}.", extra.join("; "));
    }
    s
}

// ---- JSON ----

#[derive(Serialize)]
struct Json<'a> {
    benchmark: &'static str,
    started: String,
    machine: String,
    cores: usize,
    client_threads: usize,
    fake_threads: usize,
    args: &'a Args,
    warmup: Vec<JsonBatch>,
    rounds: Vec<Vec<JsonBatch>>,
    providers: Vec<JsonProvider>,
}

#[derive(Serialize)]
struct JsonBatch {
    provider: &'static str,
    messages: usize,
    requests: usize,
    seconds: f64,
    per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// CPU seconds per 1,000 messages.
    cpu_per_1000: Option<Cpu>,
}

#[derive(Serialize)]
struct JsonProvider {
    provider: &'static str,
    per_second: Vec<f64>,
    median_per_second: f64,
    /// This provider's rate divided by FCM's in the same round.
    to_fcm: Vec<f64>,
    median_to_fcm: f64,
    /// Over every round's single sends.
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// Median over rounds, CPU seconds per 1,000 messages.
    cpu_per_1000: Option<Cpu>,
}

fn json_ms(us: Option<u32>) -> Option<f64> {
    us.map(|u| f64::from(u) / 1000.0)
}

impl JsonBatch {
    fn new(p: Provider, b: &Batch) -> Self {
        JsonBatch {
            provider: name(p),
            messages: b.messages,
            requests: b.requests,
            seconds: b.seconds,
            per_second: b.per_second(),
            p50_ms: json_ms(percentile(&b.latencies, 500)),
            p99_ms: json_ms(percentile(&b.latencies, 990)),
            cpu_per_1000: b.cpu,
        }
    }
}

impl<'a> Json<'a> {
    fn new(args: &'a Args, cores: usize, threads: usize, r: &Results) -> Self {
        let batches = |v: &[(Provider, Batch)]| -> Vec<JsonBatch> {
            v.iter().map(|(p, b)| JsonBatch::new(*p, b)).collect()
        };
        Json {
            benchmark: "app_push",
            started: r.started.to_rfc3339(),
            machine: machine(cores),
            cores,
            client_threads: threads,
            fake_threads: threads,
            args,
            warmup: batches(&r.warmup),
            rounds: r.rounds.iter().map(|round| batches(round)).collect(),
            providers: Provider::ALL
                .into_iter()
                .map(|p| {
                    let lat = r.latencies(p);
                    let to_fcm = r.ratios(p);
                    JsonProvider {
                        provider: name(p),
                        median_per_second: median(&r.rates(p)),
                        per_second: r.rates(p),
                        median_to_fcm: median(&to_fcm),
                        to_fcm,
                        p50_ms: json_ms(percentile(&lat, 500)),
                        p99_ms: json_ms(percentile(&lat, 990)),
                        cpu_per_1000: r.cpu(p),
                    }
                })
                .collect(),
        }
    }
}
