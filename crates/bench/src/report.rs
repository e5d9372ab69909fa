//! Report data and rendering (`report.md` + `report.json`).

use crate::client::{Outcome, Pcts};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Latency and throughput of one load run (µs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lat {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    pub statuses: BTreeMap<String, u64>,
    pub error_kinds: BTreeMap<String, u64>,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl Lat {
    pub fn from_oha(v: &Value) -> Lat {
        let s = &v["summary"];
        let lp = &v["latencyPercentiles"];
        let mut statuses = BTreeMap::new();
        let mut ok = 0;
        if let Some(m) = v["statusCodeDistribution"].as_object() {
            for (k, n) in m {
                let n = n.as_u64().unwrap_or(0);
                if k.starts_with('2') {
                    ok += n;
                }
                statuses.insert(k.clone(), n);
            }
        }
        // Requests still in flight when `-z` expires are cancelled by oha
        // ("aborted due to deadline"): an artefact of the bounded run, not a
        // failure, so they are left out of the counts.
        let mut error_kinds = BTreeMap::new();
        if let Some(m) = v["errorDistribution"].as_object() {
            for (k, n) in m {
                if !k.contains("aborted due to deadline") {
                    error_kinds.insert(k.clone(), n.as_u64().unwrap_or(0));
                }
            }
        }
        let requests = statuses.values().sum::<u64>() + error_kinds.values().sum::<u64>();
        Lat {
            requests,
            ok,
            errors: requests - ok,
            rps: f(&s["requestsPerSec"]),
            p50_us: f(&lp["p50"]) * 1e6,
            p90_us: f(&lp["p90"]) * 1e6,
            p99_us: f(&lp["p99"]) * 1e6,
            max_us: f(&s["slowest"]) * 1e6,
            mean_us: f(&s["average"]) * 1e6,
            statuses,
            error_kinds,
        }
    }

    pub fn from_wrk(v: &Value) -> Lat {
        let requests = v["requests"].as_u64().unwrap_or(0);
        let mut error_kinds = BTreeMap::new();
        let mut errors = 0;
        for k in ["connect", "read", "write", "status", "timeout"] {
            let n = v[format!("errors_{k}")].as_u64().unwrap_or(0);
            if n > 0 {
                error_kinds.insert(k.to_owned(), n);
            }
            errors += n;
        }
        let secs = f(&v["duration_us"]) / 1e6;
        Lat {
            requests,
            ok: requests.saturating_sub(v["errors_status"].as_u64().unwrap_or(0)),
            errors,
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            p50_us: f(&v["p50_us"]),
            p90_us: f(&v["p90_us"]),
            p99_us: f(&v["p99_us"]),
            max_us: f(&v["max_us"]),
            mean_us: f(&v["mean_us"]),
            statuses: BTreeMap::new(),
            error_kinds,
        }
    }
}

/// One scenario measured direct and through the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub label: String,
    pub direct: Lat,
    pub gateway: Lat,
    pub added_p50_us: f64,
    pub added_p99_us: f64,
    pub throughput_ratio: f64,
}

impl Pair {
    pub fn new(label: &str, direct: Lat, gateway: Lat) -> Pair {
        Pair {
            label: label.into(),
            added_p50_us: gateway.p50_us - direct.p50_us,
            added_p99_us: gateway.p99_us - direct.p99_us,
            throughput_ratio: ratio(gateway.rps, direct.rps),
            direct,
            gateway,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub gateway_us_per_req: f64,
    pub gateway_cpu_s: f64,
    pub gateway_requests: u64,
    pub upstream_us_per_req_direct: f64,
    pub upstream_us_per_req_via: f64,
    /// The kernel-mode part (stime) of `gateway_us_per_req`, where read.
    pub gateway_kernel_us_per_req: Option<f64>,
}

impl Cpu {
    /// The gateway's CPU over `requests`; the upstream's not read.
    pub fn gateway_only(gateway_cpu_s: f64, requests: u64) -> Cpu {
        Cpu {
            gateway_us_per_req: gateway_cpu_s * 1e6 / requests.max(1) as f64,
            gateway_cpu_s,
            gateway_requests: requests,
            upstream_us_per_req_direct: 0.0,
            upstream_us_per_req_via: 0.0,
            gateway_kernel_us_per_req: None,
        }
    }

    /// With the kernel-mode part of the gateway's CPU, `kernel_s` seconds
    /// over the same requests.
    pub fn with_kernel(self, kernel_s: f64) -> Cpu {
        Cpu {
            gateway_kernel_us_per_req: Some(kernel_s * 1e6 / self.gateway_requests.max(1) as f64),
            ..self
        }
    }

    /// The upstream's CPU per request, direct / through the proxy, for the
    /// saturation table.
    fn upstream_cell(&self) -> String {
        format!(
            "{:.1} / {:.1}",
            self.upstream_us_per_req_direct, self.upstream_us_per_req_via
        )
    }

    /// The gateway's CPU per request for the saturation table, its kernel
    /// part in brackets where read.
    fn cell(&self, bold: bool, whose: &str) -> String {
        let b = if bold { "**" } else { "" };
        let mut c = format!("{b}{:.1}{b}", self.gateway_us_per_req);
        match (self.gateway_kernel_us_per_req, whose.is_empty()) {
            (Some(k), true) => c.push_str(&format!(" (kernel {k:.1})")),
            (Some(k), false) => c.push_str(&format!(" (kernel {k:.1}; {whose})")),
            (None, false) => c.push_str(&format!(" ({whose})")),
            (None, true) => {}
        }
        c
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rss {
    pub start_mib: f64,
    pub idle_mib: f64,
    pub load_max_mib: f64,
    pub after_mib: f64,
    /// Idle long enough for the pooled upstream connections to expire
    /// (`AFTER_POOL_S` after the load).
    pub after_pool_mib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rung {
    pub name: String,
    pub todo: Option<String>,
    pub sequential: Option<Pair>,
    pub saturation: Option<Pair>,
    pub cpu_us_per_req: Option<f64>,
}

impl Rung {
    pub fn todo(name: &str, why: &str) -> Rung {
        Rung {
            name: name.into(),
            todo: Some(why.into()),
            sequential: None,
            saturation: None,
            cpu_us_per_req: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FailoverPhase {
    pub name: String,
    /// Requests sent until the failing deployment's breaker was open.
    pub warmup: Option<Outcome>,
    pub direct: Lat,
    pub gateway: Lat,
    pub success_rate: f64,
    pub added_p50_us: f64,
    pub added_p99_us: f64,
    /// `x-switchyard-attempts` of 40 sequential requests after the run.
    pub probe_attempts: BTreeMap<String, usize>,
}

impl FailoverPhase {
    pub fn new(
        name: &str,
        warmup: Option<Outcome>,
        direct: Lat,
        gateway: Lat,
        probe: Outcome,
    ) -> FailoverPhase {
        FailoverPhase {
            name: name.into(),
            warmup,
            success_rate: if gateway.requests > 0 {
                gateway.ok as f64 / gateway.requests as f64
            } else {
                0.0
            },
            added_p50_us: gateway.p50_us - direct.p50_us,
            added_p99_us: gateway.p99_us - direct.p99_us,
            probe_attempts: probe.attempts,
            direct,
            gateway,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub rate: u32,
    pub phases: Vec<FailoverPhase>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub name: String,
    pub error: Option<String>,
    pub sequential: Option<Pair>,
    pub rate50: Option<Pair>,
    pub saturation: Option<Pair>,
    pub cpu_us_per_req: Option<f64>,
    pub note: String,
}

impl Peer {
    pub fn missing(name: &str, why: &str) -> Peer {
        Peer {
            name: name.into(),
            error: Some(why.into()),
            sequential: None,
            rate50: None,
            saturation: None,
            cpu_us_per_req: None,
            note: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    pub seconds: u64,
    pub rate: u32,
    pub load: Lat,
    /// (seconds since the load started, MiB); the last point is 5 s after.
    pub rss_curve_mib: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// None: not measured / not applicable yet.
    pub met: Option<bool>,
}

/// The saturation run with the usage rows in PostgreSQL.
#[derive(Debug, Serialize)]
pub struct PgRun {
    pub pair: Pair,
    pub cpu: Cpu,
    /// CPU of every `postgres` process over the gateway's load run and its
    /// drain, per request of the load run.
    pub postgres_us_per_req: f64,
    /// 2xx answers through the gateway (warm-up and load run).
    pub answered: u64,
    /// `usage_log` rows once the gateway had drained.
    pub rows: u64,
}

impl PgRun {
    /// Every answered request left its usage row (more rows are requests
    /// the load generator gave up on when its run ended).
    pub fn rows_complete(&self) -> bool {
        self.rows >= self.answered
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub generated: String,
    pub git_commit: String,
    /// Uncommitted changes under crates/ when the gateway was built.
    pub git_dirty: Vec<String>,
    pub machine: BTreeMap<String, String>,
    pub tools: BTreeMap<String, String>,
    pub load_duration_s: u64,
    pub wall_s: f64,
    pub sequential: Option<Pair>,
    pub fixed_rate: Vec<(u32, Pair)>,
    /// 50 req/s with the client, gateway and upstream on one CPU.
    pub fixed_rate_one_cpu: Option<Pair>,
    pub saturation: Vec<(usize, Pair, Cpu)>,
    /// c=32 with nginx as the upstream and a virtual key (governance on).
    pub saturation_nginx: Option<(Pair, Cpu)>,
    /// c=32 through nginx as a bare reverse proxy (instead of the gateway)
    /// to the bench upstream; its `Cpu` is nginx's (master and workers).
    pub saturation_proxy: Option<(Pair, Cpu)>,
    /// c=32, governance on, the usage rows in PostgreSQL.
    pub saturation_pg: Option<PgRun>,
    pub rss: Option<Rss>,
    pub stream: Option<(Outcome, Outcome)>,
    pub stream_translated: Option<(Outcome, Outcome)>,
    pub relay: Option<(Outcome, Outcome)>,
    pub ladder: Vec<Rung>,
    pub failover: Option<Failover>,
    pub soak: Option<Soak>,
    pub peers: Vec<Peer>,
    pub targets: Vec<Target>,
    pub gate: Option<Value>,
    /// The governed path's gate (driver kind 7, its own baseline).
    pub gate_governed: Option<Value>,
    pub profile: Option<String>,
    pub callgrind_top: Option<String>,
    pub notes: Vec<String>,
    pub commands: Vec<String>,
}

fn sh(cmd: &str) -> String {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    pub fn new(args: &crate::run::Args) -> Report {
        let mut machine = BTreeMap::new();
        machine.insert(
            "cpu".into(),
            sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'"),
        );
        machine.insert("cores".into(), sh("nproc"));
        machine.insert(
            "memory".into(),
            sh("free -m | awk '/Mem:/{print $2\" MiB\"}'"),
        );
        machine.insert("kernel".into(), sh("uname -r"));
        machine.insert("load at start".into(), sh("cat /proc/loadavg"));
        let mut tools = BTreeMap::new();
        tools.insert("rustc".into(), sh("rustc --version"));
        tools.insert("wrk".into(), sh(&format!("{} -v 2>&1 | head -1", args.wrk)));
        tools.insert("oha".into(), sh(&format!("{} --version", args.oha)));
        tools.insert("valgrind".into(), sh("valgrind --version"));
        Report {
            generated: sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
            git_commit: sh("git rev-parse --short HEAD"),
            git_dirty: sh("git status --porcelain -- crates/server crates/core")
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
            machine,
            tools,
            load_duration_s: args.duration,
            notes: args.note.clone(),
            ..Report::default()
        }
    }

    fn compute_targets(&mut self) {
        let mut t = Vec::new();
        if let Some((_, p, cpu)) = self.saturation.iter().find(|(c, _, _)| *c == 32) {
            t.push(Target {
                target: "saturated throughput ≥ 40% of direct (c=32), 0 errors".into(),
                measured: format!(
                    "{:.0} / {:.0} req/s = {:.2}×, {} errors",
                    p.gateway.rps, p.direct.rps, p.throughput_ratio, p.gateway.errors
                ),
                met: Some(p.throughput_ratio >= 0.40 && p.gateway.errors == 0),
            });
            t.push(Target {
                target: "CPU per request at saturation ≤ 20 µs (gateway process)".into(),
                measured: format!("{:.1} µs", cpu.gateway_us_per_req),
                met: Some(cpu.gateway_us_per_req <= 20.0),
            });
            if let Some((n, ncpu)) = &self.saturation_proxy {
                t.push(Target {
                    target: "… nginx as a bare reverse proxy in the gateway's place, same run (the yardstick: forwarding only, no key, no JSON, no usage row)".into(),
                    measured: format!(
                        "nginx {:.2}× of direct at {:.1} µs/req; the gateway has {:.2}× nginx's throughput at {:.2}× its CPU per request",
                        n.throughput_ratio,
                        ncpu.gateway_us_per_req,
                        ratio(p.gateway.rps, n.gateway.rps),
                        ratio(cpu.gateway_us_per_req, ncpu.gateway_us_per_req),
                    ),
                    met: None,
                });
            }
        }
        if let Some(pg) = &self.saturation_pg {
            t.push(Target {
                target: "… the same with the usage rows in PostgreSQL (production's store): every answered request leaves its row".into(),
                measured: format!(
                    "{:.2}× of direct, {} errors; gateway {:.1} µs/req + PostgreSQL {:.1} µs/req; {} rows for {} answered",
                    pg.pair.throughput_ratio,
                    pg.pair.gateway.errors,
                    pg.cpu.gateway_us_per_req,
                    pg.postgres_us_per_req,
                    pg.rows,
                    pg.answered
                ),
                met: Some(pg.rows_complete() && pg.pair.gateway.errors == 0),
            });
        }
        if let Some((p, cpu)) = &self.saturation_nginx {
            t.push(Target {
                target: "… the same against nginx (the upstream issue 5's peer figures used), virtual key + limits + usage rows".into(),
                measured: format!(
                    "{:.0} / {:.0} req/s = {:.2}×, {} errors; CPU {:.1} µs/req",
                    p.gateway.rps,
                    p.direct.rps,
                    p.throughput_ratio,
                    p.gateway.errors,
                    cpu.gateway_us_per_req
                ),
                met: Some(
                    p.throughput_ratio >= 0.40
                        && p.gateway.errors == 0
                        && cpu.gateway_us_per_req <= 20.0,
                ),
            });
        }
        for (rate, p50, p99) in [(500u32, 100.0, 300.0), (50, 200.0, 500.0)] {
            if let Some((_, p)) = self.fixed_rate.iter().find(|(r, _)| *r == rate) {
                t.push(Target {
                    target: format!(
                        "added latency at {rate} req/s: p50 ≤ {p50:.0} µs, p99 ≤ {p99:.0} µs"
                    ),
                    measured: format!(
                        "p50 {:+.0} µs, p99 {:+.0} µs",
                        p.added_p50_us, p.added_p99_us
                    ),
                    met: Some(p.added_p50_us <= p50 && p.added_p99_us <= p99),
                });
                if let (50, Some(one)) = (rate, &self.fixed_rate_one_cpu) {
                    t.push(Target {
                        target: "… the same with client, gateway and upstream on one CPU (no idle-CPU wake-ups)"
                            .into(),
                        measured: format!(
                            "p50 {:+.0} µs, p99 {:+.0} µs",
                            one.added_p50_us, one.added_p99_us
                        ),
                        met: Some(one.added_p50_us <= p50 && one.added_p99_us <= p99),
                    });
                }
            }
        }
        if let Some(p) = &self.sequential {
            t.push(Target {
                target: "one sequential client: report added p50/p99".into(),
                measured: format!(
                    "p50 {:+.0} µs, p99 {:+.0} µs",
                    p.added_p50_us, p.added_p99_us
                ),
                met: None,
            });
        }
        if let Some((d, g)) = &self.stream {
            let ttfb = g.ttfb_us.p50 - d.ttfb_us.p50;
            let total = g.total_us.p50 - d.total_us.p50;
            t.push(Target {
                target: "streaming adds ≤ 300 µs to the first byte (p50)".into(),
                measured: format!(
                    "{ttfb:+.0} µs (p99 {:+.0} µs)",
                    g.ttfb_us.p99 - d.ttfb_us.p99
                ),
                met: Some(ttfb <= 300.0),
            });
            t.push(Target {
                target:
                    "… and nothing to the total beyond that (total added − TTFB added ≤ 50 µs, p50)"
                        .into(),
                measured: format!("total {total:+.0} µs, beyond TTFB {:+.0} µs", total - ttfb),
                met: Some(total - ttfb <= 50.0),
            });
            t.push(Target {
                target: "every event incl. `data: [DONE]` relayed (pass-through)".into(),
                measured: format!(
                    "{:.1} events/response direct, {:.1} through the gateway",
                    d.events_per_response, g.events_per_response
                ),
                met: Some(
                    (d.events_per_response - g.events_per_response).abs() < 1e-9 && g.errors == 0,
                ),
            });
        }
        if let Some((_, g)) = &self.relay {
            if let Some(gaps) = &g.event_gaps_ms {
                t.push(Target {
                    target: "chunks relayed as they arrive (100 ms upstream chunks → ~100 ms apart at the client)".into(),
                    measured: format!(
                        "gaps p50 {:.1} ms, min {:.1}, max {:.1} ms over {} gaps",
                        gaps.p50, gaps.min, gaps.max, gaps.n
                    ),
                    met: Some(gaps.n > 0 && gaps.min >= 80.0 && gaps.max <= 120.0),
                });
            }
        }
        if let Some(r) = &self.rss {
            t.push(Target {
                target: "RSS ≤ 20 MB idle".into(),
                measured: format!(
                    "{:.1} MiB (after warm-up; {:.1} MiB at start)",
                    r.idle_mib, r.start_mib
                ),
                met: Some(r.idle_mib * 1.048_576 <= 20.0),
            });
            let back = r.after_pool_mib.unwrap_or(r.after_mib);
            t.push(Target {
                target: "RSS back near idle after load (≤ idle + 5 MiB)".into(),
                measured: match r.after_pool_mib {
                    Some(p) => format!(
                        "{p:.1} MiB once the pooled upstream connections expired ({:.1} MiB 5 s after load, while they are kept; peak {:.1} MiB)",
                        r.after_mib, r.load_max_mib
                    ),
                    None => format!(
                        "{:.1} MiB 5 s after load (peak under load {:.1} MiB)",
                        r.after_mib, r.load_max_mib
                    ),
                },
                met: Some(back <= r.idle_mib + 5.0),
            });
        }
        match &self.soak {
            Some(s) => {
                let first = s.rss_curve_mib.get(1).map(|p| p.1).unwrap_or(0.0);
                let max = s.rss_curve_mib.iter().map(|p| p.1).fold(0.0, f64::max);
                t.push(Target {
                    target: "RSS flat over a 10-minute soak at steady load".into(),
                    measured: format!(
                        "{} s at {} req/s: {:.1} MiB after 10 s, max {:.1} MiB",
                        s.seconds, s.rate, first, max
                    ),
                    met: Some(max <= first + 2.0),
                });
            }
            None => t.push(Target {
                target: "RSS flat over a 10-minute soak at steady load".into(),
                measured: "not run in this report (`scripts/bench.sh soak`)".into(),
                met: None,
            }),
        }
        let rps = |prefix: &str| {
            self.ladder
                .iter()
                .find(|r| r.name.starts_with(prefix))
                .and_then(|r| r.saturation.as_ref())
                .map(|p| p.gateway.rps)
        };
        t.push(match (rps("6. "), rps("6a. ")) {
            (Some(hit), Some(miss)) if miss > 0.0 => Target {
                target: "cache hit ≥ 2× the miss path's throughput".into(),
                measured: format!(
                    "hit {hit:.0} req/s vs miss {miss:.0} req/s = {:.2}× (ladder steps 6 / 6a, c=32)",
                    hit / miss
                ),
                met: Some(hit >= 2.0 * miss),
            },
            _ => Target {
                target: "cache hit ≥ 2× the miss path's throughput".into(),
                measured: "not run in this report (ladder steps 6 and 6a)".into(),
                met: None,
            },
        });
        self.targets = t;
    }

    pub fn write(&mut self, dir: &Path) -> anyhow::Result<()> {
        if let Ok(text) = std::fs::read_to_string(dir.join("gate.json")) {
            self.gate = serde_json::from_str(&text).ok();
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("gate-governed.json")) {
            self.gate_governed = serde_json::from_str(&text).ok();
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("callgrind-top.txt")) {
            self.callgrind_top = Some(text);
        }
        self.compute_targets();
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        Ok(())
    }

    fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = self.md(&mut m);
        m
    }

    fn md(&self, m: &mut String) -> std::fmt::Result {
        writeln!(m, "# Switchyard benchmark report\n")?;
        writeln!(
            m,
            "Generated {} at commit `{}` by `scripts/bench.sh` (wall time {:.0} s, {} s per load run). \
             Every figure is measured **direct to the upstream and through the gateway in the same run**; \
             added latency = gateway − direct, ratio = gateway ÷ direct.\n",
            self.generated, self.git_commit, self.wall_s, self.load_duration_s
        )?;
        if !self.git_dirty.is_empty() {
            writeln!(
                m,
                "> **Working tree.** The gateway measured was built from `{}` plus uncommitted changes \
                 (work in progress by another engineer) in: {}.\n",
                self.git_commit,
                self.git_dirty.join(", ")
            )?;
        }
        writeln!(
            m,
            "> **Noise warning.** This is a shared 2-core machine: the load generator, the upstream and the \
             gateway compete for the same two cores (and other engineers' builds may run at the same time). \
             Absolute figures are noisy; ratios and differences from the same run are the meaningful part. \
             Times are reported here, never asserted in tests; the regression gate counts instructions instead.\n"
        )?;
        writeln!(m, "## Machine and tools\n")?;
        writeln!(m, "| | |\n|---|---|")?;
        for (k, v) in self.machine.iter().chain(self.tools.iter()) {
            writeln!(m, "| {k} | {v} |")?;
        }
        writeln!(m)?;

        writeln!(m, "## Targets (issue 5) side by side\n")?;
        writeln!(m, "| target | measured | met |\n|---|---|---|")?;
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "✅ met",
                Some(false) => "❌ not met",
                None => "—",
            };
            writeln!(m, "| {} | {} | {met} |", t.target, t.measured)?;
        }
        writeln!(m)?;

        if let Some(p) = &self.sequential {
            writeln!(m, "## (a) One client, sequential (oha -c 1)\n")?;
            lat_table(m, &[p])?;
        }
        if !self.fixed_rate.is_empty() {
            writeln!(m, "## (b) Fixed rate (oha -q, latency corrected)\n")?;
            let mut ps: Vec<&Pair> = self.fixed_rate.iter().map(|(_, p)| p).collect();
            ps.extend(&self.fixed_rate_one_cpu);
            lat_table(m, &ps)?;
            for (rate, p) in &self.fixed_rate {
                if p.gateway.rps < 0.95 * f64::from(*rate) || p.direct.rps < 0.95 * f64::from(*rate)
                {
                    writeln!(
                        m,
                        "- {rate} req/s was **not sustained** (direct {:.0}, gateway {:.0} req/s achieved).",
                        p.direct.rps, p.gateway.rps
                    )?;
                }
            }
            writeln!(m)?;
        }
        if !self.saturation.is_empty()
            || self.saturation_nginx.is_some()
            || self.saturation_pg.is_some()
        {
            writeln!(m, "## (c) Saturation, closed loop (wrk -t2) and (e) CPU\n")?;
            writeln!(
                m,
                "| connections | direct req/s | gateway req/s | ratio | gateway errors | direct p50/p99 µs | gateway p50/p99 µs | gateway CPU µs/req | upstream CPU µs/req (direct / via) |\n|---|---|---|---|---|---|---|---|---|"
            )?;
            for (c, p, cpu) in &self.saturation {
                saturation_row(
                    m,
                    &c.to_string(),
                    p,
                    &cpu.cell(true, ""),
                    &cpu.upstream_cell(),
                )?;
            }
            if let Some((p, cpu)) = &self.saturation_proxy {
                saturation_row(
                    m,
                    "32, **nginx as a reverse proxy** instead of the gateway",
                    p,
                    &cpu.cell(false, "nginx"),
                    &cpu.upstream_cell(),
                )?;
            }
            if let Some((p, cpu)) = &self.saturation_nginx {
                saturation_row(
                    m,
                    "32, **nginx** upstream, virtual key",
                    p,
                    &cpu.cell(true, ""),
                    "(nginx workers not read)",
                )?;
            }
            if let Some(pg) = &self.saturation_pg {
                saturation_row(
                    m,
                    "32, usage rows in **PostgreSQL**, virtual key",
                    &pg.pair,
                    &format!(
                        "**{:.1}** (+ PostgreSQL {:.1})",
                        pg.cpu.gateway_us_per_req, pg.postgres_us_per_req
                    ),
                    "(not read)",
                )?;
            }
            if let Some((p, _)) = &self.saturation_nginx {
                let own = self
                    .saturation
                    .iter()
                    .find(|(c, _, _)| *c == 32)
                    .map_or(0.0, |(_, p, _)| p.direct.rps);
                writeln!(
                    m,
                    "\nThe numbered rows use the bench's own upstream (hyper, pre-serialised replies; {own:.0} req/s direct at c=32) and the main config's static gateway key. The nginx row repeats c=32 against nginx serving the same reply (`return 200`, `worker_processes auto`; {:.0} req/s direct), with governance on as the targets define it (a CLI-made virtual key on a rate-limited plan, usage rows written): issue 5's peer figures (LiteLLM-Rust 0.22–0.27×, …) are ratios to nginx.",
                    p.direct.rps
                )?;
            }
            if let Some((p, _)) = &self.saturation_proxy {
                writeln!(
                    m,
                    "\nThe nginx-as-a-reverse-proxy row puts nginx where the gateway was, in front of the same upstream, against the same direct run ({:.0} req/s): HTTP/1.1 to a keep-alive pool, `TCP_NODELAY`, unbuffered (`bench::run::nginx_proxy_conf`). It forwards bytes and does nothing else: no key, no JSON, no usage row. That is what proxying alone costs on this machine (the same two reads and two writes per request the gateway makes) and the nearest thing to a ceiling for any proxy here.",
                    p.direct.rps
                )?;
            }
            if let Some(pg) = &self.saturation_pg {
                writeln!(
                    m,
                    "\nThe PostgreSQL row is the nginx row's governance (virtual key, rate-limited plan) on the bench's own upstream, with the usage rows in PostgreSQL (a scratch database on the local server, `governance.database_url`), as replicas keep them in production. The server runs on this machine and takes its share of the two cores: its CPU (every `postgres` process, over the load run and the gateway's drain) is {:.1} µs per request. After the gateway drained (SIGTERM): {} usage rows for {} answered requests{}.",
                    pg.postgres_us_per_req,
                    pg.rows,
                    pg.answered,
                    if pg.rows_complete() { "" } else { " — **rows missing**" }
                )?;
            }
            writeln!(m)?;
        }
        if let Some(r) = &self.rss {
            writeln!(m, "## (e) Gateway memory (VmRSS)\n")?;
            writeln!(
                m,
                "| at start | idle after warm-up | peak under load (c=32/128) | 5 s after load | {} s after load (pool expired) |\n|---|---|---|---|---|\n| {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |\n",
                crate::run::AFTER_POOL_S,
                r.start_mib,
                r.idle_mib,
                r.load_max_mib,
                r.after_mib,
                r.after_pool_mib
                    .map_or("not measured".to_owned(), |v| format!("{v:.1} MiB"))
            )?;
        }
        if let Some(s) = &self.soak {
            writeln!(m, "## Soak: {} s at {} req/s (oha -q)\n", s.seconds, s.rate)?;
            writeln!(
                m,
                "{} requests, {} errors, p50 {:.0} µs, p99 {:.0} µs.\n\n| t (s) | RSS MiB |\n|---|---|",
                s.load.requests, s.load.errors, s.load.p50_us, s.load.p99_us
            )?;
            for (t, v) in &s.rss_curve_mib {
                writeln!(m, "| {t:.0} | {v:.1} |")?;
            }
            writeln!(m)?;
        }
        if let Some((d, g)) = &self.stream {
            writeln!(m, "## (d) Streaming, 20-chunk SSE (bench client, one keep-alive connection, sequential)\n")?;
            stream_table(m, "pass-through (OpenAI → OpenAI)", d, g)?;
            if let Some((d, g)) = &self.stream_translated {
                stream_table(m, "translated (OpenAI client → Anthropic upstream; direct = Anthropic stream from the upstream)", d, g)?;
            }
        }
        if let Some((d, g)) = &self.relay {
            writeln!(
                m,
                "### Relay timing: upstream emits one event every 100 ms\n"
            )?;
            writeln!(m, "| | events/response | gap p50 ms | gap min ms | gap max ms | TTFB ms | total ms |\n|---|---|---|---|---|---|---|")?;
            for (n, o) in [("direct", d), ("gateway", g)] {
                let gaps = o.event_gaps_ms.clone().unwrap_or_default();
                writeln!(
                    m,
                    "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    o.events_per_response,
                    gaps.p50,
                    gaps.min,
                    gaps.max,
                    o.ttfb_us.p50 / 1e3,
                    o.total_us.p50 / 1e3
                )?;
            }
            writeln!(m)?;
        }
        if let Some(fo) = &self.failover {
            writeln!(
                m,
                "## Failover (issue 3): alias over two deployments, {} req/s fixed rate\n",
                fo.rate
            )?;
            writeln!(
                m,
                "Alias `bench-ha`, `round_robin` over upstreams A and B, breaker `consecutive_failures: 5`, `cooldown: 30s`, `retries: 2`. \
                 Phase 2 kills B's process (connection refused); phase 3 restarts B answering HTTP 500 (fresh gateway). \
                 Warm-up = sequential requests until 20 in a row took one attempt (B's breaker open). Direct = upstream A alone at the same rate.\n"
            )?;
            writeln!(m, "| phase | warm-up requests (ok / attempts seen) | success rate | gateway p50 / p99 µs | direct p50 / p99 µs | added p50 / p99 µs | attempts after (probe) |\n|---|---|---|---|---|---|---|")?;
            for p in &fo.phases {
                let warm = p
                    .warmup
                    .as_ref()
                    .map(|w| format!("{} ({} ok) {:?}", w.requests, w.ok, w.attempts))
                    .unwrap_or_else(|| "—".into());
                writeln!(
                    m,
                    "| {} | {} | **{:.2}%** ({} / {}) | {:.0} / {:.0} | {:.0} / {:.0} | **{:+.0} / {:+.0}** | {:?} |",
                    p.name,
                    warm,
                    p.success_rate * 100.0,
                    p.gateway.ok,
                    p.gateway.requests,
                    p.gateway.p50_us,
                    p.gateway.p99_us,
                    p.direct.p50_us,
                    p.direct.p99_us,
                    p.added_p50_us,
                    p.added_p99_us,
                    p.probe_attempts
                )?;
            }
            writeln!(m)?;
        }
        if !self.ladder.is_empty() {
            writeln!(
                m,
                "## Feature ladder (one gateway config per step; same run)\n"
            )?;
            writeln!(
                m,
                "Direct = the same request straight to the upstream in the upstream's own format. \
                 Add a step: an entry in `crates/bench/src/configs.rs::ladder()` (a config variant + request).\n"
            )?;
            writeln!(m, "| step | seq added p50 / p99 µs | c=32 gateway req/s | ratio to direct | errors | gateway CPU µs/req |\n|---|---|---|---|---|---|")?;
            for r in &self.ladder {
                match (&r.todo, &r.sequential, &r.saturation) {
                    (Some(why), _, _) => {
                        writeln!(m, "| {} | TODO | TODO | TODO | — | TODO ({why}) |", r.name)?
                    }
                    (None, Some(s), Some(c)) => writeln!(
                        m,
                        "| {} | {:+.0} / {:+.0} | {:.0} | {:.2}× | {} | {:.1} |",
                        r.name,
                        s.added_p50_us,
                        s.added_p99_us,
                        c.gateway.rps,
                        c.throughput_ratio,
                        c.gateway.errors,
                        r.cpu_us_per_req.unwrap_or(0.0)
                    )?,
                    _ => writeln!(m, "| {} | — | — | — | — | — |", r.name)?,
                }
            }
            writeln!(m)?;
        }
        if !self.peers.is_empty() {
            writeln!(m, "## Peers (same upstream, same run)\n")?;
            writeln!(m, "| gateway | seq added p50 / p99 µs | 50 req/s added p50 / p99 µs | c=32 req/s | ratio to direct | errors | CPU µs/req |\n|---|---|---|---|---|---|---|")?;
            for p in &self.peers {
                if let Some(e) = &p.error {
                    writeln!(
                        m,
                        "| {} | not measured: {} | | | | | |",
                        p.name,
                        e.replace('\n', " ").replace('|', "/")
                    )?;
                    continue;
                }
                let (s, r50, c) = (
                    p.sequential.as_ref(),
                    p.rate50.as_ref(),
                    p.saturation.as_ref(),
                );
                writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    p.name,
                    s.map(|s| format!("{:+.0} / {:+.0}", s.added_p50_us, s.added_p99_us))
                        .unwrap_or_default(),
                    r50.map(|s| format!("{:+.0} / {:+.0}", s.added_p50_us, s.added_p99_us))
                        .unwrap_or_default(),
                    c.map(|c| format!("{:.0}", c.gateway.rps))
                        .unwrap_or_default(),
                    c.map(|c| format!("{:.3}×", c.throughput_ratio))
                        .unwrap_or_default(),
                    c.map(|c| c.gateway.errors.to_string()).unwrap_or_default(),
                    p.cpu_us_per_req
                        .map(|x| format!("{x:.0}"))
                        .unwrap_or_default()
                )?;
            }
            writeln!(m)?;
        }
        writeln!(m, "## Instruction-count gate (callgrind)\n")?;
        match &self.gate {
            Some(g) => {
                writeln!(m, "Last `scripts/bench.sh gate`: {}\n", gate_line(g))?;
                if let Some(g) = &self.gate_governed {
                    writeln!(
                        m,
                        "Governed path (driver `--kind 7`: virtual key, plan limits, usage rows into SQLite; baseline `bench/callgrind-baseline-governed.json`): {}\n",
                        gate_line(g)
                    )?;
                }
                if let Some(s) = g["gate_seconds"].as_f64() {
                    writeln!(m, "The whole gate (release build of the bench crate + four valgrind runs) took {s:.0} s.\n")?;
                }
            }
            None => writeln!(m, "Not run in this report (`scripts/bench.sh gate`).\n")?,
        }
        if let Some(p) = &self.callgrind_top {
            writeln!(
                m,
                "Top functions by own instructions in the driver's gateway phase (includes the bench client and upstream, \
                 about a sixth of the phase; `callgrind_annotate` of the gate run):\n\n```\n{}\n```\n",
                p.trim_end()
            )?;
        }
        if let Some(p) = &self.profile {
            writeln!(
                m,
                "## Gateway profile at saturation (perf, c=32)\n\n```\n{}\n```\n",
                p.trim_end()
            )?;
        }
        writeln!(m, "## Notes: what limits each figure\n")?;
        for n in &self.notes {
            writeln!(m, "- {n}")?;
        }
        writeln!(m, "\n## Exact commands\n\n```sh")?;
        for c in &self.commands {
            writeln!(m, "{c}")?;
        }
        writeln!(m, "```")?;
        Ok(())
    }
}

fn lat_table(m: &mut String, ps: &[&Pair]) -> std::fmt::Result {
    writeln!(
        m,
        "| scenario | direct req/s | gateway req/s | direct p50 / p99 µs | gateway p50 / p99 µs | **added p50 / p99 µs** | errors (gateway) |\n|---|---|---|---|---|---|---|"
    )?;
    for p in ps {
        writeln!(
            m,
            "| {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | **{:+.0} / {:+.0}** | {} |",
            p.label,
            p.direct.rps,
            p.gateway.rps,
            p.direct.p50_us,
            p.direct.p99_us,
            p.gateway.p50_us,
            p.gateway.p99_us,
            p.added_p50_us,
            p.added_p99_us,
            p.gateway.errors
        )?;
    }
    writeln!(m)
}

fn stream_table(m: &mut String, label: &str, d: &Outcome, g: &Outcome) -> std::fmt::Result {
    writeln!(m, "**{label}** — {} streams each\n", g.requests)?;
    writeln!(m, "| | TTFB p50 µs | TTFB p99 µs | total p50 µs | total p99 µs | events/response | errors |\n|---|---|---|---|---|---|---|")?;
    let row = |m: &mut String, n: &str, t: &Pcts, tot: &Pcts, e: f64, err: String| {
        writeln!(
            m,
            "| {n} | {:.0} | {:.0} | {:.0} | {:.0} | {e:.1} | {err} |",
            t.p50, t.p99, tot.p50, tot.p99
        )
    };
    row(
        m,
        "direct",
        &d.ttfb_us,
        &d.total_us,
        d.events_per_response,
        d.errors.to_string(),
    )?;
    row(
        m,
        "gateway",
        &g.ttfb_us,
        &g.total_us,
        g.events_per_response,
        g.errors.to_string(),
    )?;
    writeln!(
        m,
        "| **added** | **{:+.0}** | **{:+.0}** | **{:+.0}** | **{:+.0}** | | |\n",
        g.ttfb_us.p50 - d.ttfb_us.p50,
        g.ttfb_us.p99 - d.ttfb_us.p99,
        g.total_us.p50 - d.total_us.p50,
        g.total_us.p99 - d.total_us.p99
    )
}

/// `a / b`, 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// One row of the saturation table: `label`, the pair's throughput and
/// latencies, then the two CPU cells as given.
fn saturation_row(
    m: &mut String,
    label: &str,
    p: &Pair,
    gateway_cpu: &str,
    upstream_cpu: &str,
) -> std::fmt::Result {
    writeln!(
        m,
        "| {label} | {:.0} | {:.0} | **{:.2}×** | {} | {:.0} / {:.0} | {:.0} / {:.0} | {gateway_cpu} | {upstream_cpu} |",
        p.direct.rps,
        p.gateway.rps,
        p.throughput_ratio,
        p.gateway.errors,
        p.direct.p50_us,
        p.direct.p99_us,
        p.gateway.p50_us,
        p.gateway.p99_us,
    )
}

/// One gate result: what the gateway adds, against its baseline.
fn gate_line(g: &Value) -> String {
    format!(
        "gateway adds **{:.0} instructions/request** (baseline {:.0}, change {:+.2}%, tolerance {:.0}%, spread between two runs {:.3}%): {}.",
        f(&g["measured_gateway_instructions_per_request"]),
        f(&g["baseline_gateway_instructions_per_request"]),
        f(&g["change"]) * 100.0,
        f(&g["tolerance"]) * 100.0,
        f(&g["run_spread"]) * 100.0,
        if g["pass"].as_bool().unwrap_or(false) { "pass" } else { "FAIL" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(requests: u64, rps: f64) -> Lat {
        Lat {
            requests,
            ok: requests,
            rps,
            ..Lat::default()
        }
    }

    fn with_pg(rows: u64, answered: u64) -> Report {
        let mut r = Report {
            saturation_pg: Some(PgRun {
                pair: Pair::new(
                    "c=32, usage rows in PostgreSQL",
                    lat(900, 90.0),
                    lat(300, 30.0),
                ),
                cpu: Cpu {
                    gateway_us_per_req: 25.0,
                    gateway_cpu_s: 0.0075,
                    gateway_requests: 300,
                    upstream_us_per_req_direct: 0.0,
                    upstream_us_per_req_via: 0.0,
                    gateway_kernel_us_per_req: None,
                },
                postgres_us_per_req: 9.5,
                answered,
                rows,
            }),
            ..Report::default()
        };
        r.compute_targets();
        r
    }

    fn cpu(us: f64) -> Cpu {
        Cpu {
            upstream_us_per_req_direct: 9.0,
            upstream_us_per_req_via: 12.0,
            ..Cpu::gateway_only(us * 300e-6, 300).with_kernel(us * 0.5 * 300e-6)
        }
    }

    /// nginx as a reverse proxy gets its row beside the gateway's and a
    /// yardstick line (no verdict) comparing the two from the same run.
    #[test]
    fn proxy_yardstick_is_compared_with_the_gateway() {
        let mut r = Report {
            saturation: vec![(
                32,
                Pair::new("c=32", lat(900, 90.0), lat(300, 30.0)),
                cpu(30.0),
            )],
            saturation_proxy: Some((
                Pair::new("c=32, nginx reverse proxy", lat(900, 90.0), lat(450, 45.0)),
                cpu(15.0),
            )),
            ..Report::default()
        };
        r.compute_targets();
        let md = r.markdown();
        assert!(
            md.contains("| 32, **nginx as a reverse proxy** instead of the gateway | 90 | 45 | **0.50×** | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| 15.0 (kernel 7.5; nginx) | 9.0 / 12.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| **30.0** (kernel 15.0) | 9.0 / 12.0 |"),
            "{md}"
        );
        let line = r
            .targets
            .iter()
            .find(|t| t.target.contains("bare reverse proxy"))
            .expect("yardstick line");
        assert_eq!(line.met, None);
        assert!(
            line.measured
                .contains("nginx 0.50× of direct at 15.0 µs/req; the gateway has 0.67× nginx's throughput at 2.00× its CPU"),
            "{}",
            line.measured
        );
    }

    /// The PostgreSQL run shows in the saturation table on its own (no
    /// main rows), and a row short of the answered requests fails its line.
    #[test]
    fn postgres_run_is_reported_and_missing_rows_fail_it() {
        let ok = with_pg(301, 300);
        let md = ok.markdown();
        assert!(md.contains("## (c) Saturation"), "{md}");
        assert!(
            md.contains("| 32, usage rows in **PostgreSQL**, virtual key | 90 | 30 | **0.33×**"),
            "{md}"
        );
        assert!(md.contains("+ PostgreSQL 9.5"), "{md}");
        assert!(!md.contains("rows missing"), "{md}");
        let line = |r: &Report| {
            r.targets
                .iter()
                .find(|t| t.target.contains("usage rows in PostgreSQL"))
                .and_then(|t| t.met)
        };
        assert_eq!(line(&ok), Some(true));
        let short = with_pg(299, 300);
        assert_eq!(line(&short), Some(false));
        assert!(short.markdown().contains("rows missing"));
    }
}
