//! A small HTTP/1.1 load client for what the load generators cannot measure:
//! time to first byte of a streamed response, the arrival time of every SSE
//! event (relay timing), and the `x-switchyard-attempts` header (breaker
//! state). Keep-alive connections with `TCP_NODELAY`; each connection sends
//! its share of the requests one after another.

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `host:port`
    pub addr: String,
    pub path: String,
    pub body: Bytes,
    /// Gateway key (sent as `Authorization: Bearer`), if any.
    pub key: Option<String>,
    pub requests: usize,
    pub connections: usize,
    /// Record the arrival time of every SSE event.
    pub record_events: bool,
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pcts {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Pcts {
    pub fn of(mut v: Vec<f64>) -> Pcts {
        if v.is_empty() {
            return Pcts::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v[i.min(v.len() - 1)]
        };
        Pcts {
            n: v.len(),
            min: v[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// The outcome of a client run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub statuses: BTreeMap<u16, usize>,
    /// `x-switchyard-attempts` values seen (absent header: key "-").
    pub attempts: BTreeMap<String, usize>,
    /// Time to the first body byte, µs.
    pub ttfb_us: Pcts,
    /// Time to the end of the body, µs.
    pub total_us: Pcts,
    /// SSE events (`data:` lines) per response, mean.
    pub events_per_response: f64,
    /// Gaps between consecutive events of one response, ms (when recorded).
    pub event_gaps_ms: Option<Pcts>,
    pub wall_s: f64,
}

pub(crate) struct One {
    pub(crate) status: u16,
    attempts: Option<String>,
    ttfb: Duration,
    total: Duration,
    events: Vec<Duration>,
}

pub(crate) async fn connect(
    addr: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(send)
}

pub(crate) async fn one(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    spec: &Spec,
) -> anyhow::Result<One> {
    let mut b = Request::post(spec.path.as_str())
        .header(http::header::HOST, spec.addr.as_str())
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(k) = &spec.key {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = b.body(Full::new(spec.body.clone()))?;
    send.ready().await?;
    let t0 = Instant::now();
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let attempts = resp
        .headers()
        .get("x-switchyard-attempts")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(d) = frame.data_ref() {
            let now = t0.elapsed();
            if ttfb.is_none() && !d.is_empty() {
                ttfb = Some(now);
            }
            if spec.record_events {
                for _ in memchr::memmem::find_iter(d, b"data:") {
                    events.push(now);
                }
            }
        }
    }
    let total = t0.elapsed();
    Ok(One {
        status,
        attempts,
        ttfb: ttfb.unwrap_or(total),
        total,
        events,
    })
}

/// Run the spec and collect percentiles.
pub async fn run(spec: Spec) -> anyhow::Result<Outcome> {
    if spec.connections == 0 {
        bail!("connections must be at least 1");
    }
    let start = Instant::now();
    let per = spec.requests.div_ceil(spec.connections);
    let mut tasks = Vec::new();
    for c in 0..spec.connections {
        let spec = spec.clone();
        let n = per.min(spec.requests.saturating_sub(c * per));
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<anyhow::Result<One>> = Vec::with_capacity(n);
            let mut send = None;
            for _ in 0..n {
                if send.is_none() {
                    match connect(&spec.addr).await {
                        Ok(s) => send = Some(s),
                        Err(e) => {
                            out.push(Err(e));
                            continue;
                        }
                    }
                }
                if let Some(s) = send.as_mut() {
                    let r = one(s, &spec).await;
                    if r.is_err() {
                        send = None;
                    }
                    out.push(r);
                }
            }
            out
        }));
    }
    let mut o = Outcome::default();
    let (mut ttfb, mut total, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    let mut events = 0usize;
    for t in tasks {
        for r in t.await? {
            o.requests += 1;
            match r {
                Ok(one) => {
                    *o.statuses.entry(one.status).or_default() += 1;
                    *o.attempts
                        .entry(one.attempts.unwrap_or_else(|| "-".into()))
                        .or_default() += 1;
                    if (200..300).contains(&one.status) {
                        o.ok += 1;
                        ttfb.push(one.ttfb.as_secs_f64() * 1e6);
                        total.push(one.total.as_secs_f64() * 1e6);
                        events += one.events.len();
                        for w in one.events.windows(2) {
                            gaps.push((w[1] - w[0]).as_secs_f64() * 1e3);
                        }
                    } else {
                        o.errors += 1;
                    }
                }
                Err(_) => o.errors += 1,
            }
        }
    }
    o.wall_s = start.elapsed().as_secs_f64();
    o.ttfb_us = Pcts::of(ttfb);
    o.total_us = Pcts::of(total);
    if o.ok > 0 {
        o.events_per_response = events as f64 / o.ok as f64;
    }
    if spec.record_events {
        o.event_gaps_ms = Some(Pcts::of(gaps));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let p = Pcts::of((1..=100).map(f64::from).collect());
        assert_eq!(p.n, 100);
        assert_eq!(p.min, 1.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(p.p50, 51.0);
        assert_eq!(p.p99, 99.0);
    }
}
