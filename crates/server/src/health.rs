//! Active health checks: each provider with `health_check:` configured is
//! probed (GET its model list) every `interval`; after `unhealthy_after`
//! consecutive failures its deployments are skipped by routing, after
//! `healthy_after` consecutive successes they are used again (a 429 answer
//! counts as alive). Passive health (real traffic) is the breakers' job.
//! When every deployment a request could use is ejected, it is routed to
//! them anyway (`attempt::run`).

use crate::config::HealthCheck;
use crate::state::AppState;
use std::sync::Arc;
use switchyard_core::provider::Provider;
use tokio::task::JoinHandle;

/// The running probes; dropping this stops them.
#[derive(Debug, Default)]
pub struct HealthTasks(Vec<JoinHandle<()>>);

impl Drop for HealthTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Start one probe task per configured provider.
pub fn spawn(state: &Arc<AppState>) -> HealthTasks {
    let mut tasks = Vec::new();
    for (provider, hc) in &state.health_checks {
        let Some(client) = state.clients.get(&provider.name).cloned() else {
            continue;
        };
        tasks.push(tokio::spawn(run(provider.clone(), *hc, client)));
    }
    HealthTasks(tasks)
}

async fn run(provider: Arc<Provider>, hc: HealthCheck, client: crate::upstream::Client) {
    let (mut fails, mut oks) = (0u32, 0u32);
    let mut tick = tokio::time::interval(hc.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match probe(&provider, &hc, &client).await {
            Ok(()) => {
                oks += 1;
                fails = 0;
                if !provider.is_healthy() && oks >= hc.healthy_after {
                    provider.set_healthy(true);
                    tracing::info!(target: "switchyard::health", provider = %provider.name, "provider healthy again");
                }
            }
            Err(why) => {
                fails += 1;
                oks = 0;
                if provider.is_healthy() && fails >= hc.unhealthy_after {
                    provider.set_healthy(false);
                    tracing::warn!(target: "switchyard::health", provider = %provider.name, reason = %why, "provider marked unhealthy");
                }
            }
        }
    }
}

async fn probe(
    provider: &Provider,
    hc: &HealthCheck,
    client: &crate::upstream::Client,
) -> Result<(), String> {
    let url = provider.models_url();
    let uri = url
        .parse::<http::Uri>()
        .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    let req = crate::upstream::get(uri, provider.request_headers().0);
    let probe = async {
        let r = client.send(req).await.map_err(|e| match e {
            crate::upstream::SendError::ConnectTimeout => "connect timeout".to_owned(),
            crate::upstream::SendError::Failed(m) => m,
        })?;
        let status = r.status();
        // Read the body so the connection goes back to the pool.
        let _ = crate::upstream::read_body(r.into_body(), 1024 * 1024).await;
        // A 429 is back-pressure from a provider that is up, not ill health.
        if status.is_success() || status.as_u16() == 429 {
            Ok(())
        } else {
            Err(format!("probe answered {status}"))
        }
    };
    match tokio::time::timeout(hc.timeout, probe).await {
        Err(_) => Err("probe timed out".into()),
        Ok(r) => r,
    }
}
