//! The load generator: a fixed number of concurrent keep-alive connections, each sending its next
//! request as soon as the previous answer has been read, for a fixed time.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use reqwest::{
    Client, Method, StatusCode, Url,
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue},
};
use tokio::task::JoinSet;

/// One kind of request to one server.
pub struct Target {
    pub client: Client,
    pub method: Method,
    pub url: Url,
    pub body: Option<&'static str>,
    pub auth: HeaderValue,
    /// The length of the answer checked once in full; every answer must have it, so an error
    /// (which is shorter) cannot pass for a fast success.
    pub expected_len: usize,
}

impl Target {
    fn request(&self) -> reqwest::RequestBuilder {
        let req = self
            .client
            .request(self.method.clone(), self.url.clone())
            .header(AUTHORIZATION, self.auth.clone());
        match self.body {
            Some(body) => req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body),
            None => req,
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn fetch(&self) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let resp = self.request().send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok((status, bytes.to_vec()))
    }

    async fn hit(&self) -> anyhow::Result<()> {
        let resp = self.request().send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status != StatusCode::OK || bytes.len() != self.expected_len {
            bail!(
                "{} {}: status {status}, {} bytes instead of {}: {}",
                self.method,
                self.url,
                bytes.len(),
                self.expected_len,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
        }
        Ok(())
    }
}

/// What one timed run produced.
pub struct Run {
    pub requests: usize,
    pub elapsed: Duration,
    /// Microseconds from sending a request to having read its answer.
    pub latencies_us: Vec<u32>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        crate::stats::count_f64(self.requests) / self.elapsed.as_secs_f64()
    }
}

async fn worker(target: Arc<Target>, deadline: Instant) -> anyhow::Result<Vec<u32>> {
    let mut latencies = Vec::with_capacity(16_384);
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            return Ok(latencies);
        }
        target.hit().await?;
        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
}

/// Runs `connections` workers against `target` for `duration`. Fails on the first wrong answer.
pub async fn run(
    target: &Arc<Target>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        workers.spawn(worker(Arc::clone(target), deadline));
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies_us.extend(done.context("a load worker panicked")??);
    }
    let elapsed = started.elapsed();
    Ok(Run {
        requests: latencies_us.len(),
        elapsed,
        latencies_us,
    })
}
