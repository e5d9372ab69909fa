//! The scenario runner: starts the upstreams and the gateway as separate
//! processes, drives them with wrk / oha / the bench client, reads the
//! gateway's CPU and RSS from /proc, and writes `report.md` + `report.json`.
//!
//! Every scenario is measured directly against the upstream and through the
//! gateway in the same run; figures are reported as differences and ratios.

use crate::client::Outcome;
use crate::configs;
use crate::report::{Lat, Report};
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Scenario groups: all, main (a–e, with the nginx and PostgreSQL
    /// runs), postgres (that run alone), stream, ladder, failover, peers.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also measure LiteLLM proxy and Portkey gateway (installed at bench time).
    #[arg(long)]
    pub peers: bool,
    /// Seconds per load run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Directory holding the release `switchyard` and `switchyard-bench` binaries.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Where report.md / report.json go.
    #[arg(long, default_value = "bench")]
    pub out_dir: PathBuf,
    /// Scratch directory (configs, logs, wrk scripts).
    #[arg(long, default_value = "target/bench-work")]
    pub work_dir: PathBuf,
    #[arg(long, default_value = "wrk")]
    pub wrk: String,
    #[arg(long, default_value = "oha")]
    pub oha: String,
    /// Peer commands prepared by scripts/bench.sh (empty: not installed).
    /// nginx binary for the neutral-upstream saturation run (empty: skip).
    #[arg(long, default_value = "")]
    pub nginx: String,
    /// A PostgreSQL server (`postgres://user@host:port`, no database) for
    /// the saturation run with the usage rows in PostgreSQL; the runner
    /// creates and drops a scratch database there with `psql` (empty: skip).
    #[arg(long, default_value = "")]
    pub postgres: String,
    #[arg(long, default_value = "")]
    pub litellm: String,
    #[arg(long, default_value = "")]
    pub portkey: String,
    /// Profile the gateway with `perf record` during an extra c=32 run.
    #[arg(long)]
    pub perf: bool,
    /// Soak duration (group `soak`), seconds.
    #[arg(long, default_value_t = 600)]
    pub soak_secs: u64,
    /// Notes from the script (installation results), repeated.
    #[arg(long)]
    pub note: Vec<String>,
}

/// A child process killed on drop.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn wait_port(port: u16, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{name} did not open port {port} within 60 s")
}

/// CPU time (utime + stime) of a process and its live descendants, seconds.
fn cpu_s(pid: u32) -> anyhow::Result<f64> {
    tree_secs(pid, UTIME..STIME + 1)
}

/// Kernel-mode CPU time (stime) of a process and its live descendants,
/// seconds.
fn sys_s(pid: u32) -> anyhow::Result<f64> {
    tree_secs(pid, STIME..STIME + 1)
}

/// The time fields `fields` of `pid` and of its live descendants (a
/// descendant gone in between counts 0), seconds.
fn tree_secs(pid: u32, fields: std::ops::Range<usize>) -> anyhow::Result<f64> {
    let mut total = stat_secs(pid, fields.clone())?;
    for c in descendants(pid) {
        total += stat_secs(c, fields.clone()).unwrap_or(0.0);
    }
    Ok(total)
}

/// (pid, ppid) of every process.
fn descendants(root: u32) -> Vec<u32> {
    let mut pairs = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
                if let Some(pp) = rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse::<u32>().ok())
                {
                    pairs.push((pid, pp));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &pairs {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Indices of the time fields among /proc/PID/stat's fields after the
/// `(comm)` (where the state, field 3, is index 0): utime is field 14,
/// stime 15, cutime 16, cstime 17.
const UTIME: usize = 11;
const STIME: usize = 12;
const CSTIME: usize = 14;

/// The sum of the clock-tick fields `fields` of /proc/`pid`/stat, seconds.
fn stat_secs(pid: u32, fields: std::ops::Range<usize>) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(stat_ticks(&s, fields)? / clk_tck())
}

/// The sum of the fields `fields` of a /proc/PID/stat line, counted after
/// the `(comm)`, which may itself hold spaces and parentheses.
fn stat_ticks(stat: &str, fields: std::ops::Range<usize>) -> anyhow::Result<f64> {
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let mut ticks = 0.0;
    for i in fields {
        let v: f64 = f.get(i).context("/proc/PID/stat time field")?.parse()?;
        ticks += v;
    }
    Ok(ticks)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident set size, MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    Ok(kb / 1024.0)
}

/// Samples a process's RSS in the background; `stop` returns the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut max = 0.0f64;
            while !s.load(Ordering::Relaxed) {
                if let Ok(r) = rss_mib(pid) {
                    max = max.max(r);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            max
        });
        RssSampler { stop, handle }
    }
    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0.0)
    }
}

/// A request target: where and what.
#[derive(Debug, Clone)]
struct Target {
    port: u16,
    path: String,
    body: String,
    key: Option<String>,
    /// Extra headers (peers).
    headers: Vec<(String, String)>,
}

impl Target {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.path)
    }
}

struct Runner {
    args: Args,
    rep: Report,
    work: PathBuf,
    bench_bin: PathBuf,
    gw_bin: PathBuf,
    wrk_seq: usize,
    /// The main scenarios' gateway and upstream, left running idle after
    /// their load so the report can read the gateway's RSS again once its
    /// pooled upstream connections have expired; with when the load ended.
    lingering: Option<(Proc, Proc, Instant)>,
    /// Run oha under `taskset -c <cpus>` (the pinned fixed-rate row).
    pin_client: Option<String>,
}

impl Runner {
    fn cmd_line(cmd: &Command) -> String {
        let mut s = String::new();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                s.push_str(&format!(
                    "{}={} ",
                    k.to_string_lossy(),
                    shell_quote(&v.to_string_lossy())
                ));
            }
        }
        s.push_str(&cmd.get_program().to_string_lossy());
        for a in cmd.get_args() {
            s.push(' ');
            s.push_str(&shell_quote(&a.to_string_lossy()));
        }
        s
    }

    fn record(&mut self, cmd: &Command) {
        let line = Self::cmd_line(cmd);
        if !self.rep.commands.contains(&line) {
            self.rep.commands.push(line);
        }
    }

    fn spawn(&mut self, mut cmd: Command, name: &str, log: Option<&Path>) -> anyhow::Result<Proc> {
        self.record(&cmd);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        match log {
            Some(p) => {
                cmd.stderr(std::fs::File::create(p)?);
            }
            None => {
                cmd.stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    fn upstream(&mut self, port: u16, extra: &[&str]) -> anyhow::Result<Proc> {
        let mut c = Command::new(&self.bench_bin);
        c.arg("upstream")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra);
        let p = self.spawn(c, "upstream", None)?;
        wait_port(port, "upstream")?;
        Ok(p)
    }

    fn gateway(&mut self, name: &str, config: &str, port: u16) -> anyhow::Result<Proc> {
        self.gateway_env(name, config, port, &[])
    }

    fn gateway_env(
        &mut self,
        name: &str,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        Ok(self.gateway_setup(name, config, port, env, false)?.0)
    }

    /// Start a gateway; with `virtual_key`, first create a tenant (plan
    /// `bench`) and a virtual key through the CLI against the gateway's
    /// database (its working directory's default), and return the key.
    fn gateway_setup(
        &mut self,
        name: &str,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
        virtual_key: bool,
    ) -> anyhow::Result<(Proc, Option<String>)> {
        let file = self.work.join(format!("{name}.yaml"));
        std::fs::write(&file, config)?;
        let log = self.work.join(format!("{name}.log"));
        // Own working directory per gateway start: whatever the gateway keeps
        // on disk by default (e.g. its usage database under ./data) starts
        // empty and stays out of the repository.
        let dir = self.work.join(format!("gw-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let key = if virtual_key {
            Some(self.cli_virtual_key(&dir, &file)?)
        } else {
            None
        };
        let mut c = Command::new(&self.gw_bin);
        c.current_dir(&dir);
        c.arg("serve")
            .arg("-c")
            .arg(&file)
            .env("GW_KEY", configs::GW_KEY)
            .env("UP_KEY", configs::UP_KEY)
            .envs(env.iter().copied());
        let p = self.spawn(c, &format!("gateway ({name})"), Some(&log))?;
        wait_port(port, &p.name)?;
        Ok((p, key))
    }

    /// `switchyard tenants create bench --plan bench` then `switchyard keys
    /// create --tenant …` in `dir` with `--config file`; the plaintext key.
    fn cli_virtual_key(&mut self, dir: &Path, file: &Path) -> anyhow::Result<String> {
        let bin = self.gw_bin.clone();
        let cli = |args: &[&str]| {
            let mut c = Command::new(&bin);
            c.current_dir(dir)
                .args(args)
                .arg("--config")
                .arg(file)
                .env("GW_KEY", configs::GW_KEY)
                .env("UP_KEY", configs::UP_KEY);
            c
        };
        let t = cli(&["tenants", "create", "bench", "--plan", "bench"]);
        let out = self.run_output(t, "switchyard tenants create")?;
        // "created tenant ten_… (bench, active, plan bench)"
        let tenant = out
            .split_whitespace()
            .find(|w| w.starts_with("ten_"))
            .with_context(|| format!("no tenant id in {out:?}"))?
            .to_owned();
        let k = cli(&["keys", "create", "--tenant", &tenant, "--name", "bench"]);
        let out = self.run_output(k, "switchyard keys create")?;
        out.split_whitespace()
            .find(|w| w.starts_with("sk-"))
            .map(str::to_owned)
            .with_context(|| format!("no key in the output of keys create: {out:?}"))
    }

    fn run_output(&mut self, mut cmd: Command, what: &str) -> anyhow::Result<String> {
        self.record(&cmd);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(2000)
                    .collect::<String>()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// oha: `rate` None = as fast as the connections allow; `n` or duration.
    fn oha(
        &mut self,
        t: &Target,
        conns: usize,
        rate: Option<u32>,
        n: Option<usize>,
    ) -> anyhow::Result<Lat> {
        let mut c = match &self.pin_client {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.args.oha);
                c
            }
            None => Command::new(&self.args.oha),
        };
        c.arg("--no-tui")
            .arg("--output-format")
            .arg("json")
            .arg("-c")
            .arg(conns.to_string());
        match n {
            Some(n) => {
                c.arg("-n").arg(n.to_string());
            }
            None => {
                c.arg("-z").arg(format!("{}s", self.args.duration));
            }
        }
        if let Some(r) = rate {
            c.arg("-q").arg(r.to_string()).arg("--latency-correction");
        }
        c.arg("-m")
            .arg("POST")
            .arg("-T")
            .arg("application/json")
            .arg("-d")
            .arg(&t.body);
        if let Some(k) = &t.key {
            c.arg("-H").arg(format!("Authorization: Bearer {k}"));
        }
        for (k, v) in &t.headers {
            c.arg("-H").arg(format!("{k}: {v}"));
        }
        c.arg(t.url());
        let out = self.run_output(c, "oha")?;
        let v: Value = serde_json::from_str(&out).context("oha JSON")?;
        Ok(Lat::from_oha(&v))
    }

    /// wrk closed loop at `conns` connections for the run duration.
    fn wrk(&mut self, t: &Target, conns: usize) -> anyhow::Result<Lat> {
        self.wrk_seq += 1;
        let script = self.work.join(format!("wrk-{}.lua", self.wrk_seq));
        let mut headers = String::from("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        if let Some(k) = &t.key {
            headers.push_str(&format!(
                "wrk.headers[\"Authorization\"] = \"Bearer {k}\"\n"
            ));
        }
        for (k, v) in &t.headers {
            headers.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
        }
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = [==[{}]==]\n{}{}",
            t.body,
            headers,
            include_str!("wrk_done.lua")
        );
        std::fs::write(&script, lua)?;
        let threads = conns.min(2);
        let mut c = Command::new(&self.args.wrk);
        c.arg(format!("-t{threads}"))
            .arg(format!("-c{conns}"))
            .arg(format!("-d{}s", self.args.duration))
            .arg("--latency")
            .arg("--timeout")
            .arg("5s")
            .arg("-s")
            .arg(&script)
            .arg(t.url());
        let out = self.run_output(c, "wrk")?;
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("WRKJSON "))
            .context("wrk printed no WRKJSON line")?;
        let v: Value = serde_json::from_str(line).context("wrk JSON")?;
        Ok(Lat::from_wrk(&v))
    }

    fn client(
        &mut self,
        t: &Target,
        n: usize,
        conns: usize,
        events: bool,
    ) -> anyhow::Result<Outcome> {
        // Recorded as the equivalent command line; run in-process.
        let mut c = Command::new(&self.bench_bin);
        c.arg("client")
            .arg("--addr")
            .arg(format!("127.0.0.1:{}", t.port))
            .arg("--path")
            .arg(&t.path)
            .arg("--body")
            .arg(&t.body)
            .arg("--requests")
            .arg(n.to_string())
            .arg("--connections")
            .arg(conns.to_string());
        if let Some(k) = &t.key {
            c.arg("--key").arg(k);
        }
        if events {
            c.arg("--events");
        }
        let out = self.run_output(c, "bench client")?;
        let v: Value = serde_json::from_str(&out).context("client JSON")?;
        Ok(serde_json::from_value(v)?)
    }
}

pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn want(args: &Args, group: &str) -> bool {
    args.only.iter().any(|g| g == "all" || g == group)
}

pub fn main(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work_dir)?;
    let work = std::fs::canonicalize(&args.work_dir)?;
    std::fs::create_dir_all(&args.out_dir)?;
    let bin_dir = std::fs::canonicalize(&args.bin_dir)
        .with_context(|| format!("{} not found", args.bin_dir.display()))?;
    let bench_bin = bin_dir.join("switchyard-bench");
    let gw_bin = bin_dir.join("switchyard");
    for b in [&bench_bin, &gw_bin] {
        if !b.exists() {
            bail!("{} not found: build with `cargo build --release -p switchyard-bench -p switchyard-server`", b.display());
        }
    }
    let mut r = Runner {
        rep: Report::new(&args),
        args,
        work,
        bench_bin,
        gw_bin,
        wrk_seq: 0,
        lingering: None,
        pin_client: None,
    };
    let started = Instant::now();
    if want(&r.args, "main") {
        main_scenarios(&mut r)?;
        nginx_saturation(&mut r)?;
    }
    if want(&r.args, "main") || r.args.only.iter().any(|g| g == "postgres") {
        postgres_saturation(&mut r)?;
    }
    if want(&r.args, "stream") {
        stream_scenarios(&mut r)?;
    }
    if want(&r.args, "ladder") {
        ladder(&mut r)?;
    }
    if want(&r.args, "failover") {
        failover(&mut r)?;
    }
    if r.args.only.iter().any(|g| g == "soak") {
        soak(&mut r)?;
    }
    if r.args.peers || r.args.only.iter().any(|g| g == "peers") {
        peers(&mut r)?;
    }
    rss_after_pool(&mut r)?;
    auto_notes(&mut r.rep, r.args.duration);
    r.rep.wall_s = started.elapsed().as_secs_f64();
    r.rep.write(&r.args.out_dir)?;
    println!(
        "report written: {}/report.md, {}/report.json",
        r.args.out_dir.display(),
        r.args.out_dir.display()
    );
    Ok(())
}

fn gw_target(port: u16, body: String) -> Target {
    Target {
        port,
        path: "/v1/chat/completions".into(),
        body,
        key: Some(configs::GW_KEY.into()),
        headers: vec![],
    }
}

fn up_target(port: u16, path: &str, body: String) -> Target {
    Target {
        port,
        path: path.into(),
        body,
        key: None,
        headers: vec![],
    }
}

/// The chat request direct to the upstream, and through the gateway with
/// `key` (a virtual key; none: the static gateway key).
fn keyed_targets(up_port: u16, gw_port: u16, key: Option<String>) -> (Target, Target) {
    let direct = up_target(
        up_port,
        "/v1/chat/completions",
        configs::chat_body("bench-model"),
    );
    let mut via = gw_target(gw_port, configs::chat_body("bench"));
    if key.is_some() {
        via.key = key;
    }
    (direct, via)
}

/// 50 req/s with every thread of `pids` and the load generator on CPU 0;
/// the processes get all CPUs back afterwards, whatever happened.
fn pinned_low_rate(
    r: &mut Runner,
    pids: &[u32],
    direct: &Target,
    via: &Target,
) -> anyhow::Result<crate::report::Pair> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = format!("0-{}", cpus.saturating_sub(1));
    let set = |cpus: &str| -> anyhow::Result<()> {
        for pid in pids {
            let st = Command::new("taskset")
                .args(["-a", "-p", "-c", cpus, &pid.to_string()])
                .stdout(Stdio::null())
                .status()
                .context("taskset")?;
            anyhow::ensure!(st.success(), "taskset -a -p -c {cpus} {pid}: {st}");
        }
        Ok(())
    };
    let res = set("0").and_then(|()| {
        r.pin_client = Some("0".into());
        let pair = r.oha(direct, 4, Some(50), None).and_then(|d| {
            let g = r.oha(via, 4, Some(50), None)?;
            Ok(crate::report::Pair::new("50 req/s, all on CPU 0", d, g))
        });
        r.pin_client = None;
        pair
    });
    set(&all)?;
    res
}

/// (a)–(c), (e): sequential, fixed rate, saturation, CPU and RSS.
fn main_scenarios(r: &mut Runner) -> anyhow::Result<()> {
    println!("== main scenarios");
    let up_port = free_port()?;
    let gw_port = free_port()?;
    let up = r.upstream(up_port, &[])?;
    let gw = r.gateway("main", &configs::main_config(gw_port, up_port), gw_port)?;
    let direct = up_target(
        up_port,
        "/v1/chat/completions",
        configs::chat_body("bench-model"),
    );
    let via = gw_target(gw_port, configs::chat_body("bench"));

    std::thread::sleep(Duration::from_millis(500));
    let rss_start = rss_mib(gw.pid())?;
    // Warm-up: connections, pools, allocator.
    r.oha(&direct, 8, None, Some(2000))?;
    r.oha(&via, 8, None, Some(2000))?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = rss_mib(gw.pid())?;

    // (a) one sequential client.
    println!("   sequential");
    let d = r.oha(&direct, 1, None, None)?;
    let g = r.oha(&via, 1, None, None)?;
    r.rep.sequential = Some(crate::report::Pair::new("one client, sequential", d, g));

    // (b) fixed rates.
    for rate in [50u32, 500, 2000] {
        println!("   fixed rate {rate}/s");
        let conns = if rate <= 50 { 4 } else { 16 };
        let d = r.oha(&direct, conns, Some(rate), None)?;
        let g = r.oha(&via, conns, Some(rate), None)?;
        r.rep.fixed_rate.push((
            rate,
            crate::report::Pair::new(&format!("{rate} req/s"), d, g),
        ));
    }

    // (b') 50 req/s again with the client, the gateway and the upstream on
    // one CPU: every wake-up is then local, so the difference to the row
    // above is what waking an idle CPU costs on this machine.
    println!("   fixed rate 50/s, all on CPU 0");
    match pinned_low_rate(r, &[up.pid(), gw.pid()], &direct, &via) {
        Ok(p) => r.rep.fixed_rate_one_cpu = Some(p),
        Err(e) => r
            .rep
            .notes
            .push(format!("50 req/s on one CPU: not measured ({e:#})")),
    }

    // (c) + (e): saturation with CPU and RSS of the gateway process; at
    // c=32 also nginx as a bare reverse proxy in front of the same upstream
    // (the yardstick: what forwarding alone costs here).
    let proxy_port = free_port()?;
    let proxy = if r.args.nginx.is_empty() {
        None
    } else {
        let dir = r.work.join("nginx-proxy");
        let conf = nginx_proxy_conf(&dir, proxy_port, up_port);
        match start_nginx(r, &dir, &conf, proxy_port) {
            Ok(p) => Some(p),
            Err(e) => {
                r.rep
                    .notes
                    .push(format!("nginx as a reverse proxy: not started ({e:#})"));
                None
            }
        }
    };
    let proxied = Target {
        port: proxy_port,
        ..direct.clone()
    };
    if proxy.is_some() {
        r.oha(&proxied, 8, None, Some(2000))?;
    }
    let mut rss_load = 0.0f64;
    for conns in [32usize, 128] {
        println!("   saturation c={conns}");
        let up_cpu0 = cpu_s(up.pid())?;
        let d = r.wrk(&direct, conns)?;
        let up_cpu_direct = cpu_s(up.pid())? - up_cpu0;
        let gw_cpu0 = cpu_s(gw.pid())?;
        let gw_sys0 = sys_s(gw.pid())?;
        let up_cpu1 = cpu_s(up.pid())?;
        let sampler = RssSampler::start(gw.pid());
        let g = r.wrk(&via, conns)?;
        rss_load = rss_load.max(sampler.stop());
        let gw_cpu = cpu_s(gw.pid())? - gw_cpu0;
        let gw_sys = sys_s(gw.pid())? - gw_sys0;
        let up_cpu_via = cpu_s(up.pid())? - up_cpu1;
        let cpu = crate::report::Cpu {
            upstream_us_per_req_direct: up_cpu_direct * 1e6 / d.requests.max(1) as f64,
            upstream_us_per_req_via: up_cpu_via * 1e6 / g.requests.max(1) as f64,
            ..crate::report::Cpu::gateway_only(gw_cpu, g.requests).with_kernel(gw_sys)
        };
        if let (32, Some(nginx)) = (conns, &proxy) {
            println!("   saturation c=32, nginx as a reverse proxy");
            let nx_cpu0 = cpu_s(nginx.pid())?;
            let nx_sys0 = sys_s(nginx.pid())?;
            let up_cpu0 = cpu_s(up.pid())?;
            let n = r.wrk(&proxied, conns)?;
            let nx_cpu = cpu_s(nginx.pid())? - nx_cpu0;
            let nx_sys = sys_s(nginx.pid())? - nx_sys0;
            let up_cpu_nx = cpu_s(up.pid())? - up_cpu0;
            let ncpu = crate::report::Cpu {
                upstream_us_per_req_direct: cpu.upstream_us_per_req_direct,
                upstream_us_per_req_via: up_cpu_nx * 1e6 / n.requests.max(1) as f64,
                ..crate::report::Cpu::gateway_only(nx_cpu, n.requests).with_kernel(nx_sys)
            };
            r.rep.saturation_proxy = Some((
                crate::report::Pair::new("c=32, nginx reverse proxy", d.clone(), n),
                ncpu,
            ));
        }
        r.rep.saturation.push((
            conns,
            crate::report::Pair::new(&format!("c={conns}"), d, g),
            cpu,
        ));
    }
    if let Some(nginx) = proxy {
        stop_nginx(nginx);
    }
    std::thread::sleep(Duration::from_secs(5));
    let rss_after = rss_mib(gw.pid())?;
    if r.args.perf {
        println!("   perf profile at c=32");
        match profile(r, gw.pid(), &via) {
            Ok(p) => r.rep.profile = Some(p),
            Err(e) => r.rep.notes.push(format!("perf profile failed: {e:#}")),
        }
    }
    r.rep.rss = Some(crate::report::Rss {
        start_mib: rss_start,
        idle_mib: rss_idle,
        load_max_mib: rss_load,
        after_mib: rss_after,
        after_pool_mib: None,
    });
    // Both stay up, idle: the upstream's connections must expire on the
    // gateway's pool timer, not close because the upstream went away.
    r.lingering = Some((gw, up, Instant::now()));
    Ok(())
}

/// An nginx configuration: the settings every bench nginx shares (workers
/// per CPU, files under `dir`, no access log, keep-alive without a request
/// cap) around `server`, the one server block.
fn nginx_conf_around(dir: &Path, http_extra: &str, server: &str) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  keepalive_requests 100000000;
{http_extra}  server {{
{server}  }}
}}
"#
    )
}

/// nginx serving the bench upstream's fixed OpenAI reply: the neutral
/// upstream issue 5's peer figures were measured against.
pub fn nginx_conf(dir: &Path, port: u16, reply: &str) -> String {
    nginx_conf_around(
        dir,
        "",
        &format!(
            r#"    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 '{reply}';
    }}
"#
        ),
    )
}

/// nginx as a bare reverse proxy in front of the upstream at `up_port`,
/// configured as one would for an LLM API: HTTP/1.1 to a keep-alive pool,
/// `TCP_NODELAY`, responses relayed unbuffered (streams must flow). It
/// forwards bytes and nothing else (no key, no JSON, no usage row): what
/// proxying alone costs on this machine, the yardstick for the gateway's
/// c=32 row.
pub fn nginx_proxy_conf(dir: &Path, port: u16, up_port: u16) -> String {
    nginx_conf_around(
        dir,
        &format!(
            "  upstream bench_up {{\n    server 127.0.0.1:{up_port};\n    keepalive 64;\n    keepalive_requests 100000000;\n  }}\n"
        ),
        &format!(
            r#"    listen 127.0.0.1:{port};
    tcp_nodelay on;
    location / {{
      proxy_pass http://bench_up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
"#
        ),
    )
}

/// Start nginx on `conf` (written into `dir`), answering on `port`.
fn start_nginx(r: &mut Runner, dir: &Path, conf: &str, port: u16) -> anyhow::Result<Proc> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let file = dir.join("nginx.conf");
    std::fs::write(&file, conf)?;
    let mut c = Command::new(&r.args.nginx);
    c.arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&file);
    let nginx = r.spawn(c, "nginx", Some(&dir.join("nginx.log")))?;
    wait_port(port, "nginx")?;
    Ok(nginx)
}

/// SIGTERM, not the SIGKILL `Proc` ends with: nginx's master stops its
/// worker processes on TERM; killed outright it would leave them running.
fn stop_nginx(nginx: Proc) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(nginx.pid().to_string())
        .status();
    std::thread::sleep(Duration::from_millis(300));
    drop(nginx);
}

/// (c) and (e) once more with nginx as the upstream, governance on as the
/// targets define it (a CLI-made virtual key, a rate-limited plan, usage
/// rows): issue 5's peer figures were measured against nginx, so this
/// ratio is the one comparable with theirs.
fn nginx_saturation(r: &mut Runner) -> anyhow::Result<()> {
    if r.args.nginx.is_empty() {
        r.rep
            .notes
            .push("nginx not installed: no neutral-upstream saturation run".into());
        return Ok(());
    }
    println!("== saturation against nginx (c=32)");
    let up_port = free_port()?;
    let gw_port = free_port()?;
    let fixtures = crate::upstream::Fixtures::new();
    let reply = std::str::from_utf8(fixtures.openai_json())?;
    let dir = r.work.join("nginx");
    let nginx = start_nginx(r, &dir, &nginx_conf(&dir, up_port, reply), up_port)?;
    let (gw, key) = r.gateway_setup(
        "nginx",
        &configs::governed_config(gw_port, up_port),
        gw_port,
        &[],
        true,
    )?;
    let (direct, via) = keyed_targets(up_port, gw_port, key);
    r.oha(&direct, 8, None, Some(2000))?;
    r.oha(&via, 8, None, Some(2000))?;
    let d = r.wrk(&direct, 32)?;
    let gw_cpu0 = cpu_s(gw.pid())?;
    let gw_sys0 = sys_s(gw.pid())?;
    let g = r.wrk(&via, 32)?;
    let gw_cpu = cpu_s(gw.pid())? - gw_cpu0;
    let gw_sys = sys_s(gw.pid())? - gw_sys0;
    // The upstream (nginx) is not read here.
    let cpu = crate::report::Cpu::gateway_only(gw_cpu, g.requests).with_kernel(gw_sys);
    r.rep.saturation_nginx = Some((crate::report::Pair::new("c=32, nginx", d, g), cpu));
    drop(gw);
    stop_nginx(nginx);
    Ok(())
}

/// CPU time of every process named `postgres` (the server's backends and
/// its background processes), seconds, including backends that have exited
/// since (the postmaster reaps them: their time moves to its cutime and
/// cstime).
fn postgres_cpu_s() -> f64 {
    let mut total = 0.0;
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end() == "postgres" {
                // utime, stime, cutime, cstime.
                total += stat_secs(pid, UTIME..CSTIME + 1).unwrap_or(0.0);
            }
        }
    }
    total
}

/// c=32 once more with governance on (virtual key, plan limits) and the
/// usage rows in PostgreSQL, as replicas in production keep them: the
/// gateway's CPU and the database server's CPU per request (the server runs
/// on this machine, so it takes its share of the two cores), and whether
/// every answered request left its row once the gateway drained.
fn postgres_saturation(r: &mut Runner) -> anyhow::Result<()> {
    if r.args.postgres.is_empty() {
        r.rep.notes.push(
            "PostgreSQL not reachable (scripts/bench.sh looks for 127.0.0.1:5432): no saturation run with the usage rows in PostgreSQL".into(),
        );
        return Ok(());
    }
    println!("== saturation with the usage rows in PostgreSQL (c=32)");
    let server = r.args.postgres.trim_end_matches('/').to_owned();
    let db = format!("switchyard_bench_{}", std::process::id());
    let psql = |r: &mut Runner, database: &str, sql: &str| -> anyhow::Result<String> {
        let mut c = Command::new("psql");
        c.arg(format!("{server}/{database}"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(sql);
        r.run_output(c, "psql")
    };
    psql(
        r,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )?;
    psql(r, "postgres", &format!("CREATE DATABASE {db}"))?;
    let res = postgres_run(r, &format!("{server}/{db}"), |r| {
        psql(r, &db, "SELECT count(*) FROM usage_log")
    });
    let dropped = psql(
        r,
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    let run = res?;
    dropped?;
    r.rep.saturation_pg = Some(run);
    Ok(())
}

fn postgres_run(
    r: &mut Runner,
    url: &str,
    count_rows: impl Fn(&mut Runner) -> anyhow::Result<String>,
) -> anyhow::Result<crate::report::PgRun> {
    let up_port = free_port()?;
    let gw_port = free_port()?;
    let _up = r.upstream(up_port, &[])?;
    let config = format!(
        "{}  database_url: {url}\n",
        configs::governed_config(gw_port, up_port)
    );
    let (mut gw, key) = r.gateway_setup("postgres", &config, gw_port, &[], true)?;
    let (direct, via) = keyed_targets(up_port, gw_port, key);
    r.oha(&direct, 8, None, Some(2000))?;
    let warm_g = r.oha(&via, 8, None, Some(2000))?;
    let d = r.wrk(&direct, 32)?;
    let gw_cpu0 = cpu_s(gw.pid())?;
    let pg_cpu0 = postgres_cpu_s();
    let g = r.wrk(&via, 32)?;
    let gw_cpu = cpu_s(gw.pid())? - gw_cpu0;
    // Rows still in the gateway's batch are written while it drains; the
    // server's CPU for them is counted by reading it after the drain.
    let answered = warm_g.ok + g.ok;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(gw.pid().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if gw.child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pg_cpu = postgres_cpu_s() - pg_cpu0;
    let rows: u64 = count_rows(r)?
        .trim()
        .parse()
        .context("usage_log row count")?;
    let cpu = crate::report::Cpu::gateway_only(gw_cpu, g.requests);
    let postgres_us_per_req = pg_cpu * 1e6 / g.requests.max(1) as f64;
    Ok(crate::report::PgRun {
        pair: crate::report::Pair::new("c=32, usage rows in PostgreSQL", d, g),
        cpu,
        postgres_us_per_req,
        answered,
        rows,
    })
}

/// Seconds after the load when the main gateway's RSS is read a second
/// time: twice the upstream pool's idle timeout (the pool's reaper drops
/// an idle connection at its first check, once per timeout, after the
/// timeout has passed), the allocator trim's quiet interval and a 4 s margin
/// (185 s with the 90 s timeout).
pub const AFTER_POOL_S: u64 = 2 * switchyard_server::upstream::POOL_IDLE_TIMEOUT.as_secs()
    + switchyard_server::trim::QUIET.as_secs()
    + 4;

/// Read the lingering main gateway's RSS once its pooled upstream
/// connections have expired (waiting for the rest of the interval if the
/// other groups took less), then stop it.
fn rss_after_pool(r: &mut Runner) -> anyhow::Result<()> {
    let Some((gw, up, load_end)) = r.lingering.take() else {
        return Ok(());
    };
    let due = load_end + Duration::from_secs(AFTER_POOL_S);
    let now = Instant::now();
    if due > now {
        println!(
            "== waiting {:.0} s for the main gateway's upstream pool to expire",
            (due - now).as_secs_f64()
        );
        std::thread::sleep(due - now);
    }
    let mib = rss_mib(gw.pid())?;
    if let Some(rss) = r.rep.rss.as_mut() {
        rss.after_pool_mib = Some(mib);
    }
    drop(gw);
    drop(up);
    Ok(())
}

/// `perf record` (cpu-clock sampling: hardware counters are not available
/// here) of the gateway during a c=32 saturation run; flat top symbols.
fn profile(r: &mut Runner, pid: u32, via: &Target) -> anyhow::Result<String> {
    let data = r.work.join("perf.data");
    let mut c = Command::new("perf");
    c.arg("record")
        .arg("-e")
        .arg("cpu-clock")
        .arg("-F")
        .arg("1999")
        .arg("-g")
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg("sleep")
        .arg(r.args.duration.saturating_sub(2).max(1).to_string());
    let rec = r.spawn(c, "perf record", None)?;
    r.wrk(via, 32)?;
    let mut rec = rec;
    let _ = rec.child.wait();
    let mut lines = perf_report(r, &data, "symbol", &["--percent-limit", "0.7"])?;
    for l in &mut lines {
        *l = l.trim_end_matches(['-', ' ']).to_owned();
    }
    lines.truncate(45);
    let mut dso = perf_report(r, &data, "dso", &[])?;
    dso.truncate(8);
    // Which thread: the I/O workers (`switchyard-io-N`), the SQLite usage
    // writer (`usage-writer`), the control runtime (`tokio-rt-worker`:
    // usage drain, metrics, governance refresh; `sqlx-sqlite-wor…` is
    // sqlx's thread for the other governance queries).
    let mut comm = perf_report(r, &data, "comm", &[])?;
    comm.truncate(8);
    Ok(format!(
        "by thread (self time):\n{}\n\nby binary/library (self time):\n{}\n\ntop symbols (self time, ≥ 0.7%):\n{}",
        comm.join("\n"),
        dso.join("\n"),
        lines.join("\n")
    ))
}

/// `perf report --stdio` of `data`, flat self time sorted by `sort`: the
/// non-empty, non-comment lines.
fn perf_report(
    r: &mut Runner,
    data: &Path,
    sort: &str,
    extra: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut c = Command::new("perf");
    c.arg("report")
        .arg("-i")
        .arg(data)
        .args(["--stdio", "--no-children", "--sort", sort, "-g", "none"])
        .args(extra);
    let out = r.run_output(c, "perf report")?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end().to_owned())
        .collect())
}

/// Memory over a long steady load: RSS every 10 s at 500 req/s.
fn soak(r: &mut Runner) -> anyhow::Result<()> {
    println!("== soak ({} s at 500 req/s)", r.args.soak_secs);
    let up_port = free_port()?;
    let gw_port = free_port()?;
    let _up = r.upstream(up_port, &[])?;
    let gw = r.gateway("soak", &configs::main_config(gw_port, up_port), gw_port)?;
    let via = gw_target(gw_port, configs::chat_body("bench"));
    r.oha(&via, 8, None, Some(2000))?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = gw.pid();
    let mut curve = vec![(0.0, rss_mib(pid)?)];
    let secs = r.args.soak_secs;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut pts = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(10));
            if let Ok(m) = rss_mib(pid) {
                pts.push((t0.elapsed().as_secs_f64(), m));
            }
        }
        pts
    });
    let saved = r.args.duration;
    r.args.duration = secs;
    let res = r.oha(&via, 16, Some(500), None);
    r.args.duration = saved;
    stop.store(true, Ordering::Relaxed);
    curve.extend(sampler.join().unwrap_or_default());
    let load = res?;
    std::thread::sleep(Duration::from_secs(5));
    curve.push((secs as f64 + 5.0, rss_mib(pid)?));
    r.rep.soak = Some(crate::report::Soak {
        seconds: secs,
        rate: 500,
        load,
        rss_curve_mib: curve,
    });
    Ok(())
}

/// (d): streaming TTFB/total, relay timing at 100 ms per chunk.
fn stream_scenarios(r: &mut Runner) -> anyhow::Result<()> {
    println!("== streaming");
    let up_port = free_port()?;
    let gw_port = free_port()?;
    let _up = r.upstream(up_port, &[])?;
    let _gw = r.gateway("stream", &configs::main_config(gw_port, up_port), gw_port)?;
    let direct = up_target(
        up_port,
        "/v1/chat/completions",
        configs::stream_body("bench-model"),
    );
    let via = gw_target(gw_port, configs::stream_body("bench"));
    r.client(&direct, 200, 1, false)?;
    r.client(&via, 200, 1, false)?;
    let n = 2000;
    let d = r.client(&direct, n, 1, true)?;
    let g = r.client(&via, n, 1, true)?;
    r.rep.stream = Some((d, g));
    let tdirect = up_target(up_port, "/v1/messages", configs::anthropic_body(true));
    let tvia = gw_target(gw_port, configs::stream_body("bench-translated"));
    let d = r.client(&tdirect, n, 1, true)?;
    let g = r.client(&tvia, n, 1, true)?;
    r.rep.stream_translated = Some((d, g));

    println!("   relay timing (100 ms chunks)");
    let slow_port = free_port()?;
    let gw2_port = free_port()?;
    let _slow = r.upstream(slow_port, &["--chunk-delay-ms", "100"])?;
    let _gw2 = r.gateway(
        "relay",
        &configs::main_config(gw2_port, slow_port),
        gw2_port,
    )?;
    let d = r.client(
        &up_target(
            slow_port,
            "/v1/chat/completions",
            configs::stream_body("bench-model"),
        ),
        3,
        1,
        true,
    )?;
    let g = r.client(
        &gw_target(gw2_port, configs::stream_body("bench")),
        3,
        1,
        true,
    )?;
    r.rep.relay = Some((d, g));
    Ok(())
}

/// The feature ladder: one gateway process per step (a step = a config).
fn ladder(r: &mut Runner) -> anyhow::Result<()> {
    println!("== feature ladder");
    let up_port = free_port()?;
    let up = r.upstream(up_port, &[])?;
    for step in configs::ladder() {
        if let Some(todo) = step.todo {
            r.rep
                .ladder
                .push(crate::report::Rung::todo(step.name, todo));
            continue;
        }
        println!("   {}", step.name);
        let gw_port = free_port()?;
        let (gw, vkey) = r.gateway_setup(
            "ladder",
            &(step.config)(gw_port, up_port),
            gw_port,
            step.env,
            step.virtual_key,
        )?;
        let via = Target {
            port: gw_port,
            path: step.path.into(),
            body: step.body.clone(),
            key: Some(vkey.unwrap_or_else(|| configs::GW_KEY.into())),
            headers: step
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        // The same request straight to the upstream, in the upstream's format.
        let stream = crate::upstream::wants_stream(step.body.as_bytes());
        let direct = if step.body.contains("bench-translated") {
            up_target(up_port, "/v1/messages", configs::anthropic_body(stream))
        } else {
            let b = if stream {
                configs::stream_body("bench-model")
            } else {
                configs::chat_body("bench-model")
            };
            up_target(up_port, "/v1/chat/completions", b)
        };
        r.oha(&via, 8, None, Some(2000))?;
        let dseq = r.oha(&direct, 1, None, Some(3000))?;
        let gseq = r.oha(&via, 1, None, Some(3000))?;
        let d = r.wrk(&direct, 32)?;
        let cpu0 = cpu_s(gw.pid())?;
        let g = r.wrk(&via, 32)?;
        let cpu = cpu_s(gw.pid())? - cpu0;
        r.rep.ladder.push(crate::report::Rung {
            name: step.name.into(),
            todo: None,
            sequential: Some(crate::report::Pair::new("sequential", dseq, gseq)),
            saturation: Some(crate::report::Pair::new("c=32", d, g.clone())),
            cpu_us_per_req: Some(cpu * 1e6 / g.requests.max(1) as f64),
        });
        drop(gw);
    }
    drop(up);
    Ok(())
}

/// Issue 3's benchmark: one of two deployments hard-down (connection
/// refused), then returning 500s; breaker open; success rate and added
/// latency next to the all-healthy figures of the same run.
fn failover(r: &mut Runner) -> anyhow::Result<()> {
    println!("== failover");
    let a_port = free_port()?;
    let b_port = free_port()?;
    let gw_port = free_port()?;
    let _a = r.upstream(a_port, &[])?;
    let b = r.upstream(b_port, &[])?;
    let gw = r.gateway(
        "failover",
        &configs::failover_config(gw_port, a_port, b_port),
        gw_port,
    )?;
    let direct = up_target(
        a_port,
        "/v1/chat/completions",
        configs::chat_body("bench-model"),
    );
    let via = gw_target(gw_port, configs::chat_body("bench-ha"));
    let rate = 500;
    r.oha(&via, 8, None, Some(2000))?;

    let mut phases = Vec::new();
    // Phase 1: all healthy.
    println!("   phase 1: all healthy");
    let d = r.oha(&direct, 16, Some(rate), None)?;
    let g = r.oha(&via, 16, Some(rate), None)?;
    let probe = r.client(&via, 40, 1, false)?;
    phases.push(crate::report::FailoverPhase::new(
        "all healthy",
        None,
        d,
        g,
        probe,
    ));

    // Phase 2: B hard-down.
    println!("   phase 2: one deployment hard-down (connection refused)");
    drop(b);
    let warm = warm_until_open(r, &via)?;
    let d = r.oha(&direct, 16, Some(rate), None)?;
    let g = r.oha(&via, 16, Some(rate), None)?;
    let probe = r.client(&via, 40, 1, false)?;
    phases.push(crate::report::FailoverPhase::new(
        "one deployment hard-down (connection refused), breaker open",
        Some(warm),
        d,
        g,
        probe,
    ));

    // Phase 3: B answers 500. A fresh gateway so B's breaker starts closed.
    println!("   phase 3: one deployment answering 500");
    drop(gw);
    let _b500 = r.upstream(b_port, &["--fail500"])?;
    let gw_port = free_port()?;
    let _gw = r.gateway(
        "failover500",
        &configs::failover_config(gw_port, a_port, b_port),
        gw_port,
    )?;
    let via = gw_target(gw_port, configs::chat_body("bench-ha"));
    let warm = warm_until_open(r, &via)?;
    let d = r.oha(&direct, 16, Some(rate), None)?;
    let g = r.oha(&via, 16, Some(rate), None)?;
    let probe = r.client(&via, 40, 1, false)?;
    phases.push(crate::report::FailoverPhase::new(
        "one deployment answering HTTP 500, breaker open",
        Some(warm),
        d,
        g,
        probe,
    ));
    r.rep.failover = Some(crate::report::Failover { rate, phases });
    Ok(())
}

/// Send sequential requests until 20 in a row took a single attempt (the
/// failing deployment's breaker is open and skipped). Returns the warm-up
/// outcome (every request, including those that failed over).
fn warm_until_open(r: &mut Runner, via: &Target) -> anyhow::Result<Outcome> {
    let mut total = Outcome::default();
    for _ in 0..20 {
        let o = r.client(via, 20, 1, false)?;
        let single = o.attempts.get("1").copied().unwrap_or(0);
        total.requests += o.requests;
        total.ok += o.ok;
        total.errors += o.errors;
        for (k, v) in o.attempts {
            *total.attempts.entry(k).or_default() += v;
        }
        for (k, v) in o.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        if single == o.requests {
            return Ok(total);
        }
    }
    bail!("the failing deployment's breaker never opened (400 requests)")
}

/// Peer gateways: LiteLLM proxy and Portkey, when the script installed them.
fn peers(r: &mut Runner) -> anyhow::Result<()> {
    println!("== peers");
    let up_port = free_port()?;
    let _up = r.upstream(up_port, &[])?;
    let direct = up_target(
        up_port,
        "/v1/chat/completions",
        configs::chat_body("bench-model"),
    );
    let peers: Vec<(&str, String)> = vec![
        ("LiteLLM proxy", r.args.litellm.clone()),
        ("Portkey gateway", r.args.portkey.clone()),
    ];
    for (name, cmd) in peers {
        if cmd.is_empty() {
            r.rep.peers.push(crate::report::Peer::missing(
                name,
                "not installed (see notes)",
            ));
            continue;
        }
        println!("   {name}");
        match peer_run(r, name, &cmd, up_port, &direct) {
            Ok(p) => r.rep.peers.push(p),
            Err(e) => r
                .rep
                .peers
                .push(crate::report::Peer::missing(name, &format!("{e:#}"))),
        }
    }
    Ok(())
}

fn peer_run(
    r: &mut Runner,
    name: &str,
    cmd: &str,
    up_port: u16,
    direct: &Target,
) -> anyhow::Result<crate::report::Peer> {
    let port = free_port()?;
    let is_litellm = name.starts_with("LiteLLM");
    let mut target = Target {
        port,
        path: "/v1/chat/completions".into(),
        body: configs::chat_body("bench-model"),
        key: None,
        headers: vec![],
    };
    let mut c = Command::new("bash");
    if is_litellm {
        let cfg = r.work.join("litellm.yaml");
        std::fs::write(
            &cfg,
            format!(
                "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench-model\n      api_base: http://127.0.0.1:{up_port}/v1\n      api_key: {}\ngeneral_settings:\n  master_key: {}\nlitellm_settings:\n  telemetry: false\n",
                configs::UP_KEY,
                configs::GW_KEY
            ),
        )?;
        // Use the bundled model-cost map: no outbound fetch at start-up.
        c.arg("-c")
            .arg(format!(
                "exec {cmd} --config {} --host 127.0.0.1 --port {port} --num_workers 1",
                cfg.display()
            ))
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True");
        target.body = configs::chat_body("bench");
        target.key = Some(configs::GW_KEY.into());
    } else {
        c.arg("-c")
            .arg(format!("exec {cmd} --port={port}"))
            .env("PORT", port.to_string());
        target.headers = vec![
            ("x-portkey-provider".into(), "openai".into()),
            (
                "x-portkey-custom-host".into(),
                format!("http://127.0.0.1:{up_port}/v1"),
            ),
            (
                "Authorization".into(),
                format!("Bearer {}", configs::UP_KEY),
            ),
        ];
    }
    let log = r.work.join(format!(
        "{}.log",
        if is_litellm { "litellm" } else { "portkey" }
    ));
    let p = r.spawn(c, name, Some(&log))?;
    wait_port(port, name)?;
    std::thread::sleep(Duration::from_secs(2));
    r.oha(&target, 4, None, Some(200))?;
    let dseq = r.oha(direct, 1, None, Some(1000))?;
    let gseq = r.oha(&target, 1, None, Some(1000))?;
    let d50 = r.oha(direct, 4, Some(50), None)?;
    let g50 = r.oha(&target, 4, Some(50), None)?;
    let d = r.wrk(direct, 32)?;
    let cpu0 = cpu_s(p.pid()).unwrap_or(0.0);
    let g = r.wrk(&target, 32)?;
    let cpu = cpu_s(p.pid()).unwrap_or(0.0) - cpu0;
    Ok(crate::report::Peer {
        name: name.into(),
        error: None,
        sequential: Some(crate::report::Pair::new("sequential", dseq, gseq)),
        rate50: Some(crate::report::Pair::new("50 req/s", d50, g50)),
        saturation: Some(crate::report::Pair::new("c=32", d, g.clone())),
        cpu_us_per_req: Some(cpu * 1e6 / g.requests.max(1) as f64),
        note:
            "CPU is the peer's main process only (children, e.g. worker processes, are not counted)"
                .into(),
    })
}

/// Notes on what limited each figure, from the figures themselves.
fn auto_notes(rep: &mut crate::report::Report, duration: u64) {
    let mut n = Vec::new();
    if let Some((_, p, cpu)) = rep.saturation.iter().find(|(c, _, _)| *c == 32) {
        let cores = cpu.gateway_cpu_s / duration as f64;
        n.push(format!(
            "Saturation (c): wrk (2 threads), the upstream and the gateway share the same 2 cores. At c=32 the gateway \
             process used {cores:.2} cores ({:.1} µs/request), and the upstream {:.1} µs/request while serving through it; \
             through-the-gateway throughput is therefore bounded by (gateway + upstream + wrk) CPU per request, not by the \
             gateway's latency. The direct baseline ({:.0} req/s) is the bench's own hyper upstream, which is faster than \
             the nginx figure quoted in issue 5 (88,000 req/s): at 88,000 direct the same gateway throughput would be a \
             ratio of {:.2}×.",
            cpu.gateway_us_per_req,
            cpu.upstream_us_per_req_via,
            p.direct.rps,
            p.gateway.rps / 88_000.0
        ));
        if let Some((np, ncpu)) = &rep.saturation_proxy {
            n.push(format!(
                "Against nginx as a bare reverse proxy (c=32, same upstream, same direct run): nginx forwards at \
                 {:.1} µs/request and reaches {:.2}× of direct; the gateway uses {:.1} µs/request more. Both make the \
                 same two reads and two writes per request, so that difference is the gateway's own work — hyper's \
                 HTTP parsing and writing on both sides, the request's JSON (model, stream options), the key and the \
                 plan's limits, tokens and cost from the response, the metrics, and the usage row (SQLite, on its own \
                 thread) — plus the extra scheduling of its threads. The upstream used {:.1} µs/request through nginx \
                 and {:.1} through the gateway.{}",
                ncpu.gateway_us_per_req,
                np.throughput_ratio,
                cpu.gateway_us_per_req - ncpu.gateway_us_per_req,
                ncpu.upstream_us_per_req_via,
                cpu.upstream_us_per_req_via,
                match (cpu.gateway_kernel_us_per_req, ncpu.gateway_kernel_us_per_req) {
                    (Some(gk), Some(nk)) => format!(
                        " Split by mode: in the kernel the gateway used {gk:.1} µs/request and nginx {nk:.1}; in user \
                         space the gateway {:.1} and nginx {:.1}.",
                        cpu.gateway_us_per_req - gk,
                        ncpu.gateway_us_per_req - nk
                    ),
                    _ => String::new(),
                },
            ));
        }
        if cpu.upstream_us_per_req_direct > 0.0 {
            n.push(format!(
                "Machine speed: this shared VM's speed moves from run to run by a quarter or more (host contention), \
                 and every CPU figure with it. The yardstick is the bench upstream, the same code in every run: it used \
                 {:.1} µs/request serving wrk directly here (6.0 in the fastest run recorded, at 28607ce, on the AMD EPYC machine of the earlier reports). The gateway \
                 used {:.2}× that per request ({:.1} µs); compare that ratio, not the microseconds, across reports.",
                cpu.upstream_us_per_req_direct,
                cpu.gateway_us_per_req / cpu.upstream_us_per_req_direct,
                cpu.gateway_us_per_req,
            ));
        }
    }
    n.push(
        "CPU µs/request (e) is utime+stime of the gateway process from /proc/PID/stat over one wrk run, divided by the \
         requests wrk completed (in brackets: the kernel-mode part, stime); the tick is 10 ms, negligible over a run \
         of several CPU-seconds."
            .into(),
    );
    if let (Some((_, p)), Some(one)) = (
        rep.fixed_rate.iter().find(|(r, _)| *r == 50),
        &rep.fixed_rate_one_cpu,
    ) {
        n.push(format!(
            "Fixed rate (b), one CPU: with the load generator, the gateway and the upstream all on CPU 0 the gateway \
             adds p50 {:+.0} µs at 50 req/s, against {:+.0} µs when the scheduler spreads them over both CPUs. Through \
             the gateway a request crosses four sockets instead of two, and at 50 req/s each crossing finds the \
             receiver asleep: spread over two CPUs that is a wake-up of an idle virtual CPU (an inter-processor \
             interrupt through the hypervisor), which costs far more here than the gateway's own work (sequential \
             row: {}). Against a real provider the upstream hop is a network round trip of milliseconds; the \
             gateway does not spin to hide this (that would burn a core per worker to win a loopback benchmark).{}",
            one.added_p50_us,
            p.added_p50_us,
            rep.sequential.as_ref().map_or("not run".into(), |s| format!("p50 {:+.0} µs", s.added_p50_us)),
            halt_polling_note(),
        ));
    }
    if let Some((_, p)) = rep.fixed_rate.iter().find(|(r, _)| *r == 50) {
        n.push(format!(
            "Fixed rate (b): at low rates each request wakes idle threads on both hops (client → gateway → upstream), \
             so added latency at 50 req/s (p50 {:+.0} µs) is mostly scheduler wake-up cost on a shared VM rather than \
             work; its p99 over {} requests is a handful of samples and moves with whatever else runs on the box. \
             oha's --latency-correction measures from the scheduled send time (no coordinated omission).",
            p.added_p50_us, p.gateway.requests
        ));
    }
    if let Some(r) = &rep.rss {
        n.push(format!(
            "RSS (e): 5 s after the load the gateway still keeps the upstream connections the load opened (the \
             upstream pool, one per I/O worker, 90 s idle timeout: a burst's connections are reused by the next burst \
             instead of reconnecting, which for a real provider means a new TLS handshake); with their buffers and \
             allocator pages they hold {:.1} MiB above idle. The later reading is taken once they have expired. \
             Each I/O worker hands its freed pages back to the OS after 1 s without requests (`trim.rs`, \
             mimalloc's `mi_collect`); without that, the freed pages stay with the idle worker. Capping the pool's \
             idle connections instead (8 or 32 per worker) was measured and dropped: at c=128 connection churn \
             halved the throughput.",
            r.after_mib - r.idle_mib
        ));
    }
    if rep.stream.is_some() {
        n.push(
            "Streaming (d): measured by the bench client (hyper, one keep-alive connection, TCP_NODELAY); TTFB = first \
             body bytes. The gateway holds each response until the upstream's first event (to fail over before any \
             byte reaches the client), so its TTFB includes one full upstream round trip plus the relay's setup."
                .into(),
        );
    }
    if rep.failover.is_some() {
        n.push(
            "Failover: measured after B's breaker is open, so requests go straight to A at zero extra attempts; every \
             30 s (the cooldown) one half-open probe is let through to B, fails, and is retried on A, which can show as a \
             single slow request in a phase's p99."
                .into(),
        );
    }
    let cpu_of = |prefix: &str| {
        rep.ladder
            .iter()
            .find(|r| r.name.starts_with(prefix))
            .and_then(|r| {
                r.cpu_us_per_req
                    .zip(r.saturation.as_ref().map(|s| s.gateway.rps))
            })
    };
    if let (Some((c0, r0)), Some((c1, r1))) = (cpu_of("0."), cpu_of("1.")) {
        n.push(format!(
            "Ladder: the per-request usage log line (tracing fmt to stderr, here a file) costs {:.1} µs CPU/request \
             ({c1:.1} with it vs {c0:.1} without) and {:.0}% of saturated throughput ({r1:.0} vs {r0:.0} req/s).",
            c1 - c0,
            if r0 > 0.0 { (1.0 - r1 / r0) * 100.0 } else { 0.0 }
        ));
    }
    if let (Some((c4, r4)), Some((c4j, r4j))) = (cpu_of("4."), cpu_of("4j.")) {
        n.push(format!(
            "Ladder, usage journal (issue 18 §5): a started and a finished record per request, one `write(2)` each \
             to the page cache, cost {:.1} µs CPU/request ({c4:.1} with it, step 4, vs {c4j:.1} without, step 4j) \
             and {:.0}% of saturated throughput ({r4:.0} vs {r4j:.0} req/s).",
            c4 - c4j,
            if r4j > 0.0 { (1.0 - r4 / r4j) * 100.0 } else { 0.0 }
        ));
    }
    if let (Some((c4, _)), Some((c5, _)), Some((c5b, _))) =
        (cpu_of("4."), cpu_of("5. "), cpu_of("5b."))
    {
        n.push(format!(
            "Ladder, PII masking: a clean prompt costs one scan of the raw body by a RegexSet of every rule \
             (step 5: {c5:.1} µs/request vs {c4:.1} without masking, within run-to-run noise; callgrind: +5.6k \
             instructions, `switchyard-bench driver --kind 4`); a prompt with something to mask is parsed, masked and \
             re-serialised (step 5b: {c5b:.1} µs; +35k instructions, `--kind 5`)."
        ));
    }
    if let (Some((ch, rh)), Some((cm, rm))) = (cpu_of("6. "), cpu_of("6a.")) {
        n.push(format!(
            "Ladder, cache: a hit ({rh:.0} req/s, {ch:.1} µs/request) still does everything but the upstream call: \
             auth, admission (rate limits, budget reservation), the cache key (SHA-256 of the body), the response, and \
             a usage row (a cache hit at zero cost). The miss path ({rm:.0} req/s, {cm:.1} µs/request) adds the upstream \
             exchange, the PII scan and the insert into the cache; the upstream's own CPU also competes for the same two \
             cores."
        ));
    }
    if rep.profile.is_some() {
        n.push(
            "Profile: `perf record -e cpu-clock` (this VM exposes no hardware counters), flat self time of the gateway \
             process during a c=32 run. Kernel time there is loopback TCP, epoll and thread wake-ups (the \
             `_raw_spin_unlock_irqrestore` / `finish_task_switch` samples are where the scheduler re-enables \
             interrupts after switching threads): each request is two reads and two writes, and a loopback write \
             runs the receiver's TCP stack in the writer's context. By thread: `switchyard-io-N` are the I/O \
             workers (the request path), `usage-writer` is SQLite inserting the usage rows, `tokio-rt-worker` \
             the control runtime (usage drain, metrics, governance refresh), `sqlx-sqlite-wor` sqlx's thread for \
             the other governance queries."
                .into(),
        );
    }
    n.push(
        "Peers need their own installs (PyPI, npm); a peer that could not be installed or started is reported as such, \
         never estimated."
            .into(),
    );
    rep.notes.extend(n);
}

/// What the guest kernel does with an idle vCPU, when it says: with
/// halt-polling off, an idle vCPU halts at once and every wake-up is a round
/// trip through the host (`cpuidle-haltpoll`'s `guest_halt_poll_ns`).
fn halt_polling_note() -> String {
    let driver = std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
        .unwrap_or_default();
    let poll_ns = std::fs::read_to_string("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (driver.trim(), poll_ns) {
        ("haltpoll", Some(0)) => " On this machine the guest's idle driver is `haltpoll` with \
             `guest_halt_poll_ns` = 0 (set on the kernel command line): an idle vCPU halts at once, without polling \
             first, so each of those wake-ups is a round trip through the host."
            .into(),
        ("haltpoll", Some(ns)) => format!(
            " On this machine the guest's idle driver is `haltpoll`, polling up to {ns} ns before it halts."
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply goes into a single-quoted nginx string: it must hold no
    /// quote or variable sign nginx would interpret, and it must be the
    /// upstream's own reply, byte for byte.
    #[test]
    fn nginx_serves_the_upstream_reply_verbatim() {
        let f = crate::upstream::Fixtures::new();
        let reply = std::str::from_utf8(f.openai_json()).unwrap();
        assert!(!reply.contains(['\'', '$', '\\']), "{reply}");
        let conf = nginx_conf(Path::new("/tmp/x"), 4242, reply);
        assert!(conf.contains(&format!("return 200 '{reply}';")), "{conf}");
        assert!(conf.contains("listen 127.0.0.1:4242;"));
        assert!(conf.contains("daemon off;"));
    }

    /// The time fields are counted after the `(comm)`, whatever it holds:
    /// utime, stime, cutime and cstime are fields 14–17 of the line.
    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    70 30 5 2 20 0 3 0 100 1000 200";
        assert_eq!(stat_ticks(line, UTIME..STIME + 1).unwrap(), 100.0);
        assert_eq!(stat_ticks(line, STIME..STIME + 1).unwrap(), 30.0);
        assert_eq!(stat_ticks(line, UTIME..CSTIME + 1).unwrap(), 107.0);
        assert!(stat_ticks("4242 (x) S 1", UTIME..STIME + 1).is_err());
    }

    /// The proxy yardstick is set up as an LLM proxy must be: HTTP/1.1 to
    /// a keep-alive pool (the `Connection` header cleared, or nginx closes
    /// each upstream connection), unbuffered, `TCP_NODELAY`.
    #[test]
    fn nginx_proxy_keeps_upstream_connections_alive() {
        let conf = nginx_proxy_conf(Path::new("/tmp/x"), 4242, 4343);
        for want in [
            "listen 127.0.0.1:4242;",
            "server 127.0.0.1:4343;",
            "keepalive 64;",
            "proxy_pass http://bench_up;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_buffering off;",
            "tcp_nodelay on;",
        ] {
            assert!(conf.contains(want), "{want} missing from\n{conf}");
        }
        assert_eq!(conf.matches("server {").count(), 1, "{conf}");
    }
}
