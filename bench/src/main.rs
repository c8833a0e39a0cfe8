//! # minigate-bench
//!
//! Measures what minigate's GraphQL layer costs over HTTP with keep-alive: an authenticated `me`
//! and a 50-row vehicle page with a batched nested field (`branch`), each served by minigate and
//! by a bare poem handler that runs the same SQL on the same pool and writes the same JSON.
//! Everything runs in this process: a fresh seeded database, the servers on `127.0.0.1:0`, and
//! the load generator. Scenarios are interleaved in rounds so the servers meet the same
//! conditions; the report quotes medians over rounds and ratios measured side by side.
//!
//! ```text
//! cargo run --release -p minigate-bench -- [--seconds 5] [--connections 16] [--rounds 3]
//!     [--warmup 1] [--database-url postgres://…] [--breakdown] [--server-threads N] [--out FILE]
//! ```
//! Without `--database-url` (or `DATABASE_URL`) the database is a temporary SQLite file; with a
//! PostgreSQL URL a fresh database is created on that server and dropped afterwards.
//! `--breakdown` adds a diagnostic variant: minigate asked for the vehicle page without the
//! nested `branch`.

mod bare;
mod cpu;
mod load;
mod publish;
mod report;
mod seed;
mod servers;
mod stats;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::{Client, Method, StatusCode, Url, header::HeaderValue};
use serde_json::{Value, json};

use crate::{
    cpu::{ClientThreads, Sample},
    load::{Run, Target},
    servers::Servers,
    stats::{count_f64, u64_f64},
};

#[derive(Parser, Debug)]
#[command(
    name = "minigate-bench",
    about = "minigate against a bare poem handler, side by side"
)]
pub struct Args {
    /// Seconds each scenario runs in each round.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Rounds; each runs every scenario once.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of unmeasured warm-up per scenario before the first round.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// A PostgreSQL server (`postgres://user@host:port/db`) to create a fresh database on;
    /// without it, a temporary SQLite file.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Also measure minigate's vehicle page without `branch`, to see what the nested batched
    /// field costs.
    #[arg(long)]
    pub breakdown: bool,
    /// Worker threads of the servers' runtime (default: one per core).
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// Also write the report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const ME: &str = "{ me { id role displayName phone } }";
const VEHICLES: &str = "{ vehicles(first: 50) { items { id plate vin model status branch { id code name } } nextCursor } }";
const VEHICLES_WITHOUT_BRANCH: &str =
    "{ vehicles(first: 50) { items { id plate vin model status } nextCursor } }";
const WITHOUT_BRANCH: &str = "minigate, query without `branch`";
const LOGIN: &str = "mutation($tenant: String!, $phone: String!, $password: String!) {
  loginWithPassword(tenant: $tenant, phone: $phone, password: $password) { accessToken }
}";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minigate-bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.seconds == 0 || args.connections == 0 || args.rounds == 0 {
        bail!("--seconds, --connections and --rounds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Servers and load generator get a runtime each, so the client's threads can be told apart
    // when CPU time is counted.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.unwrap_or(cores).max(1))
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let client_threads = ClientThreads::default();
    client_threads.register_current(); // this thread drives the client runtime's main future
    let registered = client_threads.clone();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("bench-client")
        .on_thread_start(move || registered.register_current())
        .enable_all()
        .build()?;

    let servers = server_rt.block_on(Servers::start(args.database_url.as_deref()))?;
    let measured = client_rt.block_on(measure(args, &servers, &client_threads));
    drop(client_rt);
    let problems = server_rt.block_on(servers.stop());
    for p in &problems {
        eprintln!("warning: {p}");
    }
    let results = measured?;

    let report = report::render(args, cores, &results, &problems);
    publish::publish(&report, args.out.as_deref())?;
    Ok(())
}

/// The two requests of the issue; each has a bare baseline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Me,
    Vehicles,
}

impl Group {
    pub fn label(self) -> &'static str {
        match self {
            Group::Me => "`me`",
            Group::Vehicles => "vehicle page",
        }
    }
}

/// One request against one server, with every round's measurements.
pub struct Scenario {
    pub group: Group,
    pub label: &'static str,
    /// The baseline of its group.
    pub bare: bool,
    target: Arc<Target>,
    pub runs: Vec<Run>,
    pub server_cpu_us: Option<u64>,
    pub client_cpu_us: Option<u64>,
}

impl Scenario {
    fn new(group: Group, label: &'static str, bare: bool, target: Target) -> Self {
        Self {
            group,
            label,
            bare,
            target: Arc::new(target),
            runs: Vec::new(),
            server_cpu_us: Some(0),
            client_cpu_us: Some(0),
        }
    }

    pub fn name(&self) -> String {
        format!("{}, {}", self.group.label(), self.label)
    }

    pub fn per_second(&self) -> Vec<f64> {
        self.runs.iter().map(Run::per_second).collect()
    }

    fn requests(&self) -> usize {
        self.runs.iter().map(|r| r.requests).sum()
    }

    /// Every latency of every round, sorted.
    pub fn latencies(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .runs
            .iter()
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    pub fn cpu_per_request(&self, micros: Option<u64>) -> Option<f64> {
        let n = self.requests();
        let us = micros?;
        (n > 0).then(|| u64_f64(us) / count_f64(n))
    }

    fn account(&mut self, before: Option<Sample>, after: Option<Sample>) {
        match (before, after) {
            (Some(b), Some(a)) => {
                self.server_cpu_us = self.server_cpu_us.map(|t| t + b.server_micros_until(a));
                self.client_cpu_us = self.client_cpu_us.map(|t| t + b.client_micros_until(a));
            }
            _ => {
                self.server_cpu_us = None;
                self.client_cpu_us = None;
            }
        }
    }
}

pub struct Results {
    pub backend: String,
    pub scenarios: Vec<Scenario>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
}

async fn sign_in(client: &Client, graphql: &Url, login: &seed::Login) -> anyhow::Result<String> {
    let resp: Value = client
        .post(graphql.clone())
        .json(&json!({
            "query": LOGIN,
            "variables": {
                "tenant": login.tenant_slug,
                "phone": login.phone,
                "password": login.password,
            }
        }))
        .send()
        .await?
        .json()
        .await?;
    resp.pointer("/data/loginWithPassword/accessToken")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("sign-in failed: {resp}"))
}

fn client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A GraphQL POST body, made once and kept for the whole run.
fn graphql_body(query: &str) -> &'static str {
    Box::leak(json!({ "query": query }).to_string().into_boxed_str())
}

/// Fetches a target and reads its answer as JSON, requiring 200.
async fn fetch_json(t: &Target, what: &str) -> anyhow::Result<(Value, usize)> {
    let (status, body) = t.fetch().await?;
    let text = String::from_utf8_lossy(&body);
    if status != StatusCode::OK {
        bail!("{what}: status {status}: {text}");
    }
    let v = serde_json::from_slice(&body).with_context(|| format!("{what} is not JSON: {text}"))?;
    Ok((v, body.len()))
}

/// Fails unless `got` is `expected` as JSON.
fn require_equal(what: &str, got: &Value, expected: &Value) -> anyhow::Result<()> {
    if got != expected {
        bail!("the answers differ for {what}:\n  got:      {got}\n  expected: {expected}");
    }
    Ok(())
}

fn without_branches(page: &Value) -> Value {
    let mut v = page.clone();
    if let Some(items) = v
        .pointer_mut("/data/vehicles/items")
        .and_then(Value::as_array_mut)
    {
        for item in items {
            if let Some(o) = item.as_object_mut() {
                o.remove("branch");
            }
        }
    }
    v
}

async fn measure(
    args: &Args,
    servers: &Servers,
    threads: &ClientThreads,
) -> anyhow::Result<Results> {
    let graphql: Url = format!("http://{}/graphql", servers.minigate.addr).parse()?;
    let bare_base = format!("http://{}", servers.bare.addr);
    let minigate_client = client(args.connections)?;
    let bare_client = client(args.connections)?;
    let token = sign_in(&minigate_client, &graphql, &servers.login).await?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
    let target = |client: &Client, method: Method, url: &Url, body: Option<&'static str>| Target {
        client: client.clone(),
        method,
        url: url.clone(),
        body,
        auth: auth.clone(),
        expected_len: 0,
    };
    let post = |url: &Url, query: &str| {
        target(
            &minigate_client,
            Method::POST,
            url,
            Some(graphql_body(query)),
        )
    };
    let bare_me_url: Url = format!("{bare_base}/me").parse()?;
    let bare_vehicles_url: Url = format!("{bare_base}/vehicles").parse()?;

    let mut scenarios = vec![
        Scenario::new(Group::Me, "minigate", false, post(&graphql, ME)),
        Scenario::new(
            Group::Me,
            "bare poem",
            true,
            target(&bare_client, Method::GET, &bare_me_url, None),
        ),
        Scenario::new(Group::Vehicles, "minigate", false, post(&graphql, VEHICLES)),
    ];
    if args.breakdown {
        scenarios.push(Scenario::new(
            Group::Vehicles,
            WITHOUT_BRANCH,
            false,
            post(&graphql, VEHICLES_WITHOUT_BRANCH),
        ));
    }
    scenarios.push(Scenario::new(
        Group::Vehicles,
        "bare poem",
        true,
        target(&bare_client, Method::GET, &bare_vehicles_url, None),
    ));

    // Every answer is checked against the bare handler's before anything is timed.
    let mut expected: Vec<(Group, Value)> = Vec::new();
    for s in scenarios.iter().filter(|s| s.bare) {
        expected.push((s.group, fetch_json(&s.target, &s.name()).await?.0));
    }
    let baseline = |g: Group| expected.iter().find(|(e, _)| *e == g).map(|(_, v)| v);
    let (Some(me), Some(page)) = (baseline(Group::Me), baseline(Group::Vehicles)) else {
        bail!("a baseline is missing");
    };
    if me.pointer("/data/me/role").and_then(Value::as_str) != Some("ADMIN") {
        bail!("unexpected answer to me: {me}");
    }
    let items = page
        .pointer("/data/vehicles/items")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if items != bare::PAGE
        || page
            .pointer("/data/vehicles/nextCursor")
            .is_none_or(Value::is_null)
    {
        bail!(
            "expected a full page of {} and a cursor: {page}",
            bare::PAGE
        );
    }
    let page_without_branches = without_branches(page);
    for s in &mut scenarios {
        let name = s.name();
        let (got, len) = fetch_json(&s.target, &name).await?;
        let want = match (s.group, s.label) {
            (Group::Me, _) => me,
            (Group::Vehicles, WITHOUT_BRANCH) => &page_without_branches,
            (Group::Vehicles, _) => page,
        };
        require_equal(&name, &got, want)?;
        // Every timed answer must have this length, so an error cannot pass for a fast success.
        Arc::get_mut(&mut s.target)
            .context("a target is shared before the run")?
            .expected_len = len;
    }
    eprintln!("every answer equals the bare handler's (as JSON)");

    if args.warmup > 0 {
        eprintln!("warming up, {} s per scenario", args.warmup);
        for s in &scenarios {
            let warmup = Duration::from_secs(args.warmup);
            load::run(&s.target, args.connections, warmup).await?;
        }
    }
    let rss_before_kib = cpu::rss_kib();
    let seconds = Duration::from_secs(args.seconds);
    let mut order: Vec<usize> = (0..scenarios.len()).collect();
    for round in 0..args.rounds {
        // Within each group the order flips every round, so no server always runs right after
        // the same neighbour.
        if round > 0 {
            let split = scenarios
                .iter()
                .position(|s| s.group == Group::Vehicles)
                .unwrap_or(0);
            order[..split].reverse();
            order[split..].reverse();
        }
        for &i in &order {
            let s = &mut scenarios[i];
            let before = threads.sample();
            let run = load::run(&s.target, args.connections, seconds)
                .await
                .with_context(|| s.name())?;
            let after = threads.sample();
            s.account(before, after);
            eprintln!(
                "round {}/{}: {:<50} {:>7.0} req/s",
                round + 1,
                args.rounds,
                s.name(),
                run.per_second()
            );
            s.runs.push(run);
        }
    }
    let rss_after_kib = cpu::rss_kib();
    Ok(Results {
        backend: servers.backend.clone(),
        scenarios,
        rss_before_kib,
        rss_after_kib,
    })
}
