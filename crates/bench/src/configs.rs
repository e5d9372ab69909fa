//! Gateway configurations used by the benchmark (YAML text, as a user would
//! write it), request bodies, and the feature ladder.
//!
//! Secrets are `${GW_KEY}` / `${UP_KEY}` references, as the config format
//! requires; [`env`] supplies them to in-process gateways and the runner
//! sets them in the gateway process's environment.

/// The gateway key clients present.
pub const GW_KEY: &str = "sk-bench-gateway";
/// The (ignored) key the gateway sends upstream.
pub const UP_KEY: &str = "sk-bench-upstream";

/// Environment lookup for in-process gateways.
pub fn env(name: &str) -> Option<String> {
    match name {
        "GW_KEY" => Some(GW_KEY.to_owned()),
        "UP_KEY" => Some(UP_KEY.to_owned()),
        _ => None,
    }
}

/// Non-streaming OpenAI request for alias `model`.
pub fn chat_body(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a benchmark."}},{{"role":"user","content":"Say hello in one short sentence."}}],"max_tokens":64,"temperature":0}}"#
    )
}

/// Streaming OpenAI request (with usage) for alias `model`.
pub fn stream_body(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a benchmark."}},{{"role":"user","content":"Say hello in one short sentence."}}],"max_tokens":64,"temperature":0,"stream":true,"stream_options":{{"include_usage":true}}}}"#
    )
}

/// Anthropic Messages request (for hitting the upstream's `/v1/messages`
/// directly, the translated path's baseline).
pub fn anthropic_body(stream: bool) -> String {
    format!(
        r#"{{"model":"bench-model","max_tokens":64,"system":"You are a benchmark.","messages":[{{"role":"user","content":"Say hello in one short sentence."}}],"temperature":0,"stream":{stream}}}"#
    )
}

/// The main gateway config: alias `bench` (OpenAI pass-through) and
/// `bench-translated` (OpenAI client → Anthropic upstream), both on the
/// upstream at `up_port`.
pub fn main_config(gw_port: u16, up_port: u16) -> String {
    format!(
        r#"server:
  listen: 127.0.0.1:{gw_port}
  api_keys: ["${{GW_KEY}}"]
providers:
  up:
    kind: openai
    base_url: http://127.0.0.1:{up_port}/v1
    api_key: ${{UP_KEY}}
  up_anthropic:
    kind: anthropic
    base_url: http://127.0.0.1:{up_port}
    api_key: ${{UP_KEY}}
models:
  bench:
    deployments:
      - provider: up
        model: bench-model
  bench-translated:
    deployments:
      - provider: up_anthropic
        model: bench-model
routing:
  direct: false
"#
    )
}

/// [`main_config`] with governance off: no usage database, no virtual keys.
pub fn bare_config(gw_port: u16, up_port: u16) -> String {
    format!(
        "{}governance:\n  enabled: false\n",
        main_config(gw_port, up_port)
    )
}

/// [`main_config`] with governance on and a `bench` plan whose rate limits
/// are checked on every request but never reached at bench rates.
pub fn governed_config(gw_port: u16, up_port: u16) -> String {
    format!(
        "{}governance:\n  enabled: true\n  refresh_interval: 200ms\n  plans:\n    bench: {{ rpm: 100000000, tpm: 100000000000 }}\n",
        main_config(gw_port, up_port)
    )
}

/// [`governed_config`] with the usage write-ahead journal off: steps 4 and
/// 4j differ only by the journal (two `write(2)`s per request).
pub fn governed_no_journal_config(gw_port: u16, up_port: u16) -> String {
    format!("{}  journal: false\n", governed_config(gw_port, up_port))
}

/// The failover config (issue 3): alias `bench-ha` over two OpenAI
/// upstreams, round robin, the README's default breaker written out.
pub fn failover_config(gw_port: u16, a_port: u16, b_port: u16) -> String {
    format!(
        r#"server:
  listen: 127.0.0.1:{gw_port}
  api_keys: ["${{GW_KEY}}"]
providers:
  up_a:
    kind: openai
    base_url: http://127.0.0.1:{a_port}/v1
    api_key: ${{UP_KEY}}
  up_b:
    kind: openai
    base_url: http://127.0.0.1:{b_port}/v1
    api_key: ${{UP_KEY}}
models:
  bench-ha:
    strategy: round_robin
    deployments:
      - provider: up_a
        model: bench-model
      - provider: up_b
        model: bench-model
routing:
  direct: false
reliability:
  retries: 2
  backoff: {{ base: 100ms, max: 5s }}
  retry_budget: {{ ratio: 0.2, min_per_second: 5, window: 10s }}
  breaker:
    consecutive_failures: 5
    failure_rate: 0.5
    min_requests: 20
    window: 30s
    cooldown: 30s
    half_open_probes: 1
    successes_to_close: 1
"#
    )
}

/// [`governed_config`] plus `guardrails.pii` with every built-in entity
/// masked (secrets refused, as a careful operator would configure it).
pub fn pii_config(gw_port: u16, up_port: u16) -> String {
    format!(
        "{}guardrails:\n  pii:\n    action: mask\n    block: [secret]\n",
        governed_config(gw_port, up_port)
    )
}

/// [`pii_config`] plus the response cache.
pub fn cache_config(gw_port: u16, up_port: u16) -> String {
    format!(
        "{}cache:\n  ttl: 10m\n  max_size: 16MiB\n",
        pii_config(gw_port, up_port)
    )
}

/// [`chat_body`] whose prompt holds an e-mail address and a phone number
/// (both masked on the way through).
pub fn pii_body(model: &str) -> String {
    format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a benchmark."}},{{"role":"user","content":"Say hello to jane.doe@example.com, phone +1 415 555 2671."}}],"max_tokens":64,"temperature":0}}"#
    )
}

/// One rung of the feature ladder: a gateway config variant plus the request
/// that exercises it. To add a step, add an entry to [`ladder`] with its
/// config; a step whose feature does not exist yet carries `todo` and is
/// reported as such.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    /// Gateway config for `(gw_port, up_port)`.
    pub config: fn(u16, u16) -> String,
    /// Client path on the gateway.
    pub path: &'static str,
    pub body: String,
    /// Extra environment for the gateway process (e.g. `SWITCHYARD_LOG`).
    pub env: &'static [(&'static str, &'static str)],
    /// Extra request headers (e.g. `Cache-Control`).
    pub headers: &'static [(&'static str, &'static str)],
    /// Create a tenant (plan `bench`: a rate limit) and a virtual key with
    /// the CLI (`switchyard tenants create` / `keys create`) against the
    /// step's database before the gateway starts; requests use that key.
    pub virtual_key: bool,
    /// Not measurable yet: why.
    pub todo: Option<&'static str>,
}

/// The ladder, cheapest first.
pub fn ladder() -> Vec<Step> {
    vec![
        Step {
            name: "0. bare routing (governance off), per-request usage log line off (SWITCHYARD_LOG=warn)",
            config: bare_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[("SWITCHYARD_LOG", "warn")],
            headers: &[],
            virtual_key: false,
            todo: None,
        },
        Step {
            name: "1. bare routing (governance off; OpenAI pass-through, non-stream)",
            config: bare_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: false,
            todo: None,
        },
        Step {
            name: "2. + streaming path (20-chunk SSE pass-through)",
            config: bare_config,
            path: "/v1/chat/completions",
            body: stream_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: false,
            todo: None,
        },
        Step {
            name: "3. + translation (OpenAI client → Anthropic upstream, non-stream)",
            config: bare_config,
            path: "/v1/chat/completions",
            body: chat_body("bench-translated"),
            env: &[],
            headers: &[],
            virtual_key: false,
            todo: None,
        },
        Step {
            name: "3b. translated stream (OpenAI client → Anthropic SSE)",
            config: bare_config,
            path: "/v1/chat/completions",
            body: stream_body("bench-translated"),
            env: &[],
            headers: &[],
            virtual_key: false,
            todo: None,
        },
        Step {
            name: "4. + virtual keys + rate limits + usage logging (governance on; step 1's request with a CLI-made key)",
            config: governed_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: true,
            todo: None,
        },
        Step {
            name: "4j. step 4 without the usage journal (`governance.journal: false`): 4 − 4j = the journal's cost",
            config: governed_no_journal_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: true,
            todo: None,
        },
        Step {
            name: "5. + PII masking, clean prompt (step 4 + `guardrails.pii`, all entities)",
            config: pii_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: true,
            todo: None,
        },
        Step {
            name: "5b. + PII masking, prompt with an e-mail and a phone number (masked)",
            config: pii_config,
            path: "/v1/chat/completions",
            body: pii_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: true,
            todo: None,
        },
        Step {
            name: "6a. cache miss (step 5 + `cache`; `Cache-Control: no-cache`: forwarded, answer stored)",
            config: cache_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[("Cache-Control", "no-cache")],
            virtual_key: true,
            todo: None,
        },
        Step {
            name: "6. cache hit (step 5 + `cache`; the same request answered from memory)",
            config: cache_config,
            path: "/v1/chat/completions",
            body: chat_body("bench"),
            env: &[],
            headers: &[],
            virtual_key: true,
            todo: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_validate() {
        for text in [
            main_config(4000, 4001),
            bare_config(4000, 4001),
            governed_config(4000, 4001),
            governed_no_journal_config(4000, 4001),
            pii_config(4000, 4001),
            cache_config(4000, 4001),
            failover_config(4000, 4001, 4002),
        ] {
            let cfg = switchyard_server::config::from_yaml(&text, "bench.yaml", &env);
            assert!(cfg.is_ok(), "{:?}", cfg.err());
        }
    }

    #[test]
    fn bodies_are_json() {
        for b in [
            chat_body("x"),
            pii_body("x"),
            stream_body("x"),
            anthropic_body(true),
            anthropic_body(false),
        ] {
            serde_json::from_str::<serde_json::Value>(&b).unwrap();
        }
    }
}
