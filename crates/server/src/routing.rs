//! Model aliases → deployments: name resolution and deployment choice.
//!
//! Resolution order for a requested model name: a configured alias; then
//! `provider/model` (when `routing.direct`); then, in environment mode, a
//! well-known prefix (`gpt-` → openai, `claude-` → anthropic …).

use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_core::provider::Provider;

/// USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
}

/// One provider + upstream model behind an alias.
#[derive(Debug)]
pub struct Deployment {
    /// Stable id for headers and logs: `alias#index` or `provider/model`.
    pub id: String,
    pub provider: Arc<Provider>,
    /// Upstream model name (Azure: deployment name).
    pub model: String,
    pub weight: u32,
    pub region: Option<String>,
    pub price: Option<Price>,
}

/// A model name clients use, served by one or more deployments.
#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub description: Option<String>,
    pub deployments: Vec<Arc<Deployment>>,
}

/// The routing table, immutable once built.
#[derive(Debug, Default)]
pub struct Router {
    aliases: HashMap<String, Arc<Alias>>,
    /// Aliases in config order, for `/v1/models`.
    ordered: Vec<Arc<Alias>>,
    providers: HashMap<String, Arc<Provider>>,
    direct: bool,
    infer_by_prefix: bool,
}

/// What a model name resolved to.
#[derive(Debug, Clone)]
pub struct Route {
    pub alias: Arc<Alias>,
}

impl Router {
    pub fn new(
        aliases: Vec<Alias>,
        providers: Vec<Arc<Provider>>,
        direct: bool,
        infer_by_prefix: bool,
    ) -> Self {
        let ordered: Vec<Arc<Alias>> = aliases.into_iter().map(Arc::new).collect();
        Router {
            aliases: ordered
                .iter()
                .map(|a| (a.name.clone(), a.clone()))
                .collect(),
            ordered,
            providers: providers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            direct,
            infer_by_prefix,
        }
    }

    /// Every configured alias, in config order.
    pub fn aliases(&self) -> &[Arc<Alias>] {
        &self.ordered
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    /// Resolve a requested model name.
    pub fn resolve(&self, model: &str) -> Option<Route> {
        if let Some(a) = self.aliases.get(model) {
            return Some(Route { alias: a.clone() });
        }
        if self.direct {
            if let Some((p, m)) = model.split_once('/') {
                if let Some(provider) = self.providers.get(p) {
                    if !m.is_empty() {
                        return Some(Route {
                            alias: Arc::new(single(model, provider, m)),
                        });
                    }
                }
            }
        }
        if self.infer_by_prefix {
            let mut providers: Vec<&Arc<Provider>> = self.providers.values().collect();
            providers.sort_by(|a, b| a.name.cmp(&b.name));
            for p in providers {
                if p.preset
                    .model_prefixes
                    .iter()
                    .any(|pre| model.starts_with(pre))
                {
                    return Some(Route {
                        alias: Arc::new(single(model, p, model)),
                    });
                }
            }
        }
        None
    }
}

fn single(name: &str, provider: &Arc<Provider>, model: &str) -> Alias {
    Alias {
        name: name.to_owned(),
        description: None,
        deployments: vec![Arc::new(Deployment {
            id: format!("{}/{model}", provider.name),
            provider: provider.clone(),
            model: model.to_owned(),
            weight: 1,
            region: None,
            price: None,
        })],
    }
}

impl Route {
    /// Choose a deployment: weighted random.
    pub fn pick(&self) -> Option<&Arc<Deployment>> {
        let d = &self.alias.deployments;
        match d.len() {
            0 => None,
            1 => d.first(),
            _ => {
                let total: u64 = d.iter().map(|x| u64::from(x.weight)).sum();
                let mut r = rand::thread_rng().gen_range(0..total.max(1));
                for x in d {
                    let w = u64::from(x.weight);
                    if r < w {
                        return Some(x);
                    }
                    r -= w;
                }
                d.last()
            }
        }
    }
}
