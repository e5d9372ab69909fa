//! Keyless demo: start the built-in mock providers (impersonating OpenAI,
//! Anthropic and Gemini, clearly labelled "demo") and route demo aliases to
//! them.

use crate::config::{Config, Source, DEFAULT_LISTEN, DEFAULT_MAX_BODY};
use crate::routing::{Alias, Deployment};
use std::sync::Arc;
use switchyard_core::provider::{preset, Provider, Secret, Timeouts};
use switchyard_mock::{Flavor, MockOptions, MockServer};

/// The gateway key the demo accepts (printed in the banner).
pub const DEMO_KEY: &str = "sk-switchyard-demo";

/// The running demo providers; dropping this stops them.
pub struct Demo {
    pub servers: Vec<MockServer>,
    pub config: Config,
}

/// Start the three mock providers and build a configuration routing
/// `demo-openai`, `demo-anthropic`, `demo-gemini`, `demo-embed` and `demo`
/// (all three, weighted) to them.
pub async fn start(listen: Option<String>, gateway_keys: Vec<Secret>) -> std::io::Result<Demo> {
    let flavors = [
        (Flavor::OpenAi, "demo-openai", "openai", "gpt-4o-mini"),
        (
            Flavor::Anthropic,
            "demo-anthropic",
            "anthropic",
            "claude-sonnet-4-5",
        ),
        (Flavor::Gemini, "demo-gemini", "gemini", "gemini-2.5-flash"),
    ];
    let mut servers = Vec::new();
    let mut providers = Vec::new();
    let mut aliases = Vec::new();
    for (flavor, label, kind, model) in flavors {
        let key = format!("{label}-upstream-key");
        let server = MockServer::start(MockOptions {
            flavor,
            api_key: Some(key.clone()),
            label: label.to_owned(),
        })
        .await?;
        let Some(preset) = preset(kind) else { continue };
        let mut p = Provider::new(
            label.to_owned(),
            preset,
            server.base_url(),
            vec![Secret::new(key)],
            Vec::new(),
            None,
            Timeouts::default(),
        );
        p.label = Some("demo".into());
        let p = Arc::new(p);
        let dep = Deployment::new(format!("{label}#0"), p.clone(), model.to_owned());
        let mut alias = Alias::new(label.to_owned(), vec![Arc::new(dep)]);
        alias.description = Some(format!(
            "DEMO: built-in mock impersonating {} ({model}); canned replies",
            preset.display_name
        ));
        aliases.push(alias);
        if flavor == Flavor::OpenAi {
            let dep = Deployment::new(
                "demo-embed#0".into(),
                p.clone(),
                "text-embedding-3-small".into(),
            );
            let mut alias = Alias::new("demo-embed".into(), vec![Arc::new(dep)]);
            alias.description =
                Some("DEMO: mock OpenAI embeddings (text-embedding-3-small)".into());
            aliases.push(alias);
        }
        providers.push(p);
        servers.push(server);
    }
    let all: Vec<_> = aliases
        .iter()
        .filter(|a| a.name != "demo-embed")
        .flat_map(|a| a.deployments.clone())
        .collect();
    let mut demo = Alias::new("demo".into(), all);
    demo.description = Some("DEMO: spread across the three mock providers".into());
    aliases.push(demo);
    let api_keys = if gateway_keys.is_empty() {
        vec![Secret::new(DEMO_KEY)]
    } else {
        gateway_keys
    };
    Ok(Demo {
        servers,
        config: Config {
            listen: listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            max_body_size: DEFAULT_MAX_BODY,
            api_keys,
            allow_unauthenticated: false,
            workers: 0,
            providers,
            aliases,
            direct: true,
            infer_by_prefix: false,
            source: Source::Demo,
            reliability: Default::default(),
            health_checks: Vec::new(),
            governance: Some(crate::config::GovernanceConfig::in_dir(
                crate::config::process_env("SWITCHYARD_DATA_DIR").unwrap_or_else(|| "data".into()),
                crate::config::process_env("SWITCHYARD_MASTER_KEY").map(Secret::new),
            )),
            pii: None,
            cache: None,
            metrics_endpoint: Default::default(),
            front: Default::default(),
        },
    })
}
