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

/// Every ```yaml block of the README loads. A block without `providers:` is a
/// fragment: it is merged over a small base config (one provider, one alias)
/// and the result must load. The variables the README refers to are set here;
/// a new one without a default fails this test until it is added.
#[test]
fn readme_yaml_snippets_load() {
    let readme = include_str!("../../../../README.md");
    let env = |k: &str| -> Option<String> {
        match k {
            "SWITCHYARD_API_KEY"
            | "SWITCHYARD_MASTER_KEY"
            | "METRICS_KEY"
            | "OPENAI_API_KEY"
            | "K1"
            | "K2" => Some(format!("sk-test-{k}")),
            _ => None,
        }
    };
    let base: serde_yaml::Value = serde_yaml::from_str(
        "providers:\n  openai: { kind: openai, api_key: \"${OPENAI_API_KEY}\" }\n\
         models:\n  demo: { deployments: [ { provider: openai, model: gpt-4o-mini } ] }\n",
    )
    .unwrap();
    fn merge(into: &mut serde_yaml::Value, from: serde_yaml::Value) {
        match (into, from) {
            (serde_yaml::Value::Mapping(a), serde_yaml::Value::Mapping(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut blocks = 0;
    let mut rest = readme;
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("unterminated yaml block");
        let snippet = &body[..end];
        rest = &body[end + 3..];
        blocks += 1;
        let text = match serde_yaml::from_str::<serde_yaml::Value>(snippet) {
            Ok(v) if v.get("providers").is_none() => {
                let mut b = base.clone();
                merge(&mut b, v);
                serde_yaml::to_string(&b).unwrap()
            }
            _ => snippet.to_owned(),
        };
        if let Err(p) = from_yaml(&text, "README.md", &env) {
            let list: Vec<String> = p.iter().map(|p| p.to_string()).collect();
            panic!(
                "README yaml block #{blocks} does not load:\n{}\n--- block ---\n{snippet}",
                list.join("\n")
            );
        }
    }
    assert!(blocks >= 4, "found only {blocks} yaml blocks in the README");
}

#[test]
fn variables_fill_non_string_fields() {
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some("sk-test".to_owned()),
        "RETRIES" => Some("4".to_owned()),
        "OFF" => Some("false".to_owned()),
        _ => None,
    };
    let cfg = from_yaml(
        "providers:\n  openai: { kind: openai }\nmodels:\n  m:\n    deployments:\n      - { provider: openai, model: gpt-4o, weight: \"${W:-3}\" }\n\
         reliability:\n  retries: ${RETRIES}\nrouting:\n  direct: ${OFF}\ngovernance:\n  enabled: ${GOV:-false}\n",
        "t.yaml",
        &env,
    )
    .unwrap();
    assert_eq!(cfg.aliases[0].deployments[0].weight, 3);
    assert_eq!(cfg.reliability.retries, 4);
    assert!(!cfg.direct);
    assert!(cfg.governance.is_none());
}

#[test]
fn flow_list_reference_trap_is_explained() {
    let p = problems("server:\n  api_keys: [${SWITCHYARD_API_KEY}]\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].fix.contains("must be quoted"), "{}", p[0]);
    assert_eq!(p[0].line, Some(2));
}
