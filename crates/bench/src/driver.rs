//! The deterministic in-process driver for the instruction-count gate.
//!
//! One thread (a current-thread tokio runtime) runs the fast upstream, the
//! gateway (as a library) and a client that sends a fixed request mix over
//! one keep-alive connection: first directly to the upstream, then through
//! the gateway. Between phases it calls [`phase_mark`], which callgrind is
//! told to dump before (`--dump-before=*phase_mark*`), so each phase's
//! instructions land in their own dump: gateway instructions per request =
//! (gateway phase − direct phase) / requests.

use crate::client::{self, Spec};
use crate::{configs, upstream};
use anyhow::{bail, Context};
use bytes::Bytes;
use serde::Serialize;
use std::time::Instant;
use tokio::net::TcpListener;

/// The request kinds of the mix, in order; request `i` is kind `i % 4`.
pub const MIX: [&str; 4] = [
    "openai non-stream pass-through",
    "openai stream pass-through (20 chunks)",
    "openai → anthropic translated, non-stream",
    "openai → anthropic translated, stream",
];

/// Extra kinds for profiling one feature with `--kind` (not in the gate's
/// mix): each runs [`configs::main_config`] plus that feature.
pub const EXTRA: [&str; 4] = [
    "openai non-stream pass-through + guardrails.pii, clean prompt",
    "openai non-stream pass-through + guardrails.pii, prompt masked",
    "openai non-stream + guardrails.pii + cache, every request a hit",
    "openai non-stream pass-through, governance on: virtual key, plan limits, usage rows (SQLite)",
];

/// The `--kind` of the governed extra (the gateway as the binary runs it:
/// `switchyard_server::build` and its I/O worker threads).
pub const GOVERNED: usize = 7;

pub fn kind_name(k: usize) -> &'static str {
    MIX.get(k)
        .or_else(|| EXTRA.get(k - MIX.len()))
        .copied()
        .unwrap_or("?")
}

/// A phase boundary for callgrind's `--dump-before`. Never inlined, so the
/// symbol exists; it does nothing else.
#[inline(never)]
pub fn phase_mark(phase: u32) {
    std::hint::black_box(phase);
}

#[derive(Debug, Serialize)]
pub struct DriverReport {
    pub requests_per_phase: usize,
    pub mix: Vec<&'static str>,
    pub direct_wall_s: f64,
    pub gateway_wall_s: f64,
}

fn specs(addr: &str, gateway: bool) -> Vec<Spec> {
    let key = gateway.then(|| configs::GW_KEY.to_owned());
    let mk = |path: &str, body: String| Spec {
        addr: addr.to_owned(),
        path: path.to_owned(),
        body: Bytes::from(body),
        key: key.clone(),
        requests: 1,
        connections: 1,
        record_events: false,
    };
    // The mix, then the extra kinds.
    if gateway {
        vec![
            mk("/v1/chat/completions", configs::chat_body("bench")),
            mk("/v1/chat/completions", configs::stream_body("bench")),
            mk(
                "/v1/chat/completions",
                configs::chat_body("bench-translated"),
            ),
            mk(
                "/v1/chat/completions",
                configs::stream_body("bench-translated"),
            ),
            mk("/v1/chat/completions", configs::chat_body("bench")),
            mk("/v1/chat/completions", configs::pii_body("bench")),
            mk("/v1/chat/completions", configs::chat_body("bench")),
            mk("/v1/chat/completions", configs::chat_body("bench")),
        ]
    } else {
        vec![
            mk("/v1/chat/completions", configs::chat_body("bench-model")),
            mk("/v1/chat/completions", configs::stream_body("bench-model")),
            mk("/v1/messages", configs::anthropic_body(false)),
            mk("/v1/messages", configs::anthropic_body(true)),
            mk("/v1/chat/completions", configs::chat_body("bench-model")),
            mk("/v1/chat/completions", configs::pii_body("bench-model")),
            mk("/v1/chat/completions", configs::chat_body("bench-model")),
            mk("/v1/chat/completions", configs::chat_body("bench-model")),
        ]
    }
}

async fn phase(
    addr: &str,
    gateway: bool,
    n: usize,
    kind: Option<usize>,
    key: Option<&str>,
) -> anyhow::Result<f64> {
    let mut specs = specs(addr, gateway);
    match kind {
        Some(k) => specs = vec![specs.swap_remove(k)],
        None => specs.truncate(MIX.len()),
    }
    if let (true, Some(k)) = (gateway, key) {
        for s in &mut specs {
            s.key = Some(k.to_owned());
        }
    }
    let mut send = client::connect(addr).await?;
    let t0 = Instant::now();
    for i in 0..n {
        let one = client::one(&mut send, &specs[i % specs.len()]).await?;
        if one.status != 200 {
            bail!(
                "request {i} ({}) answered {}",
                kind_name(kind.unwrap_or(i % MIX.len())),
                one.status
            );
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Run the driver: `n` requests per phase (a multiple of 4 keeps the mix
/// even), `warmup` per target before the first mark. `kind` (an index into
/// [`MIX`]) sends only that kind, for profiling one path.
pub fn run(n: usize, warmup: usize, kind: Option<usize>) -> anyhow::Result<DriverReport> {
    if let Some(k) = kind {
        if k >= MIX.len() + EXTRA.len() {
            bail!("--kind {k}: there are {} kinds", MIX.len() + EXTRA.len());
        }
    }
    // Log as the shipped binary does by default (info, usage lines
    // included), into a sink: formatting is part of the cost, writing is not.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,switchyard::usage=info",
        ))
        .with_writer(std::io::sink)
        .with_ansi(false)
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    rt.block_on(async move {
        let up = TcpListener::bind("127.0.0.1:0").await?;
        let up_port = up.local_addr()?.port();
        tokio::spawn(upstream::serve(up, upstream::Options::default()));

        let gw = TcpListener::bind("127.0.0.1:0").await?;
        let gw_port = gw.local_addr()?.port();
        let mut text = configs::main_config(gw_port, up_port);
        match kind {
            Some(4 | 5) => text.push_str("guardrails:\n  pii: { block: [secret] }\n"),
            Some(6) => text.push_str("guardrails:\n  pii: { block: [secret] }\ncache: {}\n"),
            _ => {}
        }
        let db_dir = std::env::temp_dir().join(format!("switchyard-driver-{}", std::process::id()));
        if kind == Some(GOVERNED) {
            let _ = std::fs::remove_dir_all(&db_dir);
            std::fs::create_dir_all(&db_dir)?;
            text = configs::governed_config(gw_port, up_port)
                // No refresh during the run: its instructions would scale
                // with wall time, which callgrind stretches.
                .replace("refresh_interval: 200ms", "refresh_interval: 1h")
                .replace(
                    "  enabled: true\n",
                    &format!(
                        "  enabled: true\n  database_url: \"sqlite://{0}/gov.db\"\n  data_dir: \"{0}\"\n",
                        db_dir.display()
                    ),
                );
        }
        let cfg = switchyard_server::config::from_yaml(&text, "bench.yaml", &configs::env)
            .map_err(|p| anyhow::anyhow!("bench config invalid: {p:?}"))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        };
        let mut vkey = None;
        let server = if kind == Some(GOVERNED) {
            vkey = Some(virtual_key(&cfg).await?);
            let running = switchyard_server::build(cfg)
                .await
                .map_err(|e| anyhow::anyhow!("gateway: {e}"))?;
            tokio::spawn(running.serve(gw, stop))
        } else {
            let (sink, writer) = switchyard_server::usage::UsageSink::new();
            tokio::spawn(writer);
            let state =
                switchyard_server::state::AppState::new(cfg, sink).map_err(anyhow::Error::msg)?;
            tokio::spawn(switchyard_server::serve(gw, state, stop))
        };
        let key = vkey.as_deref();

        let up_addr = format!("127.0.0.1:{up_port}");
        let gw_addr = format!("127.0.0.1:{gw_port}");
        phase(&up_addr, false, warmup, kind, key).await?;
        phase(&gw_addr, true, warmup, kind, key).await?;
        phase_mark(1);
        let direct_wall_s = phase(&up_addr, false, n, kind, key).await?;
        phase_mark(2);
        let gateway_wall_s = phase(&gw_addr, true, n, kind, key).await?;
        phase_mark(3);
        let _ = stop_tx.send(());
        let _ = server.await;
        if kind == Some(GOVERNED) {
            let _ = std::fs::remove_dir_all(&db_dir);
        }
        Ok(DriverReport {
            requests_per_phase: n,
            mix: MIX.to_vec(),
            direct_wall_s,
            gateway_wall_s,
        })
    })
}

/// A tenant on the `bench` plan and a virtual key for it, made as the CLI
/// makes them (`tenants create`, `keys create`) in the config's database.
async fn virtual_key(cfg: &switchyard_server::config::Config) -> anyhow::Result<String> {
    use switchyard_server::admin::ops;
    let g = cfg.governance.as_ref().context("governed config")?;
    let store = switchyard_server::store::Store::connect(&g.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("governance database: {e}"))?;
    let ctx = ops::Ctx {
        store: &store,
        plans: &g.plans,
        actor: ops::Actor::Cli,
        ip: None,
        audit: ops::AuditTo::Store,
        router: None,
        ledger: None,
    };
    let t = ops::create_tenant(
        &ctx,
        ops::NewTenant {
            name: "bench".into(),
            status: None,
            plan: Some("bench".into()),
            allowed_models: None,
            metadata: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("tenant: {e:?}"))?;
    let k = ops::create_key(
        &ctx,
        ops::NewKey {
            tenant_id: Some(t.id),
            user_id: None,
            name: Some("bench".into()),
            role: None,
            allowed_models: None,
            expires_at: None,
            expires_in: None,
            metadata: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("key: {e:?}"))?;
    Ok(k.key)
}
