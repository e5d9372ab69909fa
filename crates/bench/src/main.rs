//! `switchyard-bench`: the benchmark harness (see `scripts/bench.sh`).
//!
//! - `upstream`: the fast neutral upstream (OpenAI + Anthropic fixed replies).
//! - `client`: TTFB / total / SSE-event timing client, JSON out.
//! - `driver`: the in-process instruction-count driver (run under callgrind).
//! - `gate`: read callgrind dumps, compare with the committed baseline.
//! - `run`: the scenario runner (upstreams, gateway, wrk/oha, report).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod client;
mod configs;
mod driver;
mod gate;
mod report;
mod run;
mod upstream;

use anyhow::Context;

/// mimalloc: fewer instructions per allocation than glibc malloc and no
/// per-thread arenas that keep freed memory after load (bench/report.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "switchyard-bench", about = "Switchyard benchmark harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the fast upstream until killed.
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Delay between stream events, milliseconds.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
        /// Answer every request with HTTP 500.
        #[arg(long)]
        fail500: bool,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Send requests and print timing percentiles as JSON.
    Client {
        /// host:port
        #[arg(long)]
        addr: String,
        #[arg(long, default_value = "/v1/chat/completions")]
        path: String,
        /// Request body (JSON text).
        #[arg(long)]
        body: String,
        /// Gateway key (Authorization: Bearer).
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Record every SSE event's arrival (relay timing).
        #[arg(long)]
        events: bool,
    },
    /// Deterministic in-process driver for callgrind.
    Driver {
        /// Requests per phase (direct, then through the gateway).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 40)]
        warmup: usize,
        /// Only this request kind (index into the mix: 0 non-stream
        /// pass-through, 1 stream pass-through, 2 translated, 3 translated
        /// stream; beyond the mix: 4 PII clean prompt, 5 PII masked
        /// prompt, 6 cache hit), for profiling one path.
        #[arg(long)]
        kind: Option<usize>,
    },
    /// Compare callgrind dumps of a driver run with the baseline.
    Gate {
        /// The `--callgrind-out-file` prefix used for the driver run(s).
        #[arg(long, required = true)]
        out: Vec<PathBuf>,
        #[arg(long, default_value = "bench/callgrind-baseline.json")]
        baseline: PathBuf,
        /// Requests per phase the driver ran.
        #[arg(long)]
        requests: usize,
        /// Write the measured figure as the new baseline instead of checking.
        #[arg(long)]
        update: bool,
        /// Allowed increase over the baseline (0.10 = 10%).
        #[arg(long, default_value_t = 0.10)]
        tolerance: f64,
        /// Write the result JSON here too.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The runs sent only this driver `--kind` (the governed gate,
        /// kind 7); without it, the mix.
        #[arg(long)]
        kind: Option<usize>,
    },
    /// Run the benchmark scenarios and write the report.
    Run(run::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Upstream {
            listen,
            chunk_delay_ms,
            fail500,
            threads,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("bind {listen}"))?;
                println!("listening on {}", l.local_addr()?);
                upstream::serve(
                    l,
                    upstream::Options {
                        chunk_delay: Duration::from_millis(chunk_delay_ms),
                        fail500,
                    },
                )
                .await
            })
        }
        Cmd::Client {
            addr,
            path,
            body,
            key,
            requests,
            connections,
            events,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let out = rt.block_on(client::run(client::Spec {
                addr,
                path,
                body: body.into(),
                key,
                requests,
                connections,
                record_events: events,
            }))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Cmd::Driver {
            requests,
            warmup,
            kind,
        } => {
            let r = driver::run(requests, warmup, kind)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Gate {
            out,
            baseline,
            requests,
            update,
            tolerance,
            json,
            kind,
        } => gate::main(
            &out,
            &baseline,
            requests,
            update,
            tolerance,
            kind,
            json.as_deref(),
        ),
        Cmd::Run(a) => run::main(a),
    }
}
