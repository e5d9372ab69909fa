use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "OPENAI_API_KEY" => Some("sk-test".into()),
        "ANTHROPIC_API_KEY" => Some("ak-test".into()),
        _ => None,
    }
}

fn problems(yaml: &str) -> Vec<Problem> {
    match from_yaml(yaml, "t.yaml", &env) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    }
}

#[test]
fn valid_config_resolves_everything() {
    let cfg = from_yaml(
        r#"
server:
  listen: 127.0.0.1:4999
  api_keys: ["${OPENAI_API_KEY}"]
providers:
  openai:
    kind: openai
    api_key: ${OPENAI_API_KEY}
    timeouts: { connect: 2s, first_byte: 30s }
  claude:
    kind: anthropic
models:
  smart:
    deployments:
      - provider: openai
        model: gpt-4o
        weight: 3
        price: { input: 2.5, output: 10 }
      - provider: claude
        model: claude-sonnet-4-5
"#,
        "t.yaml",
        &env,
    )
    .unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:4999");
    assert_eq!(cfg.providers.len(), 2);
    let claude = cfg.providers.iter().find(|p| p.name == "claude").unwrap();
    assert_eq!(claude.keys.len(), 1, "key picked up from ANTHROPIC_API_KEY");
    let openai = cfg.providers.iter().find(|p| p.name == "openai").unwrap();
    assert_eq!(openai.timeouts.connect, Duration::from_secs(2));
    assert_eq!(cfg.aliases[0].deployments[0].weight, 3);
    assert_eq!(
        cfg.aliases[0].deployments[0].price.unwrap().cached_input,
        2.5
    );
}

#[test]
fn inline_secret_is_refused() {
    let p = problems("providers:\n  openai:\n    kind: openai\n    api_key: sk-live-123\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "providers.openai.api_key");
    assert_eq!(p[0].line, Some(4));
    assert!(p[0].fix.contains("${"));
    assert!(
        !p[0].to_string().contains("sk-live-123"),
        "the secret itself is never echoed"
    );
}

#[test]
fn every_problem_is_reported_with_location_and_fix() {
    let p = problems(
        "providers:\n  openai:\n    kind: opnai\n  x:\n    kind: deepseek\nmodels:\n  fast:\n    deployments:\n      - provider: openia\n        model: gpt-4o\n      - provider: x\n  empty: {}\n",
    );
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let all = text.join("\n");
    assert!(
        all.contains("unknown provider kind `opnai`") && all.contains("did you mean `openai`"),
        "{all}"
    );
    assert!(
        all.contains("no API key for `deepseek`") && all.contains("DEEPSEEK_API_KEY"),
        "{all}"
    );
    assert!(all.contains("provider `openia` is not defined"), "{all}");
    assert!(
        all.contains("models.empty: the model has no deployments"),
        "{all}"
    );
    let kind = p
        .iter()
        .find(|p| p.path == "providers.openai.kind")
        .unwrap();
    assert_eq!(kind.line, Some(3));
    let dep = p
        .iter()
        .find(|p| p.path == "models.fast.deployments[0].provider")
        .unwrap();
    assert_eq!(dep.line, Some(9));
}

#[test]
fn unknown_fields_and_syntax_errors_have_lines() {
    let p = problems("providers:\n  openai:\n    kind: openai\n    api_kye: x\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, Some(4));
    assert!(
        p[0].message.contains("unknown field `api_kye`"),
        "{}",
        p[0].message
    );
    let p = problems("providers:\n  openai: [\n");
    assert!(p[0].line.is_some());
}

#[test]
fn missing_env_var_is_reported() {
    let p = problems("providers:\n  o:\n    kind: openai\n    api_key: ${NOPE_KEY}\n");
    assert!(p[0].message.contains("`NOPE_KEY` is not set"));
}

#[test]
fn env_mode_detects_providers() {
    let cfg = from_env(&env).unwrap();
    let kinds: Vec<_> = cfg.providers.iter().map(|p| p.preset.kind).collect();
    assert_eq!(kinds, vec!["openai", "anthropic"]);
    assert!(cfg.aliases.iter().any(|a| a.name == "gpt-4o-mini"));
    assert!(from_env(&|_| None).is_none());
}

#[test]
fn workers_default_to_auto_and_absurd_counts_are_refused() {
    let base = "providers:\n  openai:\n    kind: openai\n";
    let cfg = from_yaml(base, "t.yaml", &env).unwrap();
    assert_eq!(cfg.workers, 0, "absent = one per CPU");
    assert!(crate::state::resolve_workers(cfg.workers) >= 1);
    let cfg = from_yaml(&format!("server:\n  workers: 3\n{base}"), "t.yaml", &env).unwrap();
    assert_eq!(crate::state::resolve_workers(cfg.workers), 3);
    let p = problems(&format!("server:\n  workers: 5000\n{base}"));
    assert!(p.iter().any(|p| p.path == "server.workers"), "{p:?}");
}
